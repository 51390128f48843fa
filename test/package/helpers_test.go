// Package pkgtest tests jobq as an operator meets it: the Debian package
// built by packaging/build-deb.sh, installed with dpkg (install_test.go, as
// root only), and an upgrade of a node's programs over a queue with
// finished, running and queued jobs (upgrade_test.go).
package pkgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the checkout this test is in.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the test's source")
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// output is one command's result.
type output struct {
	code           int
	stdout, stderr string
}

func (o output) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", o.code, o.stdout, o.stderr)
}

// run runs a command and returns its result; failing to start it fails
// the test.
func run(t *testing.T, env []string, name string, args ...string) output {
	t.Helper()
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = env
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	o := output{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %q: %v", name, args, err)
		}
		o.code = ee.ExitCode()
	}
	return o
}

// must runs a command that must succeed and returns its stdout.
func must(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	o := run(t, env, name, args...)
	if o.code != 0 {
		t.Fatalf("%s %s: %s", name, strings.Join(args, " "), o)
	}
	return o.stdout
}

// buildFlags are build-deb.sh's: the same flags let the test's builds share
// the build cache with the package's.
func buildFlags(version string) []string {
	return []string{"-trimpath", "-ldflags", "-s -w -X github.com/jobq-dev/jobq/internal/buildinfo.version=" + version +
		" -X github.com/jobq-dev/jobq/internal/buildinfo.commit=test"}
}

// buildPrograms builds jobqd and jobq into dir as version.
func buildPrograms(t *testing.T, dir, version string) {
	t.Helper()
	args := append([]string{"build"}, buildFlags(version)...)
	args = append(args, "-o", dir+"/", "./cmd/jobqd", "./cmd/jobq")
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// daemon is a running jobqd.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	notify *net.UnixConn
	exited chan error
	logMu  sync.Mutex
	log    bytes.Buffer
}

func (d *daemon) Write(p []byte) (int, error) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.Write(p)
}

func (d *daemon) logs() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.String()
}

// startDaemon starts jobqd (bin with args) as a systemd service would, with
// $NOTIFY_SOCKET, and returns once it said READY=1.
func startDaemon(t *testing.T, bin string, args ...string) *daemon {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, notify: nc, exited: make(chan error, 1)}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.exited != nil {
			d.cmd.Process.Kill()
			<-d.exited
		}
		nc.Close()
	})
	states := make(chan string, 1)
	go func() { states <- d.next() }()
	select {
	case s := <-states:
		if !strings.HasPrefix(s, "READY=1\n") {
			t.Fatalf("first notification %q, want READY=1\n%s", s, d.logs())
		}
	case err := <-d.exited:
		d.exited = nil
		t.Fatalf("jobqd exited before it was ready: %v\n%s", err, d.logs())
	}
	return d
}

// next reads the next sd_notify datagram ("" if none comes).
func (d *daemon) next() string {
	// The deadline only turns a missing datagram into a failure.
	d.notify.SetReadDeadline(time.Now().Add(2 * time.Minute))
	buf := make([]byte, 4096)
	n, err := d.notify.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// stop sends SIGTERM, checks the STOPPING=1 notification and the clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	if s := d.next(); !strings.HasPrefix(s, "STOPPING=1\n") {
		d.t.Errorf("notification at stop %q, want STOPPING=1", s)
	}
	err := <-d.exited
	d.exited = nil
	if err != nil {
		d.t.Fatalf("jobqd did not stop cleanly: %v\n%s", err, d.logs())
	}
}
