package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/jobq-dev/jobq/client"
)

// TestKillMasterRepeatedly: three nodes, four clients submitting without
// pause, each on one node's socket at a time (the node hands the call to
// the master), and one client listing the job ids on the nodes in turn;
// the master is killed with SIGKILL, JOBQ_FAILOVER_ROUNDS times (default
// 3; 20 on demand), and restarted after the next master acknowledged a
// job. Each round a new master must be elected and acknowledge within 30
// seconds (the time from the kill to the first acknowledgement is
// reported, p50 and max, with its parts from the new master's log: the
// election, opening the queue, the first acknowledgement); in the end
// every acknowledged job is there, once, with its own id, and has ended:
// those running at a kill in error ("Unclean master shutdown"), the
// others in success; and the whole history of submissions and listings
// is linearizable (porcupine, the model of TestLinearizability).
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

	h := &linHistory{start: time.Now()}
	var mu sync.Mutex
	acked := map[int64]time.Time{} // id -> when acknowledged
	ackedCh := make(chan time.Time, 1024)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for cid := range 4 {
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
					// On a failure this client goes to the next node
					// rather than wait for its node to come back.
					cc.SetRetryWindow(0)
					c = cc
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				call := h.now()
				id, err := c.SubmitJob(ctx, delay(time.Millisecond))
				ret := h.now()
				cancel()
				if err != nil {
					h.add(porcupine.Operation{ClientId: cid, Input: linInput{opSubmit}, Call: call, Output: linOutput{Err: err.Error(), Refused: refused(err)}, Return: ret})
				} else {
					h.add(linSub(cid, call, ret, id))
				}
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
	// The reader: the job ids, on each node in turn.
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond): // pace the reads
			}
			mu.Lock()
			n := nodes[i%len(nodes)]
			mu.Unlock()
			c, err := client.Dial(context.Background(), n.dir+"/socket/jobq-query")
			if err != nil {
				continue
			}
			call := h.now()
			ids, err := readIDs(t, c)
			ret := h.now()
			c.Close()
			if err != nil {
				h.readFailed(4, call, ret, err)
				continue
			}
			h.add(linRead(4, call, ret, ids...))
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	var took, notice, elect, open, first, barrier, office, load []time.Duration
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
					// Its parts, from the survivors' logs.
					var logs []string
					for _, n := range nodes {
						if n != m {
							logs = append(logs, n.d.Logs())
						}
					}
					// A node that stands for election first says it
					// knows no leader.
					noticed := logTime(logs, `msg="consensus leader changed" leader="" `, killed)
					elected := logTime(logs, `msg="consensus leader changed" leader=node`, noticed)
					opened := logTime(logs, `msg="running as master"`, elected)
					if at.Sub(killed) > 4*time.Second {
						since := func(x time.Time) string {
							if x.IsZero() {
								return "not seen"
							}
							return x.Sub(killed).Round(time.Millisecond).String()
						}
						t.Logf("round %d took %v: from the kill of %s, an election timeout at %s, a leader at %s, its queue open at %s", round,
							at.Sub(killed).Round(time.Millisecond), m.name, since(noticed), since(elected), since(opened))
					}
					if !noticed.IsZero() && !elected.IsZero() && !opened.IsZero() && !opened.After(at) && !elected.Before(noticed) {
						notice = append(notice, noticed.Sub(killed))
						elect = append(elect, elected.Sub(noticed))
						open = append(open, opened.Sub(elected))
						first = append(first, at.Sub(opened))
						// The opening's parts, from the new master's lines.
						if d, ok := logDuration(logs, `msg="running as master" term=`, "barrier", elected); ok {
							barrier = append(barrier, d)
						}
						if d, ok := logDuration(logs, `msg="running as master" epoch=`, "office", elected); ok {
							office = append(office, d)
						}
						if d, ok := logDuration(logs, `msg="running as master" epoch=`, "load", elected); ok {
							load = append(load, d)
						}
					}
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
	// A last read, after everything.
	call := h.now()
	final, err := readIDs(t, c)
	if err != nil {
		t.Fatalf("the last read: %v", err)
	}
	h.add(linRead(4, call, h.now(), final...))
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
	t.Logf("kill -9 of the master, %d rounds: kill to first acknowledgement p50 %v, max %v (from the survivors' logs: kill to an election timeout %s; the election %s; the new leader opening its queue %s (of which the barrier %s, agreeing the configuration naming it %s, loading the queue %s); then the first acknowledgement %s); %d jobs acknowledged, none lost, %d ended in error (running at a kill)",
		rounds, pct(took, 50), pct(took, 100), spread(notice), spread(elect), spread(open), spread(barrier), spread(office), spread(load), spread(first), len(ids), failed)

	// The whole history, checked as TestLinearizability checks its own.
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	failedOps := slices.Clone(h.failed)
	failedReads := h.reads
	h.mu.Unlock()
	begun := time.Now()
	res, info := porcupine.CheckOperationsVerbose(jobsModel, ops, 5*time.Minute)
	if res != porcupine.Ok {
		dir, err := os.MkdirTemp("", "jobq-killmaster-")
		if err == nil {
			h.mu.Lock()
			info.AddAnnotations(h.notes)
			h.mu.Unlock()
			err = porcupine.VisualizePath(jobsModel, info, filepath.Join(dir, "history.html"))
		}
		t.Fatalf("the history of %d operations is not found linearizable (%s) within 5 minutes; visualization in %s (%v)", len(ops), res, dir, err)
	}
	if err := checkPhantoms(append(slices.Clone(ops), failedOps...)); err != nil {
		t.Fatal(err)
	}
	reads := 0
	for _, op := range ops {
		if op.Input.(linInput).Kind == opRead {
			reads++
		}
	}
	t.Logf("linearizable: %d operations (%d acknowledged submits, %d reads) checked in %v; not checked: %d failed submits, %d failed reads; %d jobs at the end",
		len(ops), len(ops)-reads, reads, time.Since(begun).Round(time.Millisecond), len(failedOps), failedReads, len(final))
}

