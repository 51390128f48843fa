// Package consensus is the cluster's agreement: one Raft group whose log
// carries everything the nodes agree on, decided by go.etcd.io/raft/v3
// and stored in etcd's write-ahead log, never by rules of our own.
//
// # Why etcd's raft
//
// Two engines were candidates, go.etcd.io/raft/v3 (etcd, CockroachDB,
// TiKV) and github.com/hashicorp/raft (Consul, Nomad, Vault). hashicorp's
// was tried first and refused: since its pull request 526 a node rejects
// the (pre-)vote of any candidate missing from its own latest
// configuration. A voter that was down while two nodes joined and came
// back with the old configuration then refuses to elect the one node
// whose log is complete, and the cluster stays without a master although a
// majority of the new configuration is up (the five-node scenario of
// TestFiveNodeMembershipChangeLosesNothing failed that way). etcd's raft
// grants votes on the freshness of the log alone, as the Raft paper does,
// and has pre-vote, check-quorum, learners, joint consensus, leadership
// transfer and read-index. What it leaves to its user is small and
// well-trodden (etcd's raftexample): persist each Ready's hard state and
// entries before acting on them, send its messages, apply committed
// entries, take snapshots. The log and snapshots are etcd's own
// write-ahead log and snapshotter (go.etcd.io/etcd/server/v3/storage/wal,
// etcdserver/api/snap), not a format of ours.
//
// # What a Node is
//
// A Node is this jobqd's member of the group. Its name is the node's name
// (its Raft id is a hash of the name, see ID) and its address the node's
// node RPC address; messages travel on noderpc streams (stream name
// "raft": mutual TLS on the cluster certificate, no port of their own).
// The log lives in Dir/wal, snapshots in Dir/snap. The StateMachine sees
// each committed entry in order on every node and must decide everything
// from the entry alone.
package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/jobq-dev/jobq/internal/durable"
)

// StreamName is the noderpc stream the engine's messages travel on.
const StreamName = "raft"

// StateMachine is what the log drives. Apply is called for every
// committed entry proposed with Node.Apply, in log order, on every node
// (the leader included), from one goroutine; what it returns is handed to
// the Apply call that proposed the entry, on the leader. After a restart
// the entries since the last snapshot are applied again: a state machine
// that keeps its state on disk must recognise those it already holds (by
// Entry.Index). Snapshot captures the state as of the last entry applied
// (between two Apply calls); Restore replaces the whole state with a
// snapshot's.
type StateMachine interface {
	Apply(e Entry) any
	Snapshot() ([]byte, error)
	Restore(data []byte) error
}

// Entry is one committed log entry.
type Entry struct {
	Index uint64
	Term  uint64
	Data  []byte
}

// Timing is the engine's clock. The zero value takes etcd's defaults: a
// tick every 100ms, a heartbeat every tick, an election after 10 to 20
// ticks without a leader (1-2s); a leader that has not heard from a
// majority for an election timeout steps down (check-quorum).
type Timing struct {
	Tick           time.Duration
	HeartbeatTicks int
	ElectionTicks  int
	// SnapshotEntries applied since the last snapshot make the node take
	// one; TrailingEntries are kept in the log behind it so that a
	// follower slightly behind catches up from the log rather than a
	// snapshot. etcd's defaults: 10,000 and 5,000.
	SnapshotEntries uint64
	TrailingEntries uint64
}

func (t Timing) withDefaults() Timing {
	if t.Tick <= 0 {
		t.Tick = 100 * time.Millisecond
	}
	if t.HeartbeatTicks <= 0 {
		t.HeartbeatTicks = 1
	}
	if t.ElectionTicks <= 0 {
		t.ElectionTicks = 10
	}
	if t.SnapshotEntries == 0 {
		t.SnapshotEntries = envEntries("JOBQ_TEST_SNAPSHOT_ENTRIES", 10000)
	}
	if t.TrailingEntries == 0 {
		t.TrailingEntries = envEntries("JOBQ_TEST_TRAILING_ENTRIES", 5000)
	}
	return t
}

