package cluster

// Linearizability of the replicated queue under injected faults (SPEC
// §8, "How to convince yourself"): concurrent clients submit jobs and
// list the job ids on whichever node is the master while nodes are
// killed with SIGKILL, the master fails over and nodes come back; the
// recorded history is checked with porcupine against a model of the
// queue as a set of job ids.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/testbin"
	"github.com/jobq-dev/jobq/luxi"
)

// The model. The queue, as clients see it through SubmitJob and
// QueryJobs(nil, "id"), is a set of job ids that only grows (nothing is
// archived here).
//
//   - submit → id (acknowledged): the id is new (it is in no state
//     before) and is in every state after. An acknowledged submit that
//     returned before a read began is therefore linearized before it.
//   - submit → failed, without an id: refused (jobqd answered an error:
//     not the master, no majority stored it, ...; or the call never
//     reached it) or unknown (the connection broke after the request went
//     out: the node died). A refused job does not exist; an unknown one
//     may, under an id nobody knows. That possible effect, an id nobody
//     was acknowledged that appears in reads, is allowed by the read
//     step, so the step is a no-op that is always legal.
//   - read → S: legal iff every id of the state is in S (acknowledged
//     jobs are not lost; ids seen by earlier reads do not vanish). The
//     new state is S: an id that S adds came from a concurrent
//     acknowledged submit (linearized before) or from an unknown-outcome
//     one, and from now on it must stay.
//
// The model is sound: if the queue really is a growing set of ids
// changed atomically by submits, take the real linearization; the
// model's state stays a subset of the real set at every step (a read
// makes it equal), so every read is legal, and an acknowledged id is
// never in the state before its submit (ids are handed out once). It
// still catches an acknowledged job missing from a later read, a job
// that vanishes between two reads, one id acknowledged twice, and reads
// that disagree in order (two reads that each see an id the other
// lacks, one after the other).
//
// Ids that appear without an acknowledged submit are limited apart, in
// checkPhantoms: each needs an unknown-outcome submit of its own (not a
// refused one), called before the read that first showed it returned.
//
// Since a failed submit is a no-op in the model, a history with or
// without it is linearizable alike; the live test leaves them out of
// what porcupine checks (each one, concurrent with everything after its
// call, would double the search of a history that is not linearizable)
// and shows them as annotations.

type linKind int

const (
	opSubmit linKind = iota
	opRead
)

// linInput is an operation's input: which call.
type linInput struct{ Kind linKind }

// linOutput is an operation's outcome: the id a submit got, or why it
// failed and whether the job may exist all the same (not Refused); the
// ids a read saw, sorted.
type linOutput struct {
	ID      int64
	Err     string // the submit failed
	Refused bool   // and no job was made
	IDs     []int64
}

// idSet is the model's state, sorted; never changed in place.
type idSet []int64

func subsetOf(a, b []int64) bool {
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j == len(b) || b[j] != x {
			return false
		}
	}
	return true
}

func jobsStep(state, input, output any) (bool, any) {
	s := state.(idSet)
	out := output.(linOutput)
	switch input.(linInput).Kind {
	case opSubmit:
		if out.Err != "" {
			return true, s
		}
		i, found := slices.BinarySearch(s, out.ID)
		if found {
			return false, s
		}
		next := make(idSet, 0, len(s)+1)
		next = append(append(append(next, s[:i]...), out.ID), s[i:]...)
		return true, next
	case opRead:
		if !subsetOf(s, out.IDs) {
			return false, s
		}
		return true, idSet(out.IDs)
	}
	return false, s
}

