package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/noderpc"
)

func threeNodes(t *testing.T, mFiles, bFiles, cFiles map[string]string) (m, b, c *testNode) {
	return newNode(t, "m", mFiles), newNode(t, "b", bFiles), newNode(t, "c", cFiles)
}

func TestReplicatorMajorityOfThree(t *testing.T) {
	m, b, c := threeNodes(t, nil, nil, nil)
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{})
	cl.waitCaughtUp("b", "c")
	if in, q := cl.r.InSync(); in != 3 || q != 2 {
		t.Fatalf("InSync = %d, %d; want 3, 2", in, q)
	}

	// Neither peer has the batch: it is not done.
	gb, gc := newGate(), newGate()
	cl.net.setApply(b, gb.hold(isBatch))
	cl.net.setApply(c, gc.hold(isBatch))
	tk := m.st.Write("job-1", []byte("one"))
	receive(t, "b's batch", gb.reached)
	receive(t, "c's batch", gc.reached)
	select {
	case <-tk.Done():
		t.Fatalf("the write completed before any peer had it: %v", tk.Wait())
	default:
	}
	// One peer is enough.
	gc.release()
	if err := tk.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := c.files(t)["job-1"]; got != "one" {
		t.Fatalf("c holds job-1 = %q when the write completed", got)
	}
	if _, ok := b.files(t)["job-1"]; ok {
		t.Fatal("b holds job-1 though its batch is held")
	}
	// The next write goes on without b too.
	if err := m.write("job-2", "two"); err != nil {
		t.Fatal(err)
	}
	gb.release()
	cl.waitCaughtUp("b", "c")
	sameFiles(t, m, b)
	sameFiles(t, m, c)
	checkOrder(t, cl.net.delivered(b))
	checkOrder(t, cl.net.delivered(c))
	// The master's own position is written with its batches.
	if p, err := LoadPosition(m.dataDir); err != nil || p != pos(1, cl.r.Seq()) {
		t.Fatalf("master's position %v, %v; want 1/%d", p, err, cl.r.Seq())
	}
}

func TestReplicatorNoQuorum(t *testing.T) {
	m, b, c := threeNodes(t, nil, nil, nil)
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{})
	cl.waitCaughtUp("b", "c")

	// One failing peer does not matter.
	cl.net.setApply(b, failWith(errUnreachable))
	if err := m.write("job-1", "one"); err != nil {
		t.Fatal(err)
	}
	// Both do.
	cl.net.setApply(c, failWith(&noderpc.Error{Code: noderpc.CodeInternal, Message: "disk full"}))
	cl.net.setState(b, func(context.Context) error { return errUnreachable })
	cl.net.setState(c, func(context.Context) error { return errUnreachable })
	err := m.write("job-2", "two")
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write with both peers failing: %v, want ErrNoQuorum", err)
	}
	if !strings.Contains(err.Error(), "1 of 2 needed") {
		t.Errorf("error %q does not say how many held it", err)
	}
	// Later writes fail at once: no peer is in sync.
	if err := m.write("job-3", "three"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write with both peers out of sync: %v, want ErrNoQuorum", err)
	}
	cl.ev.waitFor(t, "b and c marked unreachable", func() bool {
		for _, n := range []string{"b", "c"} {
			p, _ := cl.peer(n)
			if p.InSync || p.LastError == "" {
				return false
			}
		}
		return true
	})
	if in, q := cl.r.InSync(); in != 1 || q != 2 {
		t.Fatalf("InSync = %d, %d; want 1, 2", in, q)
	}
	if p, _ := cl.peer("b"); p.UnreachableSince.IsZero() || !strings.Contains(p.LastError, "connection refused") {
		t.Fatalf("b's state %+v, want unreachable", p)
	}

	// They come back and are resynchronised.
	cl.net.setApply(b, nil)
	cl.net.setApply(c, nil)
	cl.net.setState(b, nil)
	cl.net.setState(c, nil)
	cl.waitCaughtUp("b", "c")
	if err := m.write("job-4", "four"); err != nil {
		t.Fatal(err)
	}
	cl.waitCaughtUp("b", "c")
	sameFiles(t, m, b)
	sameFiles(t, m, c)
	for _, n := range []string{"b", "c"} {
		if p, _ := cl.peer(n); p.LastError != "" || !p.UnreachableSince.IsZero() || p.Behind != 0 {
			t.Fatalf("%s's state %+v after it caught up", n, p)
		}
	}
}

