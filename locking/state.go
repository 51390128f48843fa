package locking

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Owner identifies who holds or waits for locks: the queue uses job ids.
type Owner int64

// Mode is how a lock is held or wanted.
type Mode uint8

const (
	// Shared is compatible with other shared holders.
	Shared Mode = iota + 1
	// Exclusive is compatible with nothing.
	Exclusive
	// IntentShared is held on a level's LocksetName lock by an owner that
	// holds some names of that level shared. It only appears in grants
	// and introspection; requests use Shared or Exclusive.
	IntentShared
	// IntentExclusive is held on a level's LocksetName lock by an owner
	// that holds some names of that level exclusively.
	IntentExclusive
)

// String returns "shared", "exclusive", "intent-shared" or
// "intent-exclusive".
func (m Mode) String() string {
	switch m {
	case Shared:
		return "shared"
	case Exclusive:
		return "exclusive"
	case IntentShared:
		return "intent-shared"
	case IntentExclusive:
		return "intent-exclusive"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "shared" or "exclusive".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "shared":
		return Shared, nil
	case "exclusive":
		return Exclusive, nil
	}
	return 0, fmt.Errorf("locking: unknown lock mode %q", s)
}

// conflicts[m] is the set (bit 1<<mode) of modes that cannot be held
// together with m: multiple-granularity locking, where a whole level is
// the level's LocksetName lock held Shared or Exclusive, and holding some
// names of a level means holding its LocksetName lock in an intent mode.
var conflicts = [...]uint8{
	Shared:          1<<IntentExclusive | 1<<Exclusive,
	Exclusive:       1<<IntentShared | 1<<IntentExclusive | 1<<Shared | 1<<Exclusive,
	IntentShared:    1 << Exclusive,
	IntentExclusive: 1<<Shared | 1<<Exclusive,
}

func compatible(m Mode, present uint8) bool { return conflicts[m]&present == 0 }

// LocksetName is the name of the lock that stands for a whole level (not
// used at LevelCluster, whose only lock is BGL). A request with All set
// takes it in the requested mode; a request for some names takes it in
// the matching intent mode first, so whole-level and per-name holders
// exclude each other correctly. It is not a valid name in a request.
const LocksetName = "[lockset]"

// LockID names one lock.
type LockID struct {
	Level Level
	Name  string
}

// String returns "level/name", e.g. "node/node1.example.com" or
// "cluster/BGL".
func (id LockID) String() string { return id.Level.String() + "/" + id.Name }

// CompareLockID orders locks the way they are acquired: by level, then
// the level's LocksetName lock, then names in sorted order.
func CompareLockID(a, b LockID) int {
	if c := cmp.Compare(a.Level, b.Level); c != 0 {
		return c
	}
	if a.Name == b.Name {
		return 0
	}
	if a.Name == LocksetName {
		return -1
	}
	if b.Name == LocksetName {
		return 1
	}
	return cmp.Compare(a.Name, b.Name)
}

// Request is what an opcode asks for at one level.
type Request struct {
	Level Level
	// Names are the locks wanted; order and duplicates do not matter,
	// they are acquired in sorted order.
	Names []string
	// Mode is Shared or Exclusive, for every name.
	Mode Mode
	// All asks for the whole level: every name, those that exist now and
	// those that will (Ganeti's ALL_SET). Names must then be empty.
	All bool
}

// Grant reports that Owner now holds Lock in Mode. Done is set on the
// grant that completes the owner's pending request: the caller wakes the
// owner then.
type Grant struct {
	Owner Owner
	Lock  LockID
	Mode  Mode
	Done  bool
}

func (g Grant) String() string {
	s := fmt.Sprintf("%d %s %s", g.Owner, g.Lock, g.Mode)
	if g.Done {
		s += " done"
	}
	return s
}

// Errors returned by State and Manager.
var (
	// ErrLevelOrder: the owner already holds locks at this level or a
	// later one.
	ErrLevelOrder = errors.New("locking: locks must be acquired in level order")
	// ErrPending: the owner already has a request waiting.
	ErrPending = errors.New("locking: owner already has a pending request")
	// ErrInvalid: the request is malformed (unknown level or mode, bad
	// name, All together with names).
	ErrInvalid = errors.New("locking: invalid request")
	// ErrCanceled: the pending request was withdrawn by Cancel, Release or
	// ReleaseAll while Acquire waited.
	ErrCanceled = errors.New("locking: lock request canceled")
)

