package consensus

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bootstrap starts name as a new one-voter cluster and waits until it leads.
func (c *testCluster) bootstrap(name string) {
	c.t.Helper()
	c.open(name, true)
	c.waitLeader(name)
}

// join adds name (started, without state) as a learner through the
// leader among, waits until it has applied everything the leader had
// committed, then promotes it: the policy the master follows.
func (c *testCluster) join(name string, voter bool, among ...string) {
	c.t.Helper()
	n := c.start(name)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var target uint64
	c.waitUntil(name+" added as a learner", func() bool {
		l := c.leader(among...)
		if l == "" {
			return false
		}
		if err := c.node(l).AddLearner(ctx, name, n.addr); err != nil {
			c.t.Logf("add %s: %v", name, err)
			return false
		}
		target = c.node(l).CommitIndex()
		return true
	})
	if !voter {
		return
	}
	c.waitUntil(name+" caught up", func() bool {
		l := c.leader(among...)
		return n.node.AppliedIndex() >= target && (l == "" || c.node(l).Match(name) >= target)
	})
	c.waitUntil(name+" promoted", func() bool {
		l := c.leader(among...)
		if l == "" {
			return false
		}
		if err := c.node(l).Promote(ctx, name); err != nil {
			c.t.Logf("promote %s: %v", name, err)
			return false
		}
		return true
	})
}

func TestBootstrapAndSubmit(t *testing.T) {
	c := newTestCluster(t)
	c.bootstrap("a")
	for want := 1; want <= 3; want++ {
		id, err := c.submit("a", fmt.Sprint("job", want))
		if err != nil || id != want {
			t.Fatalf("submit %d: id %d, %v", want, id, err)
		}
	}
	// A restart replays the log: the same jobs, the next id is 4. Bootstrap
	// is ignored for a node with state.
	c.kill("a")
	if !HasState(c.nodes["a"].dir) {
		t.Fatal("HasState is false after a run")
	}
	c.open("a", true)
	c.waitLeader("a")
	c.waitUntil("the log replayed", func() bool { _, ok := c.nodes["a"].fsm.job(3); return ok })
	if id, err := c.submit("a", "job4"); err != nil || id != 4 {
		t.Fatalf("submit after restart: id %d, %v", id, err)
	}
}

func TestNotLeaderRefusesWithoutProposing(t *testing.T) {
	c := newTestCluster(t)
	c.bootstrap("a")
	c.join("b", true, "a")
	_, err := c.submit("b", "x")
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("submit on a follower: %v, want ErrNotLeader", err)
	}
	if id, _ := c.submit("a", "y"); id != 1 {
		t.Fatalf("the follower's refused submission took an id: next id is %d", id)
	}
	if l := c.node("b").Leader(); l != "a" {
		t.Fatalf("b knows leader %q, want a", l)
	}
}

