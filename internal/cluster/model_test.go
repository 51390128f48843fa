package cluster

// An explicit-state model checker for jobq's election and replication
// protocol (SPEC §8, "The election must be correct").
//
// The model is a small cluster of voters explored exhaustively, breadth
// first, over every interleaving of its actions, with a set of visited
// states. Every decision a node takes is made by the real functions of this
// package (Voter.Vote, Voter.Observe, Voter.AcceptWrite, Accept,
// AcceptResync, NewTally/Tally.Add/Won/Newest, Majority), called through the
// rules table below, so the model checks the code, not a copy of it. A
// mutation swaps one rule for a broken one, and the checker must then find a
// violation (TestModelMutations): the checker is shown able to fail.
//
// # What is modelled
//
//   - Nodes n0..nN-1, all online master candidates, so all voters. Durable
//     per node: the voter record (Voter), the replication position
//     (Position), the queue content, and the epoch the node was made master
//     of, if any (the configuration naming it). Volatile: a running
//     master-failover, with the ballots received.
//   - The queue content is abstract: the set of batches applied, a batch
//     being named by its master's epoch and its sequence number, a bit set
//     (bit (E-1)*maxSeq+(S-1) is batch E/S).
//   - n0 is master of epoch 1; every node starts at position 1/0 with an
//     empty queue and the voter record {1, n0}.
//   - The master of epoch E writes up to writes[E] batches: it applies the
//     batch itself, if its own voter record still accepts writes of epoch E
//     (a master that voted for a newer epoch has stepped down), then sends
//     it to every peer. A peer applies a batch if AcceptWrite and Accept
//     allow, and records the epoch (Observe).
//   - A batch is acknowledged to the client (it enters the ghost set acked)
//     once a majority of the voters, the master included, has been at a
//     position at or past it. That is the earliest the master can count the
//     replies; counting them at once gives every acknowledgement the daemon
//     can give and more (also after the master has crashed or stepped down),
//     so the check is, if anything, stricter than the daemon.
//   - At any time a master may send a resync to any peer: its whole queue and
//     position E/S. How a replica applies it is the resyncMode: atomically
//     (resyncAtomic: content and position change in one durable step), or in
//     chunks (resyncKeepPosition: the content moves towards the master's
//     while the old position is kept, and the last chunk sets E/S;
//     resyncResetToZero: the first chunk sets the position to zero, the last
//     sets E/S). A chunk is accepted under the same rules as the whole
//     (AcceptWrite, AcceptResync).
//   - Master-failover on any node that is not an acting master, up to
//     maxCampaigns times in all, for the epoch one above the highest it
//     knows (up to maxEpoch): it votes for itself and sends vote requests;
//     a voter answers with Vote, and its ballot reaches the candidate at once
//     or never (a late ballot changes nothing a lost one does not: the
//     candidate decides on the ballots it has). The candidate counts them
//     with a Tally; on Won it takes the queue of Tally.Newest (read when that
//     node is up; any granting voter at the same position is tried too, so
//     the tie-break is free), sets its position to E/0 and is master of E,
//     unless its own voter record has moved to a newer epoch meanwhile.
//     With resyncKeepPosition it may take the queue in chunks too, keeping
//     its old position until it has all of it.
//   - Messages (batches, resyncs, vote requests) are a set: once sent a
//     message can be delivered any number of times, in any order, or never.
//     Handling a message is one atomic step (in the daemon: under the
//     applier's lock, with the durable write done before the answer).
//   - Up to maxCrashes crashes: a crashed node loses its volatile state and
//     keeps its durable state; it restarts at any time.
//
// # Invariants, checked in every state reached
//
//	(a) at most one node wins the election of any epoch;
//	(b) at most one node is master of the highest epoch that has a master,
//	    and at most one acting master (one whose voter record still accepts
//	    its own writes) per epoch;
//	(c) every acknowledged batch is in the queue every master of a later
//	    epoch started from, hence in every later master's queue;
//	(d) a node at position E/S holds exactly the queue the master of E
//	    started from plus that master's batches 1..S (with resyncKeepPosition
//	    a node in the middle of a resync holds at least the acknowledged
//	    ones among those).
//
// Breadth first search gives the shortest trace to a violation, which the
// test prints.
//
// # Reductions
//
// Two reductions keep the state space small; each is shown to lose nothing
// by a test that compares, on a smaller model, the states reached with and
// without it. Messages that can no longer change anything are dropped from
// the network (collect; TestModelCollectLosesNothing), and states that
// differ only in the names of the nodes count once (canonicalKey;
// TestModelSymmetryLosesNothing).
//
// # Not modelled
//
// The set of voters is fixed: configuration changes (adding, removing,
// offlining master candidates) change the majorities and are not checked
// here, nor is the forced failover without a vote (--no-voting). A batch,
// like a resync in resyncAtomic, is applied with its position in one step;
// the content is a set of batches, not files.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/bits"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	maxNodes  = 5
	maxEpochs = 4 // the highest epoch the encodings hold
	maxSeq    = 3 // the most batches a master writes
)

// batches is a queue content: a set of batch ids.
type batches uint16

func batchBit(epoch, seq int8) batches {
	return 1 << ((int(epoch)-1)*maxSeq + int(seq) - 1)
}

// epochsBelow are the batches of the epochs below epoch.
func epochsBelow(epoch int8) batches {
	return batches(1)<<((int(epoch)-1)*maxSeq) - 1
}

func (b batches) String() string {
	var out []string
	for e := int8(1); e <= maxEpochs; e++ {
		for s := int8(1); s <= maxSeq; s++ {
			if b&batchBit(e, s) != 0 {
				out = append(out, fmt.Sprintf("%d/%d", e, s))
			}
		}
	}
	return "{" + strings.Join(out, ",") + "}"
}

// resyncMode is how a replica applies a resync.
type resyncMode int

const (
	resyncAtomic       resyncMode = iota // content and position in one step
	resyncKeepPosition                   // chunks; the old position stays until the last
	resyncResetToZero                    // chunks; the first sets the position to zero
)

func (r resyncMode) String() string {
	return [...]string{"atomic", "keep-position", "reset-to-zero"}[r]
}

