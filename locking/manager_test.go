package locking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// events records the Manager's hooks.
type events struct {
	mu    sync.Mutex
	start time.Time
	log   []string
}

func newEvents() *events { return &events{start: time.Now()} }

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, fmt.Sprintf("%v ", time.Since(e.start))+fmt.Sprintf(format, args...))
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.log
	e.log = nil
	return out
}

func (e *events) config(s Schedule) Config {
	return Config{
		Schedule:   s,
		OnWait:     func(o Owner, id LockID, m Mode) { e.add("%d waits for %s %s", o, id, m) },
		OnPriority: func(o Owner, p int) { e.add("%d priority %d", o, p) },
	}
}

func nodes(mode Mode, names ...string) Request {
	return Request{Level: LevelNode, Names: names, Mode: mode}
}

// acquireAsync runs Acquire in a goroutine; the result arrives on the
// returned channel.
func acquireAsync(ctx context.Context, m *Manager, o Owner, prio int, r Request) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- m.Acquire(ctx, o, prio, r) }()
	return ch
}

func mustAcquire(t *testing.T, m *Manager, o Owner, r Request) {
	t.Helper()
	if err := m.Acquire(t.Context(), o, 0, r); err != nil {
		t.Fatalf("Acquire(%d, %+v): %v", o, r, err)
	}
}

func wantResult(t *testing.T, ch <-chan error, want error) {
	t.Helper()
	synctest.Wait()
	select {
	case err := <-ch:
		if !errors.Is(err, want) {
			t.Fatalf("Acquire returned %v, want %v", err, want)
		}
	default:
		t.Fatalf("Acquire still waits, want %v", want)
	}
}

func wantWaiting(t *testing.T, ch <-chan error) {
	t.Helper()
	synctest.Wait()
	select {
	case err := <-ch:
		t.Fatalf("Acquire returned %v, want it to wait", err)
	default:
	}
}

func wantEvents(t *testing.T, e *events, want ...string) {
	t.Helper()
	synctest.Wait()
	if diff := cmp.Diff(want, e.take()); diff != "" {
		t.Fatalf("hook calls (-want +got):\n%s", diff)
	}
}

func wantIdle(t *testing.T, m *Manager) {
	t.Helper()
	got := m.Snapshot()
	want := []LockInfo{{Name: "cluster/BGL", ID: LockID{LevelCluster, BGL}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("locks left behind (-want +got):\n%s", diff)
	}
}

func TestManagerWaitAndWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEvents()
		m := NewManager(e.config(Schedule{}))
		mustAcquire(t, m, 1, nodes(Exclusive, "b"))
		mustAcquire(t, m, 3, nodes(Shared, "c"))
		// 2 takes a, stops at b, then at c (held shared by 3).
		done := acquireAsync(t.Context(), m, 2, 0, nodes(Exclusive, "c", "b", "a"))
		wantWaiting(t, done)
		wantEvents(t, e, "0s 2 waits for node/b exclusive")
		if diff := cmp.Diff([]LevelHold{{Level: LevelNode, Mode: Exclusive, Names: []string{"a"}}}, m.Holds(2)); diff != "" {
			t.Fatalf("holds of 2 (-want +got):\n%s", diff)
		}
		time.Sleep(time.Minute)
		m.ReleaseAll(1)
		wantWaiting(t, done)
		wantEvents(t, e, "1m0s 2 waits for node/c exclusive")
		m.Release(3, LevelNode, "c")
		wantResult(t, done, nil)
		wantEvents(t, e)
		m.ReleaseAll(2)
		m.ReleaseAll(3)
		wantIdle(t, m)
	})
}

// TestManagerSchedule: each round of timed attempts that ends without the
// locks raises the priority by one; at the highest priority the wait has
// no timeout any more.
func TestManagerSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEvents()
		m := NewManager(e.config(Schedule{Timeouts: []time.Duration{time.Second, 2 * time.Second}}))
		mustAcquire(t, m, 1, nodes(Exclusive, "a"))
		done := acquireAsync(t.Context(), m, 2, PriorityHighest+2, nodes(Shared, "a"))
		wantEvents(t, e, "0s 2 waits for node/a shared")
		time.Sleep(time.Hour)
		wantWaiting(t, done)
		wantEvents(t, e, "3s 2 priority -19", "6s 2 priority -20")
		info := m.Snapshot()[1]
		if info.Name != "node/a" || len(info.Pending) != 1 || info.Pending[0].Owners[0] != 2 {
			t.Fatalf("snapshot: %+v", info)
		}
		m.ReleaseAll(1)
		wantResult(t, done, nil)
		m.ReleaseAll(2)
		wantIdle(t, m)
	})
}

