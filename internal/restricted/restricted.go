// Package restricted runs a node's restricted commands (SPEC §5,
// OP_RESTRICTED_COMMAND): executables an administrator put into the node's
// DATA_DIR/restricted-commands directory, and nothing else.
//
// A command is named by a bare file name, never a path. Before running it,
// Run checks what Ganeti's node daemon checks, in this order:
//
//   - the name is 1 to 255 bytes of letters, digits, '-', '_' and '.', does
//     not start with '.' and does not contain "..";
//   - the directory (symbolic links to it are followed) is a directory owned
//     by root or by the user jobqd runs as, and not writable by its group or
//     by others;
//   - DIR/NAME is not a symbolic link (it is refused, whatever it points
//     to), is a regular file, is owned by root or by jobqd's user, is not
//     writable by its group or by others, and its owner may execute it.
//
// The command then runs without a shell and without arguments, with the
// environment PATH=/usr/sbin:/usr/bin:/sbin:/bin only, stdin from
// /dev/null, "/" as working directory, contained by package execute (the
// one home of contained processes, shared with declared opcodes): in a
// cgroup v2 of its own under Options.Cgroup, so that nothing it starts
// escapes, not even a child that calls setsid; without one (a developer's
// machine), in a process group of its own. Its stdout and stderr go,
// interleaved, into one output of at most Options.MaxOutput bytes; the
// rest is read and dropped (the command never blocks on a full pipe) and
// "[output truncated]" is appended. When the command ends, whatever it
// left running is killed; at the timeout, or when the caller's context is
// cancelled (the fence stopping a deposed master's executions), all of it
// is killed (cgroup.kill), and Run returns once it is gone.
//
// One restricted command runs at a time in a process (Ganeti serialises
// them with a lock file); Run waits for its turn. Unlike Ganeti, a failure
// does not delay the answer.
package restricted

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/jobq-dev/jobq/internal/execute"
)

// DirName is the name of the restricted-commands directory in a node's
// data directory.
const DirName = "restricted-commands"

// Dir returns the restricted-commands directory of the data directory
// dataDir.
func Dir(dataDir string) string { return filepath.Join(dataDir, DirName) }

// Defaults of Options.
const (
	DefaultTimeout   = 60 * time.Second
	DefaultMaxOutput = 1 << 20
)

// TruncatedNote ends an output that was cut at Options.MaxOutput.
const TruncatedNote = "[output truncated]"

// Path is the only environment variable a restricted command gets.
const Path = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// maxNameLen is the longest name accepted (NAME_MAX).
const maxNameLen = 255

// Options tune Run; zero fields take the defaults.
type Options struct {
	// Timeout is how long the command may run before its process group
	// is killed; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxOutput is how many bytes of output are kept; 0 means
	// DefaultMaxOutput.
	MaxOutput int
	// Cgroup is where each run gets a cgroup v2 of its own (jobqd's, the
	// one declared opcodes use: execute.FindCgroups); zero: a process
	// group only, which a child that calls setsid escapes.
	Cgroup execute.Cgroups
}

// killGrace is the time between SIGTERM and SIGKILL at the timeout or a
// cancel: a restricted command is killed at once.
const killGrace = time.Millisecond

// turn serialises restricted commands in this process.
var turn = make(chan struct{}, 1)

// Run runs the restricted command name from the directory dir (a node's
// DATA_DIR/restricted-commands) as the package documentation describes.
// success is true when the command exited with status 0; output is what
// it printed. Otherwise output is what it printed (if anything) followed
// by one line saying why it failed ("[exited with status 3]"), or, when
// it did not run or was killed, one sentence saying why, e.g.
// "Restricted command 'x' is not allowed: ..." or "Restricted command 'x'
// timed out after 60s and was killed".
func Run(ctx context.Context, dir, name string, opts Options) (success bool, output string) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	if err := CheckName(name); err != nil {
		return false, err.Error()
	}
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Sprintf("Restricted command %s was not run: it was interrupted while waiting for another restricted command to finish", quote(name))
	}
	defer func() { <-turn }()
	path, err := check(dir, name)
	if err != nil {
		return false, err.Error()
	}
	return run(ctx, path, name, opts)
}