// ranges writes sorted ids as "1-57, 59".
func ranges(ids []int64) string {
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if j == i {
			fmt.Fprintf(&b, "%d", ids[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", ids[i], ids[j])
		}
		i = j + 1
	}
	return "{" + b.String() + "}"
}

var jobsModel = porcupine.Model{
	Init: func() any { return idSet(nil) },
	Step: jobsStep,
	Equal: func(a, b any) bool {
		return slices.Equal(a.(idSet), b.(idSet))
	},
	Hash: func(s any) uint64 {
		h := fnv.New64a()
		var buf [8]byte
		for _, id := range s.(idSet) {
			for i := range buf {
				buf[i] = byte(id >> (8 * i))
			}
			h.Write(buf[:])
		}
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		out := output.(linOutput)
		if input.(linInput).Kind == opSubmit {
			if out.Err != "" {
				return "submit → " + outcome(out) + " (" + out.Err + ")"
			}
			return fmt.Sprintf("submit → job %d", out.ID)
		}
		return fmt.Sprintf("read → %d jobs %s", len(out.IDs), ranges(out.IDs))
	},
	DescribeState: func(s any) string {
		return fmt.Sprintf("%d jobs %s", len(s.(idSet)), ranges(s.(idSet)))
	},
}

func outcome(out linOutput) string {
	if out.Refused {
		return "refused"
	}
	return "unknown"
}

// checkPhantoms checks that the ids that reads saw without an
// acknowledged submit are no more than the submits with an unknown
// outcome could have made (refused ones make none): matched in order, the
// k-th such id to appear (by the return of the read that first showed it)
// needs the k-th unknown-outcome submit, called before.
func checkPhantoms(ops []porcupine.Operation) error {
	acked := map[int64]bool{}
	var calls []int64
	for _, op := range ops {
		out := op.Output.(linOutput)
		switch {
		case op.Input.(linInput).Kind != opSubmit:
		case out.Err == "":
			acked[out.ID] = true
		case !out.Refused:
			calls = append(calls, op.Call)
		}
	}
	slices.Sort(calls)
	first := map[int64]int64{}
	for _, op := range ops {
		if op.Input.(linInput).Kind != opRead {
			continue
		}
		for _, id := range op.Output.(linOutput).IDs {
			if t, ok := first[id]; !acked[id] && (!ok || op.Return < t) {
				first[id] = op.Return
			}
		}
	}
	type seen struct{ id, at int64 }
	var phantoms []seen
	for id, at := range first {
		phantoms = append(phantoms, seen{id, at})
	}
	slices.SortFunc(phantoms, func(a, b seen) int { return cmp.Compare(a.at, b.at) })
	for k, p := range phantoms {
		if k >= len(calls) || calls[k] > p.at {
			return fmt.Errorf("job %d appeared (in a read that returned at %v) without an acknowledged submit, and only %d of the submits with an unknown outcome had begun by then for %d such jobs",
				p.id, time.Duration(p.at), countBefore(calls, p.at), k+1)
		}
	}
	return nil
}

func countBefore(sorted []int64, t int64) int {
	n := 0
	for _, c := range sorted {
		if c < t {
			n++
		}
	}
	return n
}

func linSub(client int, call, ret int64, id int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: linInput{opSubmit}, Call: call, Output: linOutput{ID: id}, Return: ret}
}

func linRead(client int, call, ret int64, ids ...int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: linInput{opRead}, Call: call, Output: linOutput{IDs: ids}, Return: ret}
}

func linUnknown(client int, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: linInput{opSubmit}, Call: call, Output: linOutput{Err: "EOF"}, Return: ret}
}

func linRefused(client int, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: linInput{opSubmit}, Call: call, Output: linOutput{Err: "not stored on a majority", Refused: true}, Return: ret}
}

