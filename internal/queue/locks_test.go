package queue

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/locking"
	"github.com/jobq-dev/jobq/opcodes"
)

// lockGate is a gate that holds node locks while it blocks.
type lockGate struct {
	gateOp
	Nodes []string `json:"nodes"`
}

func (p *lockGate) Locks(opcodes.Env) []locking.Request {
	return []locking.Request{
		{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: locking.Shared},
		{Level: locking.LevelNode, Names: p.Nodes, Mode: locking.Exclusive},
	}
}

// lockWaits receives the id of every job whose worker starts waiting for a
// lock; waitLockWait reads it until id shows up.
type lockWaits chan int64

func (w lockWaits) waitFor(id int64) {
	for got := range w {
		if got == id {
			return
		}
	}
}

func newLockHarness(t *testing.T) (*harness, lockWaits) {
	waits := make(lockWaits, 100)
	h := newHarnessConfig(t, t.TempDir(), Config{OnLockWait: func(id int64) {
		select {
		case waits <- id:
		default: // never block a worker; tests see far fewer waits
		}
	}})
	if err := h.q.reg.Register(opcodes.Definition{ID: "OP_TEST_LOCKGATE",
		New: func() opcodes.Params { return &lockGate{gateOp: gateOp{g: h.g}} }}); err != nil {
		t.Fatal(err)
	}
	return h, waits
}

func lockGateOp(name string, nodes ...string) []byte {
	return []byte(fmt.Sprintf(`{"OP_ID":"OP_TEST_LOCKGATE","name":%q,"nodes":["%s"]}`, name, strings.Join(nodes, `","`)))
}

func lockLine(infos []locking.LockInfo, name string) string {
	for _, li := range infos {
		if li.Name == name {
			return fmt.Sprintf("%s %v owners=%v pending=%v", li.Name, li.Mode, li.Owners, li.Pending)
		}
	}
	return name + " unused"
}

func TestLocksSerializeSameNode(t *testing.T) {
	h, waits := newLockHarness(t)
	a := h.submit(lockGateOp("a", "n1"))
	startedA, releaseA := h.g.get("a")
	await(t, startedA, "startedA")
	b := h.submit(lockGateOp("b", "n1"))
	waits.waitFor(b)
	got := lockLine(h.q.Locks(), "node/n1")
	if want := fmt.Sprintf("node/n1 exclusive owners=[%d] pending=[{exclusive [%d]}]", a, b); got != want {
		t.Fatalf("locks: %s, want %s", got, want)
	}
	startedB, releaseB := h.g.get("b")
	close(releaseA)
	await(t, startedB, "startedB") // b runs only once a released n1
	if st := h.waitFinal(a); st != job.StatusSuccess {
		t.Fatal(st)
	}
	close(releaseB)
	h.waitFinal(b)
	if got := lockLine(h.q.Locks(), "node/n1"); !strings.Contains(got, "owners=[]") && !strings.Contains(got, "unused") {
		t.Fatalf("n1 still held after both jobs: %s", got)
	}
}

func TestLocksOtherNodesRunInParallel(t *testing.T) {
	h, _ := newLockHarness(t)
	a := h.submit(lockGateOp("a", "n1"))
	b := h.submit(lockGateOp("b", "n2"))
	startedA, releaseA := h.g.get("a")
	startedB, releaseB := h.g.get("b")
	await(t, startedA, "startedA")
	await(t, startedB, "startedB") // both run at once
	close(releaseA)
	close(releaseB)
	h.waitFinal(a)
	h.waitFinal(b)
}

func TestCancelJobWaitingForLock(t *testing.T) {
	h, waits := newLockHarness(t)
	a := h.submit(lockGateOp("a", "n1"))
	startedA, releaseA := h.g.get("a")
	await(t, startedA, "startedA")
	b := h.submit(lockGateOp("b", "n1"))
	waits.waitFor(b)
	ok, msg, _ := h.q.CancelJob(b, false)
	if !ok || msg != fmt.Sprintf("Job %d will be canceled", b) {
		t.Fatal(ok, msg)
	}
	if st := h.waitFinal(b); st != job.StatusCanceled {
		t.Fatalf("canceled waiter ended %s", st)
	}
	if got := lockLine(h.q.Locks(), "node/n1"); got != fmt.Sprintf("node/n1 exclusive owners=[%d] pending=[]", a) {
		t.Fatalf("after the cancel: %s", got)
	}
	close(releaseA)
	h.waitFinal(a)
}