// rules are the decisions the nodes take; realRules are this package's.
type rules struct {
	vote            func(v Voter, epoch int64, candidate string) (Voter, bool)
	observe         func(v Voter, epoch int64, master string) Voter
	acceptWrite     func(v Voter, epoch int64, master string) bool
	accept          func(p Position, epoch, seq int64) bool
	acceptResync    func(p Position, epoch, seq int64) bool
	ackMajority     func(n int) int                                // voters that make a write durable
	won             func(t *Tally) bool                            // the candidate has won
	newest          func(t *Tally, self string) (string, Position) // whose queue the winner takes
	masterSelfCheck bool                                           // a master checks AcceptWrite on its own record
}

func realRules() rules {
	return rules{
		vote:            Voter.Vote,
		observe:         Voter.Observe,
		acceptWrite:     Voter.AcceptWrite,
		accept:          Accept,
		acceptResync:    AcceptResync,
		ackMajority:     Majority,
		won:             (*Tally).Won,
		newest:          func(t *Tally, _ string) (string, Position) { return t.Newest() },
		masterSelfCheck: true,
	}
}

// model is one configuration of the checker.
type model struct {
	n            int
	maxEpoch     int8
	writes       [maxEpochs + 1]int8 // the batches the master of each epoch writes
	maxCrashes   int8
	maxCampaigns int8
	resync       resyncMode
	r            rules
	noCollect    bool // keep dead messages (see collect)
	noSymmetry   bool // count states that differ in node names only as different
	// volatileVoter makes a crash forget the voter record (a mutation).
	volatileVoter bool
	variant       string // a changed rule, for describe
	// takeUnchecked makes the winner take the queue and become master
	// without checking that its own voter record still accepts its epoch
	// (a mutation).
	takeUnchecked bool
	// zeroOnFailure lets a replica set its position to zero at any time,
	// keeping its queue, as after a write that failed half-way (a
	// mutation).
	zeroOnFailure bool
	// projections, when not nil, gets the hash of every state reached
	// without its messages (TestModelCollectLosesNothing).
	projections map[[2]uint64]struct{}
	// visit, when not nil, is called with every new state.
	visit func(*state)

	// scratch space
	perms      [][maxNodes]int8
	buf, best  []byte
	scratchNet []uint64
	names      []string
}

func newModel(n int) *model {
	m := &model{n: n, maxEpoch: 3, maxCrashes: 1, maxCampaigns: 2, r: realRules()}
	m.writes[1], m.writes[2], m.writes[3] = 2, 1, 1
	for i := 0; i < n; i++ {
		m.names = append(m.names, fmt.Sprintf("n%d", i))
	}
	m.perms = permutations(n)
	return m
}

func (m *model) describe() string {
	s := fmt.Sprintf("%d voters, epochs up to %d, batches per epoch %v, %d crash(es), %d failover(s), resync %v",
		m.n, m.maxEpoch, m.writes[1:m.maxEpoch+1], m.maxCrashes, m.maxCampaigns, m.resync)
	if m.variant != "" {
		s += ", " + m.variant
	}
	return s
}

// name and index convert between node indexes and names ("" is -1).
func (m *model) name(i int8) string {
	if i < 0 {
		return ""
	}
	return m.names[i]
}

func (m *model) index(name string) int8 {
	if name == "" {
		return -1
	}
	i := slices.Index(m.names, name)
	if i < 0 {
		panic("unknown node " + name)
	}
	return int8(i)
}

// pos is a compact Position.
type pos struct{ e, s int8 }

func (p pos) P() Position    { return Position{Epoch: int64(p.e), Seq: int64(p.s)} }
func (p pos) String() string { return fmt.Sprintf("%d/%d", p.e, p.s) }

type ballotSlot struct {
	has, granted bool
	epoch        int8
	pos          pos
}

type nodeState struct {
	// durable
	up       bool
	vEpoch   int8 // the voter record: epoch
	vFor     int8 // and for whom (-1: nobody)
	pos      pos
	content  batches
	masterOf int8 // the epoch this node was made master of, 0: none
	dirty    bool // ghost: a resyncKeepPosition resync is half done
	// volatile: a running master-failover
	campaign int8 // its epoch, 0: none
	taking   int8 // whose queue the won election takes, -1: not won yet
	ballots  [maxNodes]ballotSlot
}

func (m *model) voter(nd *nodeState) Voter {
	return Voter{Epoch: int64(nd.vEpoch), For: m.name(nd.vFor)}
}

func (m *model) setVoter(nd *nodeState, v Voter) {
	nd.vEpoch, nd.vFor = int8(v.Epoch), m.index(v.For)
}

type state struct {
	nodes [maxNodes]nodeState
	net   []uint64 // the messages sent so far, a sorted set (see msg.pack)

	// ghost state, for the invariants
	winners   [maxEpochs + 1]uint8             // the nodes that won each epoch (bits)
	base      [maxEpochs + 1]batches           // the queue each epoch's master started from
	hasBase   uint8                            // the epochs that have a master (bits)
	written   [maxEpochs + 1]int8              // batches written by each epoch's master
	acks      [maxEpochs + 1][maxSeq + 1]uint8 // voters that reported each batch, until it is acknowledged
	acked     batches                          // batches acknowledged to the client
	crashes   int8
	campaigns int8
}

type msgKind uint64

const (
	mBatch   msgKind = iota + 1 // batch epoch/seq
	mResync                     // the master's queue content at epoch/seq
	mVoteReq                    // vote request for epoch
)

type msg struct {
	kind     msgKind
	from, to int8
	epoch    int8
	seq      int8
	content  batches
}

// pack makes a message an integer, so that the network is a sorted set.
func (g msg) pack() uint64 {
	return uint64(g.kind)<<60 | uint64(g.from)<<56 | uint64(g.to)<<52 |
		uint64(g.epoch)<<48 | uint64(g.seq)<<44 | uint64(g.content)<<28
}

func unpack(u uint64) msg {
	return msg{kind: msgKind(u >> 60), from: int8(u >> 56 & 15), to: int8(u >> 52 & 15),
		epoch: int8(u >> 48 & 15), seq: int8(u >> 44 & 15), content: batches(u >> 28 & 0xffff)}
}

