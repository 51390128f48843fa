package consensus

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/jobq-dev/jobq/internal/durable"
)

// run is the engine's loop, as etcd's raftexample runs it: tick; for each
// Ready make the snapshot, hard state and entries durable, then send the
// messages, then apply what is committed, then Advance.
func (n *Node) run() {
	defer close(n.done)
	ticker := time.NewTicker(n.timing.Tick)
	defer ticker.Stop()
	preTicks := 0 // ticks since this node became a pre-candidate
	for {
		select {
		case <-ticker.C:
			n.rn.Tick()
			preTicks = n.repeatPreVote(preTicks)
		case rd := <-n.rn.Ready():
			if err := n.handle(rd); err != nil {
				// The log cannot be written: this node must not act on
				// what it cannot keep. It stops; its state stays as the
				// log says.
				n.log.Error("consensus engine stopped: cannot keep the log", "err", err)
				n.failWaiting(fmt.Errorf("%w: %v", ErrClosed, err))
				n.setSoft(0, raft.StateFollower)
				return
			}
			n.rn.Advance()
		case req := <-n.snapReq:
			n.maybeSnapshot(true, req.all)
			close(req.done)
		case <-n.stop:
			return
		}
	}
}

// preVoteRepeatTicks is how often a pre-candidate asks the voters again.
const preVoteRepeatTicks = 2

// repeatPreVote has a pre-candidate that has not won ask the voters again
// every preVoteRepeatTicks (it returns the ticks counted since it became
// one). The engine asks again only after another randomized election
// timeout (1-2s), so an answer missing from the first round cost a whole
// timeout: a voter that heard the dead leader a tick later than this node
// ignores a pre-vote while its own lease lasts (check-quorum), and a
// message can be lost on a stream that a restarted peer closed. A pre-vote
// changes no term and no vote, and a voter that hears a leader still
// ignores it, so asking again deposes nobody: it only spares the wait.
func (n *Node) repeatPreVote(ticks int) int {
	n.mu.Lock()
	pre := n.state == raft.StatePreCandidate
	n.mu.Unlock()
	if !pre {
		return 0
	}
	ticks++
	// The engine's own view (the soft state above may lag a Ready): a
	// node that became a candidate meanwhile must not go back to a
	// pre-candidate.
	if ticks%preVoteRepeatTicks == 0 && n.rn.Status().RaftState == raft.StatePreCandidate {
		n.log.Debug("asking the voters again for a pre-vote", "ticks", ticks)
		_ = n.rn.Campaign(context.Background())
	}
	return ticks
}

func (n *Node) handle(rd raft.Ready) error {
	if rd.SoftState != nil {
		n.setSoft(rd.SoftState.Lead, rd.SoftState.RaftState)
	}
	if err := n.st.save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		return err
	}
	if hs := rd.HardState; hs != nil && !raft.IsEmptyHardState(hs) {
		n.mu.Lock()
		termChanged := hs.GetTerm() != n.term
		n.term, n.commit = hs.GetTerm(), hs.GetCommit()
		n.mu.Unlock()
		if termChanged {
			n.notify()
		}
	}
	if sn := rd.Snapshot; sn != nil && !raft.IsEmptySnap(sn) {
		if err := n.restoreSnapshot(sn, true); err != nil {
			return err
		}
	}
	n.tr.send(rd.Messages)
	for _, e := range rd.CommittedEntries {
		n.applyEntry(e)
	}
	if len(rd.CommittedEntries) > 0 {
		n.notify()
		n.maybeSnapshot(false, false)
	}
	return nil
}

// setSoft records the leader and this node's role; proposals waiting on
// a node that stops leading have an unknown outcome.
func (n *Node) setSoft(lead uint64, state raft.StateType) {
	n.mu.Lock()
	wasLeader := n.state == raft.StateLeader
	leaderChanged := lead != n.lead
	n.lead, n.state = lead, state
	if leaderChanged && lead != raft.None {
		n.changes++
	}
	fn := n.onLeader
	name := n.members[lead].Name
	term := n.term
	n.mu.Unlock()
	if wasLeader && state != raft.StateLeader {
		n.failWaiting(ErrOutcomeUnknown)
	}
	if leaderChanged {
		n.log.Info("consensus leader changed", "leader", name, "term", term)
		if fn != nil {
			fn(LeaderChange{Leader: name, Term: term, Self: lead == n.id})
		}
	}
	n.notify()
}

