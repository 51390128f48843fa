// Package cli implements jobq, the command-line client of the jobq job
// queue: the equivalents of Ganeti's gnt-job, gnt-cluster queue and
// gnt-debug delay. Output matches Ganeti 3.0's byte for byte where Ganeti
// prints something (see internal/cli/format); every command also has a
// --json form where it lists things.
//
// All commands talk LUXI to jobqd's socket through package client. The
// shared plumbing lives in this file: the socket is found from --socket,
// --data-dir, $JOBQ_SOCKET or the default data directory (in that order);
// calls go through app.do (client's typed methods) and app.call (client's
// Call, for the methods client does not wrap or that jobq sends and reads
// in Ganeti's own shapes), which turn every failure into one message on
// stderr and an exit code (see exitError and Main).
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/buildinfo"
	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/duration"
)

// Exit codes.
const (
	exitSuccess = 0
	// exitFailure: the operation failed (Ganeti's EXIT_FAILURE).
	exitFailure = 1
	// exitUsage: the command line is wrong (unknown command or flag,
	// missing or malformed arguments).
	exitUsage = 2
	// exitUnknownField: a listing asked for fields that do not exist
	// (Ganeti's EXIT_UNKNOWN_FIELD); the listing is still printed.
	exitUnknownField = 14
	// exitConfirmation: the user did not confirm (Ganeti's
	// EXIT_CONFIRMATION).
	exitConfirmation = 13
)

// SocketEnv is the environment variable naming the LUXI socket.
const SocketEnv = client.SocketEnv

// RetryEnv is the environment variable that sets how long jobq sends a
// call again while no master takes it or jobqd restarts (a duration; 0:
// never; default client.DefaultRetryWindow).
const RetryEnv = "JOBQ_RETRY_TIMEOUT"

// wfjcTimeout is how long one WaitForJobChange call may wait on the
// server, in seconds.
const wfjcTimeout = 30

// autoArchiveTimeout is the time limit AutoArchiveJobs gets, in seconds
// (Ganeti's client sends (DEF_RWTO - 1) / 2 = 89).
const autoArchiveTimeout = 89

// Env is the world a jobq invocation talks to. Zero fields mean the
// process's own: os.Stdout, os.Stderr, os.Getenv, time.Local, time.Now.
type Env struct {
	// Stdin answers confirmation questions (cancel --pending).
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads environment variables ($JOBQ_SOCKET).
	Getenv func(string) string
	// Location is the time zone times are printed in.
	Location *time.Location
	// Now gives the time put into the reason trail of submitted opcodes.
	Now func() time.Time
}

