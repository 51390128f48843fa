// Package jobqd is jobqd's command line: its flags, the configuration file
// (/etc/jobq/jobqd.conf, read by package config), --check-config,
// --upgrade-queue and the queue format guard, and the service manager's
// notifications (READY=1, STOPPING=1), around daemon.Run. cmd/jobqd runs
// it; cmd/jobq-gendocs makes jobqd's man page and shell completion from the
// same command, so they never drift from --help.
package jobqd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/buildinfo"
	"github.com/jobq-dev/jobq/internal/config"
	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/internal/duration"
	"github.com/jobq-dev/jobq/internal/idem"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/luxi"
	"github.com/jobq-dev/jobq/opcodes"
)

// ConfigKeys are the settings the configuration file may give, named like
// the long flags; luxi-socket may appear more than once.
var ConfigKeys = []string{
	"data-dir", "node-name", "rpc-addr", "rapi-addr", "rapi-require-auth", "metrics-addr",
	"luxi-socket", "socket-group", "admin-group", "max-running-jobs", "shutdown-timeout", "log-level",
	"idempotency-ttl", "max-job-opcodes", "max-job-size", "max-log-entries",
	"luxi-max-conns", "luxi-idle-timeout", "luxi-msg-timeout", "rapi-max-conns", "rpc-max-conns",
	"join", "token", "token-file",
}

// TokenEnv is the environment variable a join token may come from, so
// that it does not show in ps (as --token does).
const TokenEnv = "JOBQ_JOIN_TOKEN"

// usageError is a wrong command line: jobqd exits 2, as jobq does.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() + ` (see "jobqd --help")` }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// Env is the world jobqd runs in. Zero fields mean the process's own.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	// ConfigPath is the configuration file read when --config is not
	// given ("": config.DefaultPath).
	ConfigPath string
	// Notify tells the service manager about jobqd's state (nil:
	// daemon.Notify, sd_notify over $NOTIFY_SOCKET).
	Notify func(state string) (bool, error)
	// Getenv reads the environment ($JOBQ_JOIN_TOKEN; nil: os.Getenv).
	Getenv func(string) string
	// Opcodes are registered beside jobq's built-in opcodes (the public
	// package server's Options.Opcodes).
	Opcodes []opcodes.Definition
}