func (m *model) msgString(g msg) string {
	f, t := m.names[g.from], m.names[g.to]
	switch g.kind {
	case mBatch:
		return fmt.Sprintf("batch %d/%d %s->%s", g.epoch, g.seq, f, t)
	case mResync:
		return fmt.Sprintf("resync to %d/%d %v %s->%s", g.epoch, g.seq, g.content, f, t)
	case mVoteReq:
		return fmt.Sprintf("vote request for epoch %d %s->%s", g.epoch, f, t)
	}
	return "?"
}

func (s *state) send(g msg) {
	u := g.pack()
	if i, found := slices.BinarySearch(s.net, u); !found {
		s.net = slices.Insert(slices.Clip(s.net), i, u) // copy on write
	}
}

func (s *state) sent(g msg) bool {
	_, found := slices.BinarySearch(s.net, g.pack())
	return found
}

// less orders compact positions like Position.Less.
func (p pos) less(o pos) bool { return p.P().Less(o.P()) }

// collect drops the messages whose delivery can change nothing any more,
// which keeps the network, and so the number of states, small without
// losing a behaviour. That a message is dead rests on the real rules: a
// voter record's epoch never goes down (Vote, Observe), AcceptWrite refuses
// any epoch below it, and a position never goes back (Accept, AcceptResync,
// a new master's E/0 is above what it held) unless resyncs reset it to
// zero. A model that breaks one of these sets noCollect.
func (m *model) collect(s *state) {
	if m.noCollect || m.resync == resyncResetToZero {
		return
	}
	for k, u := range s.net {
		if m.dead(s, unpack(u)) {
			net := slices.Clone(s.net[:k])
			for _, u := range s.net[k+1:] {
				if !m.dead(s, unpack(u)) {
					net = append(net, u)
				}
			}
			s.net = net
			return
		}
	}
}

func (m *model) dead(s *state, g msg) bool {
	to := &s.nodes[g.to]
	switch g.kind {
	case mBatch:
		// AcceptWrite refuses it; Accept needs position E/seq-1.
		return to.vEpoch > g.epoch || (pos{g.epoch, g.seq - 1}).less(to.pos)
	case mResync:
		// AcceptWrite or AcceptResync refuses it, or it holds what the
		// node holds already.
		p := pos{g.epoch, g.seq}
		return to.vEpoch > g.epoch || p.less(to.pos) || p == to.pos && !to.dirty
	case mVoteReq:
		// The voter's answer is given (or refused) for good, and the
		// candidate no longer counts ballots for the epoch (it never
		// campaigns for an epoch twice: it voted for itself in it).
		c := &s.nodes[g.from]
		return to.vEpoch >= g.epoch && (c.campaign != g.epoch || c.taking >= 0)
	}
	return false
}

func (m *model) initial() state {
	var s state
	for i := 0; i < m.n; i++ {
		s.nodes[i] = nodeState{up: true, vEpoch: 1, vFor: 0, pos: pos{1, 0}, taking: -1}
	}
	s.nodes[0].masterOf = 1
	s.winners[1] = 1
	s.hasBase = 1 << 1
	return s
}

// lineage is what a node at epoch/seq holds.
func (s *state) lineage(p pos) batches {
	b := s.base[p.e]
	for q := int8(1); q <= p.s; q++ {
		b |= batchBit(p.e, q)
	}
	return b
}

// setPos moves node i to p; the master counts the node at p's batches.
func (m *model) setPos(s *state, i int, p pos) {
	s.nodes[i].pos = p
	if p.e == 0 {
		return
	}
	for q := int8(1); q <= p.s; q++ {
		if s.acked&batchBit(p.e, q) != 0 {
			continue // once acknowledged, who reported it no longer matters
		}
		s.acks[p.e][q] |= 1 << i
		if bits.OnesCount8(s.acks[p.e][q]) >= m.r.ackMajority(m.n) {
			s.acked |= batchBit(p.e, q)
			s.acks[p.e][q] = 0
		}
	}
}

// actingMaster reports whether node i runs the queue: it was made master
// of an epoch its voter record still accepts writes from.
func (m *model) actingMaster(nd *nodeState, i int) bool {
	return nd.masterOf > 0 && m.r.acceptWrite(m.voter(nd), int64(nd.masterOf), m.names[i])
}

// check returns the first invariant the state breaks, "" if none.
func (m *model) check(s *state) string {
	for e := int8(1); e <= m.maxEpoch; e++ {
		if w := s.winners[e]; bits.OnesCount8(w) > 1 {
			return fmt.Sprintf("(a) epoch %d was won by several nodes (%s)", e, m.nodeSet(w))
		}
	}
	high, count := int8(0), 0
	var acting [maxEpochs + 1]int
	for i := 0; i < m.n; i++ {
		nd := &s.nodes[i]
		switch me := nd.masterOf; {
		case me > high:
			high, count = me, 1
		case me == high && me > 0:
			count++
		}
		if m.actingMaster(nd, i) {
			acting[nd.masterOf]++
		}
	}
	if count > 1 {
		return fmt.Sprintf("(b) %d nodes are master of epoch %d", count, high)
	}
	for e, c := range acting {
		if c > 1 {
			return fmt.Sprintf("(b) %d nodes act as master of epoch %d", c, e)
		}
	}
	for e := int8(2); e <= m.maxEpoch; e++ {
		if s.hasBase&(1<<e) == 0 {
			continue
		}
		if lost := s.acked & epochsBelow(e) &^ s.base[e]; lost != 0 {
			return fmt.Sprintf("(c) acknowledged batches %v are not in the queue the master of epoch %d started from, %v", lost, e, s.base[e])
		}
	}
	for i := 0; i < m.n; i++ {
		nd := &s.nodes[i]
		if nd.pos.e == 0 {
			if nd.pos.s != 0 {
				return fmt.Sprintf("(d) %s is at position %v", m.names[i], nd.pos)
			}
			continue
		}
		if s.hasBase&(1<<nd.pos.e) == 0 || nd.pos.s > s.written[nd.pos.e] {
			return fmt.Sprintf("(d) %s is at position %v, which no master wrote", m.names[i], nd.pos)
		}
		want := s.lineage(nd.pos)
		if nd.dirty {
			// (The queue a master of E started from can hold batches
			// of later epochs: it takes the newest voter's queue as it
			// is when it fetches it, and that voter may have followed
			// a newer master meanwhile. Such a node at E/S is never
			// the newest once a later batch is acknowledged.)
			if miss := want & s.acked & epochsBelow(nd.pos.e+1) &^ nd.content; miss != 0 {
				return fmt.Sprintf("(d) %s at %v in the middle of a resync lacks acknowledged batches %v", m.names[i], nd.pos, miss)
			}
		} else if nd.content != want {
			return fmt.Sprintf("(d) %s at %v holds %v, not %v", m.names[i], nd.pos, nd.content, want)
		}
	}
	return ""
}