func (e Env) withDefaults() Env {
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.Location == nil {
		e.Location = time.Local
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

// exitError ends a command: msg (if not empty) goes to stderr followed by a
// newline, and jobq exits with code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// failf is an operation failure (exit code 1).
func failf(format string, a ...any) error {
	return &exitError{code: exitFailure, msg: fmt.Sprintf(format, a...)}
}

// usagef is a command-line error (exit code 2). The message points to the
// command's help.
func usagef(cmd *cobra.Command, format string, a ...any) error {
	msg := capitalize(fmt.Sprintf(format, a...))
	return &exitError{code: exitUsage, msg: fmt.Sprintf("%s (see \"%s --help\")", msg, cmd.CommandPath())}
}

// silentExit ends a command whose output was already printed.
func silentExit(code int) error { return &exitError{code: code} }

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// drainedMsg is jobq's answer to a submission refused because the queue
// is drained.
const drainedMsg = "The queue is drained: new jobs are refused; run 'jobq queue undrain' to accept them again (jobs already queued still run)."

// abortedMsg is what Ganeti's clients print when interrupted.
const abortedMsg = "Aborted. Note that if the operation created any jobs, they might have been submitted and will continue to run in the background."

// Main runs jobq with args (the command line without the program name) and
// returns its exit code. Cancelling ctx (an interrupt) aborts a call in
// progress.
func Main(ctx context.Context, args []string, env Env) int {
	a := &app{env: env.withDefaults()}
	root := a.newRoot()
	root.SetArgs(args)
	root.SetOut(a.env.Stdout)
	root.SetErr(a.env.Stderr)
	root.SetIn(strings.NewReader(""))
	cmd, err := root.ExecuteContextC(ctx)
	a.close()
	return a.report(cmd, err)
}

// report prints err and returns the exit code for it.
func (a *app) report(cmd *cobra.Command, err error) int {
	if err == nil {
		return exitSuccess
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(a.env.Stderr, ee.msg)
		}
		return ee.code
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintln(a.env.Stderr, abortedMsg)
		return exitFailure
	}
	// An error from cobra itself: a command-line problem.
	if cmd == nil {
		cmd = a.root
	}
	fmt.Fprintln(a.env.Stderr, usagef(cmd, "%s", err.Error()).Error())
	return exitUsage
}

// app is one invocation of jobq.
type app struct {
	env  Env
	root *cobra.Command

	// Global flags.
	socketFlag  string
	dataDirFlag string

	conn   *client.Client
	socket string // the socket conn is connected to
}

func (a *app) close() {
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
}

// socketPath resolves the LUXI socket: --socket, else --data-dir's socket
// (a flag on the command line beats the environment), else $JOBQ_SOCKET,
// else the default data directory's. dataDir is the
// data directory the socket belongs to, if known. It is
// client.ResolveSocket with Changed flags (an empty --socket is an error,
// not "unset") and a.env's environment.
func (a *app) socketPath() (path, dataDir string) {
	if a.root.PersistentFlags().Changed("socket") {
		return a.socketFlag, ""
	}
	if a.root.PersistentFlags().Changed("data-dir") {
		return client.SocketPath(a.dataDirFlag), a.dataDirFlag
	}
	if s := a.env.Getenv(SocketEnv); s != "" {
		return s, ""
	}
	dir := client.DefaultDataDir()
	return client.SocketPath(dir), dir
}

// connect returns the client, connecting on first use.
func (a *app) connect(ctx context.Context) (*client.Client, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	path, dataDir := a.socketPath()
	if path == "" {
		return nil, failf("The socket path is empty: give jobqd's socket with --socket, $%s or --data-dir", SocketEnv)
	}
	retry := time.Duration(-1) // the client's default
	if s := a.env.Getenv(RetryEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, failf("$%s=%q is not a duration such as 30s, or 0 for no retries", RetryEnv, s)
		}
		retry = d
	}
	c, err := client.Dial(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, failf("Cannot connect to jobqd at socket '%s' (permission denied): %s", path, permissionHint(path))
		}
		start := `"jobqd"`
		if dataDir != "" {
			start = strconv.Quote("jobqd --data-dir " + dataDir)
		}
		return nil, failf("Cannot connect to jobqd at socket '%s' (%s): start it with %s, or point jobq at a running jobqd with --socket, $%s or --data-dir",
			path, dialReason(err), start, SocketEnv)
	}
	if retry >= 0 {
		c.SetRetryWindow(retry)
	}
	a.conn, a.socket = c, path
	return c, nil
}

// permissionHint says who may use the socket at path and how to become
// one of them: its group's members (named), or root.
func permissionHint(path string) string {
	// The socket, or the first directory above it this user may see
	// (jobqd gives the data directory the socket's group too).
	var fi os.FileInfo
	for p := path; ; p = filepath.Dir(p) {
		var err error
		if fi, err = os.Stat(p); err == nil || p == filepath.Dir(p) {
			break
		}
	}
	var st *syscall.Stat_t
	if fi != nil {
		st, _ = fi.Sys().(*syscall.Stat_t)
	}
	if st == nil {
		return "run jobq as a user who may use the socket, or with sudo"
	}
	group := strconv.FormatUint(uint64(st.Gid), 10)
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return fmt.Sprintf("only its owner and the members of the group '%s' may use it; join the group (sudo usermod -aG %s $USER, then log in again) or run jobq with sudo", group, group)
}

// dialReason returns the system's words for a failure to connect ("no
// such file or directory", "connection refused"), or the dialer's message.
func dialReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Error()
	}
	return err.Error()
}

// errReason returns the system's words for a broken call ("broken pipe"),
// or the error's text without luxi's prefix.
func errReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return strings.TrimPrefix(err.Error(), "luxi: ")
}

