package replica

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/store"
)

func w(name, content string) noderpc.Change {
	return noderpc.Change{Op: noderpc.OpWrite, Name: name, Data: []byte(content)}
}
func rn(src, dst string) noderpc.Change {
	return noderpc.Change{Op: noderpc.OpRename, Name: src, Dst: dst}
}
func rm(name string) noderpc.Change { return noderpc.Change{Op: noderpc.OpRemove, Name: name} }

// batch is a normal request with batches first..last.
func batch(master string, epoch, first, last int64, cs ...noderpc.Change) *noderpc.ApplyRequest {
	return &noderpc.ApplyRequest{Master: master, Epoch: epoch, FirstSeq: first, LastSeq: last, Changes: cs}
}

// resync is a whole resync to seq in one request.
func resync(master string, epoch, seq int64, cs ...noderpc.Change) *noderpc.ApplyRequest {
	return &noderpc.ApplyRequest{Master: master, Epoch: epoch, FirstSeq: seq, LastSeq: seq,
		Resync: true, ResyncStart: true, ResyncEnd: true, Changes: cs}
}

// chunk is one chunk of a resync to seq.
func chunk(master string, epoch, seq int64, start, end bool, cs ...noderpc.Change) *noderpc.ApplyRequest {
	return &noderpc.ApplyRequest{Master: master, Epoch: epoch, FirstSeq: seq, LastSeq: seq,
		Resync: true, ResyncStart: start, ResyncEnd: end, Changes: cs}
}

func pos(e, s int64) cluster.Position { return cluster.Position{Epoch: e, Seq: s} }

// mustApply applies req and checks the position it reports and keeps,
// in memory and on disk.
func mustApply(t *testing.T, n *testNode, req *noderpc.ApplyRequest, want cluster.Position) {
	t.Helper()
	rep, err := n.app.Apply(req)
	if err != nil {
		t.Fatalf("Apply(%+v): %v", req, err)
	}
	if rep.Position != want {
		t.Fatalf("Apply answered position %v, want %v", rep.Position, want)
	}
	checkPosition(t, n, want)
}

func checkPosition(t *testing.T, n *testNode, want cluster.Position) {
	t.Helper()
	if p := n.app.Position(); p != want {
		t.Fatalf("Position() = %v, want %v", p, want)
	}
	if p, err := LoadPosition(n.dataDir); err != nil || p != want {
		t.Fatalf("position on disk = %v, %v; want %v", p, err, want)
	}
}

// refused checks that err is a *noderpc.Error with code.
func refused(t *testing.T, err error, code string) *noderpc.Error {
	t.Helper()
	var e *noderpc.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got error %v (%T), want a %s refusal", err, err, code)
	}
	return e
}

func checkFiles(t *testing.T, n *testNode, want map[string]string) {
	t.Helper()
	want = mergeMaps(map[string]string{"version": "1\n"}, want)
	if got := n.files(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("queue of %s:\n got %q\nwant %q", n.name, got, want)
	}
}