// TestLinearizabilityModel: the model accepts legal histories, with
// unknown-outcome submits whose jobs do or do not turn up, and rejects
// a lost acknowledged job, a vanishing job, an id handed out twice and
// reads out of order; checkPhantoms rejects a job that only a refused
// submit, or none, could have made.
func TestLinearizabilityModel(t *testing.T) {
	const never = 1 << 40 // the return of a call whose outcome is unknown
	legal := []porcupine.Operation{
		linSub(0, 0, 10, 1),
		linUnknown(1, 5, never), // its job turns up as 2
		linRead(2, 8, 12, 1),    // concurrent with submit 1: sees it
		linRead(0, 20, 30, 1, 2),
		linRead(2, 31, 40, 1, 2),
		linSub(0, 41, 50, 3),
		linRead(1, 45, 55, 1, 2), // concurrent with submit 3: may miss it
		linUnknown(2, 56, never), // never turns up
		linRefused(0, 57, 59),
		linRead(1, 60, 70, 1, 2, 3),
		linSub(3, 65, 80, 4),
		linRead(2, 66, 75, 1, 2, 3, 4), // sees 4 before its submit returns
		linRead(1, 76, 90, 1, 2, 3, 4),
	}
	ops := func(h []porcupine.Operation, drop ...int) []porcupine.Operation {
		var out []porcupine.Operation
		for i, op := range h {
			if !slices.Contains(drop, i) {
				out = append(out, op)
			}
		}
		return out
	}
	check := func(t *testing.T, h []porcupine.Operation, want porcupine.CheckResult) {
		t.Helper()
		res, info := porcupine.CheckOperationsVerbose(jobsModel, h, 10*time.Second)
		if res != want {
			t.Fatalf("check: %s, want %s", res, want)
		}
		if res == porcupine.Illegal {
			// The visualization of a rejected history is written.
			path := filepath.Join(t.TempDir(), "history.html")
			if err := porcupine.VisualizePath(jobsModel, info, path); err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(path); err != nil || st.Size() == 0 {
				t.Fatalf("visualization: %v", err)
			}
		}
	}
	t.Run("legal", func(t *testing.T) {
		check(t, legal, porcupine.Ok)
		// Without the failed submits (as the live test checks).
		check(t, ops(legal, 1, 7, 8), porcupine.Ok)
		if err := checkPhantoms(legal); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("lost acknowledged job", func(t *testing.T) {
		h := ops(legal)
		h[4] = linRead(2, 31, 40, 2) // job 1 was acknowledged at 10
		check(t, h, porcupine.Illegal)
		check(t, []porcupine.Operation{linSub(0, 0, 10, 1), linRead(1, 20, 30)}, porcupine.Illegal)
		// A read that began before the submit returned may miss it.
		check(t, []porcupine.Operation{linSub(0, 0, 10, 1), linRead(1, 5, 30)}, porcupine.Ok)
	})
	t.Run("vanishing job", func(t *testing.T) {
		h := ops(legal)
		h[9] = linRead(1, 60, 70, 1, 3) // job 2 (of the unknown submit) was seen at 30
		check(t, h, porcupine.Illegal)
		check(t, []porcupine.Operation{linUnknown(0, 0, never), linRead(1, 5, 10, 7), linRead(1, 20, 30)}, porcupine.Illegal)
	})
	t.Run("id acknowledged twice", func(t *testing.T) {
		check(t, []porcupine.Operation{linSub(0, 0, 10, 1), linSub(1, 5, 15, 1)}, porcupine.Illegal)
	})
	t.Run("reads out of order", func(t *testing.T) {
		// Concurrent submits 1 and 2; one read sees only 1, a later one
		// only 2.
		check(t, []porcupine.Operation{linSub(0, 0, 100, 1), linSub(1, 0, 100, 2), linRead(2, 10, 20, 1), linRead(3, 30, 40, 2)}, porcupine.Illegal)
	})
	t.Run("phantom job", func(t *testing.T) {
		h := ops(legal)
		h[12] = linRead(1, 76, 90, 1, 2, 3, 4, 9) // a second id without an acknowledged submit
		check(t, h, porcupine.Ok)                 // the model allows it ...
		if err := checkPhantoms(h); err != nil {  // ... as the second unknown submit's
			t.Fatal(err)
		}
		if err := checkPhantoms(ops(h, 7)); err == nil { // the refused one cannot have made it
			t.Fatal("a job that only a refused submit could have made was accepted")
		}
		if err := checkPhantoms([]porcupine.Operation{linRead(0, 0, 10, 1), linUnknown(1, 20, never)}); err == nil {
			t.Fatal("a job seen before any submit began was accepted")
		}
	})
}

// linHistory records the operations of a live run.
type linHistory struct {
	start time.Time

	mu     sync.Mutex
	ops    []porcupine.Operation // acknowledged submits and successful reads: checked
	failed []porcupine.Operation // submits that failed: refused or outcome unknown
	notes  []porcupine.Annotation
	reads  int // reads that failed (no effect, not checked)
}

// now is the time since the start, on the monotonic clock.
func (h *linHistory) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *linHistory) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out := op.Output.(linOutput); out.Err != "" {
		h.failed = append(h.failed, op)
		h.notes = append(h.notes, porcupine.Annotation{ClientId: op.ClientId, Start: op.Call, End: op.Return,
			Description: "submit → " + outcome(out), Details: out.Err, BackgroundColor: "#fde2b8"})
		return
	}
	h.ops = append(h.ops, op)
}

