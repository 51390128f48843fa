package cluster

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// TestKillMasterRepeatedly: three nodes, four clients submitting without
// pause to whichever node is master; the master is killed with SIGKILL,
// JOBQ_FAILOVER_ROUNDS times (default 3; 20 on demand), and restarted
// after the next master acknowledged a job. Each round a new master must
// be elected and acknowledge within 30 seconds (the time from the kill to
// the first acknowledgement is reported, p50 and max); in the end every
// acknowledged job is there, once, with its own id, and has ended: those
// running at a kill in error ("Unclean master shutdown"), the others in
// success.
func TestKillMasterRepeatedly(t *testing.T) {
	rounds := 3
	if s := os.Getenv("JOBQ_FAILOVER_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("JOBQ_FAILOVER_ROUNDS=%q is not a positive number", s)
		}
		rounds = n
	}
	nodes := startCluster(t, 3)
	waitVoters(t, nodes[0], "node1", "node2", "node3")

	var mu sync.Mutex
	acked := map[int64]time.Time{} // id -> when acknowledged
	ackedCh := make(chan time.Time, 1024)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var c *client.Client
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					mu.Lock()
					n := nodes[i%len(nodes)]
					mu.Unlock()
					cc, err := client.Dial(context.Background(), n.dir+"/socket/jobq-query")
					if err != nil {
						continue
					}
					c = cc
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				id, err := c.SubmitJob(ctx, delay(time.Millisecond))
				cancel()
				if err != nil {
					c.Close()
					c = nil
					time.Sleep(5 * time.Millisecond) // pace the retries on the next node
					continue
				}
				now := time.Now()
				mu.Lock()
				if _, dup := acked[id]; dup {
					t.Errorf("id %d acknowledged twice", id)
				}
				acked[id] = now
				mu.Unlock()
				select {
				case ackedCh <- now:
				default:
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	var took []time.Duration
	for round := 1; round <= rounds; round++ {
		m := waitMaster(t, nodes...)
		// Let the clients find it.
		deadline := time.After(30 * time.Second)
		for seen := false; !seen; {
			select {
			case at := <-ackedCh:
				seen = time.Since(at) < time.Second
			case <-deadline:
				t.Fatalf("round %d: no acknowledgement from %s within 30s", round, m.name)
			}
		}
		m.d.Kill()
		killed := time.Now()
		deadline = time.After(30 * time.Second)
		for done := false; !done; {
			select {
			case at := <-ackedCh:
				if at.After(killed) {
					took = append(took, at.Sub(killed))
					done = true
				}
			case <-deadline:
				t.Fatalf("round %d: no master acknowledged a job within 30s of %s's kill", round, m.name)
			}
		}
		m.start(t)
	}
	close(stop)
	wg.Wait()

	m := waitMaster(t, nodes...)
	c := m.client(t)
	ctx := context.Background()
	mu.Lock()
	ids := make([]int64, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	mu.Unlock()
	slices.Sort(ids)
	var failed int
	for _, id := range ids {
		st, err := c.WatchJob(ctx, id, func(client.LogEntry) error { return nil })
		switch {
		case err != nil:
			t.Errorf("acknowledged job %d: %v", id, err)
		case st == client.StatusError:
			j, err := c.Job(ctx, id)
			if err != nil || len(j.OpResult) == 0 || !strings.Contains(string(j.OpResult[0]), "Unclean master shutdown") {
				t.Errorf("job %d ended in error: %+v %v", id, j, err)
			}
			failed++
		case st != client.StatusSuccess:
			t.Errorf("job %d ended %s", id, st)
		}
	}
	slices.Sort(took)
	t.Logf("kill -9 of the master, %d rounds: kill to first acknowledgement p50 %v, max %v; %d jobs acknowledged, none lost, %d ended in error (running at a kill)",
		rounds, took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(ids), failed)
}
