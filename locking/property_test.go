package locking

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// model drives a State with random operations and checks it after each.
type model struct {
	s      *State
	seq    uint64
	owners []Owner
	// req is each owner's current request precedence (priority, seq),
	// for the fairness check.
	req map[Owner]*pending
	// submitted counts requests that were queued; each either completes
	// (done) or is withdrawn by Cancel, Release or ReleaseAll.
	done, withdrawn, submitted int
}

var (
	propLevels = []Level{LevelCluster, LevelNode, levelInstance}
	propNames  = map[Level][]string{
		LevelCluster:  {BGL},
		LevelNode:     {"a", "b", "c", "d"},
		levelInstance: {"x", "y"},
	}
)

func newModel(owners int) *model {
	m := &model{s: NewState(), req: map[Owner]*pending{}}
	for i := 1; i <= owners; i++ {
		m.owners = append(m.owners, Owner(i))
	}
	return m
}

// waitingBefore lists who waits where before an operation.
func (m *model) waitingBefore() map[Owner]LockID {
	w := map[Owner]LockID{}
	for _, o := range m.owners {
		if id, _, ok := m.s.WaitingOn(o); ok {
			w[o] = id
		}
	}
	return w
}

// apply checks the grants of one operation and the state after it:
//   - fairness: a grant of lock L to o never jumps over a conflicting
//     waiter that was already waiting at L before the operation, still
//     waits there, and is ahead of o by (priority, seq);
//   - grants are for the owner's current step, Done exactly when the
//     request completes;
//   - every structural invariant (checkState: holders compatible, no
//     grantable waiter left, bookkeeping consistent).
func (m *model) apply(t *rapid.T, before map[Owner]LockID, grants []Grant) {
	t.Helper()
	for _, g := range grants {
		r := m.req[g.Owner]
		if r == nil {
			t.Fatalf("grant %s to an owner without request", g)
		}
		if g.Done {
			m.done++
			if _, _, waiting := m.s.WaitingOn(g.Owner); waiting {
				t.Fatalf("grant %s done but owner still waits", g)
			}
		}
		l := m.s.locks[g.Lock]
		if l == nil {
			continue
		}
		for _, w := range l.queue {
			if before[w.owner] != g.Lock || !w.before(r) {
				continue
			}
			if !compatible(w.steps[w.next].mode, 1<<g.Mode) {
				t.Fatalf("unfair: %s granted while %d (%s, prio %d seq %d) waits ahead of it (prio %d seq %d)",
					g, w.owner, w.steps[w.next].mode, w.prio, w.seq, r.prio, r.seq)
			}
		}
	}
	if err := checkState(m.s); err != nil {
		t.Fatalf("%v\n%s", err, formatQueues(m.s))
	}
}

func (m *model) topLevel(o Owner) Level {
	top := Level(-1)
	for _, h := range m.s.Holds(o) {
		top = max(top, h.Level)
	}
	return top
}

func (m *model) request(t *rapid.T) {
	var idle []Owner
	for _, o := range m.owners {
		if _, _, waiting := m.s.WaitingOn(o); !waiting && m.topLevel(o) < propLevels[len(propLevels)-1] {
			idle = append(idle, o)
		}
	}
	if len(idle) == 0 {
		return
	}
	o := rapid.SampledFrom(idle).Draw(t, "owner")
	var free []Level
	for _, l := range propLevels {
		if l > m.topLevel(o) {
			free = append(free, l)
		}
	}
	r := Request{
		Level: rapid.SampledFrom(free).Draw(t, "level"),
		Mode:  rapid.SampledFrom([]Mode{Shared, Exclusive}).Draw(t, "mode"),
	}
	if rapid.IntRange(0, 5).Draw(t, "all") == 0 {
		r.All = true
	} else {
		r.Names = rapid.SliceOfNDistinct(rapid.SampledFrom(propNames[r.Level]), 1, -1, rapid.ID[string]).Draw(t, "names")
	}
	prio := rapid.IntRange(-2, 2).Draw(t, "prio")
	m.seq++
	before := m.waitingBefore()
	m.req[o] = &pending{owner: o, prio: prio, seq: m.seq}
	grants, err := m.s.Request(o, r, prio, m.seq)
	if err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	m.submitted++
	for _, g := range grants {
		if g.Owner != o {
			t.Fatalf("request of %d granted %s to someone else", o, g)
		}
	}
	m.apply(t, before, grants)
}