func (h *linHistory) readFailed(client int, call, ret int64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads++
	h.notes = append(h.notes, porcupine.Annotation{ClientId: client, Start: call, End: ret,
		Description: "read failed", Details: err.Error(), BackgroundColor: "#e0e0e0"})
}

// event notes a fault or a step of the test on the "test" row.
func (h *linHistory) event(t *testing.T, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	at := h.now()
	t.Logf("at %v: %s", time.Duration(at).Round(time.Millisecond), msg)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, porcupine.Annotation{Tag: "test", Start: at, Description: msg, BackgroundColor: "#f7c6c6"})
}

// linLoad coordinates the clients with the test: which master to call,
// pausing, stopping, and clients that wait after a failure until
// something changes.
type linLoad struct {
	mu      sync.Mutex
	cond    *sync.Cond
	c       *client.Client // the master's client
	gen     int            // bumped at every event of the test
	paused  bool
	stopped bool
	acked   int // acknowledged submits
	clients int
	blocked int // clients waiting after a failure, since the last change
	idle    int // clients waiting while paused
}

func newLinLoad(c *client.Client, clients int) *linLoad {
	l := &linLoad{c: c, clients: clients}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// next waits while the load is paused and returns the master's client,
// the event generation and the acknowledgements so far; false once
// stopped.
func (l *linLoad) next() (*client.Client, int, int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused && !l.stopped {
		l.idle++
		l.cond.Broadcast()
		for l.paused && !l.stopped {
			l.cond.Wait()
		}
		l.idle--
	}
	return l.c, l.gen, l.acked, !l.stopped
}

func (l *linLoad) ack() {
	l.mu.Lock()
	l.acked++
	l.changedLocked()
	l.mu.Unlock()
}

// failed waits, after a failed call in a round that began at (gen,
// acked), until another client's submit is acknowledged, the test moves
// on or the load stops: no retrying in a loop against a dead node.
func (l *linLoad) failed(gen, acked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen || l.acked != acked || l.stopped {
		return
	}
	l.blocked++
	l.cond.Broadcast()
	for l.gen == gen && l.acked == acked && !l.stopped {
		l.cond.Wait()
	}
}

// changedLocked wakes everyone after a change that releases the blocked
// clients: they count as blocked no more, even before they run.
func (l *linLoad) changedLocked() {
	l.blocked = 0
	l.cond.Broadcast()
}

// event wakes the waiting clients; c, if not nil, is the new master.
func (l *linLoad) event(c *client.Client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c != nil {
		l.c = c
	}
	l.gen++
	l.changedLocked()
}

// waitAcked waits until n submits are acknowledged (true) or every
// client waits after a failure (false).
func (l *linLoad) waitAcked(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.acked < n {
		if l.blocked == l.clients {
			return false
		}
		l.cond.Wait()
	}
	return true
}

func (l *linLoad) acks() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// pause stops the clients between rounds and waits until all are idle.
func (l *linLoad) pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = true
	l.gen++
	l.changedLocked()
	for l.idle < l.clients {
		l.cond.Wait()
	}
}