func mergeMaps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestApplierAppliesBatchesInOrder(t *testing.T) {
	n := newNode(t, "r", nil)
	checkPosition(t, n, pos(0, 0))
	// A new replica starts with a resync; then batches follow it.
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	mustApply(t, n, batch("m", 1, 1, 1, w("job-1", "one"), w("serial", "1\n")), pos(1, 1))
	checkFiles(t, n, map[string]string{"job-1": "one", "serial": "1\n"})
	// Several batches in one request.
	mustApply(t, n, batch("m", 1, 2, 4, w("job-2", "two"), w("serial", "2\n"), w("job-1", "one, done"),
		rn("job-1", "archive/0/job-1"), w("drain", "")), pos(1, 4))
	checkFiles(t, n, map[string]string{"archive/0/job-1": "one, done", "job-2": "two", "serial": "2\n", "drain": ""})
	mustApply(t, n, batch("m", 1, 5, 5, rm("drain"), rm("job-3")), pos(1, 5))
	checkFiles(t, n, map[string]string{"archive/0/job-1": "one, done", "job-2": "two", "serial": "2\n"})
	// An empty batch moves the position too.
	mustApply(t, n, batch("m", 1, 6, 6), pos(1, 6))

	// The position survives a restart.
	a, err := NewApplier(n.dataDir, n.st, durableWrite, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := a.Position(); p != pos(1, 6) {
		t.Fatalf("reloaded position %v, want 1/6", p)
	}
	if v := a.Voter(); v != (cluster.Voter{Epoch: 1, For: "m"}) {
		t.Fatalf("reloaded voter %+v, want {1 m}", v)
	}
}

func TestApplierRefusesBatchThatDoesNotFollow(t *testing.T) {
	n := newNode(t, "r", nil)
	// Nothing follows the zero position: a first batch needs a resync.
	e := refused(t, applyErr(n, batch("m", 1, 1, 1, w("job-1", "x"))), noderpc.CodeOutOfSync)
	if e.Position == nil || *e.Position != pos(0, 0) {
		t.Fatalf("out_of_sync carries position %v, want 0/0", e.Position)
	}
	mustApply(t, n, resync("m", 1, 3), pos(1, 3))
	mustApply(t, n, batch("m", 1, 4, 5, w("job-1", "one")), pos(1, 5))
	for _, req := range []*noderpc.ApplyRequest{
		batch("m", 1, 7, 7, w("job-2", "gap")),           // a gap
		batch("m", 1, 5, 5, w("job-2", "again")),         // the last one again
		batch("m", 1, 3, 6, w("job-2", "overlap")),       // overlapping
		batch("m", 1, 1, 1, w("job-2", "old")),           // far behind
		batch("m2", 2, 6, 6, w("job-2", "other epoch")),  // a new epoch's master must resync first
		batch("m2", 2, 1, 1, w("job-2", "first of two")), // even from 1
	} {
		e := refused(t, applyErr(n, req), noderpc.CodeOutOfSync)
		if e.Position == nil || *e.Position != pos(1, 5) {
			t.Fatalf("out_of_sync for %d-%d carries position %v, want 1/5", req.FirstSeq, req.LastSeq, e.Position)
		}
		if !strings.Contains(e.Message, "1/5") {
			t.Errorf("message %q does not name the position", e.Message)
		}
	}
	checkPosition(t, n, pos(1, 5))
	checkFiles(t, n, map[string]string{"job-1": "one"})
}

func applyErr(n *testNode, req *noderpc.ApplyRequest) error {
	rep, err := n.app.Apply(req)
	if err == nil {
		return errors.New("accepted, position " + rep.Position.String())
	}
	return err
}

func TestApplierRefusesOlderEpoch(t *testing.T) {
	n := newNode(t, "r", nil)
	mustApply(t, n, resync("m2", 3, 0), pos(3, 0))
	mustApply(t, n, batch("m2", 3, 1, 1, w("job-1", "new")), pos(3, 1))
	for _, req := range []*noderpc.ApplyRequest{
		batch("m", 2, 2, 2, w("job-1", "old master")),
		resync("m", 2, 10, w("job-1", "old master's resync")),
		batch("m2", 1, 2, 2, w("job-1", "much older")),
	} {
		e := refused(t, applyErr(n, req), noderpc.CodeStaleEpoch)
		if e.Epoch != 3 {
			t.Fatalf("stale_epoch carries epoch %d, want 3", e.Epoch)
		}
	}
	checkPosition(t, n, pos(3, 1))
	checkFiles(t, n, map[string]string{"job-1": "new"})
	if v := n.app.Voter(); v != (cluster.Voter{Epoch: 3, For: "m2"}) {
		t.Fatalf("voter %+v, want {3 m2}", v)
	}
}

func TestApplierRefusesOtherMasterOfVotedEpoch(t *testing.T) {
	n := newNode(t, "r", nil)
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	b, err := n.app.Vote("r", &noderpc.VoteRequest{Epoch: 2, Candidate: "c1"})
	if err != nil || !b.Granted {
		t.Fatalf("Vote = %+v, %v", b, err)
	}
	// The master of epoch 1 and another node claiming epoch 2 are refused.
	for _, req := range []*noderpc.ApplyRequest{
		batch("m", 1, 1, 1, w("job-1", "old")),
		resync("c2", 2, 0, w("job-1", "usurper")),
		batch("c2", 2, 1, 1, w("job-1", "usurper")),
	} {
		if e := refused(t, applyErr(n, req), noderpc.CodeStaleEpoch); e.Epoch != 2 {
			t.Fatalf("stale_epoch carries epoch %d, want 2", e.Epoch)
		}
	}
	// The winner is accepted.
	mustApply(t, n, resync("c1", 2, 0, w("job-1", "winner")), pos(2, 0))
	checkFiles(t, n, map[string]string{"job-1": "winner"})
}

func TestApplierLearnsNewerEpoch(t *testing.T) {
	n := newNode(t, "r", nil)
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	if ev := n.epochEvents(); len(ev) != 1 || ev[0].epoch != 1 || ev[0].who != "m" || ev[0].voter != (cluster.Voter{Epoch: 1, For: "m"}) {
		t.Fatalf("onEpoch calls %+v, want one for epoch 1 with the record stored", ev)
	}
	// A master of epoch 5 writes: the record is stored before the answer,
	// and onEpoch is told (with the record already on disk).
	mustApply(t, n, resync("m5", 5, 7, w("job-1", "x")), pos(5, 7))
	if v, err := LoadVoter(n.dataDir); err != nil || v != (cluster.Voter{Epoch: 5, For: "m5"}) {
		t.Fatalf("voter record on disk %+v, %v; want {5 m5}", v, err)
	}
	ev := n.epochEvents()
	if len(ev) != 2 || ev[1] != (epochEvent{epoch: 5, who: "m5", voter: cluster.Voter{Epoch: 5, For: "m5"}}) {
		t.Fatalf("onEpoch calls %+v, want a second one for epoch 5 with the record stored", ev)
	}
	// The same epoch again tells nothing.
	mustApply(t, n, batch("m5", 5, 8, 8), pos(5, 8))
	if ev := n.epochEvents(); len(ev) != 2 {
		t.Fatalf("onEpoch told again: %+v", ev)
	}
	// No vote for epoch 5 or below is given any more.
	for _, e := range []int64{4, 5} {
		if b, err := n.app.Vote("r", &noderpc.VoteRequest{Epoch: e, Candidate: "c"}); err != nil || b.Granted || b.Epoch != 5 {
			t.Fatalf("Vote(%d) = %+v, %v; want a refusal at epoch 5", e, b, err)
		}
	}
	// A refused (out of sync) batch of a newer epoch still teaches it.
	refused(t, applyErr(n, batch("m6", 6, 1, 1, w("job-1", "y"))), noderpc.CodeOutOfSync)
	if v, _ := LoadVoter(n.dataDir); v != (cluster.Voter{Epoch: 6, For: "m6"}) {
		t.Fatalf("voter record on disk %+v, want {6 m6}", v)
	}
	checkPosition(t, n, pos(5, 8))
}

func TestApplierVoterRecordFailure(t *testing.T) {
	n := newNode(t, "r", nil)
	broken := errors.New("disk on fire")
	var fail bool
	var mu sync.Mutex
	a, err := NewApplier(n.dataDir, n.st, func(path string, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return broken
		}
		return durableWrite(path, data)
	}, n.onEpoch)
	if err != nil {
		t.Fatal(err)
	}
	n.app = a
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	mu.Lock()
	fail = true
	mu.Unlock()
	// Nothing that depends on a record that cannot be stored happens.
	if _, err := a.Apply(resync("m2", 2, 0, w("job-1", "x"))); !errors.Is(err, broken) {
		t.Fatalf("Apply with the record unwritable: %v, want %v", err, broken)
	}
	if _, err := a.Vote("r", &noderpc.VoteRequest{Epoch: 3, Candidate: "c"}); !errors.Is(err, broken) {
		t.Fatalf("Vote with the record unwritable: %v, want %v", err, broken)
	}
	if _, err := a.Observe(4, "m4"); !errors.Is(err, broken) {
		t.Fatalf("Observe with the record unwritable: %v, want %v", err, broken)
	}
	if v := a.Voter(); v != (cluster.Voter{Epoch: 1, For: "m"}) {
		t.Fatalf("voter %+v after failures, want {1 m}", v)
	}
	if ev := n.epochEvents(); len(ev) != 1 {
		t.Fatalf("onEpoch told of an epoch not stored: %+v", ev)
	}
	checkPosition(t, n, pos(1, 0))
	checkFiles(t, n, nil)
	// The same epoch needs no record: the master of epoch 1 goes on.
	mustApply(t, n, batch("m", 1, 1, 1, w("job-1", "y")), pos(1, 1))
}