func (m *model) requestOutOfOrder(t *rapid.T) {
	var holding []Owner
	for _, o := range m.owners {
		if _, _, waiting := m.s.WaitingOn(o); !waiting && m.topLevel(o) >= 0 {
			holding = append(holding, o)
		}
	}
	if len(holding) == 0 {
		return
	}
	o := rapid.SampledFrom(holding).Draw(t, "owner")
	top := m.topLevel(o)
	l := rapid.SampledFrom(propLevels[:top+1]).Draw(t, "level")
	before := m.waitingBefore()
	_, err := m.s.Request(o, Request{Level: l, Names: propNames[l][:1], Mode: Shared}, 0, m.seq+1)
	if !errors.Is(err, ErrLevelOrder) {
		t.Fatalf("request at %s while holding %s: err %v, want ErrLevelOrder", l, top, err)
	}
	m.apply(t, before, nil)
}

func (m *model) release(t *rapid.T) {
	o := rapid.SampledFrom(m.owners).Draw(t, "owner")
	holds := m.s.Holds(o)
	if len(holds) == 0 {
		return
	}
	h := rapid.SampledFrom(holds).Draw(t, "hold")
	var names []string
	if len(h.Names) > 0 && rapid.Bool().Draw(t, "some") {
		names = rapid.SliceOfNDistinct(rapid.SampledFrom(h.Names), 1, -1, rapid.ID[string]).Draw(t, "names")
	}
	before := m.waitingBefore()
	if id, ok := before[o]; ok && id.Level == h.Level {
		m.withdrawn++
	}
	grants := m.s.Release(o, h.Level, names)
	for _, held := range m.s.Holds(o) {
		if held.Level != h.Level {
			continue
		}
		for _, n := range names {
			if slices.Contains(held.Names, n) {
				t.Fatalf("released %s/%s still held", h.Level, n)
			}
		}
		if len(names) == 0 {
			t.Fatalf("released level %s still held: %+v", h.Level, held)
		}
	}
	m.apply(t, before, grants)
}

func (m *model) releaseAll(t *rapid.T) {
	o := rapid.SampledFrom(m.owners).Draw(t, "owner")
	before := m.waitingBefore()
	if _, ok := before[o]; ok {
		m.withdrawn++
	}
	grants := m.s.ReleaseAll(o)
	m.assertGone(t, o)
	m.apply(t, before, grants)
}

// assertGone checks that o holds and waits for nothing, anywhere.
func (m *model) assertGone(t *rapid.T, o Owner) {
	t.Helper()
	if _, ok := m.s.owners[o]; ok {
		t.Fatalf("owner %d kept after ReleaseAll", o)
	}
	for id, l := range m.s.locks {
		if _, ok := l.holders[o]; ok {
			t.Fatalf("owner %d still holds %s", o, id)
		}
		for _, p := range l.queue {
			if p.owner == o {
				t.Fatalf("owner %d still waits for %s", o, id)
			}
		}
	}
}

func (m *model) cancel(t *rapid.T) {
	o, ok := m.drawWaiter(t)
	if !ok {
		return
	}
	id, _, _ := m.s.WaitingOn(o)
	heldBefore := m.s.Holds(o)
	before := m.waitingBefore()
	m.withdrawn++
	grants := m.s.Cancel(o)
	if _, _, still := m.s.WaitingOn(o); still {
		t.Fatalf("owner %d still waits after Cancel", o)
	}
	for _, l := range m.s.locks {
		if slices.ContainsFunc(l.queue, func(p *pending) bool { return p.owner == o }) {
			t.Fatalf("owner %d still queued at %s after Cancel", o, l.id)
		}
	}
	var kept []LevelHold
	for _, h := range heldBefore {
		if h.Level != id.Level {
			kept = append(kept, h)
		}
	}
	if got := m.s.Holds(o); fmt.Sprint(got) != fmt.Sprint(kept) {
		t.Fatalf("after Cancel owner %d holds %v, want %v", o, got, kept)
	}
	m.apply(t, before, grants)
}

func (m *model) drawWaiter(t *rapid.T) (Owner, bool) {
	var ws []Owner
	for _, o := range m.owners {
		if _, _, waiting := m.s.WaitingOn(o); waiting {
			ws = append(ws, o)
		}
	}
	if len(ws) == 0 {
		return 0, false
	}
	return rapid.SampledFrom(ws).Draw(t, "waiter"), true
}

func (m *model) setPriority(t *rapid.T) {
	o, ok := m.drawWaiter(t)
	if !ok {
		return
	}
	prio := rapid.IntRange(-3, 3).Draw(t, "prio")
	before := m.waitingBefore()
	m.req[o].prio = prio
	grants := m.s.SetPriority(o, prio)
	m.apply(t, before, grants)
}

