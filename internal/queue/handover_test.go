package queue

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
)

// TestHoldStarts: a queue that holds its starts lets the running job
// finish, takes and stores submissions but starts none of them, and
// returns when nothing runs; a context that ends first is reported.
func TestHoldStarts(t *testing.T) {
	h := newHarness(t, t.TempDir(), 2)
	running := h.submit(gate("r"))
	started, release := h.g.get("r")
	await(t, started, "the first job to start")

	held := make(chan error, 1)
	go func() { held <- h.q.HoldStarts(context.Background()) }()
	// Another slot is free, but no job may start once starts are held.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.q.HoldStarts(ended); err == nil {
		t.Fatal("HoldStarts with an ended context and a job running: no error")
	}
	queued := h.submit(gate("q"))
	if st := h.fileJob(queued).CalcStatus(); st != job.StatusQueued {
		t.Fatalf("job submitted while starts are held is %s on disk, want queued", st)
	}
	select {
	case err := <-held:
		t.Fatalf("HoldStarts returned (%v) while a job runs", err)
	default:
	}
	close(release)
	await(t, held, "HoldStarts to return once the running job ended")
	if st := h.waitFinal(running); st != job.StatusSuccess {
		t.Fatalf("running job ended %s", st)
	}
	if st := h.fields(queued, "status")[0]; st != "queued" {
		t.Fatalf("held job is %v, want queued", st)
	}
	if n := h.q.Running(); n != 0 {
		t.Fatalf("%d jobs run after HoldStarts returned", n)
	}
}

// gateLog is a store.Log that holds each batch until released, then
// applies it; arrived (buffered, one) tells a batch came.
type gateLog struct {
	st      *store.Store
	arrived chan struct{}
	release chan struct{}
}

func (l *gateLog) Commit(changes []store.Change) error {
	select {
	case l.arrived <- struct{}{}:
	default:
	}
	<-l.release
	return l.st.ApplyBatch(changes, true)
}

// TestHoldSubmissions: a queue that holds its submissions refuses new
// ones as a stopping queue does (nothing stored: the next master takes
// them) and returns only once the submission already taken in is stored
// and answered; a context that ends first is reported; resumed, it takes
// submissions again.
func TestHoldSubmissions(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &gateLog{st: st, arrived: make(chan struct{}, 1), release: make(chan struct{})}
	st.SetLog(l)
	q, err := Open(Config{Store: st, MaxRunning: 1, NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(l.release) }) }
	defer func() {
		release()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		q.Shutdown(ctx)
	}()
	delay := op(`{"OP_ID":"OP_TEST_DELAY","duration":0}`)
	type answer struct {
		res []SubmitResult
		err error
	}
	first := make(chan answer, 1)
	go func() {
		res, err := q.SubmitWith([][]json.RawMessage{{delay}}, SubmitOptions{})
		first <- answer{res, err}
	}()
	await(t, l.arrived, "the first submission to reach the log")

	held := make(chan error, 1)
	go func() { held <- q.HoldSubmissions(context.Background()) }()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.HoldSubmissions(ended); err == nil {
		t.Fatal("HoldSubmissions with an ended context and a submission in flight: no error")
	}
	if _, err := q.SubmitWith([][]json.RawMessage{{delay}}, SubmitOptions{}); err == nil || !strings.HasSuffix(err.Error(), MsgShuttingDown) {
		t.Fatalf("a submission while they are held: %v, want %q", err, MsgShuttingDown)
	}
	select {
	case err := <-held:
		t.Fatalf("HoldSubmissions returned (%v) with a submission in flight", err)
	default:
	}
	release() // from now on every batch passes
	var a answer
	select {
	case a = <-first:
	case <-time.After(waitTimeout):
		t.Fatalf("waited %s for the submission in flight to be answered", waitTimeout)
	}
	if a.err != nil || len(a.res) != 1 || a.res[0].Err != nil || a.res[0].ID != 1 {
		t.Fatalf("the submission in flight: %+v %v", a.res, a.err)
	}
	await(t, held, "HoldSubmissions to return once the submission in flight was answered")
	q.ResumeSubmissions()
	res, err := q.SubmitWith([][]json.RawMessage{{delay}}, SubmitOptions{})
	if err != nil || res[0].Err != nil || res[0].ID != 2 {
		t.Fatalf("a submission once resumed: %+v %v", res, err)
	}
}