// The five-node scenario, with the library: A, B, C voters; C
// stops; D and E join and become voters (5 voters); B stops; job 3 is
// acknowledged by A, D and E; A dies; C and B start. They must not elect
// a leader alone (2 of 5), and once D is back the leader has job 3 and the
// next job is 4.
func TestFiveNodeMembershipChangeLosesNothing(t *testing.T) {
	c := newTestCluster(t)
	all := []string{"a", "b", "c", "d", "e"}
	c.bootstrap("a")
	c.join("b", true, "a")
	c.join("c", true, "a", "b")
	if id := c.submitOnLeader("job1", all...); id != 1 {
		t.Fatalf("job1 got id %d", id)
	}
	c.waitUntil("c holds job 1", func() bool { _, ok := c.nodes["c"].fsm.job(1); return ok })
	c.kill("c")
	c.join("d", true, all...)
	c.join("e", true, all...)
	leader := c.waitLeader(all...)
	if got := members(t, c.node(leader)); got != "a:voter b:voter c:voter d:voter e:voter" {
		t.Fatalf("members: %s", got)
	}
	if id := c.submitOnLeader("job2", all...); id != 2 {
		t.Fatalf("job2 got id %d", id)
	}
	c.kill("b")
	id3 := c.submitOnLeader("job3", "a", "d", "e")
	if id3 != 3 {
		t.Fatalf("job3 got id %d", id3)
	}
	// Acknowledged: a majority of the five (A, D, E) holds it. Kill
	// whoever leads among them and take D and E down too.
	c.kill("a")
	c.kill("d")
	c.kill("e")
	c.start("c")
	c.start("b")
	// C and B stand for election again and again and never win: wait
	// until each has asked the other three times.
	c.waitUntil("c and b each asked the other for its vote three times", func() bool {
		return c.node("c").VoteRequests() >= 3 && c.node("b").VoteRequests() >= 3
	})
	for _, name := range []string{"b", "c"} {
		if c.node(name).IsLeader() {
			t.Fatalf("%s was elected with two voters of five", name)
		}
		if _, err := c.submit(name, "intruder"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("submit on %s without a majority: %v", name, err)
		}
	}
	// D comes back: C, B, D are a majority, and only D's log is complete
	// enough to win.
	c.start("d")
	leader = c.waitLeader("b", "c", "d")
	if leader != "d" {
		t.Logf("leader is %s (its log must hold job 3)", leader)
	}
	c.waitUntil("the leader applied job 3", func() bool {
		p, ok := c.nodes[leader].fsm.job(3)
		return ok && p == "job3"
	})
	if id := c.submitOnLeader("job4", "b", "c", "d"); id != 4 {
		t.Fatalf("the next job got id %d, want 4 (ids are never reused); %s", id, c.describe())
	}
	for _, name := range []string{"b", "c", "d"} {
		c.waitUntil(name+" holds jobs 1-4", func() bool {
			return c.nodes[name].fsm.dump() == "1=job1 2=job2 3=job3 4=job4 "
		})
	}
}

// A leader cut off from the majority stops being the leader within its
// lease (check-quorum); the majority elects another; after healing every
// node holds the same entries.
func TestPartitionedLeaderStepsDown(t *testing.T) {
	c := newTestCluster(t)
	all := []string{"a", "b", "c"}
	c.bootstrap("a")
	c.join("b", true, "a")
	c.join("c", true, "a", "b")
	old := c.waitLeader(all...)
	c.submitOnLeader("before", all...)
	c.partition(old)
	c.waitUntil("the cut-off leader steps down", func() bool { return !c.node(old).IsLeader() })
	if _, err := c.submit(old, "lost"); err == nil {
		t.Fatal("the cut-off leader acknowledged a submission")
	}
	var rest []string
	for _, n := range all {
		if n != old {
			rest = append(rest, n)
		}
	}
	newLeader := c.waitLeader(rest...)
	if id := c.submitOnLeader("during", rest...); id != 2 {
		t.Fatalf("submission during the partition got id %d, want 2", id)
	}
	c.heal()
	c.waitUntil("every node holds the same jobs", func() bool {
		want := "1=before 2=during "
		for _, n := range all {
			if c.nodes[n].fsm.dump() != want {
				return false
			}
		}
		return true
	})
	t.Logf("old leader %s, new leader %s", old, newLeader)
}

// A learner counts in no majority: a voter alone with a learner that is
// down still commits, and a learner is never elected.
func TestLearnerCountsInNoMajority(t *testing.T) {
	c := newTestCluster(t)
	c.bootstrap("a")
	c.join("b", false, "a")
	c.waitUntil("b is a learner", func() bool { return members(t, c.node("a")) == "a:voter b:learner" })
	c.kill("b")
	if id, err := c.submit("a", "x"); err != nil || id != 1 {
		t.Fatalf("submit with the learner down: %d %v", id, err)
	}
	c.start("b")
	c.waitUntil("b has job 1", func() bool { _, ok := c.nodes["b"].fsm.job(1); return ok })
	c.kill("a")
	// Without the voter, the learner waits; it never stands for election
	// (the voter hears no vote request from it).
	c.start("a")
	c.waitLeader("a")
	if got := c.node("a").VoteRequests(); got != 0 {
		t.Fatalf("the learner asked for votes %d times", got)
	}
	if c.node("b").IsLeader() {
		t.Fatal("the learner leads")
	}
}