// drain lets the system run to the end: every owner that does not wait
// releases everything (in a random order), as a job that got its locks
// eventually finishes. If owners still wait while every holder waits
// too, that is a deadlock. At the end every request must have completed
// and nothing may be left.
func (m *model) drain(t *rapid.T) {
	for round := 0; ; round++ {
		if round > 10*len(m.owners)+10 {
			t.Fatalf("drain does not finish\n%s", formatQueues(m.s))
		}
		var free []Owner
		waiting := 0
		for _, o := range m.owners {
			os := m.s.owners[o]
			switch {
			case os == nil:
			case os.pending != nil:
				waiting++
			default:
				free = append(free, o)
			}
		}
		if len(free) == 0 {
			if waiting > 0 {
				t.Fatalf("deadlock: %d owners wait and no holder is free\n%s", waiting, formatQueues(m.s))
			}
			break
		}
		o := rapid.SampledFrom(free).Draw(t, "drain owner")
		before := m.waitingBefore()
		grants := m.s.ReleaseAll(o)
		m.assertGone(t, o)
		m.apply(t, before, grants)
	}
	if len(m.s.locks) != 0 || len(m.s.owners) != 0 {
		t.Fatalf("state not empty after drain\n%s", formatQueues(m.s))
	}
	if m.done+m.withdrawn != m.submitted {
		t.Fatalf("%d requests submitted, %d completed, %d withdrawn", m.submitted, m.done, m.withdrawn)
	}
}

// TestStateProperties runs random interleavings of requests, releases,
// cancels and priority changes over several owners, checking every
// invariant after each step, then drains the system: no deadlock, every
// request granted once holders release, nothing left behind.
func TestStateProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newModel(rapid.IntRange(2, 12).Draw(t, "owners"))
		// Requests are drawn more often than anything else so that
		// queues build up.
		actions := map[string]func(*rapid.T){
			"request": m.request, "request-bad": m.requestOutOfOrder,
			"release": m.release, "release-all": m.releaseAll,
			"cancel": m.cancel, "set-priority": m.setPriority,
		}
		weighted := []string{"request", "request", "request", "request",
			"request-bad", "release", "release", "release-all", "cancel", "set-priority"}
		steps := rapid.IntRange(0, 300).Draw(t, "steps")
		for range steps {
			actions[rapid.SampledFrom(weighted).Draw(t, "action")](t)
		}
		m.drain(t)
	})
}

// TestNoStarvation: an exclusive waiter on a lock held shared is granted
// before any shared request of its priority or a lower one that arrives
// after it, however many arrive and in whatever order holders release;
// only more urgent requests may go first.
func TestNoStarvation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := NewState()
		var seq uint64
		req := func(o Owner, mode Mode, prio int) []Grant {
			seq++
			g, err := s.Request(o, Request{Level: LevelNode, Names: []string{"n"}, Mode: mode}, prio, seq)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		holders := rapid.IntRange(1, 5).Draw(t, "holders")
		var active []Owner
		for i := 1; i <= holders; i++ {
			req(Owner(i), Shared, 0)
			active = append(active, Owner(i))
		}
		const x = Owner(100)
		xPrio := rapid.IntRange(-2, 2).Draw(t, "x prio")
		if g := req(x, Exclusive, xPrio); len(g) != 1 || g[0].Done {
			t.Fatalf("exclusive granted over shared holders: %v", g)
		}
		next := Owner(200)
		granted := false
		for step := 0; !granted; step++ {
			if step > 1000 {
				t.Fatal("exclusive waiter starved")
			}
			if len(active) == 0 || rapid.Bool().Draw(t, "arrive") {
				prio := rapid.IntRange(-3, 3).Draw(t, "prio")
				done := false
				for _, g := range req(next, Shared, prio) {
					done = done || g.Done
				}
				if done && prio >= xPrio {
					t.Fatalf("later shared %d (prio %d) overtook exclusive waiter (prio %d)", next, prio, xPrio)
				}
				if !done && prio < xPrio && len(active) > 0 {
					t.Fatalf("more urgent shared %d (prio %d) waits behind exclusive waiter (prio %d) with only shared holders", next, prio, xPrio)
				}
				if _, _, waiting := s.WaitingOn(next); !waiting {
					active = append(active, next)
				}
				next++
				continue
			}
			i := rapid.IntRange(0, len(active)-1).Draw(t, "release")
			for _, g := range s.ReleaseAll(active[i]) {
				if g.Owner == x && g.Done {
					granted = true
				}
			}
			active = slices.Delete(active, i, i+1)
			if err := checkState(s); err != nil {
				t.Fatal(err)
			}
		}
		if len(active) != 0 {
			t.Fatalf("exclusive granted while %v hold the lock", active)
		}
	})
}