func (n *Node) applyEntry(e *pb.Entry) {
	idx := e.GetIndex()
	switch e.GetType() {
	case pb.EntryNormal:
		n.applyNormal(e)
	case pb.EntryConfChange:
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			panic(fmt.Sprintf("consensus: entry %d: malformed configuration change: %v", idx, err))
		}
		n.applyConfChange(&cc)
	case pb.EntryConfChangeV2:
		var cc pb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			panic(fmt.Sprintf("consensus: entry %d: malformed configuration change: %v", idx, err))
		}
		// Not proposed by jobq (one change at a time, V1); applied as the
		// engine says so that the configuration stays the engine's.
		cs := n.rn.ApplyConfChange(&cc)
		n.mu.Lock()
		n.confState = cs
		n.mu.Unlock()
	}
	n.mu.Lock()
	n.applied = idx
	n.mu.Unlock()
}

func (n *Node) applyNormal(e *pb.Entry) {
	data := e.GetData()
	if len(data) == 0 {
		return // the engine's empty entry at the start of a term
	}
	if len(data) < envelopeLen {
		panic(fmt.Sprintf("consensus: entry %d has %d bytes, fewer than its envelope", e.GetIndex(), len(data)))
	}
	kind := data[0]
	proposer := binary.BigEndian.Uint64(data[1:])
	seq := binary.BigEndian.Uint64(data[9:])
	var res result
	switch kind {
	case kindApp:
		v := n.cfg.FSM.Apply(Entry{Index: e.GetIndex(), Term: e.GetTerm(), Data: data[envelopeLen:]})
		if err, ok := v.(error); ok {
			res.err = err
		} else {
			res.val = v
		}
	case kindBarrier:
	default:
		// A newer jobqd wrote it: applying it wrongly or skipping it would
		// make this node's state differ from the others'.
		panic(fmt.Sprintf("consensus: entry %d has kind %d, which this jobqd does not know: upgrade it", e.GetIndex(), kind))
	}
	if proposer == n.id {
		n.deliver(seq, res)
	}
}

// memberContext is what a configuration change carries besides the id:
// the member's name and address, and which proposal of which node it is.
type memberContext struct {
	Member
	Proposer uint64 `json:"proposer,omitempty"`
	Seq      uint64 `json:"seq,omitempty"`
}

func encodeMemberContext(m Member, proposer, seq uint64) ([]byte, error) {
	return json.Marshal(memberContext{Member: m, Proposer: proposer, Seq: seq})
}

func (n *Node) applyConfChange(cc *pb.ConfChange) {
	var mc memberContext
	if len(cc.GetContext()) > 0 {
		if err := json.Unmarshal(cc.GetContext(), &mc); err != nil {
			n.log.Error("configuration change with a malformed context", "err", err)
		}
	}
	cs := n.rn.ApplyConfChange(cc)
	id := cc.GetNodeId()
	n.mu.Lock()
	n.confState = cs
	switch cc.GetType() {
	case pb.ConfChangeRemoveNode:
		delete(n.members, id)
	default:
		m := n.members[id]
		if mc.Name != "" {
			m.Name = mc.Name
		}
		if mc.Addr != "" {
			m.Addr = mc.Addr
		}
		n.members[id] = m
	}
	for mid, m := range n.members {
		m.Voter = slices.Contains(cs.GetVoters(), mid)
		n.members[mid] = m
	}
	n.mu.Unlock()
	n.log.Info("cluster membership changed", "change", cc.GetType().String(), "node", mc.Name, "voters", n.memberNames(cs.GetVoters()), "learners", n.memberNames(cs.GetLearners()))
	if mc.Proposer == n.id {
		n.deliver(mc.Seq, result{})
	}
}

