package daemon

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/queue"
)

// fakeLeader is a consensus node's view for forwarding: who leads, and a
// channel closed at each change.
type fakeLeader struct {
	mu      sync.Mutex
	leader  string
	self    bool
	changed chan struct{}
}

func newFakeLeader(leader string, self bool) *fakeLeader {
	return &fakeLeader{leader: leader, self: self, changed: make(chan struct{})}
}

func (f *fakeLeader) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeLeader) Leader() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeLeader) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.self
}

// set changes the leader (or only signals a change, e.g. an entry
// applied, when leader is the same).
func (f *fakeLeader) set(leader string, self bool) {
	f.mu.Lock()
	f.leader, f.self = leader, self
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// returns runs fn in a goroutine and reports whether it returned within
// d (a generous bound: what is awaited is a channel, not a clock).
func returns[T any](t *testing.T, fn func() T) (T, bool) {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	select {
	case v := <-ch:
		return v, true
	case <-time.After(10 * time.Second):
		var zero T
		return zero, false
	}
}

// TestForwardPause: after a failed attempt on the master A, a call waits
// for its back-off or for another master, whichever comes first, and not
// for entries applied under the same master; before any attempt, any
// change ends the pause; this node's queue opening ends it too.
func TestForwardPause(t *testing.T) {
	never := make(chan time.Time) // a back-off that does not end
	n := &nodeRT{opened: make(chan struct{})}
	ctx := context.Background()

	// Tried A: an entry applied under A does not end the pause; B elected does.
	f := newFakeLeader("A", false)
	changed := f.Changed()
	done := make(chan error, 1)
	go func() { done <- n.forwardPause(ctx, f, changed, never, true, "A") }()
	f.set("A", false)
	f.set("", false) // an election: no leader yet
	select {
	case err := <-done:
		t.Fatalf("the pause ended (%v) while no other master was known", err)
	default:
	}
	f.set("B", false)
	if err, ok := returns(t, func() error { return <-done }); !ok || err != nil {
		t.Fatalf("the pause did not end within 10s of another master's election (%v)", err)
	}

	// The back-off ends it.
	wait := make(chan time.Time, 1)
	wait <- time.Now()
	if err, ok := returns(t, func() error { return n.forwardPause(ctx, f, f.Changed(), wait, true, "B") }); !ok || err != nil {
		t.Fatalf("the back-off did not end the pause: %v", err)
	}

	// Not tried yet: the first change ends it.
	changed = f.Changed()
	f.set("B", false)
	if err, ok := returns(t, func() error { return n.forwardPause(ctx, f, changed, never, false, "B") }); !ok || err != nil {
		t.Fatalf("a change did not end the pause before any attempt: %v", err)
	}

	// This node's queue opening ends it.
	opened := n.opened
	go func() { close(opened) }()
	if err, ok := returns(t, func() error { return n.forwardPause(ctx, f, f.Changed(), never, true, "B") }); !ok || err != nil {
		t.Fatalf("the queue opening here did not end the pause: %v", err)
	}

	// The caller giving up ends it with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	n.opened = make(chan struct{})
	if err, ok := returns(t, func() error { return n.forwardPause(cctx, f, f.Changed(), never, true, "B") }); !ok || err == nil {
		t.Fatalf("a cancelled call's pause = %v", err)
	}
}

// TestAwaitOwnQueue: a call forwarded to a new master that is still
// opening its queue is taken once it is open; refused at once by a node
// that does not lead, or when it stops leading or the opening fails.
func TestAwaitOwnQueue(t *testing.T) {
	ctx := context.Background()
	q := &queue.Queue{}

	// Not the leader: nothing to wait for.
	n := &nodeRT{opened: make(chan struct{})}
	if got, ok := returns(t, func() *queue.Queue { return n.awaitQueueOf(ctx, newFakeLeader("B", false)) }); !ok || got != nil {
		t.Fatalf("a follower answered %v", got)
	}

	// Leading, opening: the call waits, then gets the queue.
	f := newFakeLeader("A", true)
	done := make(chan *queue.Queue, 1)
	go func() { done <- n.awaitQueueOf(ctx, f) }()
	f.set("A", true) // entries applied while it opens
	select {
	case got := <-done:
		t.Fatalf("returned %v before the queue opened", got)
	default:
	}
	n.mu.Lock()
	n.master = &masterState{q: q}
	close(n.opened)
	n.opened = make(chan struct{})
	n.mu.Unlock()
	if got, ok := returns(t, func() *queue.Queue { return <-done }); !ok || got != q {
		t.Fatalf("got %v once the queue opened, want it", got)
	}

	// Leading, then deposed before the queue opened: refused.
	n = &nodeRT{opened: make(chan struct{})}
	f = newFakeLeader("A", true)
	go func() { done <- n.awaitQueueOf(ctx, f) }()
	f.set("B", false)
	if got, ok := returns(t, func() *queue.Queue { return <-done }); !ok || got != nil {
		t.Fatalf("a deposed leader answered %v", got)
	}

	// The opening failed (its attempt ended without a queue): refused.
	f = newFakeLeader("A", true)
	close(n.opened)
	if got, ok := returns(t, func() *queue.Queue { return n.awaitQueueOf(ctx, f) }); !ok || got != nil {
		t.Fatalf("a failed opening answered %v", got)
	}
}