// TestManagerRaisedPriorityWins: a waiter overtaken by a more urgent
// request catches up through its schedule and, having arrived first, is
// then served first.
func TestManagerRaisedPriorityWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEvents()
		m := NewManager(e.config(Schedule{Timeouts: []time.Duration{time.Second}}))
		mustAcquire(t, m, 1, nodes(Exclusive, "a"))
		first := acquireAsync(t.Context(), m, 2, 0, nodes(Exclusive, "a"))
		time.Sleep(500 * time.Millisecond)
		urgent := acquireAsync(t.Context(), m, 3, -1, nodes(Exclusive, "a"))
		synctest.Wait()
		queue := func() []Owner {
			var out []Owner
			for _, g := range m.Snapshot()[1].Pending {
				out = append(out, g.Owners...)
			}
			return out
		}
		if got := queue(); !slices.Equal(got, []Owner{3, 2}) {
			t.Fatalf("queue %v, want the urgent request first", got)
		}
		time.Sleep(25 * time.Second) // both reach -20; 3 first, then 2
		if got := queue(); !slices.Equal(got, []Owner{2, 3}) {
			t.Fatalf("queue %v, want the earlier request first at equal priority", got)
		}
		e.take()
		m.ReleaseAll(1)
		wantResult(t, first, nil)
		wantWaiting(t, urgent)
		m.ReleaseAll(2)
		wantResult(t, urgent, nil)
		m.ReleaseAll(3)
		wantIdle(t, m)
	})
}

func TestManagerContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEvents()
		m := NewManager(e.config(DefaultSchedule()))
		mustAcquire(t, m, 1, nodes(Exclusive, "b"))
		mustAcquire(t, m, 2, Request{Level: LevelCluster, Names: []string{BGL}, Mode: Shared})
		ctx, cancel := context.WithCancelCause(t.Context())
		done := acquireAsync(ctx, m, 2, 0, nodes(Exclusive, "a", "b"))
		wantWaiting(t, done)
		later := acquireAsync(t.Context(), m, 3, 0, nodes(Shared, "a"))
		wantWaiting(t, later)
		e.take()
		time.Sleep(time.Minute)
		kill := errors.New("job killed")
		cancel(kill)
		wantResult(t, done, kill)
		// node/a, taken by the canceled request, is free again: 3 gets it.
		wantResult(t, later, nil)
		if diff := cmp.Diff([]LevelHold{{Level: LevelCluster, Mode: Shared, Names: []string{BGL}}}, m.Holds(2)); diff != "" {
			t.Fatalf("holds of 2 after cancel (-want +got):\n%s", diff)
		}
		// An Acquire with a context already done does not queue.
		if err := m.Acquire(ctx, 4, 0, nodes(Shared, "z")); !errors.Is(err, kill) {
			t.Fatalf("Acquire with done context: %v", err)
		}
		for _, o := range []Owner{1, 2, 3} {
			m.ReleaseAll(o)
		}
		wantIdle(t, m)
	})
}

func TestManagerWithdraw(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewManager(Config{})
		mustAcquire(t, m, 1, nodes(Exclusive, "a"))
		mustAcquire(t, m, 2, Request{Level: LevelCluster, All: true, Mode: Shared})

		// ReleaseAll of a waiting owner (a job ending while it waits).
		done := acquireAsync(t.Context(), m, 2, 0, nodes(Shared, "a"))
		wantWaiting(t, done)
		m.ReleaseAll(2)
		wantResult(t, done, ErrCanceled)
		if h := m.Holds(2); h != nil {
			t.Fatalf("owner 2 still holds %v", h)
		}
		// The owner may start over at once.
		mustAcquire(t, m, 2, Request{Level: LevelCluster, All: true, Mode: Shared})

		// Cancel withdraws only the pending request.
		done = acquireAsync(t.Context(), m, 2, 0, nodes(Shared, "a"))
		wantWaiting(t, done)
		m.Cancel(2)
		wantResult(t, done, ErrCanceled)
		if len(m.Holds(2)) != 1 {
			t.Fatalf("Cancel released earlier levels: %v", m.Holds(2))
		}

		// Release of the pending level withdraws it; of another, not.
		done = acquireAsync(t.Context(), m, 2, 0, nodes(Shared, "a"))
		wantWaiting(t, done)
		m.Release(2, LevelCluster)
		wantWaiting(t, done)
		m.Release(2, LevelNode)
		wantResult(t, done, ErrCanceled)
		m.Cancel(2) // nothing pending: no effect
		m.ReleaseAll(1)
		m.ReleaseAll(2)
		wantIdle(t, m)
	})
}

func TestManagerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewManager(Config{})
		mustAcquire(t, m, 1, nodes(Shared, "a"))
		if err := m.Acquire(t.Context(), 1, 0, Request{Level: LevelCluster, All: true, Mode: Shared}); !errors.Is(err, ErrLevelOrder) {
			t.Fatalf("out of order: %v", err)
		}
		if err := m.Acquire(t.Context(), 2, 0, nodes(0, "a")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("no mode: %v", err)
		}
		if err := m.Acquire(t.Context(), 2, 0, Request{Level: Level(99), Names: []string{"a"}, Mode: Shared}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unknown level: %v", err)
		}
		mustAcquire(t, m, 3, nodes(Exclusive, "b"))
		done := acquireAsync(t.Context(), m, 2, 0, nodes(Shared, "b"))
		wantWaiting(t, done)
		if err := m.Acquire(t.Context(), 2, 0, Request{Level: levelInstance, All: true, Mode: Shared}); !errors.Is(err, ErrPending) {
			t.Fatalf("second request while waiting: %v", err)
		}
		if err := m.Acquire(t.Context(), 2, 0, nodes(Shared)); !errors.Is(err, ErrPending) {
			t.Fatalf("empty request while waiting: %v", err)
		}
		if err := m.Declare(LevelCluster, "x"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Declare bad name: %v", err)
		}
		if err := m.Declare(LevelNode, "n1"); err != nil {
			t.Fatal(err)
		}
		m.Undeclare(LevelNode, "n1")
		m.ReleaseAll(3)
		wantResult(t, done, nil)
		for _, o := range []Owner{1, 2} {
			m.ReleaseAll(o)
		}
		wantIdle(t, m)
	})
}

func TestDefaultSchedule(t *testing.T) {
	s := DefaultSchedule()
	var sum time.Duration
	for i, d := range s.Timeouts {
		if d < time.Second || d > 15*time.Second {
			t.Fatalf("timeout %d = %v out of [1s, 15s]", i, d)
		}
		if i > 0 && d < s.Timeouts[i-1] {
			t.Fatalf("timeouts shrink at %d: %v", i, s.Timeouts[:i+1])
		}
		sum += d
	}
	if sum < 30*time.Minute || sum > 30*time.Minute+15*time.Second {
		t.Fatalf("a round lasts %v, want just over 30m", sum)
	}
	if s.Timeouts[0] != time.Second || s.Timeouts[len(s.Timeouts)-1] != 15*time.Second {
		t.Fatalf("schedule %v", s.Timeouts)
	}
	for range 100 {
		if d := s.timeout(0); d < 950*time.Millisecond || d > 1050*time.Millisecond {
			t.Fatalf("jittered timeout %v beyond 5%%", d)
		}
	}
}

func TestRegisterLevel(t *testing.T) {
	if l, ok := LevelByName("instance"); !ok || l != levelInstance {
		t.Fatalf("LevelByName(instance) = %v, %v", l, ok)
	}
	if levelInstance <= LevelNode || levelInstance.String() != "instance" {
		t.Fatalf("registered level %d %q", levelInstance, levelInstance)
	}
	if got := Levels(); got[0] != LevelCluster || got[1] != LevelNode || !slices.Contains(got, levelInstance) {
		t.Fatalf("Levels() = %v", got)
	}
	if s := Level(99).String(); s != "level(99)" {
		t.Fatalf("unknown level string %q", s)
	}
	for _, name := range []string{"", "node", "instance", "a/b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterLevel(%q) did not panic", name)
				}
			}()
			RegisterLevel(name)
		}()
	}
	if _, err := ParseMode("upgrade"); err == nil {
		t.Fatal("ParseMode accepted a bad mode")
	}
}

// Concurrent stress of the Manager inside a synctest bubble.

type stressStep struct {
	req  Request
	prio int
}

type stressJob struct {
	steps    []stressStep
	hold     time.Duration
	deadline time.Duration // 0: none
}

// tracker checks, independently of the lock manager, that no two jobs
// ever hold conflicting locks at the same time.
type tracker struct {
	mu   sync.Mutex
	held map[Owner][]Request
}

func overlap(a, b Request) bool {
	if a.Level != b.Level || (a.Mode == Shared && b.Mode == Shared) {
		return false
	}
	if a.All || b.All {
		return true
	}
	for _, n := range a.Names {
		if slices.Contains(b.Names, n) {
			return true
		}
	}
	return false
}

func (tr *tracker) enter(o Owner, reqs []Request) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for other, theirs := range tr.held {
		for _, a := range reqs {
			for _, b := range theirs {
				if overlap(a, b) {
					return fmt.Errorf("owners %d (%+v) and %d (%+v) hold conflicting locks", o, a, other, b)
				}
			}
		}
	}
	tr.held[o] = reqs
	return nil
}

func (tr *tracker) leave(o Owner) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	delete(tr.held, o)
}