func (l *linLoad) resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = false
	l.gen++
	l.changedLocked()
}

func (l *linLoad) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	l.cond.Broadcast()
}

// callTimeout bounds one client call, so that a call that never returns
// becomes an unknown outcome instead of a hung test.
const callTimeout = 30 * time.Second

// readIDs lists the ids of every live job.
func readIDs(t *testing.T, c *client.Client) ([]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	rows, err := c.QueryJobs(ctx, nil, "id")
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(rows))
	for _, r := range rows {
		var id int64
		if len(r) != 1 || json.Unmarshal(r[0], &id) != nil {
			t.Errorf("QueryJobs(nil, id) answered a row %s", r)
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if c := slices.Compact(slices.Clone(ids)); len(c) != len(ids) {
		t.Errorf("QueryJobs(nil, id) answered an id twice: %v", ids)
	}
	return ids, nil
}

// refused tells a failed call that made no job: jobqd answered with an
// error (not the master, not stored on a majority: the queue removes
// such a job again), or it was never reached (the dial failed). A node
// that handed the call to a master that went away says that its outcome
// is unknown.
func refused(err error) bool {
	var le *client.Error
	var oe *net.OpError
	if luxi.IsOutcomeUnknown(err) {
		return false
	}
	return errors.As(err, &le) || errors.As(err, &oe) && oe.Op == "dial"
}

// linClient submits a job then lists the job ids, in rounds, on the
// current master, until the load stops.
func linClient(t *testing.T, id int, l *linLoad, h *linHistory) {
	for {
		c, gen, acked, ok := l.next()
		if !ok {
			return
		}
		failed := false
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		call := h.now()
		jid, err := c.SubmitJob(ctx, delay(time.Millisecond))
		ret := h.now()
		cancel()
		if err != nil {
			failed = true
			h.add(porcupine.Operation{ClientId: id, Input: linInput{opSubmit}, Call: call, Output: linOutput{Err: err.Error(), Refused: refused(err)}, Return: ret})
		} else {
			h.add(porcupine.Operation{ClientId: id, Input: linInput{opSubmit}, Call: call, Output: linOutput{ID: jid}, Return: ret})
			l.ack()
		}
		call = h.now()
		ids, err := readIDs(t, c)
		ret = h.now()
		if err != nil {
			failed = true
			h.readFailed(id, call, ret, err)
		} else {
			h.add(porcupine.Operation{ClientId: id, Input: linInput{opRead}, Call: call, Output: linOutput{IDs: ids}, Return: ret})
		}
		if failed {
			l.failed(gen, acked)
		}
	}
}

// TestLinearizability: four clients submit jobs and list the job ids on
// the master of a three-node cluster (about 200 submits, 200 reads)
// while, each after 40 more acknowledged submits: the master (node1) is
// killed with SIGKILL and node2 takes over by master-failover; node3 is
// killed, leaving node2 without a majority, and comes back with node1;
// node3 is killed again (node1 and node2 are a majority) and comes back.
// The history is linearizable for the model above (no acknowledged job
// lost, no job vanishing, no id twice, reads in order), no job appears
// that only a refused submit or none could have made, and the queues
// converge byte for byte. Set JOBQ_LINEARIZABILITY_OUT to a directory to
// keep the history's visualization of a passing run; a failing run
// keeps it, with the nodes' logs, in a directory it names.
func TestLinearizability(t *testing.T) {
	const clients, step = 4, 40

	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	type started struct {
		name string
		d    *testbin.Daemon
	}
	var daemons []started
	for _, n := range nodes {
		daemons = append(daemons, started{n.name, n.d})
	}
	restart := func(n *cnode) {
		n.start(t)
		daemons = append(daemons, started{n.name, n.d})
	}

	h := &linHistory{start: time.Now()}
	l := newLinLoad(n1.client(t), clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { linClient(t, i, l, h) })
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			l.stop()
			wg.Wait()
		}
	}
	defer stopLoad()

	// keep writes the visualization (and, on failure, the nodes' logs)
	// to a directory that outlives the test.
	keep := func(info porcupine.LinearizationInfo, logs bool) string {
		dir := os.Getenv("JOBQ_LINEARIZABILITY_OUT")
		if dir == "" || logs {
			var err error
			if dir, err = os.MkdirTemp("", "jobq-linearizability-"); err != nil {
				t.Error(err)
				return ""
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Error(err)
			return ""
		}
		h.mu.Lock()
		info.AddAnnotations(h.notes)
		h.mu.Unlock()
		if err := porcupine.VisualizePath(jobsModel, info, filepath.Join(dir, "history.html")); err != nil {
			t.Error(err)
		}
		if logs {
			for i, d := range daemons {
				name := fmt.Sprintf("%d-%s.log", i, d.name)
				if err := os.WriteFile(filepath.Join(dir, name), []byte(d.d.Logs()), 0o644); err != nil {
					t.Error(err)
				}
			}
		}
		return dir
	}
	// check runs porcupine on what was recorded so far.
	check := func() (porcupine.CheckResult, porcupine.LinearizationInfo, time.Duration) {
		h.mu.Lock()
		ops := slices.Clone(h.ops)
		h.mu.Unlock()
		begun := time.Now()
		res, info := porcupine.CheckOperationsVerbose(jobsModel, ops, 60*time.Second)
		return res, info, time.Since(begun)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		stopLoad()
		res, info, _ := check()
		dir := keep(info, true)
		t.Fatalf("%s\n(history so far: %s; visualization and logs of every jobqd in %s)", fmt.Sprintf(format, args...), res, dir)
	}
	// reach waits for n acknowledged submits. Every client failing in a
	// row is retried a few times, then is a failure.
	reach := func(n int, what string) {
		t.Helper()
		for tries := 0; !l.waitAcked(n); tries++ {
			if tries == 3 {
				fail("no client can submit (%s, %d of %d acknowledged)", what, l.acks(), n)
			}
			h.event(t, "every client failed (%s): retrying", what)
			l.event(nil)
		}
	}
	converge := func() {
		t.Helper()
		if r := n2.jobq(t, "cluster", "verify-queue", "--wait", "60s"); r.Code != 0 {
			fail("the queues did not converge: %s%s", r.Stdout, r.Stderr)
		}
	}

	reach(step, "node1 master")
	h.event(t, "SIGKILL node1, the master (%d acknowledged)", l.acks())
	n1.d.Kill()
	if r := n2.jobq(t, "cluster", "master-failover"); r.Code != 0 {
		fail("master-failover on node2: %+v", r)
	}
	h.event(t, "node2 is the master; the clients call it")
	l.event(n2.client(t))

	reach(2*step, "node2 master, node1 down")
	h.event(t, "SIGKILL node3: node2 has no majority (%d acknowledged)", l.acks())
	n3.d.Kill()
	restart(n3)
	h.event(t, "node3 is back")
	l.event(nil)
	restart(n1)
	if !n1.d.WaitLog("master=node2") {
		fail("the old master did not learn the new one")
	}
	h.event(t, "node1 is back as a candidate")
	l.event(nil)
	l.pause()
	converge()
	h.event(t, "the queues converged (clients were paused); resume")
	l.resume()

	reach(3*step, "node2 master, all up")
	h.event(t, "SIGKILL node3: node1 and node2 are a majority (%d acknowledged)", l.acks())
	n3.d.Kill()
	reach(4*step, "node2 master, node3 down")
	restart(n3)
	h.event(t, "node3 is back (%d acknowledged)", l.acks())
	l.event(nil)
	reach(5*step, "node2 master, all up again")
	stopLoad()

	// A last read on the master, after everything.
	c2 := n2.client(t)
	call := h.now()
	final, err := readIDs(t, c2)
	if err != nil {
		fail("the last read: %v", err)
	}
	h.add(porcupine.Operation{ClientId: clients, Input: linInput{opRead}, Call: call, Output: linOutput{IDs: final}, Return: h.now()})

	res, info, took := check()
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	failed := slices.Clone(h.failed)
	unknown := 0
	for _, op := range failed {
		if !op.Output.(linOutput).Refused {
			unknown++
		}
	}
	failedReads := h.reads
	h.mu.Unlock()
	submits, reads := 0, 0
	for _, op := range ops {
		if op.Input.(linInput).Kind == opSubmit {
			submits++
		} else {
			reads++
		}
	}
	if res != porcupine.Ok {
		dir := keep(info, true)
		t.Fatalf("the history is not linearizable (%s): %d acknowledged submits, %d reads; see %s/history.html and the logs beside it", res, submits, reads, dir)
	}
	if err := checkPhantoms(append(slices.Clone(ops), failed...)); err != nil {
		dir := keep(info, true)
		t.Fatalf("%v; see %s", err, dir)
	}
	// States along the linearization found.
	states := map[string]bool{}
	var state any = jobsModel.Init()
	for _, i := range info.PartialLinearizations()[0][0] {
		_, state = jobsStep(state, ops[i].Input, ops[i].Output)
		states[fmt.Sprint(state)] = true
	}
	t.Logf("linearizable: %d operations checked (%d acknowledged submits, %d reads) in %v, %d distinct states, up to %d jobs; "+
		"not checked: %d refused submits, %d submits with an unknown outcome, %d failed reads; %d jobs exist at the end, %d of them not acknowledged",
		len(ops), submits, reads, took, len(states), len(final), len(failed)-unknown, unknown, failedReads, len(final), len(final)-submits)
	if os.Getenv("JOBQ_LINEARIZABILITY_OUT") != "" {
		t.Logf("visualization in %s", keep(info, false))
	}

	// The checker does reject this very history with an acknowledged job
	// taken out of a read that began after its submit returned: the last
	// read before the final one, the job acknowledged last before it.
	mutated := slices.Clone(ops)
	r, s := -1, -1
	for i, op := range mutated[:len(mutated)-1] {
		if op.Input.(linInput).Kind == opRead && (r < 0 || op.Call > mutated[r].Call) {
			r = i
		}
	}
	for i, op := range mutated {
		if op.Input.(linInput).Kind == opSubmit && op.Return < mutated[r].Call && (s < 0 || op.Return > mutated[s].Return) {
			s = i
		}
	}
	if r < 0 || s < 0 {
		t.Fatal("no read to mutate")
	}
	lost := mutated[s].Output.(linOutput).ID
	mutated[r].Output = linOutput{IDs: slices.DeleteFunc(slices.Clone(mutated[r].Output.(linOutput).IDs), func(id int64) bool { return id == lost })}
	begun := time.Now()
	if res := porcupine.CheckOperationsTimeout(jobsModel, mutated, 60*time.Second); res != porcupine.Illegal {
		t.Errorf("the history without job %d in the read at %v was found %s", lost, time.Duration(mutated[r].Call), res)
	} else {
		t.Logf("mutated: without job %d (acknowledged at %v) in the read at %v: %s, found in %v", lost,
			time.Duration(mutated[s].Return).Round(time.Millisecond), time.Duration(mutated[r].Call).Round(time.Millisecond), res, time.Since(begun))
	}

	// Every job ends, and the three queues are byte for byte the same.
	for _, id := range final {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := c2.WatchJob(ctx, id, nil)
		cancel()
		if err != nil {
			fail("job %d: %v", id, err)
		}
	}
	converge()
	sameFiles(t, n2, n1, n3)
}