func TestReplicatorResyncsDifferentQueues(t *testing.T) {
	master := map[string]string{
		"job-1": "one", "job-2": "two", "serial": "12\n",
		"archive/0/job-3": "three", "archive/0/job-5": "five", "archive/1/job-10001": "ten thousand and one",
		"job-12": "twelve",
	}
	m, b, c := threeNodes(t, master, map[string]string{
		"job-1": "ONE, an older copy", "job-9": "extra", "job-12": "twelve", "drain": "", "serial": "9\n",
		"archive/0/job-3": "three", "archive/0/job-8": "extra, archived", "archive/2/job-20000": "extra too",
	}, nil)
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{})
	cl.waitCaughtUp("b", "c")
	sameFiles(t, m, b)
	sameFiles(t, m, c)
	for _, n := range []*testNode{b, c} {
		checkPosition(t, n, pos(1, 0))
	}
	// Only what differed was sent to b.
	var sent []string
	for _, d := range cl.net.delivered(b) {
		for _, ch := range d.req.Changes {
			sent = append(sent, ch.Op+" "+ch.Name)
		}
	}
	// Writes first, removals last (the replica's files only move towards
	// the master's while it still claims its old position).
	want := []string{"write job-1", "write job-2", "write serial", "write archive/0/job-5", "write archive/1/job-10001",
		"remove drain", "remove job-9", "remove archive/0/job-8", "remove archive/2/job-20000"}
	if strings.Join(sent, ", ") != strings.Join(want, ", ") {
		t.Fatalf("b was sent\n%s\nwant\n%s", strings.Join(sent, ", "), strings.Join(want, ", "))
	}
	// Batches follow.
	if err := m.st.Rename("job-1", "archive/0/job-1").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := m.st.SetDrain(true); err != nil {
		t.Fatal(err)
	}
	cl.waitCaughtUp("b", "c")
	sameFiles(t, m, b)
	sameFiles(t, m, c)
}

func TestReplicatorStartSeq(t *testing.T) {
	m, b, c := threeNodes(t, nil, nil, nil)
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{epoch: 3, startSeq: 41})
	cl.waitCaughtUp("b", "c")
	checkPosition(t, b, pos(3, 41))
	if err := m.write("job-1", "one"); err != nil {
		t.Fatal(err)
	}
	cl.waitCaughtUp("b", "c")
	checkPosition(t, b, pos(3, 42))
	checkPosition(t, c, pos(3, 42))
	if p, _ := LoadPosition(m.dataDir); p != pos(3, 42) {
		t.Fatalf("master's position %v, want 3/42", p)
	}
	// The master's position is not replicated (the fake network would
	// refuse its name).
	for _, d := range cl.net.delivered(b) {
		if d.err != nil {
			t.Fatalf("b refused %v", d)
		}
	}
}