func TestApplierResyncKeepsPositionUntilDone(t *testing.T) {
	// The position never goes down: while a resync's chunks move the
	// files towards the master's state it stays what the replica
	// acknowledged, and only the last chunk raises it (after its files).
	// A replica that claimed less than it acknowledged could make an
	// election lose acknowledged jobs (see the model in package cluster).
	var mu sync.Mutex
	var seen []string // position on disk when each job file was replaced
	var dataDir string
	fsys := &hookFS{onRename: func(oldpath, newpath string) {
		if strings.HasPrefix(filepath.Base(newpath), "job-") {
			p, _ := LoadPosition(dataDir)
			mu.Lock()
			seen = append(seen, filepath.Base(newpath)+"@"+p.String())
			mu.Unlock()
		}
	}}
	n := newNode(t, "r", nil, store.WithFS(fsys))
	dataDir = n.dataDir
	mustApply(t, n, resync("m", 1, 0, w("job-1", "a")), pos(1, 0))
	mustApply(t, n, batch("m", 1, 1, 2, w("job-2", "b")), pos(1, 2))
	mu.Lock()
	seen = nil
	mu.Unlock()

	mustApply(t, n, chunk("m", 1, 9, true, false, w("job-1", "A"), rm("job-2")), pos(1, 2))
	mustApply(t, n, chunk("m", 1, 9, false, false, w("job-3", "C")), pos(1, 2))
	mustApply(t, n, chunk("m", 1, 9, false, true, w("job-4", "D")), pos(1, 9))
	checkFiles(t, n, map[string]string{"job-1": "A", "job-3": "C", "job-4": "D"})
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	if want := []string{"job-1@1/2", "job-3@1/2", "job-4@1/2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("position on disk as the files were replaced: %q, want %q", got, want)
	}
	if p, _ := LoadPosition(dataDir); p != pos(1, 9) {
		t.Fatalf("position on disk after the resync: %s", p)
	}
	// The batches follow the resync.
	mustApply(t, n, batch("m", 1, 10, 10, w("job-5", "E")), pos(1, 10))
}