func TestLocksReleasedHoweverTheJobEnds(t *testing.T) {
	h, _ := newLockHarness(t)
	// Killed while holding n1.
	k := h.submit(lockGateOp("k", "n1"))
	started, _ := h.g.get("k")
	await(t, started, "started")
	h.q.CancelJob(k, true)
	if st := h.waitFinal(k); st != job.StatusCanceled {
		t.Fatal(st)
	}
	// Failed: OP_TEST_DELAY on this node fails validation after nothing
	// was taken; one that runs takes BGL shared and the node.
	f := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0,"no_locks":false,"on_nodes":["node1"]}`))
	h.waitFinal(f)
	s := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"no_locks":false,"on_nodes":["node1"]}`))
	if st := h.waitFinal(s); st != job.StatusSuccess {
		t.Fatal(st)
	}
	for _, li := range h.q.Locks() {
		if len(li.Owners) != 0 || len(li.Pending) != 0 {
			t.Fatalf("lock left behind: %+v", li)
		}
	}
	// The node lock of this node is always listed, even unused.
	if got := lockLine(h.q.Locks(), "node/node1"); got == "node/node1 unused" {
		t.Fatal("node1's lock is not listed")
	}
}

func TestTestDelaySerializesOnTheNode(t *testing.T) {
	h, waits := newLockHarness(t)
	hold := h.submit(lockGateOp("hold", "node1"))
	started, release := h.g.get("hold")
	await(t, started, "started")
	d := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"no_locks":false,"on_nodes":["node1"]}`))
	waits.waitFor(d)
	// With no_locks it does not wait.
	free := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"no_locks":true,"on_nodes":["node1"]}`))
	if st := h.waitFinal(free); st != job.StatusSuccess {
		t.Fatal(st)
	}
	close(release)
	if st := h.waitFinal(d); st != job.StatusSuccess {
		t.Fatal(st)
	}
	h.waitFinal(hold)
}

func TestChangePriorityMovesALockWaiter(t *testing.T) {
	h, waits := newLockHarness(t)
	a := h.submit(lockGateOp("a", "n1"))
	startedA, releaseA := h.g.get("a")
	await(t, startedA, "startedA")
	b := h.submit(lockGateOp("b", "n1"))
	waits.waitFor(b)
	c := h.submit(lockGateOp("c", "n1"))
	waits.waitFor(c)
	if ok, msg, _ := h.q.ChangeJobPriority(c, -10); !ok {
		t.Fatal(msg)
	}
	got := lockLine(h.q.Locks(), "node/n1")
	if want := fmt.Sprintf("node/n1 exclusive owners=[%d] pending=[{exclusive [%d %d]}]", a, c, b); got != want {
		t.Fatalf("after raising c: %s, want %s", got, want)
	}
	startedC, releaseC := h.g.get("c")
	close(releaseA)
	await(t, startedC, "startedC") // c overtook b
	startedB, releaseB := h.g.get("b")
	close(releaseC)
	await(t, startedB, "startedB")
	close(releaseB)
	for _, id := range []int64{a, b, c} {
		h.waitFinal(id)
	}
}

// Two plain "gnt-debug delay" jobs (on_master, no_locks false) take the
// master's node lock one after the other, as in Ganeti: the second waits,
// and so can still be canceled.
func TestPlainDelaysLockTheMaster(t *testing.T) {
	h, waits := newLockHarness(t)
	plain := `{"OP_ID":"OP_TEST_DELAY","duration":%v,"on_master":true,"no_locks":false}`
	first := h.submit(op(fmt.Sprintf(plain, 300)))
	h.waitStatus(first, job.StatusRunning)
	second := h.submit(op(fmt.Sprintf(plain, 0.001)))
	deadline := time.After(waitTimeout)
	for waiting := false; !waiting; {
		select {
		case id := <-waits:
			waiting = id == second
		case <-deadline:
			t.Fatalf("job %d did not wait for a lock within %s while job %d ran (locks: %v)", second, waitTimeout, first, h.q.Locks())
		}
	}
	if got, want := lockLine(h.q.Locks(), "node/node1"), fmt.Sprintf("node/node1 exclusive owners=[%d] pending=[{exclusive [%d]}]", first, second); got != want {
		t.Errorf("the master's lock: %s, want %s", got, want)
	}
	if ok, msg, _ := h.q.CancelJob(second, false); !ok || msg != fmt.Sprintf("Job %d will be canceled", second) {
		t.Fatalf("cancel of the waiting delay: %v %q", ok, msg)
	}
	if st := h.waitFinal(second); st != job.StatusCanceled {
		t.Fatalf("the second delay ended %s", st)
	}
	if ok, msg, _ := h.q.CancelJob(first, true); !ok {
		t.Fatalf("kill of the first delay: %q", msg)
	}
	h.waitFinal(first)
}
