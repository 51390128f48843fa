// Package crash runs the real jobqd under a steady load of submissions,
// kills it with SIGKILL at random instants, restarts it and checks what
// survived: every acknowledged job, every job file whole, no id handed out
// twice, every job final once the load stops.
package crash

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/luxi"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// jobqd builds jobqd (with the race detector) once per test binary and
// returns its path.
func jobqd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "jobq-crash-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-race", "-o", binDir+"/",
			"github.com/jobq-dev/jobq/cmd/jobqd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "jobqd")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		// Every jobqd is gone by now, and with it the goroutines that
		// read its log; connections and load goroutines must be too.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// daemon is a running jobqd.
type daemon struct {
	t       *testing.T
	dir     string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	exitErr error         // its exit status, once done
	once    sync.Once     // kills or stops it once

	logMu   sync.Mutex
	log     strings.Builder
	changed chan struct{} // closed (and replaced) at every new log line
}

// start starts jobqd on dir and returns once it logged "jobqd ready".
func start(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"--data-dir", dir, "--node-name", "node1", "--rapi-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(jobqd(t), args...)
	// Should the test binary die (a timeout), jobqd goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dir: dir, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			d.logMu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			close(d.changed)
			d.changed = make(chan struct{})
			d.logMu.Unlock()
		}
		io.Copy(io.Discard, stderr)
		d.exitErr = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.kill)
	if _, ok := d.waitLog("jobqd ready"); !ok {
		t.Fatalf("jobqd exited before it was ready: %v\n%s", d.exitErr, d.logs())
	}
	return d
}

// waitLog waits until jobqd's log has a line holding every one of parts
// and returns it; ok is false if jobqd exited first.
func (d *daemon) waitLog(parts ...string) (line string, ok bool) {
	for {
		d.logMu.Lock()
		log, changed := d.log.String(), d.changed
		d.logMu.Unlock()
		for _, line := range strings.Split(log, "\n") {
			found := true
			for _, p := range parts {
				found = found && strings.Contains(line, p)
			}
			if found {
				return line, true
			}
		}
		select {
		case <-changed:
		case <-d.done:
			// The reader has the whole log once the process is gone.
			d.logMu.Lock()
			final := d.log.String()
			d.logMu.Unlock()
			if final == log {
				return "", false
			}
		}
	}
}

// mustLog is waitLog that fails the test if jobqd exits first.
func (d *daemon) mustLog(t *testing.T, parts ...string) string {
	t.Helper()
	line, ok := d.waitLog(parts...)
	if !ok {
		t.Fatalf("jobqd exited (%v) before logging %q:\n%s", d.exitErr, parts, d.logs())
	}
	return line
}

func (d *daemon) logs() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.String()
}

// kill sends SIGKILL (unless it was stopped or killed already) and waits
// until the process is gone.
func (d *daemon) kill() {
	d.once.Do(func() { d.cmd.Process.Signal(syscall.SIGKILL) })
	<-d.done
}

// stop sends SIGTERM and returns the exit status.
func (d *daemon) stop() error {
	d.once.Do(func() { d.cmd.Process.Signal(syscall.SIGTERM) })
	<-d.done
	return d.exitErr
}

// running reports whether the process is still there.
func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *daemon) socket() string { return filepath.Join(d.dir, "socket", "jobq-query") }

func (d *daemon) client() *luxi.Client {
	d.t.Helper()
	c, err := luxi.Dial(d.socket())
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// jobState is one row of QueryJobs(ids, [id, status, opresult]).
type jobState struct {
	ID       int64
	Status   job.Status
	OpResult json.RawMessage
}

// query answers QueryJobs for ids (nil: every live job); a missing job
// is a nil entry.
func query(t *testing.T, c *luxi.Client, ids []int64) []*jobState {
	t.Helper()
	var arg any = ids
	if ids == nil {
		arg = nil
	}
	raw, err := c.Call(context.Background(), "QueryJobs", arg, []string{"id", "status", "opresult"})
	if err != nil {
		t.Fatalf("QueryJobs: %v", err)
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatalf("QueryJobs answered %.300s", raw)
	}
	out := make([]*jobState, len(rows))
	for i, r := range rows {
		if string(r) == "null" {
			continue
		}
		var vals []json.RawMessage
		if err := json.Unmarshal(r, &vals); err != nil || len(vals) != 3 {
			t.Fatalf("QueryJobs row %.300s", r)
		}
		st := &jobState{OpResult: vals[2]}
		if json.Unmarshal(vals[0], &st.ID) != nil || json.Unmarshal(vals[1], &st.Status) != nil {
			t.Fatalf("QueryJobs row %.300s", r)
		}
		out[i] = st
	}
	return out
}

// waitFinal waits (WaitForJobChange, no polling) until job id is final
// and returns its status.
func waitFinal(t *testing.T, c *luxi.Client, id int64) job.Status {
	t.Helper()
	var prev any
	for {
		raw, err := c.Call(context.Background(), "WaitForJobChange", id, []string{"status"}, prev, nil, 30)
		if err != nil {
			t.Fatalf("WaitForJobChange(%d): %v", id, err)
		}
		var res []json.RawMessage
		var vals []job.Status
		if json.Unmarshal(raw, &res) != nil || len(res) != 2 || json.Unmarshal(res[0], &vals) != nil || len(vals) != 1 {
			t.Fatalf("WaitForJobChange(%d) answered %.300s", id, raw)
		}
		if vals[0].Final() {
			return vals[0]
		}
		prev = vals
	}
}

// scanQueue reads every job file in dir/queue: the jobs that decode, by
// id, and the names of those that do not (torn or corrupt).
func scanQueue(t *testing.T, dir string) (jobs map[int64]*job.Job, bad []string) {
	t.Helper()
	q := filepath.Join(dir, "queue")
	ents, err := os.ReadDir(q)
	if err != nil {
		t.Fatal(err)
	}
	jobs = map[int64]*job.Job{}
	for _, e := range ents {
		var id int64
		if !strings.HasPrefix(e.Name(), "job-") {
			continue
		}
		if _, err := fmt.Sscanf(e.Name(), "job-%d", &id); err != nil || fmt.Sprintf("job-%d", id) != e.Name() {
			bad = append(bad, e.Name()+": not a job file name")
			continue
		}
		b, err := os.ReadFile(filepath.Join(q, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		j, err := job.Decode(b)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v (%d bytes)", e.Name(), err, len(b)))
		case j.ID != id:
			bad = append(bad, fmt.Sprintf("%s holds job %d", e.Name(), j.ID))
		default:
			jobs[id] = j
		}
	}
	return jobs, bad
}
