package crash

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/testbin"
	"github.com/jobq-dev/jobq/luxi"
)

// mountTmpfs mounts a tmpfs of size (e.g. "2m") on a new directory, unmounted
// at cleanup (after everything registered later, such as jobqd, is gone).
// Where mounting is not allowed the test fails in CI and is skipped
// elsewhere (testbin.Missing).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testbin.Missing(t, "mounting a tmpfs as a small data dir needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0750"); err != nil {
		testbin.Missing(t, "cannot mount a tmpfs on %s (%v): this environment does not allow mounts", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file at path until the file system is full and returns
// how much it wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{'f'}, 64<<10)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			// Top up what is left of the last page, byte by byte.
			for {
				if _, err := f.Write([]byte{'f'}); err != nil {
					return n
				}
				n++
			}
		}
		if err != nil {
			t.Fatalf("filling the disk: %v", err)
		}
	}
}

// luxiError returns the failure reply's class and first argument.
func luxiError(t *testing.T, err error) (string, string) {
	t.Helper()
	var le *luxi.Error
	if !errors.As(err, &le) {
		t.Fatalf("want a failure reply, got %v", err)
	}
	msg := ""
	if len(le.Args) > 0 {
		msg = fmt.Sprint(le.Args[0])
	}
	return le.Class, msg
}

