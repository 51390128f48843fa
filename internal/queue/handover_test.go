package queue

import (
	"context"
	"testing"

	"github.com/jobq-dev/jobq/internal/job"
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