func TestApplierWritesArchivedFiles(t *testing.T) {
	// A resync sends archived files as writes; their archive/N need not
	// exist on the replica yet.
	n := newNode(t, "r", nil)
	mustApply(t, n, resync("m", 1, 0, w("archive/0/job-3", "three"), w("archive/12/job-120001", "big id")), pos(1, 0))
	mustApply(t, n, batch("m", 1, 1, 1, w("archive/1/job-10000", "ten thousand")), pos(1, 1))
	checkFiles(t, n, map[string]string{
		"archive/0/job-3": "three", "archive/12/job-120001": "big id", "archive/1/job-10000": "ten thousand",
	})
}

func TestApplierRenameSourceGone(t *testing.T) {
	n := newNode(t, "r", map[string]string{"archive/0/job-3": "three", "job-4": "four"})
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	// job-3 was archived already (a resync sent the archived file): the
	// rename is done.
	mustApply(t, n, batch("m", 1, 1, 1, rn("job-3", "archive/0/job-3"), rn("job-4", "archive/0/job-4")), pos(1, 1))
	checkFiles(t, n, map[string]string{"archive/0/job-3": "three", "archive/0/job-4": "four"})
	// A rename whose source and destination are both missing fails.
	if _, err := n.app.Apply(batch("m", 1, 2, 2, rn("job-5", "archive/0/job-5"))); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rename of a missing file: %v, want ErrNotExist", err)
	}
}