func (m *model) nodeSet(b uint8) string {
	var out []string
	for i := 0; i < m.n; i++ {
		if b&(1<<i) != 0 {
			out = append(out, m.names[i])
		}
	}
	return strings.Join(out, ",")
}

// action names a transition, for traces.
type action struct {
	kind actionKind
	node int8
	src  int8   // aTakeQueue: whose queue
	msg  uint64 // the message sent or delivered
	arg  batches
}

type actionKind uint8

const (
	aStart actionKind = iota
	aRestart
	aCrash
	aWrite
	aSendResync
	aFailover
	aTakeQueue
	aDeliver
	aResyncStart   // the first chunk of a resync (resyncResetToZero)
	aResyncPartial // some chunks of a resync (resyncKeepPosition)
	aVote          // a vote; the ballot is lost
	aVoteBallot    // a vote; the candidate counts the ballot
	aTakePartial   // part of the newest queue taken (resyncKeepPosition)
	aZero          // position set to zero (zeroOnFailure)
)

var actionNames = [...]string{"start", "restart", "crash", "write a batch on", "send", "failover", "take-queue",
	"deliver", "deliver the first chunk of", "deliver some chunks of", "vote (ballot lost) on", "vote (ballot counted) on", "take-partial",
	"a write fails half-way; position zero on"}

func (m *model) actionString(a action) string {
	if a.msg != 0 {
		s := actionNames[a.kind] + " " + m.msgString(unpack(a.msg))
		if a.kind == aResyncPartial {
			s += fmt.Sprintf(": queue now %v, position kept", a.arg)
		}
		return s
	}
	if a.kind == aTakeQueue {
		return fmt.Sprintf("%s takes the queue of %s, %v, and is master (unless it has voted for a newer epoch meanwhile)", m.names[a.node], m.names[a.src], a.arg)
	}
	if a.kind == aTakePartial {
		return fmt.Sprintf("%s takes part of the queue of %s: queue now %v, position kept", m.names[a.node], m.names[a.src], a.arg)
	}
	if a.kind == aFailover {
		return m.names[a.node] + " starts master-failover (and votes for itself)"
	}
	return actionNames[a.kind] + " " + m.names[a.node]
}

// stateString describes a state, for traces.
func (m *model) stateString(s *state) string {
	var b strings.Builder
	for i := 0; i < m.n; i++ {
		nd := &s.nodes[i]
		fmt.Fprintf(&b, "%s: up=%v voted=%d/%s pos=%v queue=%v master-of=%d campaign=%d\n",
			m.names[i], nd.up, nd.vEpoch, m.name(nd.vFor), nd.pos, nd.content, nd.masterOf, nd.campaign)
	}
	fmt.Fprintf(&b, "acknowledged=%v", s.acked)
	return b.String()
}

// tally counts node i's ballots with the package's Tally. When the
// election is won it returns the nodes whose queue the winner may take:
// the one Tally.Newest names and every other granting voter at the same
// position. Which of those Newest picks (the first name) must not matter,
// so the model tries them all; that also keeps the model symmetric in the
// node names (see canonical).
func (m *model) tally(s *state, i int8) (choices uint8) {
	nd := &s.nodes[i]
	t := NewTally(int64(nd.campaign), m.names)
	for j := 0; j < m.n; j++ {
		if b := nd.ballots[j]; b.has {
			t.Add(Ballot{Voter: m.names[j], Granted: b.granted, Epoch: int64(b.epoch), Position: b.pos.P()})
		}
	}
	if !m.r.won(t) {
		return 0
	}
	name, p := m.r.newest(t, m.names[i])
	choices = 1 << m.index(name)
	for j := 0; j < m.n; j++ {
		if b := nd.ballots[j]; b.has && b.granted && b.epoch == nd.campaign && b.pos.P() == p {
			choices |= 1 << j
		}
	}
	return choices
}

// won records that node i won its election and takes the queue of node
// from.
func (m *model) won(s *state, i int8, from int) {
	s.winners[s.nodes[i].campaign] |= 1 << i
	s.nodes[i].taking = int8(from)
}

