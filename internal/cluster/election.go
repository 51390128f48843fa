package cluster

import (
	"fmt"
	"sort"
)

// Position is how far a node's queue replica has come: the epoch of the
// master that wrote it and the sequence number of the last batch of
// changes applied, in order, from that master. A replica at (E, S) holds
// the effect of every batch that master sent up to S.
//
// A replica's position must never go back below one it has acknowledged:
// its ballots report it, and the winner of an election takes the queue of
// the newest one, so a position that drops (to zero at the start of a
// resync, or after a write failed half-way) can lose acknowledged writes
// (the model checker in model_test.go finds such a trace). A resync is
// therefore applied only if AcceptResync allows it, and either at once
// or, in chunks, keeping the old position until the last chunk sets the
// new one; the chunks only move the files towards the master's (writes
// before removals). A write that fails half-way keeps the old position.
type Position struct {
	Epoch int64 `json:"epoch"`
	Seq   int64 `json:"seq"`
}

// Less orders positions: by epoch, then by sequence.
func (p Position) Less(o Position) bool {
	if p.Epoch != o.Epoch {
		return p.Epoch < o.Epoch
	}
	return p.Seq < o.Seq
}

func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Epoch, p.Seq) }

// Voter is what a node durably records for elections: the highest epoch it
// has voted for (or learnt from a master) and for whom. It is stored
// before the vote is answered.
type Voter struct {
	Epoch int64  `json:"voted_epoch"`
	For   string `json:"voted_for"`
}

// Vote decides a vote request for epoch from candidate: granted when
// the epoch is above every epoch voted for so far, or when it repeats
// the vote already given to the same candidate (a retried request). The
// returned Voter is to be stored before the answer is sent.
func (v Voter) Vote(epoch int64, candidate string) (Voter, bool) {
	switch {
	case epoch > v.Epoch:
		return Voter{Epoch: epoch, For: candidate}, true
	case epoch == v.Epoch && v.For == candidate:
		return v, true
	}
	return v, false
}

// Observe records that a master of epoch exists (it wrote to us, or a
// configuration of that epoch arrived): no vote for an older or equal
// epoch can be given any more.
func (v Voter) Observe(epoch int64, master string) Voter {
	if epoch > v.Epoch {
		return Voter{Epoch: epoch, For: master}
	}
	return v
}

// Follow records that master won the election of epoch (its
// configuration says so): a node that voted in that epoch for another
// candidate — who lost, since an epoch has one winner — follows the
// winner from now on instead of refusing its writes until a newer epoch.
// An epoch above v is observed as by Observe.
func (v Voter) Follow(epoch int64, master string) Voter {
	if epoch >= v.Epoch {
		return Voter{Epoch: epoch, For: master}
	}
	return v
}

// AcceptWrite reports whether a node that has voted up to v accepts a
// replication write from the master of epoch: only from the master of the
// newest epoch it knows, never from an older one.
func (v Voter) AcceptWrite(epoch int64, master string) bool {
	if epoch > v.Epoch {
		return true
	}
	return epoch == v.Epoch && (v.For == master || v.For == "")
}

// Ballot is one voter's answer to a vote request.
type Ballot struct {
	Voter    string   `json:"voter"`
	Granted  bool     `json:"granted"`
	Epoch    int64    `json:"voted_epoch"` // the voter's epoch after deciding
	Position Position `json:"position"`
}

// Tally counts the ballots of an election for one epoch among voters.
type Tally struct {
	Epoch   int64
	Voters  []string // names of the nodes allowed to vote
	ballots map[string]Ballot
}

// NewTally starts counting an election.
func NewTally(epoch int64, voters []string) *Tally {
	return &Tally{Epoch: epoch, Voters: voters, ballots: map[string]Ballot{}}
}

// Add records a ballot; ballots from nodes that are not voters, or for
// another epoch's request, are ignored.
func (t *Tally) Add(b Ballot) {
	ok := false
	for _, v := range t.Voters {
		if v == b.Voter {
			ok = true
		}
	}
	if !ok {
		return
	}
	if b.Granted && b.Epoch != t.Epoch {
		return
	}
	t.ballots[b.Voter] = b
}

// Granted is the number of granted votes.
func (t *Tally) Granted() int {
	n := 0
	for _, b := range t.ballots {
		if b.Granted {
			n++
		}
	}
	return n
}

// Won reports whether a majority of the voters granted the vote.
func (t *Tally) Won() bool { return t.Granted() >= Majority(len(t.Voters)) }

// HighestSeen is the highest epoch any ballot reported (a refused
// candidate retries above it).
func (t *Tally) HighestSeen() int64 {
	h := t.Epoch
	for _, b := range t.ballots {
		if b.Epoch > h {
			h = b.Epoch
		}
	}
	return h
}

// Newest is the granting voter whose replica is newest (ties: the first
// name in order), whose queue the winner must take.
func (t *Tally) Newest() (string, Position) {
	var names []string
	for n, b := range t.ballots {
		if b.Granted {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	best, bp := "", Position{}
	for _, n := range names {
		p := t.ballots[n].Position
		if best == "" || bp.Less(p) {
			best, bp = n, p
		}
	}
	return best, bp
}

// Refusals are the ballots that refused, for the error message.
func (t *Tally) Refusals() []Ballot {
	var out []Ballot
	for _, v := range t.Voters {
		if b, ok := t.ballots[v]; ok && !b.Granted {
			out = append(out, b)
		}
	}
	return out
}

// Accept decides whether a replica at pos applies a batch with sequence
// seq from a master of epoch: the batch must directly follow what the
// replica holds from the same master; a first batch from a new epoch's
// master or any gap needs a full resync instead.
func Accept(pos Position, epoch, seq int64) bool {
	return pos.Epoch == epoch && pos.Seq == seq-1
}

// AcceptResync decides whether a replica at pos applies a full resync
// from the master of epoch that brings it to (epoch, seq): never one that
// would take it back, that is one of the replica's own epoch that stops
// before its position. A resync is sent asynchronously and may arrive
// late (a retry, a slow transfer overtaken by normal batches); applying
// such a stale copy would drop batches the replica has already
// acknowledged, and with them writes the master reported durable on a
// majority. The caller checks AcceptWrite as for any write.
func AcceptResync(pos Position, epoch, seq int64) bool {
	return !(Position{Epoch: epoch, Seq: seq}).Less(pos)
}
