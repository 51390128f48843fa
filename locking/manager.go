package locking

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Priorities, as in Ganeti: lower values are more urgent.
const (
	PriorityHighest = -20
	PriorityDefault = 0
	PriorityLowest  = 19
)

// Schedule is the lock-attempt schedule of a waiting Acquire, after
// Ganeti's LockAttemptTimeoutStrategy. A round is one timed attempt per
// entry of Timeouts. When a round ends without the locks, the request's
// priority is raised by one (towards PriorityHighest) and a new round
// starts; once the priority is PriorityHighest and a round has ended, the
// request waits without a timeout. A schedule without Timeouts waits
// without a timeout at once and never raises the priority.
type Schedule struct {
	Timeouts []time.Duration
	// Jitter varies each timeout at random by up to ±Jitter of its length
	// (Ganeti: 0.05), so that competing waiters do not move in step.
	Jitter float64
}

// DefaultSchedule returns Ganeti's schedule: attempts of 1 s growing as
// (t*1.05)^1.25, capped at 15 s, until a round sums to at least 30 minutes,
// with ±5% jitter. From the default priority a waiter thus reaches the
// highest priority, and waits without a timeout, after about ten hours.
func DefaultSchedule() Schedule {
	const minWait, maxWait, total = 1.0, 15.0, 1800.0
	t, sum := minWait, minWait
	out := []time.Duration{time.Second}
	for sum < total {
		t = math.Max(minWait, math.Min(maxWait, math.Pow(t*1.05, 1.25)))
		sum += t
		out = append(out, time.Duration(t*float64(time.Second)))
	}
	return Schedule{Timeouts: out, Jitter: 0.05}
}

func (s Schedule) timeout(attempt int) time.Duration {
	d := s.Timeouts[attempt]
	if s.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + s.Jitter*(2*rand.Float64()-1)))
	}
	return d
}

// Config configures a Manager.
type Config struct {
	// Schedule is the lock-attempt schedule; the zero Schedule waits
	// without timeouts. The queue uses DefaultSchedule().
	Schedule Schedule
	// OnWait, if set, is called whenever an Acquire starts waiting for a
	// lock (the first lock it cannot have, and every later one it stops
	// at), from the goroutine calling Acquire, with no lock of the
	// Manager held. The queue shows the job as waiting.
	OnWait func(owner Owner, lock LockID, mode Mode)
	// OnPriority, if set, is called when the schedule raises a waiting
	// request's priority, like OnWait. Ganeti records the new priority
	// in the opcode.
	OnPriority func(owner Owner, priority int)
}

// Manager is the blocking lock manager the queue engine uses: a State
// behind a mutex, with waiting goroutines woken when their request is
// granted. It is safe for concurrent use. Timeouts use the time package's
// timers, so tests can run it under testing/synctest.
type Manager struct {
	cfg     Config
	mu      sync.Mutex
	st      *State
	seq     uint64
	waiters map[Owner]*waiter
}

type waiter struct {
	kick     chan struct{} // buffered 1: the owner's state changed
	canceled bool          // the request was withdrawn by someone else
}

// NewManager returns a Manager with no locks held.
func NewManager(cfg Config) *Manager {
	return &Manager{cfg: cfg, st: NewState(), waiters: map[Owner]*waiter{}}
}