func TestReplicatorOutOfSyncPeer(t *testing.T) {
	m, b, c := threeNodes(t, nil, nil, nil)
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{})
	cl.waitCaughtUp("b", "c")
	if err := m.write("job-1", "v1"); err != nil {
		t.Fatal(err)
	}
	cl.waitCaughtUp("b", "c")

	// b loses its place (as a replica restored from a backup would): the
	// next batch is refused as out of sync, and b is resynchronised.
	if err := b.app.SetPosition(pos(1, 0)); err != nil {
		t.Fatal(err)
	}
	n0 := cl.resyncs(b)
	for i := 2; i <= 4; i++ {
		if err := m.write(fmt.Sprintf("job-%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	cl.waitCaughtUp("b", "c")
	log := cl.net.delivered(b)
	var sawRefusal bool
	for _, d := range log {
		var e *noderpc.Error
		if errors.As(d.err, &e) && e.Code == noderpc.CodeOutOfSync {
			sawRefusal = true
		}
	}
	if !sawRefusal || cl.resyncs(b) != n0+1 {
		t.Fatalf("b was not refused and resynchronised once:\n%s", logString(log))
	}
	checkOrder(t, log)

	// An out_of_sync answer from the network (injected) does the same.
	var once sync.Once
	cl.net.setApply(b, func(ctx context.Context, req *noderpc.ApplyRequest) (bool, error) {
		var err error
		once.Do(func() {
			err = &noderpc.Error{Code: noderpc.CodeOutOfSync, Position: &cluster.Position{}, Message: "lost"}
		})
		return err == nil, err
	})
	for i := 5; i <= 8; i++ {
		if err := m.write(fmt.Sprintf("job-%d", i), "y"); err != nil {
			t.Fatal(err)
		}
	}
	cl.waitCaughtUp("b", "c")
	if cl.resyncs(b) != n0+2 {
		t.Fatalf("b was not resynchronised again:\n%s", logString(cl.net.delivered(b)))
	}
	checkOrder(t, cl.net.delivered(b))
	sameFiles(t, m, b)
	sameFiles(t, m, c)
}

func TestReplicatorLostReply(t *testing.T) {
	// b applies a batch but its answer is lost: the master cannot know, so
	// it resynchronises b, which is then ahead of nothing.
	m, b, c := threeNodes(t, nil, nil, nil)
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{})
	cl.waitCaughtUp("b", "c")
	var once sync.Once
	cl.net.setApply(b, func(ctx context.Context, req *noderpc.ApplyRequest) (bool, error) {
		var err error
		once.Do(func() { err = errors.New("connection reset by peer") })
		return true, err
	})
	if err := m.write("job-1", "one"); err != nil {
		t.Fatal(err)
	}
	if err := m.st.Rename("job-1", "archive/0/job-1").Wait(); err != nil {
		t.Fatal(err)
	}
	cl.waitCaughtUp("b", "c")
	if err := m.write("job-2", "two"); err != nil {
		t.Fatal(err)
	}
	cl.waitCaughtUp("b", "c")
	log := cl.net.delivered(b)
	for _, d := range log {
		if d.err != nil {
			t.Fatalf("b refused a request:\n%s", logString(log))
		}
	}
	checkOrder(t, log)
	sameFiles(t, m, b)
	sameFiles(t, m, c)
}

// writeDuring writes files on the master while a peer is held in a
// resync: the same file again and again, files archived and removed, and
// concurrent writers; every write must complete (the other peer holds
// them).
func writeDuring(t *testing.T, m *testNode) {
	t.Helper()
	for i := 1; i <= 10; i++ {
		if err := m.write("job-1", fmt.Sprintf("version %d", i)); err != nil {
			t.Fatal(err)
		}
		if err := m.write("serial", fmt.Sprintf("%d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.st.Rename("job-2", "archive/0/job-2").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := m.st.Remove("job-3").Wait(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				errs <- m.write(fmt.Sprintf("job-%d", 10+g), fmt.Sprintf("writer %d, version %d", g, i))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestReplicatorNoLostUpdateDuringResync(t *testing.T) {
	start := map[string]string{"job-1": "version 0", "job-2": "two", "job-3": "three", "serial": "3\n"}
	t.Run("held at its state", func(t *testing.T) {
		m, b, c := threeNodes(t, start, nil, map[string]string{"job-1": "old", "job-3": "three"})
		g := newGate()
		cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{state: map[string]stateHook{"c": g.holdState()}})
		receive(t, "c's state call", g.reached)
		cl.waitCaughtUp("b")
		writeDuring(t, m)
		g.release()
		cl.waitCaughtUp("b", "c")
		sameFiles(t, m, b)
		sameFiles(t, m, c)
		checkOrder(t, cl.net.delivered(c))
	})
	t.Run("held at its changes", func(t *testing.T) {
		m, b, c := threeNodes(t, start, nil, map[string]string{"job-1": "old", "job-3": "three"})
		g := newGate()
		cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{apply: map[string]applyHook{"c": g.hold(isResync)}})
		receive(t, "c's resync", g.reached)
		cl.waitCaughtUp("b")
		writeDuring(t, m)
		g.release()
		cl.waitCaughtUp("b", "c")
		sameFiles(t, m, b)
		sameFiles(t, m, c)
		log := cl.net.delivered(c)
		checkOrder(t, log)
		if cl.resyncs(c) != 1 {
			t.Fatalf("c was resynchronised more than once:\n%s", logString(log))
		}
		// The batches begun during the resync followed it.
		if last := log[len(log)-1]; last.req.Resync || last.pos != pos(1, cl.r.Seq()) {
			t.Fatalf("c's last request was %v", last)
		}
	})
	t.Run("resync asked while held", func(t *testing.T) {
		// Resync on a peer already resynchronising (verify-queue --repair
		// while it catches up) sends the files asked for too.
		m, b, c := threeNodes(t, mergeMaps(start, map[string]string{"archive/0/job-7": "seven"}), nil,
			map[string]string{"archive/0/job-7": "SEVEN, damaged"})
		g := newGate()
		cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{state: map[string]stateHook{"c": g.holdState()}})
		receive(t, "c's state call", g.reached)
		cl.waitCaughtUp("b")
		if !cl.r.Resync("c", []string{"archive/0/job-7"}) {
			t.Fatal("Resync(c) = false")
		}
		writeDuring(t, m)
		g.release()
		cl.waitCaughtUp("b", "c")
		sameFiles(t, m, c)
		checkOrder(t, cl.net.delivered(c))
	})
}

func TestReplicatorStaleEpoch(t *testing.T) {
	m, b, c := threeNodes(t, nil, nil, nil)
	// b has voted for another candidate of epoch 2.
	if bl, err := b.app.Vote("b", &noderpc.VoteRequest{Epoch: 2, Candidate: "x"}); err != nil || !bl.Granted {
		t.Fatalf("Vote = %+v, %v", bl, err)
	}
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{})
	cl.ev.waitFor(t, "OnStale", func() bool { return len(cl.staleCalls()) > 0 })
	if got := cl.staleCalls(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("OnStale calls %v, want [2]", got)
	}
	// The master of epoch 1 can no longer complete a write, even with c.
	if err := m.write("job-1", "one"); !errors.Is(err, ErrNoQuorum) || !strings.Contains(err.Error(), "no longer the master") {
		t.Fatalf("write after a stale answer: %v, want ErrNoQuorum (no longer the master)", err)
	}
	// b is asked again and refuses again; OnStale is not called again.
	cl.ev.waitFor(t, "a second refusal from b", func() bool {
		k := 0
		for _, d := range cl.net.delivered(b) {
			var e *noderpc.Error
			if errors.As(d.err, &e) && e.Code == noderpc.CodeStaleEpoch {
				k++
			}
		}
		return k >= 2
	})
	if err := m.write("job-2", "two"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("second write after a stale answer: %v, want ErrNoQuorum", err)
	}
	cl.stop()
	if got := cl.staleCalls(); len(got) != 1 {
		t.Fatalf("OnStale called %d times: %v", len(got), got)
	}
	if _, ok := b.files(t)["job-1"]; ok {
		t.Fatal("b took a write of the stale master")
	}
	if v := b.app.Voter(); v != (cluster.Voter{Epoch: 2, For: "x"}) {
		t.Fatalf("b's voter record %+v", v)
	}
}