// CheckName returns an error (one sentence) when name cannot be a
// restricted command's name.
func CheckName(name string) error {
	reason := ""
	switch {
	case name == "":
		reason = "the name is empty"
	case strings.ContainsRune(name, '/'):
		reason = "it must be a bare command name, not a path"
	case name[0] == '.':
		reason = "the name must not start with '.'"
	case strings.Contains(name, ".."):
		reason = "the name must not contain '..'"
	case len(name) > maxNameLen:
		reason = fmt.Sprintf("the name is longer than %d bytes", maxNameLen)
	default:
		for _, c := range []byte(name) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				reason = "the name may only contain letters, digits, '-', '_' and '.'"
				break
			}
		}
	}
	if reason == "" {
		return nil
	}
	return notAllowed(name, reason)
}

// sentence is a refusal as the command's output shows it: one sentence
// with a capital letter, as Ganeti's.
type sentence string

func (s sentence) Error() string { return string(s) }

func sentencef(format string, args ...any) error { return sentence(fmt.Sprintf(format, args...)) }

func notAllowed(name, reason string) error {
	return sentencef("Restricted command %s is not allowed: %s", quote(name), reason)
}

// quote puts name in single quotes, or in Go's double-quoted form when it
// has quotes or characters that do not print.
func quote(name string) string {
	for _, r := range name {
		if r == '\'' || r == utf8.RuneError || !strconv.IsPrint(r) {
			return strconv.Quote(name)
		}
	}
	return "'" + name + "'"
}

// check verifies the directory and the command file and returns the
// file's path.
func check(dir, name string) (string, error) {
	if dir == "" {
		return "", sentencef("Restricted command %s cannot be run: this node has no restricted-commands directory", quote(name))
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", sentencef("Restricted command %s does not exist: the directory %s does not exist", quote(name), dir)
	case err != nil:
		return "", sentencef("Restricted command %s cannot be checked: %v", quote(name), pathErr(err))
	case !fi.IsDir():
		return "", notAllowed(name, dir+" is not a directory")
	}
	if why := unsafeOwnership(fi); why != "" {
		return "", notAllowed(name, "the directory "+dir+" "+why)
	}
	path := filepath.Join(dir, name)
	fi, err = os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", sentencef("Restricted command %s does not exist in %s", quote(name), dir)
	case err != nil:
		return "", sentencef("Restricted command %s cannot be checked: %v", quote(name), pathErr(err))
	case fi.Mode()&fs.ModeSymlink != 0:
		return "", notAllowed(name, path+" is a symbolic link")
	case !fi.Mode().IsRegular():
		return "", notAllowed(name, path+" is not a regular file")
	}
	if why := unsafeOwnership(fi); why != "" {
		return "", notAllowed(name, path+" "+why)
	}
	if fi.Mode().Perm()&0o100 == 0 {
		return "", notAllowed(name, path+" is not executable by its owner")
	}
	return path, nil
}

// unsafeOwnership says why fi's owner or mode do not let it hold or be a
// restricted command, or returns "".
func unsafeOwnership(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "has no owner information"
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Sprintf("is owned by uid %d, not by root or by uid %d that jobqd runs as", uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("is writable by its group or by others (mode %04o)", fi.Mode().Perm())
	}
	return ""
}

// pathErr drops the operation from a *fs.PathError ("stat /x: permission
// denied" becomes "/x: permission denied").
func pathErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