// wakeLocked kicks the waiting Acquire of every owner in grants.
func (m *Manager) wakeLocked(grants []Grant) {
	for _, g := range grants {
		if w := m.waiters[g.Owner]; w != nil {
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
	}
}

// withdrawLocked marks the Acquire waiting for owner, if any, as canceled
// and forgets it, so that the owner may call Acquire again at once.
func (m *Manager) withdrawLocked(owner Owner) {
	if w := m.waiters[owner]; w != nil {
		w.canceled = true
		delete(m.waiters, owner)
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// Acquire takes the locks of req for owner, in order, waiting as long as
// needed, and returns nil once all are held. It returns an error at once
// for an invalid request, a level not above every level owner holds
// (ErrLevelOrder), or a second concurrent request of the same owner
// (ErrPending).
//
// While it waits, the Schedule's timeouts raise the request's priority in
// place: it keeps its place among waiters of its new priority by arrival,
// and keeps the locks it has taken. If ctx is done first, the request
// leaves the queue, the locks it had taken at this level are released, and
// Acquire returns context.Cause(ctx); if Cancel, Release of this level or
// ReleaseAll withdraws it, Acquire returns ErrCanceled. Locks of earlier
// levels stay held in both cases.
func (m *Manager) Acquire(ctx context.Context, owner Owner, priority int, req Request) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	m.mu.Lock()
	if m.waiters[owner] != nil {
		m.mu.Unlock()
		return ErrPending
	}
	m.seq++
	grants, err := m.st.Request(owner, req, priority, m.seq)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.wakeLocked(grants)
	lock, mode, waiting := m.st.WaitingOn(owner)
	if !waiting {
		m.mu.Unlock()
		return nil
	}
	w := &waiter{kick: make(chan struct{}, 1)}
	m.waiters[owner] = w
	m.mu.Unlock()

	defer func() {
		m.mu.Lock()
		if m.waiters[owner] == w {
			delete(m.waiters, owner)
		}
		m.mu.Unlock()
	}()
	if m.cfg.OnWait != nil {
		m.cfg.OnWait(owner, lock, mode)
	}

	sched := m.cfg.Schedule
	attempt := 0
	var timer *time.Timer
	var expired <-chan time.Time
	arm := func() {
		expired = nil
		if attempt < len(sched.Timeouts) {
			timer = time.NewTimer(sched.timeout(attempt))
			expired = timer.C
		}
	}
	arm()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()

	for {
		select {
		case <-w.kick:
			m.mu.Lock()
			canceled := w.canceled
			next, nextMode, waiting := m.st.WaitingOn(owner)
			m.mu.Unlock()
			switch {
			case canceled:
				return ErrCanceled
			case !waiting:
				return nil
			case next != lock && m.cfg.OnWait != nil:
				m.cfg.OnWait(owner, next, nextMode)
			}
			lock = next

		case <-expired:
			attempt++
			if attempt == len(sched.Timeouts) && priority > PriorityHighest {
				priority--
				attempt = 0
				m.mu.Lock()
				if !w.canceled {
					m.wakeLocked(m.st.SetPriority(owner, priority))
				}
				m.mu.Unlock()
				if m.cfg.OnPriority != nil {
					m.cfg.OnPriority(owner, priority)
				}
			}
			arm()

		case <-ctx.Done():
			m.mu.Lock()
			if w.canceled {
				m.mu.Unlock()
				return ErrCanceled
			}
			if _, _, waiting := m.st.WaitingOn(owner); !waiting {
				m.mu.Unlock()
				return nil // granted at the same moment: the locks are held
			}
			m.wakeLocked(m.st.Cancel(owner))
			m.mu.Unlock()
			return context.Cause(ctx)
		}
	}
}

// Release releases owner's locks at level: the given names, or the whole
// level if none are given (see State.Release). A pending Acquire at this
// level is withdrawn and returns ErrCanceled.
func (m *Manager) Release(owner Owner, level Level, names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, _, ok := m.st.WaitingOn(owner); ok && id.Level == level {
		m.withdrawLocked(owner)
	}
	m.wakeLocked(m.st.Release(owner, level, names))
}

// ReleaseAll releases every lock owner holds and withdraws its pending
// request (its Acquire returns ErrCanceled). The queue calls it whenever a
// job ends, whatever way it ends.
func (m *Manager) ReleaseAll(owner Owner) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.withdrawLocked(owner)
	m.wakeLocked(m.st.ReleaseAll(owner))
}

// Cancel withdraws owner's pending request (its Acquire returns
// ErrCanceled) and releases what that request had taken; locks of earlier
// levels stay held.
func (m *Manager) Cancel(owner Owner) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, _, ok := m.st.WaitingOn(owner); ok {
		m.withdrawLocked(owner)
	}
	m.wakeLocked(m.st.Cancel(owner))
}

// TryAcquire takes req's locks only if all of them can be had at once:
// true when they are held, false (and nothing of req held or queued) when
// the request would have to wait. It never blocks.
func (m *Manager) TryAcquire(owner Owner, priority int, req Request) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waiters[owner] != nil {
		return false, ErrPending
	}
	m.seq++
	grants, err := m.st.Request(owner, req, priority, m.seq)
	if err != nil {
		return false, err
	}
	m.wakeLocked(grants)
	if _, _, waiting := m.st.WaitingOn(owner); waiting {
		m.wakeLocked(m.st.Cancel(owner))
		return false, nil
	}
	return true, nil
}

// SetPriority changes the priority of owner's pending request, if any,
// which may grant it (or others) at once (see State.SetPriority).
func (m *Manager) SetPriority(owner Owner, priority int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wakeLocked(m.st.SetPriority(owner, priority))
}

// Holds returns what owner holds (see State.Holds).
func (m *Manager) Holds(owner Owner) []LevelHold {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Holds(owner)
}

// Declare makes locks known to Snapshot even while unused (see
// State.Declare).
func (m *Manager) Declare(level Level, names ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Declare(level, names...)
}

// Undeclare forgets declared locks (see State.Undeclare).
func (m *Manager) Undeclare(level Level, names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.Undeclare(level, names...)
}

// Snapshot describes every lock, its mode, owners and waiters (see
// State.Snapshot).
func (m *Manager) Snapshot() []LockInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Snapshot()
}