func TestReplicatorResyncForcesFiles(t *testing.T) {
	m, b, c := threeNodes(t,
		map[string]string{"archive/0/job-3": "three", "archive/0/job-4": "four", "job-5": "five"},
		map[string]string{"archive/0/job-3": "THREE, damaged", "archive/0/job-4": "four", "job-5": "five"}, nil)
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{})
	cl.waitCaughtUp("b", "c")
	// Archived files compare by name: the damage is not seen.
	if got := b.files(t)["archive/0/job-3"]; got != "THREE, damaged" {
		t.Fatalf("b's archive/0/job-3 = %q after the first resync", got)
	}
	if cl.r.Resync("nobody", nil) {
		t.Fatal("Resync of an unknown peer = true")
	}
	n0 := cl.resyncs(b)
	if !cl.r.Resync("b", []string{"archive/0/job-3", "job-5"}) {
		t.Fatal("Resync(b) = false")
	}
	cl.ev.waitFor(t, "b resynchronised", func() bool { return cl.resyncs(b) > n0 })
	cl.waitCaughtUp("b", "c")
	sameFiles(t, m, b)
	// Only the files asked for were sent.
	log := cl.net.delivered(b)
	var sent []string
	for _, d := range log[len(log)-1].req.Changes {
		sent = append(sent, d.Name)
	}
	if strings.Join(sent, " ") != "archive/0/job-3 job-5" {
		t.Fatalf("the forced resync sent %q", sent)
	}
	// The next resync does not send them again.
	n1 := cl.resyncs(b)
	cl.r.Resync("b", nil)
	cl.ev.waitFor(t, "b resynchronised", func() bool { return cl.resyncs(b) > n1 })
	if log := cl.net.delivered(b); len(log[len(log)-1].req.Changes) != 0 {
		t.Fatalf("a resync without differences sent %v", log[len(log)-1])
	}
	cl.waitCaughtUp("b", "c")
}