func TestApplierFailedBatchLeavesNoPositionAhead(t *testing.T) {
	// A batch whose change fails must not leave a position on disk that
	// claims the batch: a restarted replica would hold less than it says.
	fsys := &hookFS{failWrite: func(path string) error {
		if strings.Contains(path, "/queue/") && strings.HasSuffix(path, ".tmp0") {
			return syscall.ENOSPC // the first write of a batch
		}
		return nil
	}}
	n := newNode(t, "r", nil, store.WithFS(fsys))
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	fsys.set(true)
	_, err := n.app.Apply(batch("m", 1, 1, 1, w("job-1", "big"), w("serial", "1\n")))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Apply with a full disk: %v, want ENOSPC", err)
	}
	fsys.set(false)
	// Nor lower it: the replica still holds everything up to 1/0.
	if p, err := LoadPosition(n.dataDir); err != nil || p != pos(1, 0) {
		t.Fatalf("position on disk %v (%v) after a failed batch 1/1, want 1/0", p, err)
	}
	if p := n.app.Position(); p != pos(1, 0) {
		t.Fatalf("Position() = %v after a failed batch 1/1, want 1/0", p)
	}
	// What a restarted replica believes must not claim the batch either.
	a, err := NewApplier(n.dataDir, n.st, durableWrite, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := a.Position(); p != pos(1, 0) {
		t.Fatalf("reloaded position %v after the failed batch, want 1/0", p)
	}
	// The master resyncs it.
	refused(t, applyErr(n, batch("m", 1, 2, 2, w("job-2", "x"))), noderpc.CodeOutOfSync)
	mustApply(t, n, resync("m", 1, 2, w("job-1", "big"), w("serial", "1\n")), pos(1, 2))
	checkFiles(t, n, map[string]string{"job-1": "big", "serial": "1\n"})
}

func TestApplierRefusesStaleResync(t *testing.T) {
	// A resync that arrives late (a retry, a slow transfer that the master
	// gave up on) must not take the replica back behind batches it has
	// acknowledged (cluster.AcceptResync).
	n := newNode(t, "r", nil)
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	mustApply(t, n, batch("m", 1, 1, 5, w("job-1", "new")), pos(1, 5))
	for _, req := range []*noderpc.ApplyRequest{
		resync("m", 1, 4, w("job-1", "old")),
		chunk("m", 1, 3, true, false, w("job-1", "old")),
		chunk("m", 1, 3, false, true, w("job-1", "old")),
		chunk("m", 1, 3, false, false, w("job-1", "old")),
	} {
		refused(t, applyErr(n, req), noderpc.CodeOutOfSync)
		checkPosition(t, n, pos(1, 5))
		checkFiles(t, n, map[string]string{"job-1": "new"})
	}
	// A resync to the position itself, or beyond, is applied.
	mustApply(t, n, resync("m", 1, 5, w("job-1", "new")), pos(1, 5))
	mustApply(t, n, resync("m", 1, 8, w("job-1", "newer")), pos(1, 8))
	// So is one of a newer epoch, from any sequence.
	mustApply(t, n, resync("m2", 2, 0, w("job-1", "epoch 2")), pos(2, 0))
	checkFiles(t, n, map[string]string{"job-1": "epoch 2"})
}