// run runs path through package execute and collects its output.
func run(ctx context.Context, path, name string, opts Options) (bool, string) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Sprintf("Restricted command %s was not run: it was interrupted before it started", quote(name))
	}
	out := &capture{max: opts.MaxOutput}
	res, err := execute.Run(ctx, execute.Spec{
		Path: path, Env: []string{Path}, Dir: "/",
		Timeout: opts.Timeout, KillGrace: killGrace,
		Cgroup: opts.Cgroup, Name: "restricted",
		Raw: out,
	}, nil)
	if err != nil {
		return false, fmt.Sprintf("Restricted command %s could not be started: %v", quote(name), startErr(err))
	}
	text := out.String()
	switch {
	case res.TimedOut:
		return false, addLine(text, fmt.Sprintf("Restricted command %s timed out after %s and was killed", quote(name), seconds(opts.Timeout)))
	case res.Canceled:
		return false, addLine(text, fmt.Sprintf("Restricted command %s was interrupted and killed", quote(name)))
	case res.Signal != "":
		sig := unix.SignalNum(res.Signal)
		return false, addLine(text, fmt.Sprintf("[killed by signal %d (%v)]", int(sig), sig))
	case res.ExitCode != 0:
		return false, addLine(text, fmt.Sprintf("[exited with status %d]", res.ExitCode))
	}
	return true, text
}

// seconds prints d as "60s" when it is whole seconds, else as
// time.Duration does ("200ms").
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// startErr is the reason a command could not be started, without the
// path (the sentence names the command).
func startErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return strings.TrimPrefix(err.Error(), execute.ErrNotStarted.Error()+": ")
}

// addLine appends line to text on a line of its own.
func addLine(text, line string) string {
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return text + line
}

// capture keeps the first max bytes read and counts the rest.
type capture struct {
	max       int
	buf       bytes.Buffer
	truncated bool
}

// Write keeps what fits and notes the rest; it never fails, so that the
// command's output is read to its end.
func (c *capture) Write(b []byte) (int, error) {
	keep := min(len(b), c.max-c.buf.Len())
	c.buf.Write(b[:keep])
	if keep < len(b) {
		c.truncated = true
	}
	return len(b), nil
}

// String is the output kept, cut at a character boundary and noted when
// truncated.
func (c *capture) String() string {
	out := c.buf.Bytes()
	if !c.truncated {
		return string(out)
	}
	// Do not leave half a UTF-8 sequence at the cut.
	for i := 0; i < utf8.UTFMax && i < len(out); i++ {
		if utf8.RuneStart(out[len(out)-1-i]) {
			if !utf8.FullRune(out[len(out)-1-i:]) {
				out = out[:len(out)-1-i]
			}
			break
		}
	}
	return addLine(string(out), TruncatedNote)
}

// CheckProgram checks a declared opcode's program (internal/opdef) as a
// restricted command is checked: path is absolute and clean, is not a
// symbolic link, is a regular file owned by root or by jobqd's user, not
// writable by its group or by others, executable by its owner; and so is
// every directory above it (a writable directory would let anyone swap
// the file), except that a root-owned sticky directory such as /tmp is
// accepted above the program's own directory. The error is one sentence naming the path.
func CheckProgram(path string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return sentencef("Program %s is not allowed: it must be an absolute, clean path", quote(path))
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sentencef("Program %s does not exist on this node", quote(path))
	case err != nil:
		return sentencef("Program %s cannot be checked: %v", quote(path), pathErr(err))
	case fi.Mode()&fs.ModeSymlink != 0:
		return sentencef("Program %s is not allowed: it is a symbolic link", quote(path))
	case !fi.Mode().IsRegular():
		return sentencef("Program %s is not allowed: it is not a regular file", quote(path))
	}
	if why := unsafeOwnership(fi); why != "" {
		return sentencef("Program %s is not allowed: it %s", quote(path), why)
	}
	if fi.Mode().Perm()&0o100 == 0 {
		return sentencef("Program %s is not allowed: it is not executable by its owner", quote(path))
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		di, err := os.Stat(dir)
		if err != nil {
			return sentencef("Program %s cannot be checked: %v", quote(path), pathErr(err))
		}
		// A sticky directory (/tmp) writable by others is safe above the
		// program's own directory: nobody can rename or remove what they
		// do not own in it.
		if dir != filepath.Dir(path) && di.Mode()&fs.ModeSticky != 0 && unsafeOwnership(di) != "" {
			if st, ok := di.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
				if dir == "/" {
					return nil
				}
				continue
			}
		}
		if why := unsafeOwnership(di); why != "" {
			return sentencef("Program %s is not allowed: its directory %s %s", quote(path), dir, why)
		}
		if dir == "/" {
			return nil
		}
	}
}