func TestReplicatorResyncForceSurvivesFailure(t *testing.T) {
	// Files asked for are sent by a later resync when the one that should
	// have sent them fails, at any of its steps.
	for _, step := range []string{"state", "first chunk", "last chunk"} {
		t.Run(step, func(t *testing.T) {
			// One file a chunk: the file missing on b goes first, the
			// file asked for after it.
			smallChunks(t)
			m, b, c := threeNodes(t, map[string]string{"archive/0/job-1": "one", "archive/0/job-3": "three"},
				map[string]string{"archive/0/job-3": "THREE, damaged"}, nil)
			cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{})
			cl.waitCaughtUp("b", "c")
			// b loses a file behind the master's back.
			if err := os.Remove(filepath.Join(b.qdir, "archive/0/job-1")); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			fired := make(chan struct{})
			fail := func() (err error) {
				once.Do(func() { err = errUnreachable; close(fired) })
				return err
			}
			switch step {
			case "state":
				cl.net.setState(b, func(context.Context) error { return fail() })
			default:
				cl.net.setApply(b, func(ctx context.Context, req *noderpc.ApplyRequest) (bool, error) {
					first, last := req.ResyncStart && !req.ResyncEnd, !req.ResyncStart && req.ResyncEnd
					if step == "first chunk" && first || step == "last chunk" && last {
						if err := fail(); err != nil {
							return false, err
						}
					}
					return true, nil
				})
			}
			n0 := cl.resyncs(b)
			cl.r.Resync("b", []string{"archive/0/job-3"})
			receive(t, "the failure", fired)
			cl.ev.waitFor(t, "b resynchronised", func() bool { return cl.resyncs(b) > n0 })
			cl.waitCaughtUp("b", "c")
			sameFiles(t, m, b)
		})
	}
}