// step is one lock a request takes, in order.
type step struct {
	id   LockID
	mode Mode
}

// pending is an owner's request that is not complete yet. It waits in the
// queue of steps[next].id; steps[:next] are held.
type pending struct {
	owner Owner
	level Level
	steps []step
	next  int
	prio  int
	seq   uint64
}

func (p *pending) before(q *pending) bool {
	if p.prio != q.prio {
		return p.prio < q.prio
	}
	if p.seq != q.seq {
		return p.seq < q.seq
	}
	return p.owner < q.owner
}

type lockState struct {
	id      LockID
	holders map[Owner]Mode
	count   [IntentExclusive + 1]int // holders per mode
	queue   []*pending               // waiters in precedence order
}

func (l *lockState) heldMask() uint8 {
	var m uint8
	for mode, n := range l.count {
		if n > 0 {
			m |= 1 << mode
		}
	}
	return m
}

type ownerState struct {
	held    map[LockID]Mode
	pending *pending
}

// State is the pure decision core of the lock manager: which owner holds
// which lock in which mode, and who waits for what, in which order. It has
// no goroutines, clock or channels; every operation returns the grants it
// made possible so that the caller can wake their owners. It is not safe
// for concurrent use.
//
// Grant rule: a waiter gets a lock when its mode is compatible with every
// holder and with every waiter queued before it. Queues are ordered by
// (priority, arrival sequence): lower priority values first (Ganeti's
// -20..19), then earlier sequence numbers. So a waiting exclusive request
// holds back every later shared request of the same or lower priority and
// cannot be starved by a stream of shared holders.
//
// An owner takes its locks in order: level by level (a Request must be for
// a level above every level it holds), and within a request one lock at a
// time in CompareLockID order, waiting in one queue at a time. It has at
// most one pending request.
type State struct {
	locks    map[LockID]*lockState
	owners   map[Owner]*ownerState
	declared map[LockID]bool
	grants   []Grant // scratch for the operation in progress
}

// NewState returns an empty State. cluster/BGL is always declared.
func NewState() *State {
	return &State{
		locks:    map[LockID]*lockState{},
		owners:   map[Owner]*ownerState{},
		declared: map[LockID]bool{{LevelCluster, BGL}: true},
	}
}

func validName(level Level, name string) bool {
	if level == LevelCluster {
		return name == BGL
	}
	return name != "" && name != LocksetName
}

// Declare makes locks known, so that Snapshot lists them even when nobody
// holds or wants them (Ganeti lists every node's lock). Locks need not be
// declared to be used.
func (s *State) Declare(level Level, names ...string) error {
	if !level.valid() {
		return fmt.Errorf("%w: unknown level %d", ErrInvalid, int(level))
	}
	for _, n := range names {
		if !validName(level, n) {
			return fmt.Errorf("%w: bad lock name %q at level %s", ErrInvalid, n, level)
		}
	}
	for _, n := range names {
		s.declared[LockID{level, n}] = true
	}
	return nil
}

// Undeclare forgets declared locks (a node was removed). Locks in use are
// still listed while they are.
func (s *State) Undeclare(level Level, names ...string) {
	for _, n := range names {
		if level == LevelCluster && n == BGL {
			continue
		}
		delete(s.declared, LockID{level, n})
	}
}

