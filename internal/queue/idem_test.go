package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
)

func (h *harness) submitKey(key string, jobs ...[]json.RawMessage) ([]SubmitResult, error) {
	h.t.Helper()
	return h.q.SubmitWith(jobs, SubmitOptions{Admin: true, IdempotencyKey: key})
}

// TestIdempotencyKey: a retry with the same key and body answers the first
// submission's ids, after a restart and after the jobs were archived too;
// another body with the key is refused; another key makes new jobs.
func TestIdempotencyKey(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, 4)
	delay := op(`{"OP_ID":"OP_TEST_DELAY","duration":0}`)
	first, err := h.submitKey("k1", []json.RawMessage{delay})
	if err != nil || first[0].Err != nil {
		t.Fatalf("first: %v %v", err, first)
	}
	id := first[0].ID
	again, err := h.submitKey("k1", []json.RawMessage{op(`{ "duration": 0, "OP_ID": "OP_TEST_DELAY" }`)})
	if err != nil || again[0].ID != id {
		t.Fatalf("retry: %v %+v, want job %d", err, again, id)
	}
	if _, err := h.submitKey("k1", []json.RawMessage{op(`{"OP_ID":"OP_TEST_DELAY","duration":1}`)}); err == nil ||
		!strings.Contains(err.Error(), `idempotency key "k1" was used`) || !strings.Contains(err.Error(), "use a new key") {
		t.Fatalf("another body with the key: %v", err)
	}
	// A retry may ask for another not-before time (jobq submit --in 1h,
	// again a minute later): the same submission.
	nb := job.TS(time.Now().Add(time.Hour))
	if r, err := h.q.SubmitWith([][]json.RawMessage{{delay}}, SubmitOptions{IdempotencyKey: "k1", Timing: job.Timing{NotBefore: &nb}}); err != nil || r[0].ID != id {
		t.Fatalf("retry with a not-before time: %v %+v, want job %d", err, r, id)
	}
	other, err := h.submitKey("k2", []json.RawMessage{delay})
	if err != nil || other[0].ID == id {
		t.Fatalf("another key: %v %+v", err, other)
	}
	// SubmitManyJobs: one key for the call, every id answered again (a
	// refused job stays refused).
	many, err := h.submitKey("k3", []json.RawMessage{delay}, []json.RawMessage{op(`"not an object"`)}, []json.RawMessage{delay})
	if err != nil || many[0].Err != nil || many[1].Err == nil || many[2].Err != nil {
		t.Fatalf("many: %v %+v", err, many)
	}
	if _, err := h.submitKey("bad key", []json.RawMessage{delay}); err == nil {
		t.Fatal("a key with a space was accepted")
	}
	h.waitFinal(id)
	h.waitFinal(many[2].ID)
	serial := h.q.Serial()

	// A new queue on the same files (a restart, or a new master reading
	// the log's files) knows the keys.
	h.close()
	h = newHarness(t, dir, 4)
	again, err = h.submitKey("k1", []json.RawMessage{delay})
	if err != nil || again[0].ID != id {
		t.Fatalf("retry after a restart: %v %+v, want job %d", err, again, id)
	}
	re, err := h.submitKey("k3", []json.RawMessage{delay}, []json.RawMessage{op(`"not an object"`)}, []json.RawMessage{delay})
	if err != nil || re[0].ID != many[0].ID || re[1].Err == nil || re[2].ID != many[2].ID {
		t.Fatalf("many after a restart: %v %+v, want %+v", err, re, many)
	}
	// Archived, then restarted: still known.
	if ok, err := h.q.ArchiveJobBy(id, author.Node("node1")); !ok || err != nil {
		t.Fatalf("archive: %v %v", ok, err)
	}
	h.close()
	h = newHarness(t, dir, 4)
	again, err = h.submitKey("k1", []json.RawMessage{delay})
	if err != nil || again[0].ID != id {
		t.Fatalf("retry after archive and restart: %v %+v, want job %d", err, again, id)
	}
	if s := h.q.Serial(); s != serial {
		t.Fatalf("retries made jobs: serial %d, was %d", s, serial)
	}
}

