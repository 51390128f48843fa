// Package integration starts the real jobqd binary on unix sockets, drives
// it over LUXI, kills it with SIGKILL and checks the files on disk.
package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/testbin"
	"github.com/jobq-dev/jobq/luxi"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// node is a running jobqd named node1.
type node struct {
	*testbin.Daemon
	t *testing.T
}

// nodeArgs are the jobqd flags every node starts with, before its own.
var nodeArgs = []string{"--node-name", "node1", "--rpc-addr", "127.0.0.1:0", "--rapi-addr", "127.0.0.1:0"}

// startNode starts jobqd on dir and returns once it logged "jobqd ready".
func startNode(t *testing.T, dir string, extra ...string) *node {
	t.Helper()
	return &node{Daemon: testbin.Start(t, dir, append(slices.Clone(nodeArgs), extra...)...), t: t}
}

func (n *node) client() *luxi.Client {
	n.t.Helper()
	c, err := luxi.Dial(n.Socket())
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c
}

func delayOp(d float64) map[string]any {
	return map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": d, "on_master": true, "repeat": 0}
}

func submit(t *testing.T, c *luxi.Client, ops ...map[string]any) int64 {
	t.Helper()
	raw, err := c.Call(context.Background(), "SubmitJob", ops)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil {
		t.Fatalf("SubmitJob answered %s", raw)
	}
	return id
}

// waitFor loops on WaitForJobChange until the job's status satisfies ok.
func waitFor(t *testing.T, c *luxi.Client, id int64, ok func(job.Status) bool) job.Status {
	t.Helper()
	var prev any
	for {
		raw, err := c.Call(context.Background(), "WaitForJobChange", id, []string{"status"}, prev, nil, 30)
		if err != nil {
			t.Fatal(err)
		}
		var res []json.RawMessage
		if err := json.Unmarshal(raw, &res); err != nil || len(res) != 2 {
			t.Fatalf("WaitForJobChange(%d) answered %s", id, raw)
		}
		var vals []job.Status
		json.Unmarshal(res[0], &vals)
		if ok(vals[0]) {
			return vals[0]
		}
		prev = vals
	}
}

func final(s job.Status) bool { return s.Final() }

// readJobFile reads a finished job's file, as Ganeti's tools do: the
// files follow the log within the write-back buffer's flush interval
// (store.DefaultFlushInterval), so it waits, up to 10s, for the file to
// say the job ended.
func readJobFile(t *testing.T, dir string, id int64) *job.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j := readJobFileNow(t, dir, id)
		if j != nil && j.CalcStatus().Final() {
			return j
		}
		if time.Now().After(deadline) {
			if j == nil {
				t.Fatalf("job-%d has no file 10s after it ended", id)
			}
			t.Fatalf("job-%d's file says %s 10s after it ended", id, j.CalcStatus())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readJobFileNow reads a job's file as it is (nil: none).
func readJobFileNow(t *testing.T, dir string, id int64) *job.Job {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "queue", fmt.Sprintf("job-%d", id)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	j, err := job.Decode(b)
	if err != nil {
		t.Fatalf("job-%d on disk does not parse: %v", id, err)
	}
	return j
}

func TestSubmitWatchKillRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	c := n.client()

	// A job runs to success; its file says so.
	id := submit(t, c, map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "repeat": 2})
	if st := waitFor(t, c, id, final); st != job.StatusSuccess {
		t.Fatalf("job %d ended %s", id, st)
	}
	j := readJobFile(t, dir, id)
	if j.CalcStatus() != job.StatusSuccess || j.EndTimestamp == nil || len(j.Ops[0].Log) != 2 {
		t.Fatalf("job-%d on disk: status %s, end %v, %d log entries", id, j.CalcStatus(), j.EndTimestamp, len(j.Ops[0].Log))
	}
	if fi, err := os.Stat(n.Socket()); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}

	// A long job is running; submissions go on from other clients.
	running := submit(t, c, delayOp(60))
	waitFor(t, c, running, func(s job.Status) bool { return s == job.StatusRunning })

	var mu sync.Mutex
	acked := []int64{id, running}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := luxi.Dial(n.Socket())
			if err != nil {
				return
			}
			defer cl.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				raw, err := cl.Call(context.Background(), "SubmitJob", []map[string]any{delayOp(0.001)})
				if err != nil {
					return // the daemon died under us: not acknowledged
				}
				var jid int64
				if json.Unmarshal(raw, &jid) == nil {
					mu.Lock()
					acked = append(acked, jid)
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once some submissions were acknowledged.
	for {
		mu.Lock()
		k, last := len(acked), acked[len(acked)-1]
		mu.Unlock()
		if k > 20 {
			break
		}
		waitFor(t, c, last, func(job.Status) bool { return true })
	}
	n.Kill()
	close(stop)
	wg.Wait()

	// On disk the running job has not ended: the crash left it running
	// (or, in the files, still queued, or not yet written: they follow
	// the log within the write-back buffer's flush interval, and the
	// restart writes what the log holds).
	if j := readJobFileNow(t, dir, running); j != nil && j.CalcStatus().Final() {
		t.Fatalf("before restart job-%d is %s on disk", running, j.CalcStatus())
	}

	n2 := startNode(t, dir)
	c2 := n2.client()
	if st := waitFor(t, c2, running, final); st != job.StatusError {
		t.Fatalf("job %d after restart: %s", running, st)
	}
	raw, err := c2.Call(context.Background(), "QueryJobs", []int64{running}, []string{"opresult"})
	if err != nil || string(raw) != `[[[["OpExecError",["Unclean master shutdown"]]]]]` {
		t.Fatalf("opresult after restart: %s %v", raw, err)
	}
	mu.Lock()
	ids := append([]int64(nil), acked...)
	mu.Unlock()
	var maxID int64
	for _, jid := range ids {
		maxID = max(maxID, jid)
		waitFor(t, c2, jid, final) // every acknowledged job exists and finishes
		// It succeeded, or it was running at the kill and failed with the
		// master.
		j := readJobFile(t, dir, jid)
		if st := j.CalcStatus(); st != job.StatusSuccess &&
			!(st == job.StatusError && string(j.Ops[0].Result) == `["OpExecError",["Unclean master shutdown"]]`) {
			t.Errorf("acknowledged job %d ended %s: %s", jid, st, j.Ops[0].Result)
		}
	}
	next := submit(t, c2, delayOp(0.001))
	if next <= maxID {
		t.Fatalf("id %d handed out after restart, but %d was acknowledged before", next, maxID)
	}
	t.Logf("%d jobs acknowledged before the kill, all present after restart; next id %d", len(ids), next)
	if err := n2.Stop(); err != nil {
		t.Fatalf("SIGTERM stop: %v\n%s", err, n2.Logs())
	}
}

