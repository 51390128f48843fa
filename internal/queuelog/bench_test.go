package queuelog

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/store"
)

// BenchmarkQueue runs b.N jobs of one OP_TEST_DELAY of 1ms each, submitted
// by 4 clients, end to end (submitted until all succeeded), on the real
// queue: with the store writing itself (today's jobqd, two syncfs per
// batch), and through the log on one and on three in-process nodes (one
// fsync of the log per batch on each node, the files unsynced until a
// snapshot).
func BenchmarkQueue(b *testing.B) {
	for _, mode := range []string{"store", "log-1", "log-3"} {
		b.Run(mode, func(b *testing.B) {
			var q *queue.Queue
			var cluster []*tnode
			switch mode {
			case "store":
				st, err := store.Open(filepath.Join(b.TempDir(), "queue"), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				if q, err = queue.Open(queue.Config{Store: st, KeepStore: true, NodeName: "a"}); err != nil {
					b.Fatal(err)
				}
			default:
				names := []string{"a", "b", "c"}[:map[string]int{"log-1": 1, "log-3": 3}[mode]]
				q, cluster = benchCluster(b, names)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				q.Shutdown(ctx)
				cancel()
			}()
			op := json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
			// Leader changes seen during the run (a spurious election on
			// a loaded machine fails every running job): reported.
			changes := func() (n uint64) {
				for _, c := range cluster {
					n = max(n, c.node.LeaderChanges())
				}
				return n
			}
			before := changes()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := (b.N + 3) / 4
			for c := range 4 {
				wg.Go(func() {
					for i := c * per; i < min(b.N, (c+1)*per); i++ {
						if res, err := q.Submit([][]json.RawMessage{{op}}, false); err != nil || res[0].Err != nil {
							b.Errorf("submit: %v %v", err, res[0].Err)
							return
						}
					}
				})
			}
			wg.Wait()
			deadline := time.Now().Add(5 * time.Minute)
			for q.Counts()[job.StatusSuccess] < b.N {
				if time.Now().After(deadline) {
					b.Fatalf("only %d of %d jobs succeeded", q.Counts()[job.StatusSuccess], b.N)
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
			if cluster != nil {
				b.ReportMetric(float64(changes()-before), "leader-changes")
			}
		})
	}
}

func benchCluster(b *testing.B, names []string) (*queue.Queue, []*tnode) {
	cert := newCert(b)
	nodes := map[string]*tnode{}
	for _, name := range names {
		nodes[name] = &tnode{name: name, dir: b.TempDir(), timing: consensus.Timing{}}
		b.Cleanup(nodes[name].stop)
	}
	formCluster(b, cert, nodes, names, noFetch)
	a := nodes["a"]
	a.becomeMaster(b)
	if a.q == nil {
		b.Fatal(fmt.Errorf("no queue"))
	}
	var all []*tnode
	for _, name := range names {
		all = append(all, nodes[name])
	}
	return a.q, all
}