// TestIdempotencyWindow: a key counts for the window from the first
// submission's recorded time, by the queue's clock at the retry.
func TestIdempotencyWindow(t *testing.T) {
	var nowNanos atomic.Int64 // the queue reads its clock from other goroutines
	nowNanos.Store(time.Unix(1_800_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, nowNanos.Load()) }
	advance := func(d time.Duration) { nowNanos.Add(int64(d)) }
	h := newHarnessConfig(t, t.TempDir(), Config{MaxRunning: 1, Now: clock, IdempotencyWindow: time.Hour})
	delay := op(`{"OP_ID":"OP_TEST_DELAY","duration":0}`)
	first, _ := h.submitKey("k", []json.RawMessage{delay})
	h.waitFinal(first[0].ID)
	advance(time.Hour - time.Second)
	if r, err := h.submitKey("k", []json.RawMessage{delay}); err != nil || r[0].ID != first[0].ID {
		t.Fatalf("within the window: %v %+v", err, r)
	}
	advance(time.Second)
	r, err := h.submitKey("k", []json.RawMessage{delay})
	if err != nil || r[0].ID == first[0].ID {
		t.Fatalf("after the window: %v %+v, want a new job", err, r)
	}
	h.waitFinal(r[0].ID)
	// The new job's record is the key's now.
	h.q.SetIdempotencyWindow(2 * time.Hour)
	advance(90 * time.Minute)
	if again, err := h.submitKey("k", []json.RawMessage{delay}); err != nil || again[0].ID != r[0].ID {
		t.Fatalf("after the window was lengthened: %v %+v, want %d", err, again, r[0].ID)
	}
	j := h.fileJob(r[0].ID)
	var rec struct {
		Key string   `json:"key"`
		At  [2]int64 `json:"at"`
	}
	if err := json.Unmarshal(j.Extra["idempotency"], &rec); err != nil || rec.Key != "k" || rec.At != [2]int64(job.TS(time.Unix(1_800_000_000, 0).Add(time.Hour))) {
		t.Fatalf("the job file's record %s: %+v %v", j.Extra["idempotency"], rec, err)
	}
}

// unknownLog is a store.Log whose batches' outcome is never confirmed:
// the first is applied all the same (it reached a majority that did not
// answer in time), the later ones are not (the master lost its place).
type unknownLog struct {
	st      *store.Store
	applied int
}

func (l *unknownLog) Commit(changes []store.Change) error {
	if l.applied == 0 {
		l.applied++
		if err := l.st.ApplyBatch(changes, true); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: a majority of the voters did not confirm it (test)", store.ErrOutcomeUnknown)
}

// TestUnknownOutcome: a submission whose log entry may or may not have
// been committed is answered as such, naming the key to retry with; the
// retry on the next master (the files as the log left them) answers the
// job that was committed after all, and makes no second one.
func TestUnknownOutcome(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.SetLog(&unknownLog{st: st})
	q, err := Open(Config{Store: st, MaxRunning: 1, NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	delay := op(`{"OP_ID":"OP_TEST_DELAY","duration":0}`)
	res, err := q.SubmitWith([][]json.RawMessage{{delay}}, SubmitOptions{IdempotencyKey: "once"})
	if err != nil {
		t.Fatal(err)
	}
	if e := res[0].Err; e == nil || !strings.Contains(e.Error(), "outcome of the submission is unknown") ||
		!strings.Contains(e.Error(), `retry with the same idempotency key "once"`) {
		t.Fatalf("answer %v, want the outcome unknown and the key to retry with", e)
	}
	// Without a key, the answer says how to find out.
	res, _ = q.SubmitWith([][]json.RawMessage{{delay}}, SubmitOptions{})
	if e := res[0].Err; e == nil || !strings.Contains(e.Error(), "outcome of the submission is unknown") || !strings.Contains(e.Error(), "--idempotency-key") {
		t.Fatalf("answer without a key %v", e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.Shutdown(ctx)

	// The next master reads the files the log left: the first job is
	// there, with its key.
	h := newHarness(t, dir, 1)
	ids := h.q.Serial()
	again, err := h.submitKey("once", []json.RawMessage{delay})
	if err != nil || again[0].Err != nil || again[0].ID != 1 {
		t.Fatalf("retry on the next master: %v %+v, want job 1", err, again)
	}
	if h.q.Serial() != ids {
		t.Fatalf("the retry made a job: serial %d, was %d", h.q.Serial(), ids)
	}
}