func (n *Node) memberNames(ids []uint64) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var names []string
	for _, id := range ids {
		names = append(names, n.members[id].Name)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// snapshotData is what a snapshot holds: the members and the state
// machine's bytes.
type snapshotData struct {
	Members map[uint64]Member `json:"members"`
	State   []byte            `json:"state"`
}

func (n *Node) maybeSnapshot(force, all bool) {
	n.mu.Lock()
	applied, last := n.applied, n.snapIndex
	cs := n.confState
	members := make(map[uint64]Member, len(n.members))
	for k, v := range n.members {
		members[k] = v
	}
	n.mu.Unlock()
	if (!force && applied-last < n.timing.SnapshotEntries) || applied == last || cs == nil {
		return
	}
	state, err := n.cfg.FSM.Snapshot()
	if err != nil {
		n.log.Error("cannot take a snapshot of the state", "err", err)
		return
	}
	data, err := json.Marshal(snapshotData{Members: members, State: state})
	if err != nil {
		n.log.Error("cannot encode a snapshot", "err", err)
		return
	}
	trailing := n.timing.TrailingEntries
	if all {
		trailing = 0
	}
	if err := n.st.snapshot(applied, cs, data, trailing); err != nil {
		n.log.Error("cannot store a snapshot", "err", err)
		return
	}
	n.mu.Lock()
	n.snapIndex = applied
	n.mu.Unlock()
	n.log.Debug("snapshot taken", "index", applied)
}

// Snapshot takes a snapshot now, between two Readys (the node also takes
// them by itself, see Timing.SnapshotEntries).
func (n *Node) Snapshot(ctx context.Context) error { return n.snapshot(ctx, false) }

// SnapshotAll takes a snapshot now and drops the whole log before it, so
// that a node added later starts from the snapshot. A node bootstrapped
// over a queue that existed before the log (an upgrade) needs this: its
// older files are in no entry.
func (n *Node) SnapshotAll(ctx context.Context) error { return n.snapshot(ctx, true) }

type snapRequest struct {
	all  bool
	done chan struct{}
}

func (n *Node) snapshot(ctx context.Context, all bool) error {
	req := snapRequest{all: all, done: make(chan struct{})}
	select {
	case n.snapReq <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stop:
		return ErrClosed
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// restoreSnapshot adopts a snapshot's members and index, and its state
// when restore is set. A restore in progress is marked in Dir so that a
// crash in the middle of it is followed by another at start.
func (n *Node) restoreSnapshot(sn *pb.Snapshot, restore bool) error {
	var sd snapshotData
	if err := json.Unmarshal(sn.GetData(), &sd); err != nil {
		return fmt.Errorf("the consensus snapshot at index %d is malformed: %w", sn.GetMetadata().GetIndex(), err)
	}
	if restore {
		if err := markRestore(n.cfg.Dir, true); err != nil {
			return err
		}
		if err := n.cfg.FSM.Restore(sd.State); err != nil {
			return fmt.Errorf("cannot restore the snapshot at index %d: %w", sn.GetMetadata().GetIndex(), err)
		}
		if err := markRestore(n.cfg.Dir, false); err != nil {
			return err
		}
	}
	n.mu.Lock()
	n.members = sd.Members
	if n.members == nil {
		n.members = map[uint64]Member{}
	}
	n.confState = sn.GetMetadata().GetConfState()
	n.applied = sn.GetMetadata().GetIndex()
	n.snapIndex = n.applied
	n.mu.Unlock()
	return nil
}

func restorePath(dir string) string { return filepath.Join(dir, "restoring") }

func restoreMarked(dir string) bool {
	_, err := os.Stat(restorePath(dir))
	return err == nil
}

// markRestore creates or removes the restore mark, durably.
func markRestore(dir string, on bool) error {
	var err error
	if on {
		err = durable.Create(restorePath(dir), 0o600)
	} else {
		err = durable.Remove(restorePath(dir))
	}
	if err != nil {
		return fmt.Errorf("cannot mark the restore of a snapshot: %w", err)
	}
	return nil
}

// Membership. Every change is an entry of the log, proposed by the
// leader, one at a time.

// AddLearner adds the node name at addr as a learner: it receives the log
// but does not vote and counts in no majority, so a node joining cannot
// block submissions while it catches up. For a member it only updates the
// address.
func (n *Node) AddLearner(ctx context.Context, name, addr string) error {
	return n.changeMembers(ctx, "add "+name+" as a non-voter", pb.ConfChangeAddLearnerNode, Member{Name: name, Addr: addr})
}

// Promote makes the member name a voter.
func (n *Node) Promote(ctx context.Context, name string) error {
	m, ok := n.member(name)
	if !ok {
		return fmt.Errorf("cannot make %s a voter: it is not a member", name)
	}
	return n.changeMembers(ctx, "make "+name+" a voter", pb.ConfChangeAddNode, m)
}

// Demote makes the voter name a learner.
func (n *Node) Demote(ctx context.Context, name string) error {
	m, ok := n.member(name)
	if !ok {
		return fmt.Errorf("cannot make %s a non-voter: it is not a member", name)
	}
	return n.changeMembers(ctx, "make "+name+" a non-voter", pb.ConfChangeAddLearnerNode, m)
}

// SetAddr changes the address the other members reach the member name
// at, keeping its vote or its lack of one.
func (n *Node) SetAddr(ctx context.Context, name, addr string) error {
	m, ok := n.member(name)
	if !ok {
		return fmt.Errorf("cannot change the address of %s: it is not a member", name)
	}
	typ := pb.ConfChangeAddLearnerNode
	if m.Voter {
		typ = pb.ConfChangeAddNode
	}
	m.Addr = addr
	return n.changeMembers(ctx, "change the address of "+name, typ, m)
}

// Remove takes the member name out of the group.
func (n *Node) Remove(ctx context.Context, name string) error {
	return n.changeMembers(ctx, "remove "+name, pb.ConfChangeRemoveNode, Member{Name: name})
}

func (n *Node) member(name string) (Member, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.members[ID(name)]
	return m, ok
}

func (n *Node) changeMembers(ctx context.Context, what string, typ pb.ConfChangeType, m Member) error {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	n.mu.Lock()
	if other, ok := n.members[ID(m.Name)]; ok && other.Name != m.Name {
		n.mu.Unlock()
		return fmt.Errorf("cannot %s: its id collides with member %s's; choose another name", what, other.Name)
	}
	n.mu.Unlock()
	// Everything of earlier terms applied first, a configuration change
	// of an earlier leader included: the engine would turn a second one
	// in flight into an empty entry.
	if err := n.Barrier(ctx); err != nil {
		return fmt.Errorf("cannot %s: %w", what, err)
	}
	seq, ch, err := n.register()
	if err != nil {
		return fmt.Errorf("cannot %s: %w", what, err)
	}
	cctx, err := encodeMemberContext(m, n.id, seq)
	if err != nil {
		n.unregister(seq)
		return err
	}
	cc := &pb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(ID(m.Name)), Context: cctx}
	if err := n.rn.ProposeConfChange(ctx, cc); err != nil {
		n.unregister(seq)
		if errors.Is(err, raft.ErrProposalDropped) {
			return fmt.Errorf("cannot %s: %w", what, ErrNotLeader)
		}
		return fmt.Errorf("cannot %s: %w", what, err)
	}
	if _, err := n.await(ctx, seq, ch); err != nil {
		return fmt.Errorf("cannot %s: %w", what, err)
	}
	return nil
}

// TransferLeadership hands the leadership to the voter name and waits
// until this node knows it has it.
//
// A follower may ask for the leadership for itself (name is this node):
// the engine forwards the request to the leader it knows.
func (n *Node) TransferLeadership(ctx context.Context, name string) error {
	self := name == n.cfg.Name
	if !n.IsLeader() && !self {
		return fmt.Errorf("cannot hand the leadership to %s: %w", name, ErrNotLeader)
	}
	m, ok := n.member(name)
	if !ok || !m.Voter {
		return fmt.Errorf("cannot hand the leadership to %s: it is not a voter", name)
	}
	ask := func() {
		if self {
			if lead := n.leaderID(); lead != 0 && lead != n.id {
				n.rn.TransferLeadership(ctx, lead, n.id)
			}
		} else if n.IsLeader() {
			n.rn.TransferLeadership(ctx, n.id, ID(name))
		}
	}
	// The engine gives a transfer up after an election timeout (the
	// target may not yet know it is a voter, or be behind): ask again
	// while this node still leads.
	retry := time.NewTicker(2 * n.timing.ElectionTimeout())
	defer retry.Stop()
	ask()
	for {
		ch := n.Changed()
		if n.Leader() == name {
			return nil
		}
		select {
		case <-ch:
		case <-retry.C:
			ask()
		case <-ctx.Done():
			return fmt.Errorf("cannot hand the leadership to %s: %w", name, ctx.Err())
		case <-n.stop:
			return ErrClosed
		}
	}
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
}

// raftLogger passes the engine's messages to the node's log: Debug and
// Info at Debug (the engine is chatty; leader changes and membership are
// logged by this package), warnings and errors as such. Fatal and Panic
// panic, as the engine expects.
type raftLogger struct{ l *slog.Logger }

func (r *raftLogger) Debug(v ...any)            { r.l.Debug(fmt.Sprint(v...), "component", "raft") }
func (r *raftLogger) Debugf(f string, v ...any) { r.l.Debug(fmt.Sprintf(f, v...), "component", "raft") }
func (r *raftLogger) Info(v ...any)             { r.l.Debug(fmt.Sprint(v...), "component", "raft") }
func (r *raftLogger) Infof(f string, v ...any)  { r.l.Debug(fmt.Sprintf(f, v...), "component", "raft") }
func (r *raftLogger) Warning(v ...any)          { r.l.Warn(fmt.Sprint(v...), "component", "raft") }
func (r *raftLogger) Warningf(f string, v ...any) {
	r.l.Warn(fmt.Sprintf(f, v...), "component", "raft")
}
func (r *raftLogger) Error(v ...any)            { r.l.Error(fmt.Sprint(v...), "component", "raft") }
func (r *raftLogger) Errorf(f string, v ...any) { r.l.Error(fmt.Sprintf(f, v...), "component", "raft") }
func (r *raftLogger) Fatal(v ...any)            { r.Panic(v...) }
func (r *raftLogger) Fatalf(f string, v ...any) { r.Panicf(f, v...) }
func (r *raftLogger) Panic(v ...any)            { s := fmt.Sprint(v...); r.l.Error(s); panic(s) }
func (r *raftLogger) Panicf(f string, v ...any) { s := fmt.Sprintf(f, v...); r.l.Error(s); panic(s) }

// ApplyLog applies to fsm, in order, every entry of the log in dir after
// its last snapshot, whether this node knows it to be committed or not
// (its record of the commit index may lag: it is written without a sync
// between two appends). It is for a node that leaves its group to start a
// new one alone (master-failover --no-voting): what its log holds is all
// there is. The engine of dir must not run. It returns how many entries
// it applied.
func ApplyLog(dir string, fsm StateMachine, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, snap, err := openStorage(dir, log)
	if err != nil {
		return 0, err
	}
	defer st.close()
	first := uint64(1)
	if snap != nil {
		first = snap.GetMetadata().GetIndex() + 1
	}
	last, err := st.mem.LastIndex()
	if err != nil || last < first {
		return 0, err
	}
	ents, err := st.mem.Entries(first, last+1, math.MaxUint64)
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, e := range ents {
		data := e.GetData()
		if e.GetType() != pb.EntryNormal || len(data) < envelopeLen || data[0] != kindApp {
			continue
		}
		if v := fsm.Apply(Entry{Index: e.GetIndex(), Term: e.GetTerm(), Data: data[envelopeLen:]}); v != nil {
			if err, ok := v.(error); ok {
				return applied, fmt.Errorf("log entry %d: %w", e.GetIndex(), err)
			}
		}
		applied++
	}
	return applied, nil
}
