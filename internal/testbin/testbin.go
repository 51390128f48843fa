// Package testbin builds jobq's programs and runs them for tests that
// start real daemons: jobqd processes with their logs, signals and exit,
// and jobq invocations with their output and exit code.
//
// Start, StartErr and Jobq run the programs built with the race
// detector, as they are; Options runs them otherwise (built without the
// race detector, with more environment).
package testbin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/execute"

	"go.uber.org/goleak"
)

// build is one way of building jobqd, jobq and jobq-bench, done once per test
// binary.
type build struct {
	flags []string
	once  sync.Once
	dir   string
	err   error
}

var (
	raceBuild  = &build{flags: []string{"-race"}}
	plainBuild = &build{}
)

func (b *build) get(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "jobq-bin-")
		if b.err != nil {
			return
		}
		args := append(append([]string{"build"}, b.flags...), "-o", b.dir+"/",
			"github.com/jobq-dev/jobq/cmd/jobqd", "github.com/jobq-dev/jobq/cmd/jobq",
			"github.com/jobq-dev/jobq/cmd/jobq-bench")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.dir
}

// Build builds jobqd, jobq and jobq-bench (with the race detector) once per test
// binary and returns their directory. Call Cleanup from TestMain.
func Build(t testing.TB) string {
	t.Helper()
	return raceBuild.get(t)
}

// BuildNoRace is Build without the race detector, for tests that measure
// jobqd's memory (the race detector's shadow memory multiplies it) or
// its speed. The two builds are kept apart.
func BuildNoRace(t testing.TB) string {
	t.Helper()
	return plainBuild.get(t)
}

// Cleanup removes the built binaries.
func Cleanup() {
	for _, b := range []*build{raceBuild, plainBuild} {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
	}
}

// Main runs a package's tests, from its TestMain, then removes the built
// binaries and exits with the tests' code.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// MainCheckLeaks is Main failing a run whose tests passed if goroutines
// are left once they ended (goleak.Find): every jobqd is gone by then,
// and with it the goroutines that read its log; the tests' connections
// and goroutines must be too.
func MainCheckLeaks(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	Cleanup()
	os.Exit(code)
}

// Options say how to run the programs; the zero value runs them as
// Start, StartErr and Jobq do.
type Options struct {
	// NoRace runs the programs built without the race detector
	// (BuildNoRace).
	NoRace bool
	// Env holds KEY=value entries added to the programs' environment
	// (an entry "KEY=" sets KEY empty).
	Env []string
	// Credential, when set, runs the program (jobq) as that uid and gid
	// (the test must be root, and the built programs' directory and the
	// socket reachable by that user: see ShareWith).
	Credential *syscall.Credential
}

func (o Options) command(t testing.TB, prog string, args ...string) *exec.Cmd {
	t.Helper()
	bin := Build
	if o.NoRace {
		bin = BuildNoRace
	}
	cmd := exec.Command(filepath.Join(bin(t), prog), args...)
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	if o.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Credential}
	}
	return cmd
}

// Daemon is a running jobqd.
type Daemon struct {
	Dir string
	cmd *exec.Cmd

	signal sync.Once     // Kill or Stop signals once
	done   chan struct{} // closed once jobqd has exited and its log is read
	err    error         // how it exited, set before done is closed

	mu    sync.Mutex
	log   strings.Builder
	grown chan struct{} // closed and replaced when the log grows
}

// Start starts jobqd with args (which must include --data-dir) and
// returns once it logged "jobqd ready". It is killed at the test's end.
func Start(t testing.TB, dataDir string, args ...string) *Daemon {
	t.Helper()
	return Options{}.Start(t, dataDir, args...)
}

// StartErr is Start returning jobqd's failure to start instead of
// failing the test.
func StartErr(t testing.TB, dataDir string, args ...string) (*Daemon, error) {
	t.Helper()
	return Options{}.StartErr(t, dataDir, args...)
}