// do runs f, which calls the LUXI method method through one of client's
// methods, on the client (connecting on first use). Every failure comes
// back as an error ready for Main: a failure reply is printed as Ganeti's
// clients print it (format.LuxiError), an answer of the wrong shape and a
// broken connection as one sentence each, and an interrupt as
// context.Canceled.
func (a *app) do(ctx context.Context, method string, f func(c *client.Client) error) error {
	c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	err = f(c)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var le *client.Error // luxi's: a failure reply
	if errors.As(err, &le) {
		if le.Class == "GenericError" && len(le.Args) == 1 && le.Args[0] == "Queue drained" {
			// Ganeti prints "Unhandled Ganeti error: Queue drained".
			return failf("%s", drainedMsg)
		}
		code, msg := format.LuxiError(encodedLuxiError(le))
		return &exitError{code: code, msg: msg}
	}
	var de *client.DecodeError
	if errors.As(err, &de) {
		return failf("jobqd's answer to %s is not what jobq expects (%v)", method, de.Err)
	}
	reason := strings.TrimPrefix(errReason(err), method+": ")
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		reason = "jobqd closed the connection"
	}
	return failf("Lost the connection to jobqd at socket '%s' during %s (%s)", a.socket, method, reason)
}

// call calls method on jobqd with client.Call and decodes its result into
// result (unless result is nil), with numbers as json.Number; failures are
// as for do. It is for the methods client does not wrap (Query,
// QueryFields, QueryConfigValues, the Jobq* calls) and for those whose
// arguments or answers jobq needs as Ganeti's clients send and read them
// (CancelJob's kill flag always sent, raw QueryJobs rows and
// WaitForJobChange log entries, AutoArchiveJobs' seconds).
func (a *app) call(ctx context.Context, result any, method string, args ...any) error {
	return a.do(ctx, method, func(c *client.Client) error {
		return c.Call(ctx, result, method, args...)
	})
}

// submitJob submits a job of one opcode with client.SubmitJob.
func (a *app) submitJob(ctx context.Context, op client.Opcode) (int64, error) {
	var id int64
	err := a.do(ctx, "SubmitJob", func(c *client.Client) (err error) {
		id, err = c.SubmitJob(ctx, op)
		return err
	})
	return id, err
}

// encodedLuxiError returns the "result" of a failure reply: [class, args],
// or the bare message of a request the server could not parse.
func encodedLuxiError(le *client.Error) any {
	if le.Class == "RequestError" && len(le.Args) == 1 {
		return le.Args[0]
	}
	args := le.Args
	if args == nil {
		args = []any{}
	}
	return []any{le.Class, args}
}

// decodeJSON decodes raw into v with numbers as json.Number, as the format
// package expects them.
func decodeJSON(raw []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	return d.Decode(v)
}

// writeJSON prints v as indented JSON, without HTML escaping.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseJobID parses a job ID argument.
func parseJobID(cmd *cobra.Command, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 0 {
		return 0, usagef(cmd, "invalid job ID %q: job IDs are whole numbers such as 6040", s)
	}
	return id, nil
}

func parseJobIDs(cmd *cobra.Command, args []string) ([]int64, error) {
	ids := make([]int64, len(args))
	for i, s := range args {
		id, err := parseJobID(cmd, s)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

// Argument checks, with messages that say what the command wants.

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(cmd, "%q takes exactly %s, got %d argument%s", cmd.CommandPath(), what, len(args), plural(len(args)))
		}
		return nil
	}
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef(cmd, "%q needs %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "%q takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// groupRunE is the RunE of a command that only groups subcommands: it
// refuses a missing or unknown subcommand.
func groupRunE(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" {
			names = append(names, c.Name())
		}
	}
	if len(args) == 0 {
		return usagef(cmd, "%q needs a command: one of %s", cmd.CommandPath(), strings.Join(names, ", "))
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	} else if cmd.HasParent() {
		msg += "; its commands are " + strings.Join(names, ", ")
	}
	return usagef(cmd, "%s", msg)
}