func TestSecondDaemonOnSameDataDirExits(t *testing.T) {
	dir := t.TempDir()
	startNode(t, dir)
	_, err := testbin.StartErr(t, dir, nodeArgs...)
	if err == nil {
		t.Fatal("second jobqd started")
	}
	if !strings.Contains(err.Error(), "is held by another jobqd") {
		t.Fatalf("second jobqd said: %v", err)
	}
}

func TestVersionMismatchRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "queue"), 0o750)
	os.WriteFile(filepath.Join(dir, "queue", "version"), []byte("2\n"), 0o640)
	_, err := testbin.StartErr(t, dir, nodeArgs...)
	if err == nil || !strings.Contains(err.Error(), `queue format version "2"`) {
		t.Fatalf("jobqd on a version-2 queue: %v", err)
	}
}

func TestGracefulStopLetsRunningJobFinish(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, "--shutdown-timeout", "1m")
	c := n.client()
	id := submit(t, c, delayOp(0.5))
	waitFor(t, c, id, func(s job.Status) bool { return s == job.StatusRunning })
	if err := n.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if st := readJobFile(t, dir, id).CalcStatus(); st != job.StatusSuccess {
		t.Fatalf("job running at SIGTERM ended %s", st)
	}
}

func TestReferenceQueueLoads(t *testing.T) {
	ref := "../../testdata/ganeti-reference/queue"
	if _, err := os.Stat(ref); err != nil {
		t.Fatal("testdata/ganeti-reference/queue is missing")
	}
	dir := t.TempDir()
	q := filepath.Join(dir, "queue")
	os.MkdirAll(q, 0o750)
	files, _ := filepath.Glob(filepath.Join(ref, "job-*.json"))
	var ids []int64
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var id int64
		fmt.Sscanf(filepath.Base(f), "job-%d.", &id)
		os.WriteFile(filepath.Join(q, fmt.Sprintf("job-%d", id)), b, 0o640)
		ids = append(ids, id)
	}
	for _, f := range []string{"serial", "version"} {
		b, _ := os.ReadFile(filepath.Join(ref, f))
		os.WriteFile(filepath.Join(q, f), b, 0o640)
	}
	n := startNode(t, dir)
	c := n.client()
	raw, err := c.Call(context.Background(), "QueryJobs", ids, []string{"id", "status"})
	if err != nil || strings.Contains(string(raw), "null") {
		t.Fatalf("reference jobs: %s %v", raw, err)
	}
	if next := submit(t, c, delayOp(0.001)); next != 31 {
		t.Fatalf("next id after the reference serial 30: %d", next)
	}
}

// TestReferenceCopyUpToDate checks that the repository's copy of the
// Ganeti captures (testdata/ganeti-reference, used by the golden tests)
// matches the shared reference directory beside the project, where there
// is one.
func TestReferenceCopyUpToDate(t *testing.T) {
	const shared, local = "../../../shared/ganeti-reference", "../../testdata/ganeti-reference"
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("no shared reference directory beside the project: %v", err)
	}
	err := filepath.WalkDir(shared, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(shared, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(local, rel))
		if err != nil || string(got) != string(want) {
			t.Errorf("testdata/ganeti-reference/%s is missing or differs from %s: copy it again", rel, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