// A node that was down while the others took snapshots and dropped the
// entries it lacks catches up from a snapshot, then the log.
func TestLaggingNodeCatchesUpFromSnapshot(t *testing.T) {
	c := newTestCluster(t)
	c.timing.SnapshotEntries = 16
	c.timing.TrailingEntries = 4
	all := []string{"a", "b", "c"}
	c.bootstrap("a")
	c.join("b", true, "a")
	c.join("c", true, "a", "b")
	c.kill("c")
	for i := 1; i <= 60; i++ {
		c.submitOnLeader(fmt.Sprint("j", i), "a", "b")
	}
	l := c.waitLeader("a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, name := range []string{"a", "b"} {
		if err := c.node(name).Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.start("c")
	c.waitUntil("c holds all 60 jobs", func() bool { _, ok := c.nodes["c"].fsm.job(60); return ok })
	c.submitOnLeader("j61", all...)
	c.waitUntil("c holds job 61", func() bool { _, ok := c.nodes["c"].fsm.job(61); return ok })
	if a, cc := c.nodes[l].fsm.dump(), c.nodes["c"].fsm.dump(); a != cc {
		t.Fatalf("c differs from the leader:\n%s\n%s", cc, a)
	}
}

// A graceful handover: the leader hands its place to a named voter.
func TestTransferLeadership(t *testing.T) {
	c := newTestCluster(t)
	all := []string{"a", "b", "c"}
	c.bootstrap("a")
	c.join("b", true, "a")
	c.join("c", true, "a", "b")
	l := c.waitLeader(all...)
	target := "c"
	if l == "c" {
		target = "b"
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.node(l).TransferLeadership(ctx, target); err != nil {
		t.Fatal(err)
	}
	c.waitUntil(target+" leads", func() bool { return c.leader(all...) == target })
	before := c.node(target).LeaderChanges()
	if id := c.submitOnLeader("after", all...); id != 1 {
		t.Fatalf("id %d", id)
	}
	if before == 0 {
		t.Fatal("no leader change was counted")
	}
}

// A follower asks for the leadership itself: the leader hands it over;
// a follower cannot hand it to a third node.
func TestFollowerTakesLeadership(t *testing.T) {
	c := newTestCluster(t)
	all := []string{"a", "b", "c"}
	c.bootstrap("a")
	c.join("b", true, "a")
	c.join("c", true, "a", "b")
	l := c.waitLeader(all...)
	target, other := "c", "b"
	if l == "c" {
		target, other = "b", "a"
	}
	c.waitUntil(target+" knows it votes", func() bool {
		m, ok := c.node(target).member(target)
		return ok && m.Voter
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.node(target).TransferLeadership(ctx, other); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a follower handed the leadership to a third node: %v", err)
	}
	if err := c.node(target).TransferLeadership(ctx, target); err != nil {
		t.Fatal(err)
	}
	c.waitUntil(target+" leads", func() bool { return c.leader(all...) == target })
}

// SnapshotAll drops the whole log: a node added afterwards gets the
// snapshot, not the entries.
func TestSnapshotAllDropsTheLog(t *testing.T) {
	c := newTestCluster(t)
	c.bootstrap("a")
	c.waitLeader("a")
	for i := range 3 {
		c.submitOnLeader(fmt.Sprint("before-", i), "a")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.node("a").SnapshotAll(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := c.node("a").st.mem.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if applied := c.node("a").AppliedIndex(); first != applied+1 {
		t.Fatalf("first index %d after SnapshotAll at applied %d: the log was kept", first, applied)
	}
}

// Removing a voter shrinks the majority; a removed node's requests are not
// needed for commits.
func TestRemoveVoter(t *testing.T) {
	c := newTestCluster(t)
	c.bootstrap("a")
	c.join("b", true, "a")
	c.join("c", true, "a", "b")
	l := c.waitLeader("a", "b", "c")
	victim := "c"
	if l == "c" {
		victim = "b"
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.node(l).Remove(ctx, victim); err != nil {
		t.Fatal(err)
	}
	c.kill(victim)
	var other string
	for _, n := range []string{"a", "b", "c"} {
		if n != l && n != victim {
			other = n
		}
	}
	// Two voters left; both needed. With the other one up, commits go on.
	if id := c.submitOnLeader("x", l, other); id != 1 {
		t.Fatalf("id %d", id)
	}
	if got := members(t, c.node(l)); got != fmt.Sprintf("%s:voter %s:voter", min(l, other), max(l, other)) {
		t.Fatalf("members after removal: %s", got)
	}
}