// smallChunks makes every resync request carry one change, until the
// test ends (call it before the replicator starts).
func smallChunks(t *testing.T) {
	files := resyncChunkFiles
	resyncChunkFiles = 1
	t.Cleanup(func() { resyncChunkFiles = files })
}

func TestReplicatorSetConfig(t *testing.T) {
	m, b, c := threeNodes(t, map[string]string{"job-1": "one"}, nil, nil)
	cl := newCluster(t, m, []*testNode{b}, clusterOpts{})
	cl.net.add(c.addr, c)
	cl.waitCaughtUp("b")
	if in, q := cl.r.InSync(); in != 2 || q != 2 {
		t.Fatalf("InSync = %d, %d; want 2, 2", in, q)
	}

	// c joins: it is resynchronised and gets every batch, but while it
	// is catching up its answers do not count: b is still needed.
	cfg, err := cl.cfg.AddNode("c", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	cl.r.SetConfig(cfg)
	cl.waitCaughtUp("b", "c")
	sameFiles(t, m, c)
	if in, q := cl.r.InSync(); in != 2 || q != 2 {
		t.Fatalf("InSync = %d, %d with c catching up; want 2, 2", in, q)
	}
	cl.net.setApply(b, failWith(errUnreachable))
	if err := m.write("job-9", "c alone"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write held by c catching up only: %v, want ErrNoQuorum", err)
	}
	cl.net.setApply(b, nil)
	cl.waitCaughtUp("b", "c")

	// Caught up, c counts.
	if cfg, err = cfg.Synced("c"); err != nil {
		t.Fatal(err)
	}
	cl.r.SetConfig(cfg)
	if in, q := cl.r.InSync(); in != 3 || q != 2 {
		t.Fatalf("InSync = %d, %d; want 3, 2", in, q)
	}
	// With b's batches held, c is the majority.
	g := newGate()
	cl.net.setApply(b, g.hold(isBatch))
	if err := m.write("job-2", "two"); err != nil {
		t.Fatal(err)
	}
	receive(t, "b's batch", g.reached)

	// b leaves with a call in flight: its sender stops.
	cfg, err = cfg.RemoveNode("b")
	if err != nil {
		t.Fatal(err)
	}
	cl.r.SetConfig(cfg)
	if ps := cl.r.Peers(); len(ps) != 1 || ps[0].Name != "c" {
		t.Fatalf("Peers = %+v, want c only", ps)
	}
	if in, q := cl.r.InSync(); in != 2 || q != 2 {
		t.Fatalf("InSync = %d, %d; want 2, 2", in, q)
	}
	nb := len(cl.net.delivered(b))
	if err := m.write("job-3", "three"); err != nil {
		t.Fatal(err)
	}
	cl.waitCaughtUp("c")
	sameFiles(t, m, c)
	if got := len(cl.net.delivered(b)); got != nb {
		t.Fatalf("b got %d requests after it left", got-nb)
	}
	// Two voters: c is needed.
	cl.net.setApply(c, failWith(errUnreachable))
	if err := m.write("job-4", "four"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write without c: %v, want ErrNoQuorum", err)
	}
	cl.net.setApply(c, nil)

	// c moves to another address: its sender starts again there.
	cl.net.add("c2:1811", c)
	cl.net.add(c.addr, nil)
	cfg = cfg.Clone()
	for i := range cfg.Nodes {
		if cfg.Nodes[i].Name == "c" {
			cfg.Nodes[i].Address = "c2:1811"
		}
	}
	cl.r.SetConfig(cfg)
	cl.ev.waitFor(t, "c at its new address", func() bool {
		p, ok := cl.peer("c")
		return ok && p.Address == "c2:1811" && p.InSync && p.Position == pos(1, cl.r.Seq())
	})
	if err := m.write("job-5", "five"); err != nil {
		t.Fatal(err)
	}
	cl.waitCaughtUp("c")
	sameFiles(t, m, c)

	// c leaves too: the master alone is the majority.
	cfg, err = cfg.RemoveNode("c")
	if err != nil {
		t.Fatal(err)
	}
	cl.r.SetConfig(cfg)
	if err := m.write("job-6", "six"); err != nil {
		t.Fatal(err)
	}
	if in, q := cl.r.InSync(); in != 1 || q != 1 || len(cl.r.Peers()) != 0 {
		t.Fatalf("InSync = %d, %d, peers %+v; want 1, 1, none", in, q, cl.r.Peers())
	}
}

func TestReplicatorStop(t *testing.T) {
	m, b, c := threeNodes(t, nil, nil, nil)
	d, e := newNode(t, "d", nil), newNode(t, "e", nil)
	ignore := goleak.IgnoreCurrent()
	g := newGate()
	cl := newCluster(t, m, []*testNode{b, c, d, e}, clusterOpts{
		apply: map[string]applyHook{"b": g.hold(isBatch), "c": failWith(errUnreachable)},
	})
	cl.waitCaughtUp("b", "d", "e")
	// b has a call in flight, c waits to retry, d and e are idle.
	if err := m.write("job-1", "one"); err != nil {
		t.Fatal(err)
	}
	receive(t, "b's batch", g.reached)
	cl.ev.waitFor(t, "c failed", func() bool { p, _ := cl.peer("c"); return p.LastError != "" })
	cl.r.Stop()
	// Stop ended every sender: only the stores' committers are left.
	if err := goleak.Find(ignore); err != nil {
		t.Fatal(err)
	}
	// Writes after Stop fail.
	if err := m.write("job-2", "two"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write after Stop: %v, want ErrNoQuorum", err)
	}
	// SetConfig after Stop starts nothing.
	cl.r.SetConfig(cl.cfg)
	if err := goleak.Find(ignore); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.files(t)["job-1"]; ok {
		t.Fatal("b applied the batch held when Stop was called")
	}
	cl.r.Stop() // twice is fine
}

func TestReplicatorArchivedDuringResync(t *testing.T) {
	// A job archived between the resync's comparison and its reading of
	// the file: the peer gets the archived file, and the rename that
	// follows finds it done. No request fails.
	smallChunks(t) // job-1 in the first chunk, job-2 in the next
	m, b, c := threeNodes(t, map[string]string{"job-1": "one", "job-2": "two"}, nil, nil)
	var once sync.Once
	var renameErr error
	cl := newCluster(t, m, []*testNode{b, c}, clusterOpts{noStart: true})
	cl.net.setApply(c, func(ctx context.Context, req *noderpc.ApplyRequest) (bool, error) {
		if req.ResyncStart && !req.ResyncEnd {
			// Archive job-2 now, after the comparison (c is collecting,
			// b acknowledges).
			once.Do(func() { renameErr = m.st.Rename("job-2", "archive/0/job-2").Wait() })
		}
		return true, nil
	})
	g := newGate()
	// b must be in sync before c's resync starts, so that the rename can
	// complete with c held.
	cl.net.setState(c, g.holdState())
	cl.start(0)
	receive(t, "c's state call", g.reached)
	cl.waitCaughtUp("b")
	g.release()
	cl.waitCaughtUp("b", "c")
	if renameErr != nil {
		t.Fatal(renameErr)
	}
	if _, ok := m.files(t)["archive/0/job-2"]; !ok {
		t.Fatal("job-2 was not archived during the resync")
	}
	sameFiles(t, m, c)
	log := cl.net.delivered(c)
	for _, d := range log {
		if d.err != nil {
			t.Fatalf("c refused a request:\n%s", logString(log))
		}
	}
	if cl.resyncs(c) != 1 {
		t.Fatalf("c was resynchronised %d times:\n%s", cl.resyncs(c), logString(log))
	}
}
