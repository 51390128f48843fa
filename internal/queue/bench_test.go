package queue

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/filter"
	"github.com/jobq-dev/jobq/internal/store"
)

// BenchmarkSubmitToSuccess measures the engine end to end on a real queue
// directory: jobs of one OP_TEST_JQUEUE opcode (no sleep) submitted by 4
// clients in batches of 10 and waited for, per job.
func BenchmarkSubmitToSuccess(b *testing.B) { benchSubmitToSuccess(b, nil) }

// benchSubmitToSuccess is BenchmarkSubmitToSuccess with job filter rules.
func benchSubmitToSuccess(b *testing.B, filters *filter.Set) {
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	q, err := Open(Config{Store: st, NodeName: "node1", Filters: filters})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q.Shutdown(ctx)
	}()
	batch := []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_JQUEUE"}`)}
	const clients, per = 4, 10
	var next int64
	var mu sync.Mutex
	b.ResetTimer()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= int64(b.N) {
					mu.Unlock()
					return
				}
				k := min(per, b.N-int(next))
				next += int64(k)
				mu.Unlock()
				jobs := make([][]json.RawMessage, k)
				for i := range jobs {
					jobs[i] = batch
				}
				res, err := q.Submit(jobs, false)
				if err != nil {
					b.Error(err)
					return
				}
				for _, r := range res {
					waitDone(b, q, r.ID)
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

func waitDone(b *testing.B, q *Queue, id int64) {
	var prev json.RawMessage
	for {
		r, err := q.WaitForJobChange(context.Background(), id, []string{"status"}, prev, -1, time.Minute)
		if err != nil || r == nil {
			b.Errorf("wait %d: %v", id, err)
			return
		}
		if string(r.Values) == `["success"]` {
			return
		}
		prev = r.Values
	}
}
