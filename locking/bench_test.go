package locking

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkContention: 1,000 owners contend for 10 node locks, each
// repeatedly acquiring one lock at random and releasing everything. One
// op is one Acquire plus ReleaseAll; ops/s is the whole system's
// throughput. "exclusive" takes every lock exclusively, "mixed" one time
// in four exclusively and otherwise shared.
func BenchmarkContention(b *testing.B) {
	for _, bc := range []struct {
		name      string
		exclusive int // one in this many requests is exclusive
	}{{"exclusive", 1}, {"mixed", 4}} {
		b.Run(bc.name, func(b *testing.B) {
			const owners, locks = 1000, 10
			names := make([]string, locks)
			for i := range names {
				names[i] = fmt.Sprintf("node%d", i)
			}
			m := NewManager(Config{Schedule: DefaultSchedule()})
			ctx := context.Background()
			var left atomic.Int64
			left.Store(int64(b.N))
			var failed atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range owners {
				o := Owner(i + 1)
				rng := rand.New(rand.NewPCG(uint64(i), 42))
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						mode := Shared
						if rng.IntN(bc.exclusive) == 0 {
							mode = Exclusive
						}
						r := Request{Level: LevelNode, Names: []string{names[rng.IntN(locks)]}, Mode: mode}
						if err := m.Acquire(ctx, o, 0, r); err != nil {
							failed.Store(err)
							return
						}
						m.ReleaseAll(o)
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(err)
			}
			if got := m.Snapshot(); len(got) != 1 {
				b.Fatalf("locks left: %+v", got)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
		})
	}
}