func (e Env) withDefaults() Env {
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.ConfigPath == "" {
		e.ConfigPath = config.DefaultPath
	}
	if e.Notify == nil {
		e.Notify = daemon.Notify
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	return e
}

// Main runs jobqd with args (without the program name) until ctx is
// cancelled (SIGTERM), and returns its exit code: 0, 2 after printing a
// wrong command line's error, or 1 after printing any other error.
func Main(ctx context.Context, args []string, env Env) int {
	env = env.withDefaults()
	cmd := Command(env)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(env.Stderr, "jobqd:", err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// Command returns jobqd's command.
func Command(env Env) *cobra.Command {
	env = env.withDefaults()
	var o daemon.Options
	var join, token, tokenFile, logLevel, cpuProfile, configPath string
	var checkConfig, upgradeQueue bool
	cmd := &cobra.Command{
		Use:   "jobqd",
		Short: "The jobq node daemon: job queue, workers and LUXI socket",
		Long: `jobqd runs one jobq node. With a data directory that holds no cluster it
creates a one-node cluster with itself as master, so that

    jobqd --data-dir /tmp/jobq

is a working job queue: submit with "jobq --data-dir /tmp/jobq debug delay 1".
The LUXI socket is DIR/socket/jobq-query (mode 0660); --luxi-socket serves it
on more paths, e.g. Ganeti's /var/run/ganeti/socket/ganeti-query, and
--socket-group gives the sockets to a group whose members may use them:
submit, query, cancel and archive jobs. Administrative calls (join tokens,
master failover, node changes, certificate renewal, filters, schedules, queue
settings, drain, watcher pause, restricted commands) are for root, jobqd's
own user and the members of --admin-group only; each is logged at INFO with
the message "audit", as are cancels, priority changes and archives. Every job
records its author (the LUXI peer's uid from SO_PEERCRED, the RAPI or
dashboard user, the node) in its reason trail.

Settings come from the command line and from the configuration file
` + config.DefaultPath + ` (--config FILE reads another; a missing default file
is fine): "key = value" lines named like the long flags, with "#" comments.
A flag given on the command line wins over the file. The keys are:
` + wrap(strings.Join(ConfigKeys, ", ")+" (luxi-socket may repeat).", 76) + `
"jobqd --check-config" checks the file and prints the effective settings.

SIGTERM stops jobqd: it takes no new jobs and lets running opcodes finish for
up to --shutdown-timeout. Under systemd (Type=notify) it sends READY=1 once
its socket accepts connections, and STOPPING=1 when it begins to stop.

The queue's format (DIR/queue/version) must be the one this jobqd reads. On
an older queue jobqd refuses to start and names the command that migrates
it, "jobqd --data-dir DIR --upgrade-queue" (stop jobqd and back up DIR
first); on a newer one it refuses too.

The join token (from "jobq cluster join-token" on the master) may come from
--token, from a file (--token-file FILE, e.g. written 0600 by the operator)
or from $JOBQ_JOIN_TOKEN, so that it does not show in ps.

The default ports do not collide with Ganeti's daemons (noded 1811, rapi
5080, confd 1814, mond 1815, metad 80), so jobqd runs beside Ganeti; to take
Ganeti's ports, give --rpc-addr :1811 --rapi-addr :5080.

Exit status: 0 on a clean stop or a successful check, 2 when the command
line is wrong, 1 on any other error.`,
		Example: `  jobqd --data-dir /tmp/jobq --rapi-addr off
  jobqd --config /etc/jobq/jobqd.conf --check-config
  jobqd --data-dir /var/lib/jobq --upgrade-queue`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("jobqd takes no arguments, got %q", args[0])
			}
			return nil
		},
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           buildinfo.String("jobqd"),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if checkConfig && upgradeQueue {
				return usagef("give at most one of --check-config and --upgrade-queue")
			}
			reg, err := registry(env.Opcodes)
			if err != nil {
				return err
			}
			o.Registry = reg
			src, err := loadConfig(cmd, configPath)
			if err != nil {
				return err
			}
			level, err := validate(o, logLevel, src)
			if err != nil {
				return err
			}
			if o.NodeName == "" {
				// The name it will use, as --check-config shows it.
				if h, err := os.Hostname(); err == nil {
					_ = cmd.Flags().Lookup("node-name").Value.Set(h)
					o.NodeName = h
				}
			}
			// The join token is checked as a start checks it, before
			// --check-config prints where it comes from.
			if join == "" && (src["token"].Flag || src["token-file"].Flag) {
				return usagef("--token and --token-file are only for --join HOST:PORT")
			}
			// joinTok, not token: --token's value is what --check-config
			// prints as the flag's.
			joinTok := token
			if join != "" {
				if joinTok, err = joinToken(token, tokenFile, src, env); err != nil {
					return err
				}
			}
			tokenFromEnv := joinTok != "" && token == "" && tokenFile == ""
			if checkConfig {
				if err := printConfig(cmd, env, configPath, o, src); err != nil {
					return err
				}
				if tokenFromEnv {
					fmt.Fprintf(env.Stdout, "# the join token comes from $%s (secret, not shown)\n", TokenEnv)
				}
				return nil
			}
			if o.DataDir == "" {
				o.DataDir = daemon.DefaultDataDir()
			}
			queueDir := filepath.Join(o.DataDir, "queue")
			if upgradeQueue {
				return upgrade(env, queueDir, level)
			}
			o.Join, o.Token = join, joinTok
			if o.MadeDataDir, err = daemon.MakeDataDir(o.DataDir); err != nil {
				return err
			}
			if err := store.CheckFormat(queueDir); err != nil {
				return formatRefusal(err, o.DataDir)
			}
			o.Logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("cannot create the CPU profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("cannot start the CPU profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			return run(cmd.Context(), env, o)
		},
	}
	cmd.SetVersionTemplate("{{.Version}}\n")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{duration.FlagError(err)} })
	cmd.SetOut(env.Stdout)
	cmd.SetErr(env.Stderr)
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&configPath, "config", env.ConfigPath, "read settings from `FILE` (\"\": none); flags given on the command line win over it")
	f.BoolVar(&checkConfig, "check-config", false, "check the configuration file and the flags, print the effective settings and exit (0: valid, 1: not)")
	f.StringVar(&o.DataDir, "data-dir", daemon.DefaultDataDir(), "`DIR` holding all of this node's state")
	f.StringVar(&o.NodeName, "node-name", "", "this node's `NAME` (default: the host name)")
	f.StringVar(&o.RPCAddr, "rpc-addr", daemon.DefaultRPCAddr, "node RPC address `HOST:PORT` (HTTPS with mutual TLS; other nodes reach this node there; Ganeti's noded uses :1811); \"off\" serves none, for a single node that no node will join")
	f.StringVar(&o.RAPIAddr, "rapi-addr", daemon.DefaultRAPIAddr, "RAPI (HTTPS, Ganeti's remote API) address `HOST:PORT` on the master (Ganeti's rapi uses :5080); \"off\" serves none (users: DIR/rapi/users)")
	f.BoolVar(&o.RAPIRequireAuth, "rapi-require-auth", false, "make every RAPI request authenticate, reads included (Ganeti's ganeti-rapi --require-authentication); without it, as in Ganeti, anyone who reaches rapi-addr reads every job, its input and its output")
	f.StringVar(&o.MetricsAddr, "metrics-addr", "off", "serve Prometheus metrics at `HOST:PORT`/metrics over plain HTTP, unauthenticated; \"off\": only on RAPI, to its users")
	f.StringArrayVar(&o.LUXISockets, "luxi-socket", nil, "serve LUXI on the socket `PATH` too (repeatable)")
	f.StringVar(&o.SocketGroup, "socket-group", "", "give the LUXI sockets (mode 0660) and DIR, DIR/socket to `GROUP`, whose members may then use jobq; a missing group is a warning")
	f.StringVar(&o.AdminGroup, "admin-group", "", "members of `GROUP` (name or gid) may make jobq's administrative calls (join tokens, master failover, node changes, certificate renewal, filters, schedules, queue settings, watcher pause, drain, restricted commands and OP_CLUSTER_SET_PARAMS jobs); root and jobqd's own user always may, others (the socket group) may not. Giving the socket group hands every socket user the cluster's key and root on every node")
	f.IntVar(&o.MaxRunning, "max-running-jobs", queue.DefaultMaxRunning, "how many jobs execute at once")
	f.Var(duration.Var(&o.IdempotencyWindow, idem.DefaultWindow), "idempotency-ttl", "how long a submission's idempotency key is kept (a retry with it within that time answers the first job's ID) unless the cluster's queue settings say (OP_CLUSTER_SET_PARAMS idempotency_window)")
	f.IntVar(&o.JobLimits.MaxOps, "max-job-opcodes", job.DefaultMaxOps, "the most opcodes one job may have (each opcode step rewrites the job file)")
	f.IntVar(&o.JobLimits.MaxSize, "max-job-size", job.DefaultMaxSize, "the most `BYTES` a job's opcodes may take together, as submitted")
	f.IntVar(&o.MaxLogEntries, "max-log-entries", queue.DefaultMaxLogEntries, "the most log entries a job keeps (later ones are dropped, saying so)")
	f.IntVar(&o.LUXIMaxConns, "luxi-max-conns", 0, "the most connections open at once on each LUXI socket (0: a quarter of the descriptor limit, so that a flood leaves room for RAPI and node RPC)")
	f.Var(duration.Var(&o.LUXIIdleTimeout, luxi.DefaultIdleTimeout), "luxi-idle-timeout", "close a LUXI connection idle for that long (no call running)")
	f.Var(duration.Var(&o.LUXIMessageTimeout, luxi.DefaultMessageTimeout), "luxi-msg-timeout", "close a LUXI connection whose request does not arrive whole within that time of its first byte")
	f.IntVar(&o.RAPIMaxConns, "rapi-max-conns", 0, "the most RAPI connections open at once (0: a quarter of the descriptor limit)")
	f.IntVar(&o.RPCMaxConns, "rpc-max-conns", 0, "the most node RPC connections open at once (0: a quarter of the descriptor limit)")
	f.Var(duration.Var(&o.ShutdownTimeout, 30*time.Second), "shutdown-timeout", "on SIGTERM, how long running opcodes may go on before they are interrupted (seconds, or such as 30s, 5m)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&upgradeQueue, "upgrade-queue", false, "migrate DIR/queue to the format this jobqd reads and exit (stop jobqd and back up DIR first)")
	f.StringVar(&join, "join", "", "join the cluster whose node listens at `HOST:PORT` (ignored once this node belongs to a cluster; a fresh one-node cluster without jobs is replaced)")
	f.StringVar(&token, "token", "", "join token from 'jobq cluster join-token' (visible in ps: prefer --token-file or $"+TokenEnv+")")
	f.StringVar(&tokenFile, "token-file", "", "read the join token from `FILE` (default: $"+TokenEnv+")")
	// --check-config does not print the token.
	_ = f.SetAnnotation("token", config.SecretAnnotation, []string{"true"})
	f.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to `FILE` (for performance work)")
	// Shell completion offers paths for these.
	for _, name := range []string{"config", "luxi-socket", "cpu-profile", "token-file"} {
		_ = cmd.MarkFlagFilename(name)
	}
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}