// requestSteps validates r and returns the locks it takes, in order.
func requestSteps(r Request) ([]step, error) {
	if !r.Level.valid() {
		return nil, fmt.Errorf("%w: unknown level %d", ErrInvalid, int(r.Level))
	}
	if r.Mode != Shared && r.Mode != Exclusive {
		return nil, fmt.Errorf("%w: mode must be shared or exclusive, not %s", ErrInvalid, r.Mode)
	}
	if r.All && len(r.Names) > 0 {
		return nil, fmt.Errorf("%w: All together with names", ErrInvalid)
	}
	if r.All {
		name := LocksetName
		if r.Level == LevelCluster {
			name = BGL
		}
		return []step{{LockID{r.Level, name}, r.Mode}}, nil
	}
	names := slices.Clone(r.Names)
	for _, n := range names {
		if !validName(r.Level, n) {
			return nil, fmt.Errorf("%w: bad lock name %q at level %s", ErrInvalid, n, r.Level)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return nil, nil
	}
	steps := make([]step, 0, len(names)+1)
	if r.Level != LevelCluster {
		intent := IntentShared
		if r.Mode == Exclusive {
			intent = IntentExclusive
		}
		steps = append(steps, step{LockID{r.Level, LocksetName}, intent})
	}
	for _, n := range names {
		steps = append(steps, step{LockID{r.Level, n}, r.Mode})
	}
	return steps, nil
}

func (s *State) owner(o Owner) *ownerState {
	os := s.owners[o]
	if os == nil {
		os = &ownerState{held: map[LockID]Mode{}}
		s.owners[o] = os
	}
	return os
}

func (s *State) gcOwner(o Owner) {
	if os := s.owners[o]; os != nil && os.pending == nil && len(os.held) == 0 {
		delete(s.owners, o)
	}
}

func (s *State) lock(id LockID) *lockState {
	l := s.locks[id]
	if l == nil {
		l = &lockState{id: id, holders: map[Owner]Mode{}}
		s.locks[id] = l
	}
	return l
}

func (s *State) gcLock(l *lockState) {
	if len(l.holders) == 0 && len(l.queue) == 0 {
		delete(s.locks, l.id)
	}
}

func (s *State) take() []Grant {
	g := s.grants
	s.grants = nil
	return g
}

// Request queues owner's request r with the given priority (lower is more
// urgent) and arrival sequence number (callers hand out increasing
// numbers; ties are broken by owner). It grants what it can at once; the
// returned grants are the requester's own (a new request never unblocks
// anyone else). If none of them is Done, the request waits: see WaitingOn.
// A request for no names completes at once with no grants.
func (s *State) Request(owner Owner, r Request, priority int, seq uint64) ([]Grant, error) {
	steps, err := requestSteps(r)
	if err != nil {
		return nil, err
	}
	if os := s.owners[owner]; os != nil {
		if os.pending != nil {
			return nil, fmt.Errorf("%w (owner %d, level %s)", ErrPending, owner, os.pending.level)
		}
		top := Level(-1)
		for id := range os.held {
			top = max(top, id.Level)
		}
		if top >= r.Level {
			return nil, fmt.Errorf("%w: owner %d holds locks at level %s and requested level %s", ErrLevelOrder, owner, top, r.Level)
		}
	}
	if len(steps) == 0 {
		return nil, nil
	}
	p := &pending{owner: owner, level: r.Level, steps: steps, prio: priority, seq: seq}
	s.owner(owner).pending = p
	s.enqueue(p)
	return s.take(), nil
}

// enqueue puts p in the queue of its current step and grants what became
// possible there (only p can be: a new waiter only adds constraints).
func (s *State) enqueue(p *pending) {
	l := s.lock(p.steps[p.next].id)
	i, _ := slices.BinarySearchFunc(l.queue, p, func(a, b *pending) int {
		if a.before(b) {
			return -1
		}
		return 1
	})
	l.queue = slices.Insert(l.queue, i, p)
	s.pump(l)
}

// pump grants every waiter of l that is compatible with the holders and
// with every waiter before it, in queue order, and moves the granted
// requests on to their next lock.
func (s *State) pump(l *lockState) {
	held := l.heldMask()
	var ahead uint8
	for i := 0; i < len(l.queue); {
		p := l.queue[i]
		m := p.steps[p.next].mode
		if !compatible(m, held) || !compatible(m, ahead) {
			ahead |= 1 << m
			if ahead&(1<<Exclusive) != 0 {
				break // nothing later can be granted
			}
			i++
			continue
		}
		l.queue = slices.Delete(l.queue, i, i+1)
		l.holders[p.owner] = m
		l.count[m]++
		held |= 1 << m
		os := s.owners[p.owner]
		os.held[l.id] = m
		p.next++
		done := p.next == len(p.steps)
		s.grants = append(s.grants, Grant{Owner: p.owner, Lock: l.id, Mode: m, Done: done})
		if done {
			os.pending = nil
		} else {
			s.enqueue(p) // a later lock: this does not touch l
		}
	}
	s.gcLock(l)
}

func (s *State) removeWaiter(p *pending) *lockState {
	l := s.locks[p.steps[p.next].id]
	i := slices.Index(l.queue, p)
	l.queue = slices.Delete(l.queue, i, i+1)
	return l
}

func (s *State) drop(owner Owner, os *ownerState, id LockID) *lockState {
	l := s.locks[id]
	m := l.holders[owner]
	delete(l.holders, owner)
	l.count[m]--
	delete(os.held, id)
	return l
}

// pumpAll pumps the given locks in acquisition order (deterministic).
func (s *State) pumpAll(ls []*lockState) {
	slices.SortFunc(ls, func(a, b *lockState) int { return CompareLockID(a.id, b.id) })
	ls = slices.Compact(ls)
	for _, l := range ls {
		if cur := s.locks[l.id]; cur == l {
			s.pump(l)
		}
	}
}

// cancel withdraws the owner's pending request and releases what it had
// taken, without pumping; it returns the locks touched.
func (s *State) cancel(owner Owner, os *ownerState) []*lockState {
	p := os.pending
	if p == nil {
		return nil
	}
	touched := []*lockState{s.removeWaiter(p)}
	for _, st := range p.steps[:p.next] {
		touched = append(touched, s.drop(owner, os, st.id))
	}
	os.pending = nil
	return touched
}

// Cancel withdraws owner's pending request, if any: it leaves the queue it
// waits in and releases the locks the request had already taken (at its
// level). Locks held from earlier requests stay held.
func (s *State) Cancel(owner Owner) []Grant {
	os := s.owners[owner]
	if os == nil {
		return nil
	}
	s.pumpAll(s.cancel(owner, os))
	s.gcOwner(owner)
	return s.take()
}

// Release releases owner's locks at level: the given names, or every lock
// of the level if names is empty. Names it does not hold are ignored (in
// particular a whole-level hold is only released as a whole, with no
// names). When the last name of a level is released, so is the level's
// intent lock. If the owner's pending request is at this level, it is
// canceled first (as by Cancel).
func (s *State) Release(owner Owner, level Level, names []string) []Grant {
	os := s.owners[owner]
	if os == nil {
		return nil
	}
	var touched []*lockState
	if os.pending != nil && os.pending.level == level {
		touched = s.cancel(owner, os)
	}
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	remaining := 0
	var lockset *LockID
	for id, m := range os.held {
		if id.Level != level {
			continue
		}
		switch {
		case id.Name == LocksetName:
			if m == IntentShared || m == IntentExclusive {
				lockset = &LockID{level, LocksetName}
			} else if len(names) == 0 {
				touched = append(touched, s.drop(owner, os, id))
			}
		case len(names) == 0 || set[id.Name]:
			touched = append(touched, s.drop(owner, os, id))
		default:
			remaining++
		}
	}
	if lockset != nil && remaining == 0 {
		touched = append(touched, s.drop(owner, os, *lockset))
	}
	s.pumpAll(touched)
	s.gcOwner(owner)
	return s.take()
}

// ReleaseAll cancels owner's pending request and releases every lock it
// holds. Afterwards the owner appears nowhere in the State.
func (s *State) ReleaseAll(owner Owner) []Grant {
	os := s.owners[owner]
	if os == nil {
		return nil
	}
	touched := s.cancel(owner, os)
	for id := range os.held {
		touched = append(touched, s.drop(owner, os, id))
	}
	s.pumpAll(touched)
	delete(s.owners, owner)
	return s.take()
}

// SetPriority changes the priority of owner's pending request, keeping its
// arrival sequence, and re-sorts it in the queue it waits in. Raising the
// priority may let it (and nobody else) be granted; lowering it may let
// waiters it was holding back be granted.
func (s *State) SetPriority(owner Owner, priority int) []Grant {
	os := s.owners[owner]
	if os == nil || os.pending == nil || os.pending.prio == priority {
		return nil
	}
	p := os.pending
	s.removeWaiter(p)
	p.prio = priority
	s.enqueue(p) // back into the same queue, which it pumps
	return s.take()
}

// WaitingOn reports the lock owner's pending request waits for, and the
// mode it wants it in.
func (s *State) WaitingOn(owner Owner) (LockID, Mode, bool) {
	os := s.owners[owner]
	if os == nil || os.pending == nil {
		return LockID{}, 0, false
	}
	st := os.pending.steps[os.pending.next]
	return st.id, st.mode, true
}

// Priority reports the priority of owner's pending request.
func (s *State) Priority(owner Owner) (int, bool) {
	os := s.owners[owner]
	if os == nil || os.pending == nil {
		return 0, false
	}
	return os.pending.prio, true
}

// LevelHold is what an owner holds at one level.
type LevelHold struct {
	Level Level
	Mode  Mode // Shared or Exclusive
	// All: the whole level is held (Names is empty).
	All   bool
	Names []string // sorted
}

// Holds returns what owner holds, level by level in acquisition order,
// including locks a pending request has already taken.
func (s *State) Holds(owner Owner) []LevelHold {
	os := s.owners[owner]
	if os == nil {
		return nil
	}
	by := map[Level]*LevelHold{}
	for id, m := range os.held {
		h := by[id.Level]
		if h == nil {
			h = &LevelHold{Level: id.Level}
			by[id.Level] = h
		}
		switch {
		case id.Name != LocksetName:
			h.Mode = m
			h.Names = append(h.Names, id.Name)
		case m == Shared || m == Exclusive:
			h.Mode, h.All = m, true
		case h.Mode == 0:
			h.Mode = Shared
			if m == IntentExclusive {
				h.Mode = Exclusive
			}
		}
	}
	out := make([]LevelHold, 0, len(by))
	for _, h := range by {
		slices.Sort(h.Names)
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b LevelHold) int { return cmp.Compare(a.Level, b.Level) })
	return out
}