// envEntries is the number in the environment variable name, or def.
// Tests of the real jobqd (test/crash's power loss) set them so that
// snapshots, and the log's compaction behind them, happen within a few
// hundred jobs; they are not a setting for operators.
func envEntries(name string, def uint64) uint64 {
	if n, err := strconv.ParseUint(os.Getenv(name), 10, 64); err == nil && n > 0 {
		return n
	}
	return def
}

// ElectionTimeout is the shortest time without a leader after which a
// follower stands for election.
func (t Timing) ElectionTimeout() time.Duration {
	t = t.withDefaults()
	return t.Tick * time.Duration(t.ElectionTicks)
}

// Config is what Open needs.
type Config struct {
	Dir    string // the engine's files: wal/ and snap/
	Name   string // this node's name
	Addr   string // this node's node RPC address, as the others dial it
	Timing Timing
	// Bootstrap: when Dir holds no state, start a new cluster whose only
	// voter is this node. Without it a node without state waits until a
	// leader adds it. With state, it is ignored.
	Bootstrap bool
	// Listener delivers the streams other nodes open to this one
	// (noderpc.Server.StreamListener(StreamName)); Dial opens one to addr
	// (noderpc.Client.DialStream(ctx, addr, StreamName)).
	Listener net.Listener
	Dial     func(ctx context.Context, addr string) (net.Conn, error)
	FSM      StateMachine
	// DurableState: the state machine keeps its state on disk, always at
	// least as new as the last snapshot (it makes its state durable before
	// returning from Snapshot). At start the engine then does not restore
	// that snapshot into it but only applies the entries after it again,
	// unless a restore of a snapshot received from the leader was cut
	// short, which is done again.
	DurableState bool
	Log          *slog.Logger
}

// Errors of Apply and of the membership calls.
var (
	// ErrNotLeader: this node is not the leader; nothing was proposed.
	ErrNotLeader = errors.New("this node is not the master")
	// ErrOutcomeUnknown: the entry was proposed but the leader lost its
	// place or the caller gave up before it was known to be committed; a
	// later leader may or may not hold it.
	ErrOutcomeUnknown = errors.New("the outcome is unknown: the entry may or may not have been committed")
	// ErrClosed: the node is shut down.
	ErrClosed = errors.New("the consensus engine is shut down")
)

// ID is the Raft id of the node called name: the FNV-1a hash of the name
// (never 0). Names are unique in a cluster; two names with the same hash
// are refused when the second joins.
func ID(name string) uint64 {
	h := fnv.New64a()
	io.WriteString(h, name)
	id := h.Sum64()
	if id == 0 {
		id = 1
	}
	return id
}

// HasState says whether dir holds an engine's state: such a node is a
// member already and is not bootstrapped again.
func HasState(dir string) bool { return walExists(dir) }

// Node is this node's member of the Raft group.
type Node struct {
	cfg    Config
	id     uint64
	timing Timing
	log    *slog.Logger
	rn     raft.Node
	st     *storage
	tr     *transport

	stop    chan struct{}
	done    chan struct{}
	snapReq chan snapRequest
	closeMu sync.Once
	err     error

	mu        sync.Mutex
	members   map[uint64]Member // from the applied configuration changes
	confState *pb.ConfState
	lead      uint64
	state     raft.StateType
	term      uint64
	commit    uint64
	applied   uint64
	snapIndex uint64
	changes   uint64 // leader changes seen
	voteReqs  uint64 // vote and pre-vote requests received
	watchers  []chan struct{}
	onLeader  func(LeaderChange)
	seq       uint64
	waiting   map[uint64]chan result // proposals of this node by sequence
	confMu    sync.Mutex             // one configuration change at a time
}

type result struct {
	val any
	err error
}

// Member is a member of the group.
type Member struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
}

// LeaderChange is reported when the leader this node knows changes.
type LeaderChange struct {
	Leader string // node name; "" when there is none
	Term   uint64
	Self   bool // this node is the new leader
}