// loadConfig applies the configuration file to cmd's flags.
func loadConfig(cmd *cobra.Command, path string) (config.Sources, error) {
	var settings []config.Setting
	if path != "" {
		var err error
		settings, _, err = config.Load(path, cmd.Flags().Changed("config"))
		if err != nil {
			return nil, err
		}
	}
	return config.Apply(cmd.Flags(), path, settings, ConfigKeys)
}

// validate checks the settings that parse but may still be wrong, naming
// where a wrong one came from.
func validate(o daemon.Options, logLevel string, src config.Sources) (slog.Level, error) {
	// A wrong value given on the command line is a usage error.
	bad := func(key, format string, a ...any) error {
		err := src[key].Errorf(key, format, a...)
		if src[key].Flag {
			return &usageError{err}
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return 0, bad("log-level", "%q is not one of debug, info, warn, error", logLevel)
	}
	if o.MaxRunning < 1 {
		return 0, bad("max-running-jobs", "%d: at least one job must be able to run", o.MaxRunning)
	}
	for _, key := range []string{"rpc-addr", "rapi-addr", "metrics-addr"} {
		addr := map[string]string{"rpc-addr": o.RPCAddr, "rapi-addr": o.RAPIAddr, "metrics-addr": o.MetricsAddr}[key]
		if addr == "off" || addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || !validPort(port) {
			return 0, bad(key, "%q is not HOST:PORT or \"off\"", addr)
		}
	}
	for _, p := range o.LUXISockets {
		if p == "" {
			return 0, bad("luxi-socket", "the socket path is empty")
		}
	}
	return level, nil
}

// joinToken is the join token: --token, else the content of --token-file,
// else $JOBQ_JOIN_TOKEN ("" when none is given).
func joinToken(token, file string, src config.Sources, env Env) (string, error) {
	if token != "" && file != "" {
		if src["token"].Flag && src["token-file"].Flag {
			return "", usagef("give the join token once: --token or --token-file, not both")
		}
		if src["token-file"].Flag {
			// The command line's file wins over a token in the file.
			token = ""
		} else {
			file = ""
		}
	}
	if token != "" {
		return token, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("cannot read the join token: %v; write the token from 'jobq cluster join-token' into it, or give it with $%s", err, TokenEnv)
		}
		t := strings.TrimSpace(string(b))
		if t == "" || strings.ContainsAny(t, " \t\n") {
			return "", fmt.Errorf("the join token file %s must hold one token from 'jobq cluster join-token', alone", file)
		}
		return t, nil
	}
	return strings.TrimSpace(env.Getenv(TokenEnv)), nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

// printConfig is --check-config: the effective settings, in the file's
// syntax.
func printConfig(cmd *cobra.Command, env Env, path string, o daemon.Options, src config.Sources) error {
	from := "no configuration file"
	switch {
	case path == "":
	case fileExists(path):
		from = "configuration file " + path + ": valid"
	default:
		from = "configuration file " + path + ": not present, defaults apply"
	}
	fmt.Fprintf(env.Stdout, "# jobqd %s\n# %s\n# effective settings (and where each comes from):\n", buildinfo.Get().Version, from)
	if err := config.Write(env.Stdout, cmd.Flags(), ConfigKeys, src); err != nil {
		return err
	}
	if g := o.SocketGroup; g != "" {
		if _, err := user.LookupGroup(g); err != nil {
			fmt.Fprintf(env.Stderr, "jobqd: warning: socket-group %q: %v (the sockets will keep their owner's group)\n", g, err)
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// upgrade is --upgrade-queue.
func upgrade(env Env, queueDir string, level slog.Level) error {
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	from, err := store.Upgrade(queueDir, log)
	if err != nil {
		var ve *store.VersionError
		if errors.As(err, &ve) && ve.Newer() {
			return fmt.Errorf("%w; a jobqd cannot downgrade a queue: run the newer jobqd, or restore the data directory's backup from before the upgrade", err)
		}
		return err
	}
	if from == store.FormatVersion {
		fmt.Fprintf(env.Stdout, "The queue in %s is at format version %d, the one this jobqd reads: nothing to upgrade.\n", queueDir, store.FormatVersion)
		return nil
	}
	fmt.Fprintf(env.Stdout, "The queue in %s was upgraded from format version %d to %d.\n", queueDir, from, store.FormatVersion)
	return nil
}

// versionError is a *store.VersionError.
type versionError interface {
	error
	Newer() bool
	Upgradable() bool
}

// formatRefusal explains a queue format jobqd cannot use and what to do.
func formatRefusal(err error, dataDir string) error {
	var ve versionError
	if !errors.As(err, &ve) {
		return err
	}
	switch {
	case ve.Upgradable():
		return fmt.Errorf("%w; back up %s, then run: jobqd --data-dir %s --upgrade-queue", err, dataDir, shellQuote(dataDir))
	case ve.Newer():
		return fmt.Errorf("%w; run the jobqd that wrote it, or restore the data directory's backup from before the upgrade", err)
	}
	return fmt.Errorf("%w; restore %s from a backup", err, dataDir)
}

// shellQuote quotes s for a shell command line when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%,=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// wrap breaks s into lines of at most width characters at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// registry returns jobq's built-in opcodes with extra ones registered.
func registry(extra []opcodes.Definition) (*opcodes.Registry, error) {
	reg := opcodes.Builtin()
	for _, d := range extra {
		if err := reg.Register(d); err != nil {
			return nil, fmt.Errorf("this program's own opcodes: %w (fix its server.Options.Opcodes)", err)
		}
	}
	return reg, nil
}

// run serves the node until ctx is cancelled, telling the service manager
// when it is ready and when it begins to stop.
func run(ctx context.Context, env Env, o daemon.Options) error {
	log := o.Logger
	notify := func(state string) {
		if _, err := env.Notify(state); err != nil {
			log.Warn("service manager notification failed", "state", state, "err", err)
		}
	}
	o.Ready = func() {
		notify("READY=1\nSTATUS=serving on " + daemon.SocketPath(o.DataDir))
	}
	// The daemon stops only after STOPPING=1 was sent, so that the service
	// manager hears of the stop before it happens.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go func() {
		select {
		case <-ctx.Done():
			notify("STOPPING=1\nSTATUS=stopping: waiting for running opcodes")
			stopRun()
		case <-runCtx.Done():
		}
	}()
	return daemon.Run(runCtx, o)
}
