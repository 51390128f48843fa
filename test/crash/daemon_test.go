// Package crash runs the real jobqd under a steady load of submissions,
// kills it with SIGKILL at random instants, restarts it and checks what
// survived: every acknowledged job, every job file whole, no id handed out
// twice, every job final once the load stops.
package crash

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/member"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/internal/testbin"
	"github.com/jobq-dev/jobq/luxi"
)

// TestMain fails a run that leaves goroutines behind: connections and
// load goroutines must be gone with the jobqd processes.
func TestMain(m *testing.M) { testbin.MainCheckLeaks(m) }

// daemon is a running jobqd named node1.
type daemon struct {
	*testbin.Daemon
	t *testing.T
}

// start starts jobqd on dir and returns once it logged "jobqd ready".
func start(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"--node-name", "node1", "--rpc-addr", "127.0.0.1:0", "--rapi-addr", "127.0.0.1:0"}, extra...)
	return &daemon{Daemon: testbin.Start(t, dir, args...), t: t}
}

func (d *daemon) client() *luxi.Client {
	d.t.Helper()
	c, err := luxi.Dial(d.Socket())
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
	return waitUntil(t, c, id, job.Status.Final)
}

// waitUntil waits (WaitForJobChange, no polling) until job id's status
// satisfies ok and returns it.
func waitUntil(t *testing.T, c *luxi.Client, id int64, ok func(job.Status) bool) job.Status {
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
		if ok(vals[0]) {
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

// logState is the queue as jobqd's log left it at a kill: a copy of the
// data directory with every entry of the log applied (the queue files
// may lag the log by the entries agreed but not yet written; a restart
// writes them). One node: every entry in its log is committed.
func logState(t *testing.T, dir string) map[int64]*job.Job {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "socket" || filepath.Base(p) == "lock" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		to := filepath.Join(cp, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o750)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(cp, "queue"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := member.ApplyLog(member.Config{Dir: filepath.Join(cp, "cluster"), Store: st}); err != nil {
		t.Fatalf("applying the log of %s: %v", dir, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	jobs, bad := scanQueue(t, cp)
	if len(bad) > 0 {
		t.Fatalf("the log's queue has bad files: %v", bad)
	}
	return jobs
}
