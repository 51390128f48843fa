package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
)

// With KeepFinal 1, all but the last finished job keep only their index in
// memory; every call must answer as if they were whole.
func TestEvictedFinalJobsAnswerAsBefore(t *testing.T) {
	h := newHarnessConfig(t, t.TempDir(), Config{KeepFinal: 1, MaxRunning: 1}) // one worker: they finish in order
	res, err := h.q.SubmitWith([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_JQUEUE","log_messages":["one","two"]}`)}},
		SubmitOptions{Author: author.RAPIUser("alice")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("submit: %v %v", err, res)
	}
	ok := res[0].ID
	bad := h.submit(op(`{"OP_ID":"OP_TEST_JQUEUE","fail":true}`))
	last := h.submit(op(`{"OP_ID":"OP_TEST_JQUEUE"}`))
	for _, id := range []int64{ok, bad, last} {
		h.waitFinal(id)
	}
	h.q.mu.Lock()
	evicted := h.q.jobs[ok].idx != nil && h.q.jobs[bad].idx != nil && h.q.jobs[last].idx == nil
	state := fmt.Sprintf("ok %v v%d/%d, bad %v v%d/%d, last %v, recent %d", h.q.jobs[ok].idx != nil, h.q.jobs[ok].version, h.q.jobs[ok].shownVersion,
		h.q.jobs[bad].idx != nil, h.q.jobs[bad].version, h.q.jobs[bad].shownVersion, h.q.jobs[last].idx != nil, len(h.q.recent))
	h.q.mu.Unlock()
	if !evicted {
		t.Fatal("the older finished jobs were not evicted: " + state)
	}
	all := append([]string(nil), JobFieldNames...)
	rows, err := h.q.QueryJobs([]int64{ok, bad}, all)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []int64{ok, bad} {
		j := h.fileJob(id)
		want := h.q.row(view{id: id, j: j, summary: h.q.summaries(j)}, all)
		if string(rows[i]) != string(want) {
			t.Fatalf("job %d evicted:\n got %s\nwant %s", id, rows[i], want)
		}
	}
	// The author is in the index: a listing by author reads no file.
	if needsFull([]string{"id", "author"}) {
		t.Error("the author field needs the job's file")
	}
	byAuthor, err := h.q.Select(Selector{Match: func(get func(string) (any, bool)) (bool, error) {
		v, _ := get("author")
		return v == "jobq:rapi alice", nil
	}}, []string{"id", "author"})
	if err != nil || len(byAuthor) != 1 || byAuthor[0][0] != ok || byAuthor[0][1] != "jobq:rapi alice" {
		t.Fatalf("select on author: %v %v", byAuthor, err)
	}
	// Filters on fields outside the index read the file.
	rows2, err := h.q.Select(Selector{Match: func(get func(string) (any, bool)) (bool, error) {
		v, _ := get("opstatus")
		return fmt.Sprint(v) == "[error]", nil
	}}, []string{"id", "status", "oplog"})
	if err != nil || len(rows2) != 1 || rows2[0][0] != bad {
		t.Fatalf("select on opstatus: %v %v", rows2, err)
	}
	// Watchers get everything at once, logs included.
	r, err := h.q.WaitForJobChange(context.Background(), ok, []string{"status"}, json.RawMessage(`["success"]`), 0, waitTimeout)
	if err != nil || string(r.Values) != `["success"]` || len(r.Logs) != 2 {
		t.Fatalf("wait on an evicted job: %+v %v", r, err)
	}
	if got, msg, _ := h.q.CancelJob(ok, false); got || msg != fmt.Sprintf("Job %d is no longer waiting in the queue", ok) {
		t.Fatal(got, msg)
	}
	if got, msg, _ := h.q.ChangeJobPriority(ok, 5); got || msg != fmt.Sprintf("Job %d is finished", ok) {
		t.Fatal(got, msg)
	}
	// Dependencies see its status.
	dep := h.submit(op(fmt.Sprintf(`{"OP_ID":"OP_TEST_JQUEUE","depends":[[%d,["error"]]]}`, bad)))
	if st := h.waitFinal(dep); st != job.StatusSuccess {
		t.Fatalf("dependent of an evicted job: %s", st)
	}
	if c := h.q.Counts(); c[job.StatusSuccess] != 3 || c[job.StatusError] != 1 {
		t.Fatalf("counts %v", c)
	}
	// Archive and autoarchive work on the index.
	if done, err := h.q.ArchiveJob(ok); !done || err != nil {
		t.Fatal(done, err)
	}
	if n, _, err := h.q.AutoArchiveJobs(-1, 60); n != 3 || err != nil {
		t.Fatalf("autoarchive: %d %v", n, err)
	}
}
