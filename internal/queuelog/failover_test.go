package queuelog

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/consensus"
)

// The master of three nodes crashes again and again while four clients
// submit to whoever is master: each time another node is master within a
// few seconds (measured from the crash to the first submission it
// acknowledges), every acknowledged job is there with its contents, no id
// is handed out twice, and the crashed node comes back as a follower.
// QUEUELOG_FAILOVERS sets the rounds (5 by default; the run is 20).
// The engine runs with its default timing (a tick of 100ms, elections after
// 1-2s without a leader).
func TestRepeatedFailovers(t *testing.T) {
	rounds := 5
	if s := os.Getenv("QUEUELOG_FAILOVERS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil {
			t.Fatalf("QUEUELOG_FAILOVERS: %v", err)
		}
	}
	cert := newCert(t)
	names := []string{"a", "b", "c"}
	nodes := map[string]*tnode{}
	for _, name := range names {
		nodes[name] = &tnode{name: name, dir: t.TempDir(), timing: consensus.Timing{}}
		t.Cleanup(nodes[name].stop)
	}
	formCluster(t, cert, nodes, names, noFetch)
	var mu sync.Mutex
	var master *tnode                  // the node whose queue takes submissions
	masterReady := make(chan struct{}) // closed when master is set
	acked := map[int64]string{}
	ackedAt := []time.Time{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				m, ready := master, masterReady
				mu.Unlock()
				if m == nil {
					select {
					case <-ready:
					case <-stop:
						return
					}
					continue
				}
				comment := fmt.Sprintf("c%d-%d", c, i)
				res, err := m.q.Submit([][]json.RawMessage{{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"comment":"` + comment + `"}`)}}, false)
				if err != nil || res[0].Err != nil {
					continue
				}
				mu.Lock()
				if prev, dup := acked[res[0].ID]; dup {
					t.Errorf("id %d handed out twice (%s, %s)", res[0].ID, prev, comment)
				}
				acked[res[0].ID] = comment
				ackedAt = append(ackedAt, time.Now())
				mu.Unlock()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	leader := func() *tnode {
		for _, n := range names {
			if nd := nodes[n]; nd.node != nil && nd.node.IsLeader() {
				return nd
			}
		}
		return nil
	}
	var first *tnode
	waitFor(t, "a leader", func() bool { first = leader(); return first != nil })
	first.becomeMaster(t)
	mu.Lock()
	master = first
	close(masterReady)
	mu.Unlock()
	var took []time.Duration
	for round := range rounds {
		// Let some submissions through, then crash the master.
		mu.Lock()
		base := len(acked)
		mu.Unlock()
		waitFor(t, "submissions acknowledged", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= base+20
		})
		mu.Lock()
		old := master
		master = nil
		masterReady = make(chan struct{})
		mu.Unlock()
		killed := time.Now()
		old.crash()
		var next *tnode
		waitFor(t, fmt.Sprintf("round %d: a new master", round), func() bool { next = leader(); return next != nil })
		next.becomeMaster(t)
		mu.Lock()
		master = next
		close(masterReady)
		n := len(ackedAt)
		mu.Unlock()
		waitFor(t, fmt.Sprintf("round %d: a submission acknowledged by %s", round, next.name), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(ackedAt) > n
		})
		mu.Lock()
		took = append(took, ackedAt[n].Sub(killed))
		mu.Unlock()
		old.start(t, cert, false, nil)
	}
	mu.Lock()
	m := master
	snapshot := map[int64]string{}
	for id, c := range acked {
		snapshot[id] = c
	}
	mu.Unlock()
	for id, comment := range snapshot {
		rows, err := m.q.QueryJobs([]int64{id}, []string{"ops"})
		if err != nil || !strings.Contains(string(rows[0]), comment) {
			t.Fatalf("acknowledged job %d (%s) on the last master %s: %s %v", id, comment, m.name, rows[0], err)
		}
	}
	slices.Sort(took)
	t.Logf("%d failovers, crash to first acknowledged submission: p50 %v, max %v (all: %v); %d jobs acknowledged, all there",
		rounds, took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), took, len(snapshot))
}
