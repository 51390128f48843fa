package queue

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
)

// BenchmarkOpen1000: opening a queue directory holding 1,000 finished
// jobs, as a new master does after a failover (its part "load" in
// TestKillMasterRepeatedly's breakdown).
func BenchmarkOpen1000(b *testing.B) {
	dir := b.TempDir()
	st, err := store.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	q, err := Open(Config{Store: st, NodeName: "node1"})
	if err != nil {
		b.Fatal(err)
	}
	jobs := make([][]json.RawMessage, 1000)
	for i := range jobs {
		jobs[i] = []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_JQUEUE"}`)}
	}
	res, err := q.Submit(jobs, false)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range res {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	for q.Counts()[job.StatusSuccess] < len(jobs) {
		if ctx.Err() != nil {
			b.Fatalf("the jobs did not succeed within a minute: %v", q.Counts())
		}
		time.Sleep(time.Millisecond) // bounded by ctx above
	}
	q.Shutdown(ctx)
	for b.Loop() {
		st, err := store.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		q, err := Open(Config{Store: st, NodeName: "node1"})
		if err != nil {
			b.Fatal(err)
		}
		q.Shutdown(ctx)
	}
}
