package ganeti_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

// raceEnabled reports whether this test binary was built with -race; jobqd
// is then built with -race too, so that a data race in the daemon makes it
// exit non-zero (66) and fails the test.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// buildJobqd builds cmd/jobqd once, into a temporary directory.
func buildJobqd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "jobqd")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, "github.com/jobq-dev/jobq/cmd/jobqd")
	cmd := exec.Command("go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// logWatcher keeps jobqd's stderr and closes ready when the "jobqd ready"
// line has been logged (after the LUXI sockets accept connections).
type logWatcher struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int
	ready   chan struct{}
	seen    bool
}

func (w *logWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for !w.seen {
		rest := w.buf.Bytes()[w.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		w.scanned += i + 1
		if bytes.Contains(rest[:i], []byte(`msg="jobqd ready"`)) {
			w.seen = true
			close(w.ready)
		}
	}
	return len(p), nil
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// The test's jobqd settings.
const (
	nodeName = "node1.ganeti.test" // the reference cluster's master: `-n node1.ganeti.test` works
	// serialSeed is written to queue/serial before jobqd starts, so that
	// its first job is 6039 as in the reference's cli-01 and every job id
	// has four digits like the reference's (column widths match).
	serialSeed = 6038
)

// startJobqd starts jobqd on a fresh data directory with its LUXI socket
// at sockDir/ganeti-query and one worker (a running job holds the others
// queued), waits for its "jobqd ready" line, and stops it with SIGTERM at
// the end of the test, which must make it exit 0 with a clean log.
func startJobqd(t *testing.T, bin string) (sockDir string) {
	t.Helper()
	return startJobqdWith(t, bin, serialSeed, 1)
}

// startJobqdWith is startJobqd with another queue serial and number of
// workers.
func startJobqdWith(t *testing.T, bin string, serialSeed, maxRunning int) (sockDir string) {
	t.Helper()
	return startJobqdIn(t, bin, t.TempDir(), serialSeed, maxRunning, "--rapi-addr", "127.0.0.1:0")
}

// startJobqdIn is startJobqdWith on the data directory data (which may
// hold files already, e.g. rapi/users), with extraArgs (e.g. --rapi-addr).
func startJobqdIn(t *testing.T, bin, data string, serialSeed, maxRunning int, extraArgs ...string) (sockDir string) {
	t.Helper()
	sockDir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "queue"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "queue", "serial"), fmt.Appendf(nil, "%d\n", serialSeed), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--data-dir", data, "--node-name", nodeName,
		"--luxi-socket", filepath.Join(sockDir, "ganeti-query"),
		"--max-running-jobs", strconv.Itoa(maxRunning), "--shutdown-timeout", "5s",
		"--rpc-addr", "127.0.0.1:0")
	cmd.Args = append(cmd.Args, extraArgs...)
	log := &logWatcher{ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting jobqd: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM to jobqd: %v", err)
		}
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("jobqd did not exit within 60s of SIGTERM")
		}
		out := log.String()
		if waitErr != nil {
			t.Errorf("jobqd after SIGTERM: %v (want exit status 0)", waitErr)
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "level=ERROR"} {
			if strings.Contains(out, bad) {
				t.Errorf("jobqd's log contains %q", bad)
			}
		}
		if !strings.Contains(out, `msg="jobqd stopped"`) {
			t.Errorf(`jobqd's log lacks msg="jobqd stopped"`)
		}
		if t.Failed() {
			t.Logf("jobqd's log:\n%s", out)
		}
	})
	select {
	case <-log.ready:
	case <-exited:
		t.Fatalf("jobqd exited before it was ready: %v\n%s", waitErr, log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("jobqd did not log \"jobqd ready\" within 60s\n%s", log.String())
	}
	return sockDir
}

// waitForStatus blocks until job id has status want, following it with
// LUXI WaitForJobChange (no sleeping, no polling): each call returns as
// soon as the status differs from the one the test last saw.
func waitForStatus(t *testing.T, sock string, id int64, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := luxi.DialContext(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var prev []string // null: answer at once with the current status
	for {
		raw, err := c.Call(ctx, "WaitForJobChange", id, []string{"status"}, prev, nil, 10.0)
		if err != nil {
			t.Fatalf("WaitForJobChange(%d): %v", id, err)
		}
		var res []json.RawMessage
		var vals []string
		if err := json.Unmarshal(raw, &res); err != nil || len(res) != 2 || json.Unmarshal(res[0], &vals) != nil || len(vals) != 1 {
			t.Fatalf("WaitForJobChange(%d) answered %s, want [[status], log]", id, raw)
		}
		switch vals[0] {
		case want:
			return
		case "success", "error", "canceled":
			t.Fatalf("job %d ended %s while the test waited for %s", id, vals[0], want)
		}
		prev = vals
	}
}

// killJob cancels a job even when it runs (LUXI CancelJob with kill).
func killJob(sock string, id int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := luxi.DialContext(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Call(ctx, "CancelJob", id, true)
	return err
}