func TestApplierRefusesChunkOfAnotherResync(t *testing.T) {
	// The chunks that follow a resync's first one belong to it: a late
	// chunk of an earlier resync must not mix its files into a newer one.
	n := newNode(t, "r", nil)
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	mustApply(t, n, batch("m", 1, 1, 5, w("job-1", "v5")), pos(1, 5))
	mustApply(t, n, chunk("m", 1, 7, true, false, w("job-1", "v7")), pos(1, 5))
	// Chunks of an earlier resync (to 3) arrive now, the first one too.
	for _, req := range []*noderpc.ApplyRequest{
		chunk("m", 1, 3, false, false, w("job-1", "v3")),
		chunk("m", 1, 3, false, true, w("job-1", "v3")),
		chunk("m", 1, 3, true, false, w("job-1", "v3")),
		resync("m", 1, 3, w("job-1", "v3")),
	} {
		refused(t, applyErr(n, req), noderpc.CodeOutOfSync)
		checkFiles(t, n, map[string]string{"job-1": "v7"})
		checkPosition(t, n, pos(1, 5))
	}
	mustApply(t, n, chunk("m", 1, 7, false, true, w("job-2", "x")), pos(1, 7))
	// A chunk without its first one (a replica restarted in the middle
	// of a resync) is refused too.
	for _, req := range []*noderpc.ApplyRequest{
		chunk("m", 1, 7, false, true, w("job-1", "late")),
		chunk("m", 1, 9, false, true, w("job-1", "no start")),
	} {
		refused(t, applyErr(n, req), noderpc.CodeOutOfSync)
	}
	checkFiles(t, n, map[string]string{"job-1": "v7", "job-2": "x"})
	checkPosition(t, n, pos(1, 7))
	// The same resync again (a retry) is fine, and so is a newer one.
	mustApply(t, n, chunk("m", 1, 7, true, false, w("job-1", "v7")), pos(1, 7))
	mustApply(t, n, chunk("m", 1, 7, false, true), pos(1, 7))
	mustApply(t, n, chunk("m", 1, 8, true, false, w("job-1", "v8")), pos(1, 7))
	mustApply(t, n, chunk("m", 1, 9, true, true, w("job-1", "v9")), pos(1, 9))
	checkFiles(t, n, map[string]string{"job-1": "v9", "job-2": "x"})
}

