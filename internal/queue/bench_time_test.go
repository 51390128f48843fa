package queue

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/schedule"
	"github.com/jobq-dev/jobq/internal/store"
)

// Jobs in time's cost on the engine's hot path: the same end-to-end
// submissions as BenchmarkSubmitToSuccess, on an empty queue and on one
// that holds 10,000 delayed jobs (due in a day) and runs 1,000 schedules
// (yearly: none fires during the run).
//
//	go test -run '^$' -bench 'SubmitToSuccessTimed' -benchtime 20000x ./internal/queue/
func BenchmarkSubmitToSuccessTimed(b *testing.B) {
	for _, loaded := range []bool{false, true} {
		b.Run(fmt.Sprintf("delayed-and-schedules=%v", loaded), func(b *testing.B) {
			st, err := store.Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			q, err := Open(Config{Store: st, NodeName: "node1"})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				q.Shutdown(ctx)
			}()
			op := []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_JQUEUE"}`)}
			if loaded {
				nb := job.TS(time.Now().Add(24 * time.Hour))
				jobs := make([][]json.RawMessage, 1000)
				for i := range jobs {
					jobs[i] = op
				}
				for range 10 {
					if _, err := q.SubmitTimed(jobs, false, job.Timing{NotBefore: &nb}); err != nil {
						b.Fatal(err)
					}
				}
				var specs []schedule.Spec
				for i := range 1000 {
					specs = append(specs, schedule.Spec{Name: fmt.Sprintf("s%d", i), Cron: "0 0 1 1 *", Ops: op,
						Concurrency: schedule.Allow, CatchUp: schedule.CatchSkip, Created: schedule.Seconds(time.Now())})
				}
				q.SetSchedules(specs, nil)
				if n := q.Delayed(); n != 10000 {
					b.Fatalf("%d delayed jobs, want 10000", n)
				}
			}
			b.ResetTimer()
			benchSubmit(b, q, op)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// benchSubmit submits b.N jobs of ops from 4 clients in batches of 10 and
// waits for each to succeed.
func benchSubmit(b *testing.B, q *Queue, ops []json.RawMessage) {
	const clients, per = 4, 10
	var next int64
	var mu sync.Mutex
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
					jobs[i] = ops
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
}

// BenchmarkDelayedStartLatency: b.N jobs submitted together for +3 s on
// the real clock; reports how late after their not-before time they
// started (the median and the worst), as the job files record it.
//
//	go test -run '^$' -bench DelayedStartLatency -benchtime 100x ./internal/queue/
func BenchmarkDelayedStartLatency(b *testing.B) {
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	q, err := Open(Config{Store: st, NodeName: "node1", MaxRunning: 20})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q.Shutdown(ctx)
	}()
	op := []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_JQUEUE"}`)}
	nb := job.TS(time.Now().Add(3 * time.Second))
	jobs := make([][]json.RawMessage, b.N)
	for i := range jobs {
		jobs[i] = op
	}
	res, err := q.SubmitTimed(jobs, false, job.Timing{NotBefore: &nb})
	if err != nil {
		b.Fatal(err)
	}
	var late []time.Duration
	for _, r := range res {
		waitDone(b, q, r.ID)
		rows, err := q.QueryJobs([]int64{r.ID}, []string{"start_ts"})
		if err != nil {
			b.Fatal(err)
		}
		var v [][2]int64
		if err := json.Unmarshal(rows[0], &v); err != nil {
			b.Fatal(err)
		}
		late = append(late, job.Timestamp(v[0]).Time().Sub(nb.Time()))
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	if late[0] < 0 {
		b.Fatalf("a job started %s before its not-before time", -late[0])
	}
	b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "ms-late-median")
	b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "ms-late-max")
}

// BenchmarkHoldDelayed is the engine's cost per delayed job: the Due
// decision and its place in the held jobs' heap (then taking it out when
// due), beside 0 or 10,000 other held jobs.
//
//	go test -run '^$' -bench HoldDelayed ./internal/queue/
func BenchmarkHoldDelayed(b *testing.B) {
	for _, others := range []int{0, 10000} {
		b.Run(fmt.Sprintf("held=%d", others), func(b *testing.B) {
			st, err := store.Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			q, err := Open(Config{Store: st, NodeName: "node1"})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Shutdown(context.Background())
			op := []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_JQUEUE"}`)}
			mk := func(id int64, at time.Time) *entry {
				j, err := job.New(id, op, job.TS(time.Now()), 0)
				if err != nil {
					b.Fatal(err)
				}
				nb := job.TS(at)
				j.SetTiming(job.Timing{NotBefore: &nb})
				return q.newEntry(j, nil)
			}
			base := time.Now().Add(time.Hour)
			q.mu.Lock()
			for i := range others {
				q.holdLocked(mk(int64(i+1), base.Add(time.Duration(i)*time.Millisecond)))
			}
			q.mu.Unlock()
			es := make([]*entry, b.N)
			for i := range es {
				es[i] = mk(int64(others+i+1), base.Add(time.Duration(i%1000)*time.Microsecond))
			}
			b.ResetTimer()
			q.mu.Lock()
			for _, e := range es {
				q.holdLocked(e)
			}
			for range es {
				heap.Pop(&q.delay.items)
			}
			q.mu.Unlock()
		})
	}
}