// successors calls emit for every state one action away from s.
func (m *model) successors(s *state, emit func(action, *state)) {
	for ii := 0; ii < m.n; ii++ {
		i := int8(ii)
		nd := &s.nodes[i]
		self := m.names[i]
		if !nd.up {
			ns := *s
			ns.nodes[i].up = true
			emit(action{kind: aRestart, node: i}, &ns)
			continue
		}
		if s.crashes < m.maxCrashes {
			ns := *s
			ns.crashes++
			c := &ns.nodes[i]
			c.up, c.campaign, c.taking, c.ballots = false, 0, -1, [maxNodes]ballotSlot{}
			if m.volatileVoter {
				c.vEpoch, c.vFor = c.pos.e, -1
			}
			emit(action{kind: aCrash, node: i}, &ns)
		}
		if m.zeroOnFailure && nd.pos != (pos{}) && nd.masterOf == 0 {
			ns := *s
			ns.nodes[i].pos = pos{}
			emit(action{kind: aZero, node: i}, &ns)
		}
		// The master writes a batch: applies it, then sends it.
		if e := nd.masterOf; e > 0 && s.written[e] < m.writes[e] && nd.pos == (pos{e, s.written[e]}) &&
			(!m.r.masterSelfCheck || m.r.acceptWrite(m.voter(nd), int64(e), self)) {
			ns := *s
			seq := s.written[e] + 1
			ns.written[e] = seq
			ns.nodes[i].content |= batchBit(e, seq)
			m.setPos(&ns, ii, pos{e, seq})
			for j := int8(0); j < int8(m.n); j++ {
				if j != i {
					ns.send(msg{kind: mBatch, from: i, to: j, epoch: e, seq: seq})
				}
			}
			emit(action{kind: aWrite, node: i}, &ns)
		}
		// The master sends a resync to a peer.
		if e := nd.masterOf; e > 0 && nd.pos.e == e &&
			(!m.r.masterSelfCheck || m.r.acceptWrite(m.voter(nd), int64(e), self)) {
			for j := int8(0); j < int8(m.n); j++ {
				g := msg{kind: mResync, from: i, to: j, epoch: e, seq: nd.pos.s, content: nd.content}
				if j == i || s.sent(g) {
					continue
				}
				ns := *s
				ns.send(g)
				emit(action{kind: aSendResync, node: i, msg: g.pack()}, &ns)
			}
		}
		// Master-failover starts: the candidate votes for itself.
		if nd.campaign == 0 && s.campaigns < m.maxCampaigns && !m.actingMaster(nd, ii) {
			e := max(nd.vEpoch, nd.pos.e, nd.masterOf) + 1
			if nv, ok := m.r.vote(m.voter(nd), int64(e), self); ok && e <= m.maxEpoch {
				ns := *s
				ns.campaigns++
				c := &ns.nodes[i]
				m.setVoter(c, nv)
				c.campaign, c.taking = e, -1
				c.ballots = [maxNodes]ballotSlot{}
				c.ballots[i] = ballotSlot{has: true, granted: true, epoch: int8(nv.Epoch), pos: nd.pos}
				for j := int8(0); j < int8(m.n); j++ {
					if j != i {
						ns.send(msg{kind: mVoteReq, from: i, to: j, epoch: e})
					}
				}
				choices := m.tally(&ns, i)
				if choices == 0 {
					emit(action{kind: aFailover, node: i}, &ns)
				}
				for j := 0; j < m.n; j++ {
					if choices&(1<<j) != 0 {
						ns := ns
						m.won(&ns, i, j)
						emit(action{kind: aFailover, node: i}, &ns)
					}
				}
			}
		}
		// The winner takes the newest queue and becomes master.
		if nd.campaign > 0 && nd.taking >= 0 && s.nodes[nd.taking].up {
			ns := *s
			c := &ns.nodes[i]
			e := c.campaign
			if m.takeUnchecked || m.r.acceptWrite(m.voter(c), int64(e), self) {
				c.content = s.nodes[nd.taking].content
				c.dirty = false
				c.masterOf = e
				m.setPos(&ns, ii, pos{e, 0})
				ns.base[e] = c.content
				ns.hasBase |= 1 << e
			}
			c.campaign, c.taking, c.ballots = 0, -1, [maxNodes]ballotSlot{}
			emit(action{kind: aTakeQueue, node: i, src: nd.taking, arg: ns.nodes[i].content}, &ns)
			if m.resync == resyncKeepPosition && (m.takeUnchecked || m.r.acceptWrite(m.voter(nd), int64(nd.campaign), self)) {
				// Taking the queue in chunks, like a resync: the old
				// position stays until the whole queue is there. Each
				// chunk is a write of epoch E to itself, checked like any
				// (without the check a candidate that has followed a newer
				// master meanwhile would mix an older queue into it).
				src := s.nodes[nd.taking].content
				keep, diff := nd.content&src, nd.content^src
				for sub := diff; ; sub = (sub - 1) & diff {
					if mix := keep | sub; mix != nd.content && mix != src {
						ns := *s
						ns.nodes[i].content, ns.nodes[i].dirty = mix, true
						emit(action{kind: aTakePartial, node: i, src: nd.taking, arg: mix}, &ns)
					}
					if sub == 0 {
						break
					}
				}
			}
		}
	}
	// Message deliveries.
	for _, u := range s.net {
		g := unpack(u)
		nd := &s.nodes[g.to]
		if !nd.up {
			continue
		}
		from := m.names[g.from]
		v := m.voter(nd)
		switch g.kind {
		case mBatch:
			if m.r.acceptWrite(v, int64(g.epoch), from) && m.r.accept(nd.pos.P(), int64(g.epoch), int64(g.seq)) {
				ns := *s
				c := &ns.nodes[g.to]
				m.setVoter(c, m.r.observe(v, int64(g.epoch), from))
				c.content |= batchBit(g.epoch, g.seq)
				m.setPos(&ns, int(g.to), pos{g.epoch, g.seq})
				emit(action{kind: aDeliver, msg: u}, &ns)
			}
		case mResync:
			if !m.r.acceptWrite(v, int64(g.epoch), from) ||
				m.r.acceptResync != nil && !m.r.acceptResync(nd.pos.P(), int64(g.epoch), int64(g.seq)) {
				continue
			}
			nv := m.r.observe(v, int64(g.epoch), from)
			// The whole resync, or its last chunk.
			ns := *s
			c := &ns.nodes[g.to]
			m.setVoter(c, nv)
			c.content, c.dirty = g.content, false
			m.setPos(&ns, int(g.to), pos{g.epoch, g.seq})
			emit(action{kind: aDeliver, msg: u}, &ns)
			switch m.resync {
			case resyncResetToZero:
				// The first chunk: the position becomes zero; the
				// content is not touched yet.
				if nd.pos != (pos{}) {
					ns := *s
					c := &ns.nodes[g.to]
					m.setVoter(c, nv)
					c.pos = pos{}
					emit(action{kind: aResyncStart, msg: u}, &ns)
				}
			case resyncKeepPosition:
				// Some chunks: every batch the master has is written
				// or not yet, every other is removed or not yet.
				keep, diff := nd.content&g.content, nd.content^g.content
				for sub := diff; ; sub = (sub - 1) & diff {
					if mix := keep | sub; mix != nd.content && mix != g.content {
						ns := *s
						c := &ns.nodes[g.to]
						m.setVoter(c, nv)
						c.content, c.dirty = mix, true
						emit(action{kind: aResyncPartial, msg: u, arg: mix}, &ns)
					}
					if sub == 0 {
						break
					}
				}
			}
		case mVoteReq:
			ns := *s
			c := &ns.nodes[g.to]
			nv, ok := m.r.vote(v, int64(g.epoch), from)
			m.setVoter(c, nv)
			// The ballot is lost ...
			if nv != v {
				emit(action{kind: aVote, msg: u}, &ns)
			}
			// ... or counted.
			if cand := &s.nodes[g.from]; cand.up && cand.campaign == g.epoch && cand.taking < 0 {
				ns := ns
				ns.nodes[g.from].ballots[g.to] = ballotSlot{has: true, granted: ok, epoch: int8(nv.Epoch), pos: nd.pos}
				choices := m.tally(&ns, g.from)
				if choices == 0 {
					emit(action{kind: aVoteBallot, msg: u}, &ns)
				}
				for j := 0; j < m.n; j++ {
					if choices&(1<<j) != 0 {
						ns := ns
						m.won(&ns, g.from, j)
						emit(action{kind: aVoteBallot, msg: u}, &ns)
					}
				}
			}
		}
	}
}

var hashSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func hash128(b []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(hashSeeds[0], b), maphash.Bytes(hashSeeds[1], b)}
}

// encode appends the state's encoding with the nodes renamed: new node k
// is old node perm[k], old node i is new node inv[i].
func (m *model) encode(b []byte, s *state, perm, inv *[maxNodes]int8, withNet bool) []byte {
	ref := func(i int8) byte {
		if i < 0 {
			return 0xff
		}
		return byte(inv[i])
	}
	set := func(x uint8) byte {
		var y byte
		for i := 0; i < m.n; i++ {
			if x&(1<<i) != 0 {
				y |= 1 << inv[i]
			}
		}
		return y
	}
	for k := 0; k < m.n; k++ {
		nd := &s.nodes[perm[k]]
		b = append(b, boolByte(nd.up)|boolByte(nd.dirty)<<1, byte(nd.vEpoch), ref(nd.vFor),
			byte(nd.pos.e), byte(nd.pos.s), byte(nd.content), byte(nd.content>>8),
			byte(nd.masterOf), byte(nd.campaign), ref(nd.taking))
		if nd.campaign > 0 {
			for k2 := 0; k2 < m.n; k2++ {
				bs := nd.ballots[perm[k2]]
				b = append(b, boolByte(bs.has)|boolByte(bs.granted)<<1, byte(bs.epoch), byte(bs.pos.e), byte(bs.pos.s))
			}
		}
	}
	for e := 1; e <= int(m.maxEpoch); e++ {
		b = append(b, set(s.winners[e]), byte(s.base[e]), byte(s.base[e]>>8), byte(s.written[e]))
		for _, a := range s.acks[e] {
			b = append(b, set(a))
		}
	}
	b = append(b, s.hasBase, byte(s.acked), byte(s.acked>>8), byte(s.crashes), byte(s.campaigns))
	if !withNet {
		return b
	}
	net := m.scratchNet[:0]
	for _, u := range s.net {
		g := unpack(u)
		g.from, g.to = inv[g.from], inv[g.to]
		net = append(net, g.pack())
	}
	slices.Sort(net)
	m.scratchNet = net
	for _, u := range net {
		b = binary.LittleEndian.AppendUint64(b, u)
	}
	return b
}

// key identifies the state for the visited set: a 128-bit hash of its
// encoding (a collision, which would hide a state, has a probability of
// about states²/2¹²⁹), by default of its canonical encoding, so that
// states that differ only in the names of the nodes count as one.
func (m *model) key(s *state) [2]uint64 {
	if m.projections != nil {
		m.buf = m.encode(m.buf[:0], s, &identity, &identity, false)
		m.projections[hash128(m.buf)] = struct{}{}
	}
	if m.noSymmetry {
		m.buf = m.encode(m.buf[:0], s, &identity, &identity, true)
		return hash128(m.buf)
	}
	return m.canonicalKey(s)
}

var identity = [maxNodes]int8{0, 1, 2, 3, 4}

// canonicalKey is the key of the smallest encoding of the state among all
// renamings of its nodes. The rules compare node names only for equality
// (Vote, AcceptWrite, Tally) or not at all, and the one place where their
// order matters, Tally.Newest's choice among equal positions, is made
// every possible way by the model (see tally), so renaming the nodes of a
// state renames its successors: exploring one state of each class loses no
// behaviour. TestModelSymmetryLosesNothing checks that on a small model.
func (m *model) canonicalKey(s *state) [2]uint64 {
	// Only renamings that sort the nodes by a signature of their own
	// fields are tried; the signature does not depend on the names, so
	// all states of a class try the same encodings and get the same
	// smallest one.
	var sig [maxNodes]uint64
	for i := 0; i < m.n; i++ {
		nd := &s.nodes[i]
		rel := func(j int8) uint64 { // a reference to self, to none, or to another node
			switch j {
			case int8(i):
				return 0
			case -1:
				return 1
			}
			return 2
		}
		sig[i] = uint64(boolByte(nd.up)|boolByte(nd.dirty)<<1)<<56 | uint64(nd.vEpoch)<<52 | rel(nd.vFor)<<50 |
			uint64(nd.pos.e)<<46 | uint64(nd.pos.s)<<42 | uint64(nd.content)<<26 |
			uint64(nd.masterOf)<<22 | uint64(nd.campaign)<<18 | rel(nd.taking)<<16
	}
	var order [maxNodes]int8 // the nodes sorted by signature
	ties := false
	for i := 0; i < m.n; i++ {
		k := i
		for ; k > 0 && sig[order[k-1]] >= sig[i]; k-- {
			ties = ties || sig[order[k-1]] == sig[i]
			order[k] = order[k-1]
		}
		order[k] = int8(i)
		ties = ties || k > 0 && sig[order[k-1]] == sig[i]
	}
	perms := m.perms
	if !ties {
		perms = [][maxNodes]int8{order}
	}
	best := m.best[:0]
	for _, p := range perms {
		ok := true
		for k := 1; k < m.n && ok; k++ {
			ok = sig[p[k-1]] <= sig[p[k]]
		}
		if !ok {
			continue
		}
		var inv [maxNodes]int8
		for k := 0; k < m.n; k++ {
			inv[p[k]] = int8(k)
		}
		m.buf = m.encode(m.buf[:0], s, &p, &inv, true)
		if len(best) == 0 || bytes.Compare(m.buf, best) < 0 {
			best = append(best[:0], m.buf...)
		}
	}
	m.best = best
	return hash128(best)
}