func drawJob(t *rapid.T) stressJob {
	var j stressJob
	for _, l := range propLevels {
		if !rapid.Bool().Draw(t, "use level") {
			continue
		}
		r := Request{Level: l, Mode: rapid.SampledFrom([]Mode{Shared, Exclusive}).Draw(t, "mode")}
		if rapid.IntRange(0, 6).Draw(t, "all") == 0 {
			r.All = true
		} else {
			r.Names = rapid.SliceOfNDistinct(rapid.SampledFrom(propNames[l]), 1, -1, rapid.ID[string]).Draw(t, "names")
		}
		j.steps = append(j.steps, stressStep{r, rapid.IntRange(-20, 5).Draw(t, "prio")})
	}
	j.hold = time.Duration(rapid.IntRange(0, 50).Draw(t, "hold ms")) * time.Millisecond
	if rapid.IntRange(0, 4).Draw(t, "deadline?") == 0 {
		j.deadline = time.Duration(rapid.IntRange(1, 100).Draw(t, "deadline ms")) * time.Millisecond
	}
	return j
}

// TestManagerStress runs random jobs of many owners concurrently: each
// job takes its levels in order, holds them for a while, and releases
// everything; some give up at a deadline. The tracker checks that no two
// jobs ever hold conflicting locks; synctest reports a deadlock if every
// goroutine blocks; every job without a deadline must get its locks; in
// the end no lock is left.
func TestManagerStress(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		owners := rapid.IntRange(2, 12).Draw(rt, "owners")
		scripts := make([][]stressJob, owners)
		for i := range scripts {
			scripts[i] = rapid.SliceOfN(rapid.Custom(drawJob), 1, 5).Draw(rt, "jobs")
		}
		rapid.SyncTest(rt, func(rt *rapid.T) {
			m := NewManager(Config{Schedule: Schedule{Timeouts: []time.Duration{time.Millisecond, 3 * time.Millisecond}, Jitter: 0.5}})
			tr := &tracker{held: map[Owner][]Request{}}
			errs := make(chan error, owners)
			for i, jobs := range scripts {
				o := Owner(i + 1)
				go func() { errs <- runStress(m, tr, o, jobs) }()
			}
			for range owners {
				if err := <-errs; err != nil {
					rt.Fatal(err)
				}
			}
			if got := m.Snapshot(); len(got) != 1 || got[0].Owners != nil || got[0].Pending != nil {
				rt.Fatalf("locks left: %+v", got)
			}
		})
	})
}

func runStress(m *Manager, tr *tracker, o Owner, jobs []stressJob) error {
	for _, j := range jobs {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if j.deadline > 0 {
			ctx, cancel = context.WithTimeout(ctx, j.deadline)
		}
		var got []Request
		var err error
		for _, st := range j.steps {
			if err = m.Acquire(ctx, o, st.prio, st.req); err != nil {
				break
			}
			got = append(got, st.req)
		}
		switch {
		case err == nil:
			if err := tr.enter(o, got); err != nil {
				cancel()
				return err
			}
			time.Sleep(j.hold)
			tr.leave(o)
		case j.deadline == 0 || !errors.Is(err, context.DeadlineExceeded):
			cancel()
			return fmt.Errorf("owner %d: Acquire: %v", o, err)
		}
		m.ReleaseAll(o)
		cancel()
		if h := m.Holds(o); h != nil {
			return fmt.Errorf("owner %d holds %v after ReleaseAll", o, h)
		}
	}
	return nil
}

func TestTryAcquire(t *testing.T) {
	m := NewManager(Config{})
	node := Request{Level: LevelNode, Names: []string{"n1"}, Mode: Exclusive}
	if ok, err := m.TryAcquire(1, 0, node); !ok || err != nil {
		t.Fatalf("free lock: %v %v", ok, err)
	}
	if ok, err := m.TryAcquire(2, 0, node); ok || err != nil {
		t.Fatalf("held lock: %v %v", ok, err)
	}
	// The refused request left nothing queued or held.
	if h := m.Holds(2); len(h) != 0 {
		t.Fatalf("owner 2 holds %v", h)
	}
	for _, li := range m.Snapshot() {
		if len(li.Pending) != 0 {
			t.Fatalf("pending after a refused try: %+v", li)
		}
	}
	// Two names, one of them taken: neither is kept.
	two := Request{Level: LevelNode, Names: []string{"n0", "n1"}, Mode: Exclusive}
	if ok, _ := m.TryAcquire(3, 0, two); ok {
		t.Fatal("got n0 and n1 while n1 is held")
	}
	m.ReleaseAll(1)
	if ok, _ := m.TryAcquire(3, 0, two); !ok {
		t.Fatal("both free now")
	}
	if ok, _ := m.TryAcquire(4, 0, Request{Level: LevelNode, Names: []string{"n0"}, Mode: Exclusive}); ok {
		t.Fatal("n0 handed out twice")
	}
	m.ReleaseAll(3)
}