// Start is the package's Start, run as o says.
func (o Options) Start(t testing.TB, dataDir string, args ...string) *Daemon {
	t.Helper()
	d, err := o.StartErr(t, dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// StartErr is the package's StartErr, run as o says. jobqd runs with
// --data-dir dataDir and args; it is killed at the test's end, and also
// should the test binary die first (a timeout).
func (o Options) StartErr(t testing.TB, dataDir string, args ...string) (*Daemon, error) {
	t.Helper()
	cmd := o.command(t, "jobqd", append([]string{"--data-dir", dataDir}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &Daemon{Dir: dataDir, cmd: cmd, done: make(chan struct{}), grown: make(chan struct{})}
	go d.read(stderr)
	// After the kill below (cleanups run last first): a jobqd killed
	// with SIGKILL leaves its executions' cgroup, which no later start
	// of a test's data directory removes; the machine keeps none.
	t.Cleanup(func() { execute.RemoveCgroups(execute.CgroupsName(dataDir)) })
	t.Cleanup(d.Kill)
	if !d.WaitLog("jobqd ready") {
		return nil, fmt.Errorf("jobqd exited before it was ready (%v):\n%s", d.ExitErr(), d.Logs())
	}
	return d, nil
}

// read keeps jobqd's stderr, line by line, then waits for its exit.
func (d *Daemon) read(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		d.mu.Lock()
		d.log.WriteString(sc.Text() + "\n")
		close(d.grown)
		d.grown = make(chan struct{})
		d.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, stderr)
	d.err = d.cmd.Wait()
	close(d.done)
}

// waitFor waits until match, given the whole log so far, reports ok, or
// jobqd exited and match does not on its whole log.
func (d *Daemon) waitFor(match func(log string) (string, bool)) (string, bool) {
	deadline := time.NewTimer(LogWait)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		log, grown := d.log.String(), d.grown
		d.mu.Unlock()
		if s, ok := match(log); ok {
			return s, true
		}
		select {
		case <-grown:
		case <-d.done:
			// The log is whole once jobqd is gone: a last look.
			return match(d.Logs())
		case <-deadline.C:
			// A line that never comes fails the test in a minute,
			// not at the test binary's timeout.
			return match(d.Logs())
		}
	}
}

// LogWait bounds WaitLog and WaitLine: a line not logged by then is
// taken as never logged.
var LogWait = time.Minute

// WaitLog waits until the log holds substr (true) or jobqd exited
// without it or LogWait passed (false).
func (d *Daemon) WaitLog(substr string) bool {
	_, ok := d.waitFor(func(log string) (string, bool) { return "", strings.Contains(log, substr) })
	return ok
}

// WaitLine waits until a line of the log holds every one of parts and
// returns the first such line (without its newline); ok is false if
// jobqd exited without logging one.
func (d *Daemon) WaitLine(parts ...string) (line string, ok bool) {
	from := 0 // the log is written in whole lines: those before from did not match
	return d.waitFor(func(log string) (string, bool) {
		for _, l := range strings.SplitAfter(log[from:], "\n") {
			if !strings.HasSuffix(l, "\n") {
				break
			}
			from += len(l)
			l = strings.TrimSuffix(l, "\n")
			found := true
			for _, p := range parts {
				found = found && strings.Contains(l, p)
			}
			if found {
				return l, true
			}
		}
		return "", false
	})
}

// MustLine is WaitLine failing t if jobqd exits before logging the line.
func (d *Daemon) MustLine(t testing.TB, parts ...string) string {
	t.Helper()
	line, ok := d.WaitLine(parts...)
	if !ok {
		t.Fatalf("jobqd exited (%v) before logging %q:\n%s", d.ExitErr(), parts, d.Logs())
	}
	return line
}

// Logs is everything jobqd wrote to stderr so far.
func (d *Daemon) Logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Socket is the daemon's LUXI socket.
func (d *Daemon) Socket() string { return filepath.Join(d.Dir, "socket", "jobq-query") }

// Pid is jobqd's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Running reports whether jobqd has not exited yet.
func (d *Daemon) Running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// ExitErr is how jobqd exited, as exec.Cmd.Wait says: nil for status 0,
// an *exec.ExitError (with its ExitCode, or the signal) otherwise. It is
// nil while jobqd runs.
func (d *Daemon) ExitErr() error {
	select {
	case <-d.done:
		return d.err
	default:
		return nil
	}
}

// Kill sends SIGKILL (unless jobqd was killed or stopped already) and
// waits until the process is gone. It may be called from several
// goroutines at once.
func (d *Daemon) Kill() {
	d.signal.Do(func() { _ = d.cmd.Process.Signal(syscall.SIGKILL) })
	<-d.done
}

// Stop sends SIGTERM (unless jobqd was killed or stopped already) and
// returns how jobqd exited.
func (d *Daemon) Stop() error {
	d.signal.Do(func() { _ = d.cmd.Process.Signal(syscall.SIGTERM) })
	<-d.done
	return d.err
}

// Result is one jobq run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Jobq runs the jobq client with args.
func Jobq(t testing.TB, args ...string) Result {
	t.Helper()
	return Options{}.Jobq(t, args...)
}

// Jobq is the package's Jobq, run as o says.
func (o Options) Jobq(t testing.TB, args ...string) Result {
	t.Helper()
	return o.Run(t, "jobq", args...)
}

// Run runs one of the built programs (jobq, jobq-bench) to its end.
func (o Options) Run(t testing.TB, prog string, args ...string) Result {
	t.Helper()
	cmd := o.command(t, prog, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", prog, args, err)
	}
	return r
}

// FreePort returns HOST:PORT with a port free on host at the moment.
func FreePort(t testing.TB, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ShareWith lets every user run the built programs (o's build) and use
// d's LUXI socket, for tests that run jobq as other users
// (Options.Credential): the directories on the way get o+x, the socket
// o+rw. Only for a throw-away data directory.
func (o Options) ShareWith(t testing.TB, d *Daemon) {
	t.Helper()
	bin := Build
	if o.NoRace {
		bin = BuildNoRace
	}
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{{bin(t), 0o755}, {d.Dir, 0o755}, {filepath.Dir(d.Socket()), 0o755}, {d.Socket(), 0o777}} {
		if err := os.Chmod(p.path, p.mode); err != nil {
			t.Fatal(err)
		}
	}
	// The data directory's parents (t.TempDir's) too.
	for dir := filepath.Dir(d.Dir); dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
	}
}