func submitOK(t *testing.T, c *luxi.Client, ops ...any) int64 {
	t.Helper()
	raw, err := c.Call(context.Background(), "SubmitJob", ops)
	if err != nil {
		t.Fatalf("SubmitJob: %v", err)
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil {
		t.Fatalf("SubmitJob answered %s", raw)
	}
	return id
}

// waitStatus waits (WaitForJobChange) until job id has status want.
func waitStatus(t *testing.T, c *luxi.Client, id int64, want job.Status) {
	t.Helper()
	if st := waitUntil(t, c, id, func(s job.Status) bool { return s == want || s.Final() }); st != want {
		t.Fatalf("job %d ended %s while waiting for %s", id, st, want)
	}
}

// waitFiles waits until each job's file on disk has the status wanted.
func waitFiles(t *testing.T, dir string, want map[int64]job.Status) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		onDisk, bad := scanQueue(t, dir)
		var behind []string
		for id, st := range want {
			if j := onDisk[id]; j == nil || j.CalcStatus() != st {
				behind = append(behind, fmt.Sprintf("job-%d (want %s)", id, st))
			}
		}
		if len(behind) == 0 && len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after they were stored, job files are behind: %v; torn: %v", behind, bad)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFullDisk runs jobqd on a 16 MiB tmpfs (room for the log's segments) and fills it: submissions fail
// with a clear error reply while queries are answered, nothing on disk is
// torn, no acknowledged job is lost, and once space returns the jobs stuck
// retrying their writes (a killed job, a canceled one) finish and
// submissions succeed again.
func TestFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "16m")
	d := start(t, dir, "--max-running-jobs", "3")
	c := d.client()
	defer c.Close()

	var acked []int64
	first := submitOK(t, c, delay(0.001, "repeat", 2))
	acked = append(acked, first)
	if st := waitFinal(t, c, first); st != job.StatusSuccess {
		t.Fatalf("job %d ended %s", first, st)
	}
	// A job runs while the disk fills up; it is killed meanwhile, so
	// its final state cannot be stored. Another waits for it to end, and
	// is canceled meanwhile.
	long := submitOK(t, c, delay(3600))
	waitStatus(t, c, long, job.StatusRunning)
	dep := submitOK(t, c, map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 0.001,
		"depends": [][]any{{long, []string{"success"}}}})
	waitStatus(t, c, dep, job.StatusWaiting)
	acked = append(acked, long, dep)

	// The job files follow the log within the write-back buffer's flush
	// interval: the disk fills once they are written (what a full disk
	// does to a flush is store's TestWriteBackRetriesInOrder).
	waitFiles(t, dir, map[int64]job.Status{first: job.StatusSuccess, long: job.StatusRunning, dep: job.StatusQueued})

	filler := filepath.Join(dir, "filler")
	n := fill(t, filler)
	t.Logf("filled the 16 MiB data dir with %d bytes", n)

	// Submissions fail with a clear error.
	_, err := c.Call(context.Background(), "SubmitJob", []any{delay(0.001)})
	if class, msg := luxiError(t, err); class != "GenericError" ||
		!strings.HasPrefix(msg, "job could not be stored: ") || !strings.Contains(msg, "no space left on device") {
		t.Fatalf("SubmitJob on a full disk: %s %q", class, msg)
	}
	// A job that takes the node's lock, which is free: jobqd starts it at
	// submission, and must give the lock back when the job cannot be
	// stored.
	_, err = c.Call(context.Background(), "SubmitJob", []any{delay(0.001, "no_locks", false, "on_nodes", []string{"node1"})})
	if class, msg := luxiError(t, err); class != "GenericError" || !strings.Contains(msg, "no space left on device") {
		t.Fatalf("SubmitJob on a full disk: %s %q", class, msg)
	}
	raw, err := c.Call(context.Background(), "SubmitManyJobs", []any{[]any{delay(0.001)}, []any{delay(0.001)}})
	var many [][2]any
	if err != nil || json.Unmarshal(raw, &many) != nil || len(many) != 2 ||
		many[0][0] != false || !strings.Contains(fmt.Sprint(many[0][1]), "no space left on device") {
		t.Fatalf("SubmitManyJobs on a full disk: %s %v", raw, err)
	}
	// jobqd still answers queries.
	if sts := query(t, c, acked); sts[0] == nil || sts[0].Status != job.StatusSuccess ||
		sts[1] == nil || sts[1].Status != job.StatusRunning || sts[2] == nil || sts[2].Status != job.StatusWaiting {
		t.Fatalf("QueryJobs on a full disk: %+v %+v %+v", sts[0], sts[1], sts[2])
	}
	raw, err = c.Call(context.Background(), "Query", "lock", []string{"name", "owner"}, nil)
	if err != nil {
		t.Fatalf("Query lock: %v", err)
	}
	// The running job takes no locks (no_locks is OP_TEST_DELAY's
	// default), so nobody may hold one.
	if strings.Contains(string(raw), "job/") {
		t.Fatalf("a job that was never stored holds a lock: %s", raw)
	}

	// Cancel the waiting job: the cancellation cannot be stored yet;
	// jobqd retries, and answers once it is stored.
	type reply struct {
		raw json.RawMessage
		err error
	}
	canceled := make(chan reply, 1)
	go func() {
		raw, err := c.Call(context.Background(), "CancelJob", dep)
		canceled <- reply{raw, err}
	}()
	logged := make(chan bool, 1)
	go func() {
		_, ok := d.WaitLine("cannot store job; retrying", fmt.Sprintf("job=%d ", dep), "no space left on device")
		logged <- ok
	}()
	select {
	case ok := <-logged:
		if !ok {
			t.Fatalf("jobqd exited: %v\n%s", d.ExitErr(), d.Logs())
		}
	case r := <-canceled:
		t.Fatalf("CancelJob(%d) answered %s %v on a full disk: the job is canceled in memory only", dep, r.raw, r.err)
	}
	// Kill the running job: its end cannot be stored, and jobqd retries.
	raw, err = c.Call(context.Background(), "CancelJob", long, true)
	if err != nil || !strings.Contains(string(raw), "will be killed") {
		t.Fatalf("kill job %d: %s %v", long, raw, err)
	}
	d.MustLine(t, "cannot store job; retrying", fmt.Sprintf("job=%d ", long), "no space left on device")
	if sts := query(t, c, []int64{long, dep}); sts[0].Status != job.StatusRunning || sts[1].Status != job.StatusWaiting {
		t.Errorf("jobs whose new state is not stored show %s and %s, want their stored running and waiting", sts[0].Status, sts[1].Status)
	}

	// Nothing on disk is torn; every acknowledged job is there.
	onDisk, bad := scanQueue(t, dir)
	for _, b := range bad {
		t.Errorf("on a full disk: %s", b)
	}
	for _, id := range acked {
		if onDisk[id] == nil {
			t.Errorf("acknowledged job %d has no job file", id)
		}
	}
	if st := onDisk[long].CalcStatus(); st != job.StatusRunning {
		t.Errorf("job-%d on disk is %s, want its last stored state, running", long, st)
	}
	// (Waiting is shown, not stored: the file says queued.)
	if st := onDisk[dep].CalcStatus(); st != job.StatusQueued {
		t.Errorf("job-%d on disk is %s, want its last stored state, queued", dep, st)
	}
	checkNoTemps(t, filepath.Join(dir, "queue"))

	// Space returns: the stuck job ends, submissions work again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if st := waitFinal(t, c, long); st != job.StatusCanceled {
		t.Errorf("killed job %d ended %s", long, st)
	}
	if r := <-canceled; r.err != nil || !strings.HasPrefix(string(r.raw), `[true,`) {
		t.Errorf("CancelJob(%d) on a full disk answered %s %v once space returned", dep, r.raw, r.err)
	}
	if st := waitFinal(t, c, dep); st != job.StatusCanceled {
		t.Errorf("canceled job %d ended %s", dep, st)
	}
	next := submitOK(t, c, delay(0.001))
	locked := submitOK(t, c, delay(0.001, "no_locks", false, "on_nodes", []string{"node1"}))
	acked = append(acked, next, locked)
	for _, id := range []int64{next, locked} {
		if id <= long {
			t.Errorf("id %d handed out after %d", id, long)
		}
		if st := waitFinal(t, c, id); st != job.StatusSuccess {
			t.Errorf("job %d after space returned: %s", id, st)
		}
	}
	for i, st := range query(t, c, acked) {
		if st == nil || !st.Status.Final() {
			t.Errorf("acknowledged job %d: %+v", acked[i], st)
		}
	}
	waitFiles(t, dir, map[int64]job.Status{first: job.StatusSuccess, long: job.StatusCanceled, dep: job.StatusCanceled,
		next: job.StatusSuccess, locked: job.StatusSuccess})
	// jobqd never stopped.
	if !d.Running() {
		t.Fatalf("jobqd exited: %v\n%s", d.ExitErr(), d.Logs())
	}
}

func checkNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

// TestCorruptJobFileQuarantined starts jobqd on a queue with a truncated
// and a garbage job file: it starts, logs each one and moves it to
// queue/quarantine, byte for byte; the good jobs stay and the corrupt
// ones' ids are not handed out again.
func TestCorruptJobFileQuarantined(t *testing.T) {
	dir := t.TempDir()
	d := start(t, dir)
	c := d.client()
	id := submitOK(t, c, delay(0.001, "repeat", 1))
	waitFinal(t, c, id)
	c.Close()
	if err := d.Stop(); err != nil {
		t.Fatalf("jobqd stop: %v", err)
	}

	q := filepath.Join(dir, "queue")
	good, err := os.ReadFile(filepath.Join(q, fmt.Sprintf("job-%d", id)))
	if err != nil {
		t.Fatal(err)
	}
	truncated := bytes.Replace(good[:len(good)/2], []byte(fmt.Sprintf(`"id": %d`, id)), []byte(fmt.Sprintf(`"id": %d`, id+1)), 1)
	corrupt := map[int64][]byte{
		id + 1: truncated,
		id + 2: {0, 1, 2, 0xff},
		id + 3: []byte(""),
	}
	for cid, b := range corrupt {
		if err := os.WriteFile(filepath.Join(q, fmt.Sprintf("job-%d", cid)), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}

	d = start(t, dir)
	for cid, b := range corrupt {
		name := fmt.Sprintf("job-%d", cid)
		line := d.MustLine(t, "level=ERROR", "job file is corrupt; moved aside", "file="+name+" ")
		var dst string
		if _, after, ok := strings.Cut(line, " to="); ok {
			dst, _, _ = strings.Cut(after, " ")
		}
		if !strings.HasPrefix(dst, "quarantine/"+name+".") {
			t.Errorf("log line %q does not say where %s went", line, name)
			continue
		}
		got, err := os.ReadFile(filepath.Join(q, dst))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("quarantined %s: %q %v, want the original %q", dst, got, err, b)
		}
		if _, err := os.Stat(filepath.Join(q, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still in the queue: %v", name, err)
		}
	}
	c = d.client()
	defer c.Close()
	sts := query(t, c, []int64{id, id + 1, id + 2, id + 3})
	if sts[0] == nil || sts[0].Status != job.StatusSuccess || sts[1] != nil || sts[2] != nil || sts[3] != nil {
		t.Errorf("after quarantine: %+v %+v %+v %+v", sts[0], sts[1], sts[2], sts[3])
	}
	if next := submitOK(t, c, delay(0.001)); next != id+4 {
		t.Errorf("next id %d, want %d (the quarantined ids stay used)", next, id+4)
	}
	if fi, err := os.Stat(filepath.Join(q, "quarantine")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("quarantine directory: %v %v", fi.Mode(), err)
	}
}
