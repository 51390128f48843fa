// Package testbin builds jobq's programs and runs them for tests that
// start real daemons: jobqd processes with their logs, signals and exit,
// and jobq invocations with their output and exit code.
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
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Build builds jobqd and jobq (with the race detector) once per test
// binary and returns their directory. Call Cleanup from TestMain.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "jobq-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-race", "-o", binDir+"/",
			"github.com/jobq-dev/jobq/cmd/jobqd", "github.com/jobq-dev/jobq/cmd/jobq").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Cleanup removes the built binaries.
func Cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// Daemon is a running jobqd.
type Daemon struct {
	t      testing.TB
	Dir    string
	cmd    *exec.Cmd
	exited chan error
	err    error

	mu    sync.Mutex
	log   strings.Builder
	grown chan struct{} // closed and replaced when the log grows
	done  bool
}

// Start starts jobqd with args (which must include --data-dir) and
// returns once it logged "jobqd ready". It is killed at the test's end.
func Start(t testing.TB, dataDir string, args ...string) *Daemon {
	t.Helper()
	d, err := StartErr(t, dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// StartErr is Start returning jobqd's failure to start instead of
// failing the test.
func StartErr(t testing.TB, dataDir string, args ...string) (*Daemon, error) {
	t.Helper()
	bin := Build(t)
	cmd := exec.Command(filepath.Join(bin, "jobqd"), append([]string{"--data-dir", dataDir}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &Daemon{t: t, Dir: dataDir, cmd: cmd, exited: make(chan error, 1), grown: make(chan struct{})}
	go func() {
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
		err := cmd.Wait()
		d.mu.Lock()
		d.done = true
		close(d.grown)
		d.grown = make(chan struct{})
		d.mu.Unlock()
		d.exited <- err
	}()
	if !d.WaitLog("jobqd ready") {
		err := <-d.exited
		d.exited = nil
		return nil, fmt.Errorf("jobqd exited before it was ready (%v):\n%s", err, d.Logs())
	}
	t.Cleanup(d.Kill)
	return d, nil
}

// WaitLog waits until the log holds substr (true) or jobqd exited
// without it (false).
func (d *Daemon) WaitLog(substr string) bool {
	for {
		d.mu.Lock()
		has := strings.Contains(d.log.String(), substr)
		done := d.done
		ch := d.grown
		d.mu.Unlock()
		if has {
			return true
		}
		if done {
			return false
		}
		<-ch
	}
}

// Logs is everything jobqd wrote to stderr so far.
func (d *Daemon) Logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Socket is the daemon's LUXI socket.
func (d *Daemon) Socket() string { return filepath.Join(d.Dir, "socket", "jobq-query") }

// Kill sends SIGKILL and waits until the process is gone.
func (d *Daemon) Kill() {
	if d.exited == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	d.err = <-d.exited
	d.exited = nil
}

// Stop sends SIGTERM and returns how jobqd exited.
func (d *Daemon) Stop() error {
	if d.exited == nil {
		return d.err
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	d.err = <-d.exited
	d.exited = nil
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
	cmd := exec.Command(filepath.Join(Build(t), "jobq"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("jobq %v: %v", args, err)
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