// negativeNumberArg recognises pflag's error for an argument such as "-1"
// (taken for a shorthand flag) and returns that argument.
func negativeNumberArg(err error) (string, bool) {
	msg := err.Error()
	i := strings.LastIndex(msg, " in -")
	if !strings.HasPrefix(msg, "unknown shorthand flag: ") || i < 0 {
		return "", false
	}
	arg := msg[i+len(" in "):]
	if _, perr := strconv.ParseFloat(arg, 64); perr != nil {
		return "", false
	}
	return arg, true
}

// Version returns jobq's version line: version, commit and Go version, as
// "jobqd --version" prints its own (package buildinfo).
func Version() string { return buildinfo.String("jobq") }

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "jobq",
		Short: "Command-line client of the jobq cluster job queue",
		Long: `jobq talks to jobqd, the job queue daemon, over its LUXI socket. It is the
jobq equivalent of Ganeti's gnt-job, "gnt-cluster queue" and "gnt-debug
delay", and prints what they print.

The socket is --socket PATH, else DIR/socket/jobq-query for --data-dir DIR,
else $JOBQ_SOCKET, else the socket in jobqd's default data directory
(/var/lib/jobq for root, else $XDG_STATE_HOME/jobq): a flag on the command
line beats the environment.

Job calls work on every node of a cluster (the node hands them to the
master). While no master takes them (an election) or jobqd restarts, jobq
sends a call again until $JOBQ_RETRY_TIMEOUT (default 30s; 0: never) from
its start has passed:
reads whenever they failed, other calls only when they were not carried
out.

Exit codes: 0 success, 1 the operation failed, 2 the command line is wrong,
14 a listing asked for unknown fields.`,
		Example: `  jobq debug delay --submit 10     # submit a job that sleeps 10 seconds
  jobq list                        # list the jobs
  jobq watch 6046                  # follow a job's log until it ends
  jobq --data-dir /tmp/jobq queue info`,
		Args:              cobra.ArbitraryArgs,
		RunE:              groupRunE,
		SilenceErrors:     true,
		SilenceUsage:      true,
		Version:           Version(),
		DisableAutoGenTag: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetVersionTemplate("{{.Version}}\n")
	// Commands that group subcommands run only to report a missing or
	// unknown subcommand: do not show them as runnable in the usage.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if arg, ok := negativeNumberArg(err); ok {
			if strings.Contains(cmd.Use, "ID") {
				return usagef(cmd, "invalid job ID %q: job IDs are whole numbers, 0 or more, such as 6040", arg)
			}
			return usagef(cmd, "%q is not an option, and no argument of %q may be negative", arg, cmd.CommandPath())
		}
		return usagef(cmd, "%s", duration.FlagError(err).Error())
	})
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND...]",
		Short: "Show the help of a command",
		Long:  `Show the help of a command, as "jobq COMMAND --help" does.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usagef(cmd, "unknown help topic %q", strings.Join(args, " "))
			}
			return target.Help()
		},
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.socketFlag, "socket", "", "connect to jobqd's LUXI socket at `PATH` (default: the socket of --data-dir, else $JOBQ_SOCKET)")
	pf.StringVar(&a.dataDirFlag, "data-dir", "", "connect to the jobqd whose data directory is `DIR` (default: "+client.DefaultDataDir()+")")
	root.AddCommand(
		a.newSubmitCmd(),
		a.newListCmd(),
		a.newListFieldsCmd(),
		a.newInfoCmd(),
		a.newWatchCmd(),
		a.newWaitCmd(),
		a.newCancelCmd(),
		a.newChangePriorityCmd(),
		a.newArchiveCmd(),
		a.newAutoArchiveCmd(),
		a.newQueueCmd(),
		a.newClusterCmd(),
		a.newNodeCmd(),
		a.newLocksCmd(),
		a.newFilterCmd(),
		a.newDebugCmd(),
		a.newRestrictedCommandCmd(),
		a.newScheduleCmd(),
		a.newOpcodeCmd(),
		a.newVersionCmd(),
	)
	a.addCompletion(root)
	a.root = root
	return root
}

func (a *app) newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print jobq's version",
		Long:  "Print the version of this jobq program, the commit it was built from and its Go version (it does not contact jobqd).",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(a.env.Stdout, Version())
			return nil
		},
	}
}

// addJSONFlag adds --json to a command.
func addJSONFlag(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "json", false, "print JSON instead of text")
}
