package consensus

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkApply measures acknowledged proposals per second with 16
// concurrent proposers on one node and on three (each node's log fsynced
// in etcd's WAL; the engine batches what arrives together). The 200-byte
// entries are about a small job's submission.
func BenchmarkApply(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			c := newTestCluster(b)
			names := []string{"a", "b", "c"}[:nodes]
			c.bootstrap("a")
			for _, n := range names[1:] {
				c.join(n, true, names...)
			}
			l := c.waitLeader(names...)
			node := c.node(l)
			payload := []byte(`{"op":"submit","payload":"` + fmt.Sprintf("%0180d", 0) + `"}`)
			var failed atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					if _, err := node.Apply(ctx, payload); err != nil {
						failed.Add(1)
					}
					cancel()
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "acks/s")
			if failed.Load() > 0 {
				b.Fatalf("%d proposals failed", failed.Load())
			}
		})
	}
}