func TestApplierVote(t *testing.T) {
	n := newNode(t, "r", nil)
	mustApply(t, n, resync("m", 1, 0), pos(1, 0))
	mustApply(t, n, batch("m", 1, 1, 3), pos(1, 3))
	vote := func(a *Applier, epoch int64, cand string) *cluster.Ballot {
		t.Helper()
		b, err := a.Vote("r", &noderpc.VoteRequest{Epoch: epoch, Candidate: cand})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := vote(n.app, 2, "a"); *b != (cluster.Ballot{Voter: "r", Granted: true, Epoch: 2, Position: pos(1, 3)}) {
		t.Fatalf("first vote in epoch 2: %+v", b)
	}
	if v, _ := LoadVoter(n.dataDir); v != (cluster.Voter{Epoch: 2, For: "a"}) {
		t.Fatalf("voter record on disk after the vote: %+v", v)
	}
	if ev := n.epochEvents(); len(ev) != 2 || ev[1] != (epochEvent{2, "a", cluster.Voter{Epoch: 2, For: "a"}}) {
		t.Fatalf("onEpoch calls %+v, want one for the vote in epoch 2", ev)
	}
	// Granted again to the same candidate (a retried request), to nobody
	// else in the same epoch or below.
	if b := vote(n.app, 2, "a"); !b.Granted || b.Epoch != 2 {
		t.Fatalf("repeated vote: %+v", b)
	}
	for _, c := range []struct {
		epoch int64
		cand  string
	}{{2, "b"}, {1, "b"}, {1, "a"}} {
		if b := vote(n.app, c.epoch, c.cand); b.Granted || b.Epoch != 2 || b.Voter != "r" || b.Position != pos(1, 3) {
			t.Fatalf("vote for %s in epoch %d: %+v, want a refusal at epoch 2", c.cand, c.epoch, b)
		}
	}
	if ev := n.epochEvents(); len(ev) != 2 {
		t.Fatalf("onEpoch told without a new epoch: %+v", ev)
	}

	// The vote survives a restart.
	a, err := NewApplier(n.dataDir, n.st, durableWrite, n.onEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if v := a.Voter(); v != (cluster.Voter{Epoch: 2, For: "a"}) {
		t.Fatalf("reloaded voter %+v", v)
	}
	if b := vote(a, 2, "b"); b.Granted {
		t.Fatalf("after a restart, a second vote in epoch 2 was granted: %+v", b)
	}
	if b := vote(a, 2, "a"); !b.Granted {
		t.Fatalf("after a restart, the repeated vote was refused: %+v", b)
	}
	if b := vote(a, 3, "b"); !b.Granted || b.Epoch != 3 {
		t.Fatalf("vote in epoch 3: %+v", b)
	}
	if v, _ := LoadVoter(n.dataDir); v != (cluster.Voter{Epoch: 3, For: "b"}) {
		t.Fatalf("voter record on disk: %+v", v)
	}
}

func TestApplierObserve(t *testing.T) {
	n := newNode(t, "r", nil)
	if ok, err := n.app.Observe(3, "m3"); !ok || err != nil {
		t.Fatalf("Observe(3) = %v, %v", ok, err)
	}
	if v, _ := LoadVoter(n.dataDir); v != (cluster.Voter{Epoch: 3, For: "m3"}) {
		t.Fatalf("voter record %+v", v)
	}
	for _, e := range []int64{3, 2} {
		if ok, err := n.app.Observe(e, "x"); ok || err != nil {
			t.Fatalf("Observe(%d) = %v, %v; want nothing new", e, ok, err)
		}
	}
	if ev := n.epochEvents(); len(ev) != 1 || ev[0].epoch != 3 || ev[0].who != "m3" {
		t.Fatalf("onEpoch calls %+v", ev)
	}
	if b, _ := n.app.Vote("r", &noderpc.VoteRequest{Epoch: 3, Candidate: "c"}); b.Granted {
		t.Fatalf("vote granted in an epoch that has a master: %+v", b)
	}
}

func TestApplierSetPosition(t *testing.T) {
	n := newNode(t, "r", nil)
	if err := n.app.SetPosition(pos(4, 0)); err != nil {
		t.Fatal(err)
	}
	checkPosition(t, n, pos(4, 0))
	if b, err := os.ReadFile(PositionFile(n.dataDir)); err != nil || string(b) != string(PositionData(pos(4, 0))) {
		t.Fatalf("position file %q, %v", b, err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	for _, file := range []func(string) string{VoterFile, PositionFile} {
		dir := t.TempDir()
		if err := durableWrite(file(dir), []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		if _, err := NewApplier(dir, nil, durableWrite, nil); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("NewApplier over a corrupt %s: %v", file(dir), err)
		}
	}
	dir := t.TempDir()
	if p, err := LoadPosition(dir); err != nil || p != (cluster.Position{}) {
		t.Fatalf("LoadPosition without a file: %v, %v", p, err)
	}
	if v, err := LoadVoter(dir); err != nil || v != (cluster.Voter{}) {
		t.Fatalf("LoadVoter without a file: %v, %v", v, err)
	}
}

// hookFS is the store's file system with hooks: failWrite fails writes
// of the temporary files it names while set, onRename sees renames
// before they happen.
type hookFS struct {
	store.OSFS
	mu        sync.Mutex
	on        bool
	failWrite func(path string) error
	onRename  func(oldpath, newpath string)
}

func (f *hookFS) set(on bool) {
	f.mu.Lock()
	f.on = on
	f.mu.Unlock()
}

func (f *hookFS) WriteFile(path string, data []byte, perm fs.FileMode) error {
	f.mu.Lock()
	on := f.on
	f.mu.Unlock()
	if on && f.failWrite != nil {
		if err := f.failWrite(path); err != nil {
			return err
		}
	}
	return f.OSFS.WriteFile(path, data, perm)
}

func (f *hookFS) Rename(oldpath, newpath string) error {
	if f.onRename != nil {
		f.onRename(oldpath, newpath)
	}
	return f.OSFS.Rename(oldpath, newpath)
}
