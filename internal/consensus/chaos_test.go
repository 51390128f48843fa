package consensus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// Random kills, restarts and partitions of five voters while submissions
// go to whoever leads: every acknowledged submission keeps its id, ids are
// never handed out twice, and a submission whose outcome is unknown is
// there once or not at all. CONSENSUS_CHAOS_ROUNDS sets the rounds (15 by
// default), CONSENSUS_CHAOS_SEED the seed (printed, so a failure can be
// replayed).
func TestChaosLosesNothingAcknowledged(t *testing.T) {
	rounds := 15
	if s := os.Getenv("CONSENSUS_CHAOS_ROUNDS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil {
			t.Fatalf("CONSENSUS_CHAOS_ROUNDS: %v", err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CONSENSUS_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CONSENSUS_CHAOS_SEED: %v", err)
		}
	}
	t.Logf("seed %d (CONSENSUS_CHAOS_SEED=%d replays it), %d rounds", seed, seed, rounds)
	rng := rand.New(rand.NewPCG(seed, seed))

	c := newTestCluster(t)
	// Snapshots and compaction often, so that restarted nodes also catch
	// up from snapshots.
	c.timing.SnapshotEntries = 500
	c.timing.TrailingEntries = 100
	all := []string{"a", "b", "c", "d", "e"}
	c.bootstrap("a")
	for _, n := range all[1:] {
		c.join(n, true, all...)
	}
	acked := map[string]int{} // payload -> id
	var unknown []string
	seq := 0
	submit := func() {
		l := c.leader(all...)
		if l == "" {
			return
		}
		seq++
		payload := fmt.Sprint("p", seq)
		n := c.node(l)
		if n == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res, err := n.Apply(ctx, []byte(`{"op":"submit","payload":"`+payload+`"}`))
		switch {
		case err == nil:
			acked[payload] = res.(int)
		case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrClosed):
			unknown = append(unknown, payload)
		}
	}
	down := map[string]bool{}
	for round := range rounds {
		action := rng.IntN(4)
		if action == 1 && len(down) == 0 {
			action = 0
		}
		switch action {
		case 0: // kill one that runs (the leader half of the time)
			var up []string
			for _, n := range all {
				if !down[n] {
					up = append(up, n)
				}
			}
			victim := up[rng.IntN(len(up))]
			if l := c.leader(all...); l != "" && rng.IntN(2) == 0 {
				victim = l
			}
			if len(up) > 1 {
				t.Logf("round %d: kill %s", round, victim)
				c.kill(victim)
				down[victim] = true
			}
		case 1: // start one that is down
			for _, n := range all {
				if down[n] {
					t.Logf("round %d: start %s", round, n)
					c.start(n)
					delete(down, n)
					break
				}
			}
		case 2: // cut one or two nodes off
			k := 1 + rng.IntN(2)
			perm := rng.Perm(len(all))
			var group []string
			for _, i := range perm[:k] {
				group = append(group, all[i])
			}
			t.Logf("round %d: heal, then cut %v off", round, group)
			c.heal()
			c.partition(group...)
		case 3:
			t.Logf("round %d: heal", round)
			c.heal()
		}
		// Let the cluster settle if it can (a majority up and connected
		// elects within a few election timeouts), and submit meanwhile.
		deadline := time.Now().Add(4 * testTiming.ElectionTimeout())
		for time.Now().Before(deadline) {
			submit()
			if c.leader(all...) == "" {
				select {
				case <-c.changes():
				case <-time.After(testTiming.Tick):
				}
			}
		}
	}
	// Everything back: all nodes up and connected converge, and a last
	// submission commits everything before it.
	c.heal()
	for _, n := range all {
		if down[n] {
			c.start(n)
		}
	}
	last := c.submitOnLeader("final", all...)
	acked["final"] = last
	var want string
	c.waitUntil("every node holds the same jobs, up to the last one", func() bool {
		want = c.nodes["a"].fsm.dump()
		for _, n := range all {
			if _, ok := c.nodes[n].fsm.job(last); !ok || c.nodes[n].fsm.dump() != want {
				return false
			}
		}
		return true
	})
	q := c.nodes["a"].fsm
	q.mu.Lock()
	defer q.mu.Unlock()
	seen := map[string]int{}
	for id := 1; id <= q.last; id++ {
		p, ok := q.jobs[id]
		if !ok {
			t.Errorf("id %d was skipped (last id %d)", id, q.last)
			continue
		}
		if prev, dup := seen[p]; dup {
			t.Errorf("payload %s has ids %d and %d", p, prev, id)
		}
		seen[p] = id
	}
	for p, id := range acked {
		if got, ok := seen[p]; !ok || got != id {
			t.Errorf("acknowledged %s with id %d; the cluster has it as id %d (0: lost)", p, id, got)
		}
	}
	t.Logf("%d acknowledged, %d with an unknown outcome (%d of those committed), %d ids", len(acked), len(unknown), countIn(unknown, seen), q.last)
	if len(acked) < rounds {
		t.Errorf("only %d submissions acknowledged in %d rounds: the test exercised too little", len(acked), rounds)
	}
}

func countIn(ps []string, seen map[string]int) int {
	n := 0
	for _, p := range ps {
		if _, ok := seen[p]; ok {
			n++
		}
	}
	return n
}