// LockInfo describes one lock for introspection (`jobq locks`, LUXI Query
// on "lock", Ganeti's gnt-debug locks fields name, mode, owner, pending).
type LockInfo struct {
	// Name is "level/name", e.g. "cluster/BGL", "node/node1".
	Name string
	ID   LockID
	// Mode is the strongest mode any owner holds, 0 if nobody holds it.
	Mode Mode
	// Owners hold the lock, in increasing order.
	Owners []Owner
	// Pending are the waiters in queue order; consecutive waiters that
	// want the same mode are grouped, as Ganeti shows them.
	Pending []PendingGroup
}

// PendingGroup is a run of waiters that want a lock in the same mode.
type PendingGroup struct {
	Mode   Mode
	Owners []Owner
}

// strength orders modes for LockInfo.Mode.
var strength = [...]int{IntentShared: 1, Shared: 2, IntentExclusive: 3, Exclusive: 4}

// Snapshot describes every lock that is declared, held or waited for, in
// acquisition order. A level's LocksetName lock is listed only when it
// matters: someone holds the whole level or waits for it.
func (s *State) Snapshot() []LockInfo {
	ids := make([]LockID, 0, len(s.locks)+len(s.declared))
	for id := range s.declared {
		if s.locks[id] == nil {
			ids = append(ids, id)
		}
	}
	for id, l := range s.locks {
		if id.Name == LocksetName && len(l.queue) == 0 &&
			l.count[Shared] == 0 && l.count[Exclusive] == 0 {
			continue
		}
		ids = append(ids, id)
	}
	slices.SortFunc(ids, CompareLockID)
	out := make([]LockInfo, 0, len(ids))
	for _, id := range ids {
		info := LockInfo{Name: id.String(), ID: id}
		if l := s.locks[id]; l != nil {
			for o, m := range l.holders {
				info.Owners = append(info.Owners, o)
				if strength[m] > strength[info.Mode] {
					info.Mode = m
				}
			}
			slices.Sort(info.Owners)
			for _, p := range l.queue {
				m := p.steps[p.next].mode
				if n := len(info.Pending); n > 0 && info.Pending[n-1].Mode == m {
					info.Pending[n-1].Owners = append(info.Pending[n-1].Owners, p.owner)
				} else {
					info.Pending = append(info.Pending, PendingGroup{Mode: m, Owners: []Owner{p.owner}})
				}
			}
		}
		out = append(out, info)
	}
	return out
}