// Open starts the node from its state in cfg.Dir (see Config.Bootstrap for
// a node without state).
func Open(cfg Config) (*Node, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" || cfg.Addr == "" || cfg.Listener == nil || cfg.Dial == nil || cfg.FSM == nil {
		return nil, errors.New("consensus.Open needs a name, an address, a listener, a dialer and a state machine")
	}
	if err := durable.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the consensus directory: %w", err)
	}
	n := &Node{
		// Proposals are numbered from a random start, so that an entry a
		// former run of this node proposed (applied late, or again after
		// a restart) never answers a proposal of this run.
		seq: rand.Uint64() >> 1,
		cfg: cfg, id: ID(cfg.Name), timing: cfg.Timing.withDefaults(), log: cfg.Log,
		stop: make(chan struct{}), done: make(chan struct{}), snapReq: make(chan snapRequest),
		members: map[uint64]Member{}, waiting: map[uint64]chan result{},
	}
	existed := walExists(cfg.Dir)
	st, snap, err := openStorage(cfg.Dir, cfg.Log)
	if err != nil {
		return nil, err
	}
	n.st = st
	if snap != nil && !raft.IsEmptySnap(snap) {
		restore := !cfg.DurableState || restoreMarked(cfg.Dir)
		if err := n.restoreSnapshot(snap, restore); err != nil {
			st.close()
			return nil, err
		}
	}
	rc := &raft.Config{
		ID:                        n.id,
		ElectionTick:              n.timing.ElectionTicks,
		HeartbeatTick:             n.timing.HeartbeatTicks,
		Storage:                   st.mem,
		Applied:                   n.applied,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		Logger:                    &raftLogger{l: cfg.Log},
	}
	switch {
	case existed:
		n.rn = raft.RestartNode(rc)
	case cfg.Bootstrap:
		ctx, _ := encodeMemberContext(Member{Name: cfg.Name, Addr: cfg.Addr, Voter: true}, 0, 0)
		n.rn = raft.StartNode(rc, []raft.Peer{{ID: n.id, Context: ctx}})
	default:
		n.rn = raft.RestartNode(rc) // empty: waits for a leader to add it
	}
	n.tr = newTransport(n, cfg.Listener, cfg.Dial)
	go n.run()
	return n, nil
}

// Close stops the node: the engine stops (a leader without handing over;
// TransferLeadership first for a graceful stop), its streams are closed,
// its files closed. The state stays in Dir. Proposals still waiting end
// with ErrClosed.
func (n *Node) Close() error {
	n.closeMu.Do(func() {
		close(n.stop)
		<-n.done
		n.rn.Stop()
		n.tr.close()
		n.err = n.st.close()
		n.failWaiting(ErrClosed)
		n.notify()
	})
	return n.err
}

// Name is this node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Apply proposes data and waits until it is committed and applied here
// (the leader), returning what the state machine answered.
// ErrNotLeader: nothing was proposed. ErrOutcomeUnknown: see there.
func (n *Node) Apply(ctx context.Context, data []byte) (any, error) {
	return n.propose(ctx, kindApp, data)
}

// Barrier waits until an entry proposed now is applied here, and so every
// entry committed before it. A new leader calls it before serving: then
// its state includes every entry of earlier terms.
func (n *Node) Barrier(ctx context.Context) error {
	_, err := n.propose(ctx, kindBarrier, nil)
	return err
}

// Entry kinds, the first byte of a normal entry's data (an empty entry is
// the engine's own, at the start of a term).
const (
	kindApp     byte = 1
	kindBarrier byte = 2
)

const envelopeLen = 1 + 8 + 8 // kind, proposer's id, proposer's sequence