// permutations lists the permutations of 0..n-1.
func permutations(n int) [][maxNodes]int8 {
	if n == 0 {
		return [][maxNodes]int8{{}}
	}
	var out [][maxNodes]int8
	for _, p := range permutations(n - 1) {
		for k := 0; k < n; k++ {
			var q [maxNodes]int8
			copy(q[:k], p[:k])
			q[k] = int8(n - 1)
			copy(q[k+1:n], p[k:n-1])
			out = append(out, q)
		}
	}
	return out
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

type result struct {
	states    int
	edges     int // transitions followed
	depth     int
	violation string
	trace     []string
	last      string // the violating state
	elapsed   time.Duration
	truncated bool // the state limit was reached
}

// explore visits every reachable state breadth first, checking the
// invariants in each; it stops at the first violation, whose trace it
// returns, or after limit states (0: no limit).
func (m *model) explore(limit int) result {
	start := time.Now()
	init := m.initial()
	seen := map[[2]uint64]struct{}{}
	parents := []int32{-1}
	acts := []action{{kind: aStart}}
	seen[m.key(&init)] = struct{}{}
	type item struct {
		s  state
		id int32
	}
	frontier := []item{{init, 0}}
	var res result
	if v := m.check(&init); v != "" {
		return result{states: 1, violation: v, last: m.stateString(&init)}
	}
	for len(frontier) > 0 && res.violation == "" && !res.truncated {
		res.depth++
		var next []item
		for _, it := range frontier {
			m.successors(&it.s, func(a action, ns *state) {
				if res.violation != "" {
					return
				}
				res.edges++
				m.collect(ns)
				k := m.key(ns)
				if _, ok := seen[k]; ok {
					return
				}
				seen[k] = struct{}{}
				if m.visit != nil {
					m.visit(ns)
				}
				id := int32(len(parents))
				parents, acts = append(parents, it.id), append(acts, a)
				if v := m.check(ns); v != "" {
					res.violation, res.last = v, m.stateString(ns)
					for ; id > 0; id = parents[id] {
						res.trace = append(res.trace, m.actionString(acts[id]))
					}
					slices.Reverse(res.trace)
					return
				}
				next = append(next, item{*ns, id})
			})
			if res.violation != "" {
				break
			}
			if limit > 0 && len(parents) >= limit {
				res.truncated = true
				break
			}
		}
		frontier = next
	}
	res.states = len(parents)
	res.elapsed = time.Since(start)
	return res
}

func bigModels() bool { return os.Getenv("JOBQ_MODEL_BIG") == "1" }

// config builds a model: n voters, the batches the masters of epochs 1, 2,
// 3 write, crashes, failovers, the highest epoch, the resync mode.
func config(n int, writes []int8, crashes, failovers, maxEpoch int8, mode resyncMode) *model {
	m := newModel(n)
	m.writes = [maxEpochs + 1]int8{}
	copy(m.writes[1:], writes)
	m.maxCrashes, m.maxCampaigns, m.maxEpoch, m.resync = crashes, failovers, maxEpoch, mode
	if n > maxNodes || maxEpoch > maxEpochs || slices.Max(writes) > maxSeq {
		panic("the model's encodings hold at most 5 nodes, 4 epochs and 3 batches an epoch")
	}
	return m
}

func (res result) report() string {
	return fmt.Sprintf("%s\ntrace (%d steps):\n  %s\nstate reached:\n%s", res.violation, len(res.trace), strings.Join(res.trace, "\n  "), res.last)
}

// TestModel checks the protocol exhaustively: every state reachable in
// each configuration keeps the invariants. The state counts are logged
// (go test -v). JOBQ_MODEL_BIG=1 adds bigger configurations (minutes).
func TestModel(t *testing.T) {
	type cfg struct {
		name string
		m    *model
		big  bool // only with JOBQ_MODEL_BIG=1
		race bool // also under the race detector (which makes it ~6 times slower)
	}
	cfgs := []cfg{
		{"3-voters", config(3, []int8{2, 1, 1}, 1, 2, 3, resyncAtomic), false, true},
		{"3-voters-chunked-resync", config(3, []int8{1, 1, 1}, 1, 2, 3, resyncKeepPosition), false, false},
		{"3-voters-chunked-resync-small", config(3, []int8{1, 1}, 1, 2, 2, resyncKeepPosition), false, true},
		{"5-voters-two-candidates", config(5, []int8{1}, 0, 2, 2, resyncAtomic), false, true},
		{"5-voters-crash", config(5, []int8{1}, 1, 2, 2, resyncAtomic), false, false},
		// A node that voted for a losing candidate of epoch E refuses the
		// winner's writes of E (Voter.AcceptWrite wants the master it voted
		// for), so it stays behind until a newer epoch. The rule Raft uses,
		// accepting any master of an epoch at least the voted one, is as
		// safe here (given that only winners act as masters: no forced
		// failover):
		{"3-voters-any-master-of-the-epoch", anyMasterOfTheEpoch(config(3, []int8{2, 1}, 1, 2, 3, resyncAtomic)), false, false},

		{"big/3-voters-any-master-of-the-epoch", anyMasterOfTheEpoch(config(3, []int8{2, 1, 1}, 1, 2, 3, resyncAtomic)), true, true},
		{"big/3-voters-2-crashes-3-failovers", config(3, []int8{2, 1, 1}, 2, 3, 3, resyncAtomic), true, true},
		{"big/3-voters-chunked-resync", config(3, []int8{2, 1, 1}, 1, 2, 3, resyncKeepPosition), true, true},
		{"big/5-voters-3-epochs", config(5, []int8{1, 1}, 0, 2, 3, resyncAtomic), true, true},
		{"big/5-voters-two-batches", config(5, []int8{2, 1}, 0, 2, 2, resyncAtomic), true, true},
	}
	for _, c := range cfgs {
		t.Run(c.name, func(t *testing.T) {
			switch {
			case c.big && !bigModels():
				t.Skip("set JOBQ_MODEL_BIG=1 to explore it")
			case raceEnabled && !c.race && !bigModels():
				t.Skip("too slow under the race detector; a smaller configuration runs instead")
			}
			res := c.m.explore(0)
			t.Logf("%s: %d states, %d transitions, depth %d, %v", c.m.describe(), res.states, res.edges, res.depth, res.elapsed.Round(time.Millisecond))
			if res.violation != "" {
				t.Fatal(res.report())
			}
		})
	}
}

func anyMasterOfTheEpoch(m *model) *model {
	m.r.acceptWrite = func(v Voter, epoch int64, _ string) bool { return epoch >= v.Epoch }
	m.variant = "writes accepted from any master of an epoch at least the voted one"
	return m
}

// mutation is a deliberately broken rule; the checker must find that it
// breaks an invariant.
type mutation struct {
	name  string
	apply func(m *model)
	want  string // the invariant it breaks: "(a)", "(c)", ...
}

var mutations = []mutation{
	{"a voter votes twice in an epoch", func(m *model) {
		m.r.vote = func(v Voter, epoch int64, candidate string) (Voter, bool) {
			if epoch >= v.Epoch {
				return Voter{Epoch: epoch, For: candidate}, true
			}
			return v, false
		}
		m.noCollect = true
	}, "(a)"},
	{"a voter forgets its vote in a crash (the record is not durable)", func(m *model) {
		m.volatileVoter = true
		m.noCollect = true
	}, "(a)"},
	{"a candidate wins without a majority", func(m *model) {
		m.r.won = func(t *Tally) bool { return t.Granted() >= Majority(len(t.Voters))-1 }
	}, "(a)"},
	{"the winner takes its own queue, not the newest", func(m *model) {
		m.r.newest = func(_ *Tally, self string) (string, Position) { return self, Position{Epoch: -1} }
	}, "(c)"},
	{"a write is acknowledged on a minority", func(m *model) {
		m.r.ackMajority = func(n int) int { return n / 2 }
	}, "(c)"},
	{"the master goes on writing after voting for a newer epoch", func(m *model) {
		m.r.masterSelfCheck = false
	}, "(c)"},
	{"a node accepts writes from an older epoch's master", func(m *model) {
		m.r.acceptWrite = func(Voter, int64, string) bool { return true }
		m.noCollect = true
	}, "(c)"},
	{"a replica applies a batch that does not follow its position", func(m *model) {
		m.r.accept = func(p Position, epoch, seq int64) bool { return p.Epoch == epoch && p.Seq < seq }
		m.noCollect = true
	}, "(d)"},
	{"a replica applies a late resync older than its position (no AcceptResync)", func(m *model) {
		m.r.acceptResync = nil
		m.noCollect = true
	}, "(c)"},
	{"the winner takes the queue in chunks after following a newer master", func(m *model) {
		m.resync = resyncKeepPosition
		m.takeUnchecked = true // positions may go back: no collect
		m.noCollect = true
		m.writes[1], m.writes[2] = 1, 0
	}, "(d)"},
	{"a replica resets its position to zero after a failed write", func(m *model) {
		m.zeroOnFailure = true
		m.noCollect = true
	}, "(c)"},
	{"a chunked resync resets the position to zero first", func(m *model) {
		m.resync = resyncResetToZero
	}, "(c)"},
}

// TestModelMutations runs the checker with each broken rule: it must find
// the violation (and logs the shortest trace to it), which shows that the
// checker can fail and that each rule is needed.
func TestModelMutations(t *testing.T) {
	for _, mu := range mutations {
		t.Run(strings.ReplaceAll(mu.name, " ", "-"), func(t *testing.T) {
			m := config(3, []int8{2, 1, 1}, 1, 2, 3, resyncAtomic)
			mu.apply(m)
			res := m.explore(5_000_000)
			if res.violation == "" || res.truncated {
				t.Fatalf("%s: no violation found in %d states (%s)", mu.name, res.states, m.describe())
			}
			if !strings.HasPrefix(res.violation, mu.want) {
				t.Errorf("%s: violation %s, want one of %s", mu.name, res.violation, mu.want)
			}
			t.Logf("%s: found after %d states, %v:\n%s", mu.name, res.states, res.elapsed.Round(time.Millisecond), res.report())
		})
	}
}

// TestModelCollectLosesNothing shows on small configurations that dropping
// dead messages (collect) loses no behaviour: the states reached, messages
// aside, are the same with and without it.
func TestModelCollectLosesNothing(t *testing.T) {
	for _, mode := range []resyncMode{resyncAtomic, resyncKeepPosition} {
		m := config(3, []int8{1, 1}, 1, 2, 2, mode)
		if raceEnabled {
			m.maxCrashes = 0
		}
		sets := [2]map[[2]uint64]struct{}{}
		for k, noCollect := range []bool{false, true} {
			m.noCollect, m.noSymmetry = noCollect, true
			m.projections = map[[2]uint64]struct{}{}
			res := m.explore(0)
			if res.violation != "" {
				t.Fatalf("%s: %s", m.describe(), res.violation)
			}
			t.Logf("%s, collect=%v: %d states, %d without messages, %v", m.describe(), !noCollect, res.states, len(m.projections), res.elapsed)
			sets[k] = m.projections
		}
		if len(sets[0]) != len(sets[1]) {
			t.Fatalf("resync %v: %d states without messages with collect, %d without", mode, len(sets[0]), len(sets[1]))
		}
		for k := range sets[1] {
			if _, ok := sets[0][k]; !ok {
				t.Fatalf("resync %v: a state is reached only without collect", mode)
			}
		}
	}
}

// TestModelSymmetryLosesNothing shows on a small configuration that
// exploring one state per renaming class (canonicalKey) reaches every
// class that the full exploration reaches.
func TestModelSymmetryLosesNothing(t *testing.T) {
	m := config(3, []int8{1, 1}, 1, 2, 2, resyncAtomic)
	classes := func(noSymmetry bool) map[[2]uint64]struct{} {
		m.noSymmetry = noSymmetry
		out := map[[2]uint64]struct{}{}
		m.visit = func(s *state) { out[m.canonicalKey(s)] = struct{}{} }
		res := m.explore(0)
		if res.violation != "" {
			t.Fatalf("%s: %s", m.describe(), res.violation)
		}
		t.Logf("%s, symmetry=%v: %d states, %d classes, %v", m.describe(), !noSymmetry, res.states, len(out), res.elapsed)
		return out
	}
	full, reduced := classes(true), classes(false)
	if len(full) != len(reduced) {
		t.Fatalf("%d classes reached without the reduction, %d with it", len(full), len(reduced))
	}
	for k := range full {
		if _, ok := reduced[k]; !ok {
			t.Fatalf("a class is reached only without the reduction")
		}
	}
}