// logTime is the earliest time after since of a log line with msg in
// logs (jobqd's text log: time=RFC3339), zero if none.
func logTime(logs []string, msg string, since time.Time) time.Time {
	var first time.Time
	for _, l := range logs {
		for line := range strings.Lines(l) {
			if !strings.Contains(line, msg) || !strings.HasPrefix(line, "time=") {
				continue
			}
			f, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			at, err := time.Parse(time.RFC3339Nano, f)
			if err != nil || !at.After(since) {
				continue
			}
			if first.IsZero() || at.Before(first) {
				first = at
			}
		}
	}
	return first
}

// logDuration is the duration attribute key (key=1.5ms) of the earliest
// line with msg in logs after since.
func logDuration(logs []string, msg, key string, since time.Time) (time.Duration, bool) {
	var first time.Time
	var d time.Duration
	found := false
	for _, l := range logs {
		for line := range strings.Lines(l) {
			if !strings.Contains(line, msg) || !strings.HasPrefix(line, "time=") {
				continue
			}
			f, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			at, err := time.Parse(time.RFC3339Nano, f)
			if err != nil || !at.After(since) || (found && !at.Before(first)) {
				continue
			}
			for field := range strings.FieldsSeq(line) {
				if v, ok := strings.CutPrefix(field, key+"="); ok {
					if x, err := time.ParseDuration(v); err == nil {
						first, d, found = at, x, true
					}
				}
			}
		}
	}
	return d, found
}

// pct is the p-th percentile of d (sorted in place), rounded to ms.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)].Round(time.Millisecond)
}

// spread is "p50 X, max Y" of d.
func spread(d []time.Duration) string {
	return fmt.Sprintf("p50 %v, max %v over %d rounds", pct(d, 50), pct(d, 100), len(d))
}