func (n *Node) propose(ctx context.Context, kind byte, data []byte) (any, error) {
	seq, ch, err := n.register()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, envelopeLen+len(data))
	buf[0] = kind
	binary.BigEndian.PutUint64(buf[1:], n.id)
	binary.BigEndian.PutUint64(buf[9:], seq)
	copy(buf[envelopeLen:], data)
	if err := n.rn.Propose(ctx, buf); err != nil {
		n.unregister(seq)
		if errors.Is(err, raft.ErrProposalDropped) {
			return nil, ErrNotLeader
		}
		if errors.Is(err, raft.ErrStopped) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w (%v)", ErrOutcomeUnknown, err)
	}
	return n.await(ctx, seq, ch)
}

// register reserves a sequence number for a proposal of this node, if it
// leads.
func (n *Node) register() (uint64, chan result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.stop:
		return 0, nil, ErrClosed
	default:
	}
	if n.state != raft.StateLeader {
		return 0, nil, ErrNotLeader
	}
	n.seq++
	ch := make(chan result, 1)
	n.waiting[n.seq] = ch
	return n.seq, ch, nil
}

func (n *Node) unregister(seq uint64) {
	n.mu.Lock()
	delete(n.waiting, seq)
	n.mu.Unlock()
}

func (n *Node) await(ctx context.Context, seq uint64, ch chan result) (any, error) {
	select {
	case r := <-ch:
		return r.val, r.err
	case <-ctx.Done():
		n.unregister(seq)
		return nil, fmt.Errorf("%w (%v)", ErrOutcomeUnknown, ctx.Err())
	}
}

// deliver hands a result to this node's waiting proposal seq, if any.
func (n *Node) deliver(seq uint64, r result) {
	n.mu.Lock()
	ch := n.waiting[seq]
	delete(n.waiting, seq)
	n.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// failWaiting ends every waiting proposal with err.
func (n *Node) failWaiting(err error) {
	n.mu.Lock()
	w := n.waiting
	n.waiting = map[uint64]chan result{}
	n.mu.Unlock()
	for _, ch := range w {
		ch <- result{err: err}
	}
}

// Leader is the name of the leader this node knows of ("" when none).
func (n *Node) Leader() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[n.lead].Name
}

func (n *Node) leaderID() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lead
}

// LeaderAddr is the node RPC address of the leader this node knows of.
func (n *Node) LeaderAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[n.lead].Addr
}

// IsLeader says whether this node is the leader now (by its own view).
func (n *Node) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state == raft.StateLeader
}

// State is the engine's state: StateFollower, StateCandidate,
// StatePreCandidate or StateLeader.
func (n *Node) State() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state.String()
}

// Term is the current term.
func (n *Node) Term() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.term
}

// AppliedIndex is the index of the last entry applied here.
func (n *Node) AppliedIndex() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applied
}

// CommitIndex is the index of the last entry this node knows committed.
func (n *Node) CommitIndex() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.commit
}

// Match is, on the leader, the index up to which the member name's log is
// known to match the leader's (0 elsewhere or for a stranger): a learner
// whose Match reaches the leader's commit index has caught up.
func (n *Node) Match(name string) uint64 {
	st := n.rn.Status()
	return st.Progress[ID(name)].Match
}

// LeaderChanges is how many leader changes this node has seen since it
// started.
func (n *Node) LeaderChanges() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changes
}

// VoteRequests is how many vote and pre-vote requests this node has
// received since it started.
func (n *Node) VoteRequests() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.voteReqs
}

// OnLeaderChange sets a function called (from the engine's goroutine, in
// order: keep it short) at every change of the leader this node knows, to
// log and count them. Set it right after Open.
func (n *Node) OnLeaderChange(fn func(LeaderChange)) {
	n.mu.Lock()
	n.onLeader = fn
	n.mu.Unlock()
}

// Changed returns a channel closed at the next change of leader, state
// or term seen here, vote request received, or entry applied.
func (n *Node) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := make(chan struct{})
	n.watchers = append(n.watchers, ch)
	return ch
}

func (n *Node) notify() {
	n.mu.Lock()
	ws := n.watchers
	n.watchers = nil
	n.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// Members is the applied configuration.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	sortMembers(out)
	return out
}
