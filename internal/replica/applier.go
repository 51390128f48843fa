package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/store"
)

// PositionName is the replication position's file as the store names it
// (relative to the queue directory): DATA_DIR/cluster/position. It is
// written in the same batch as the changes it describes, after them, so a
// crash leaves it at or behind what the queue holds.
const PositionName = "../cluster/position"

// VoterFile is the voter record's file in a data directory.
func VoterFile(dataDir string) string { return filepath.Join(dataDir, "cluster", "voter.json") }

// PositionFile is the replication position's file in a data directory.
func PositionFile(dataDir string) string { return filepath.Join(dataDir, "cluster", "position") }

// PositionData encodes a position for PositionName.
func PositionData(p cluster.Position) []byte {
	b, _ := json.Marshal(p)
	return append(b, '\n')
}

// LoadPosition reads a data directory's position ({0,0} when none).
func LoadPosition(dataDir string) (cluster.Position, error) {
	return loadJSON[cluster.Position](PositionFile(dataDir), "replication position")
}

// LoadVoter reads a data directory's voter record (zero when none).
func LoadVoter(dataDir string) (cluster.Voter, error) {
	return loadJSON[cluster.Voter](VoterFile(dataDir), "voter record")
}

// loadJSON reads a small JSON file (the zero value when it does not
// exist); what names it in the error when it is corrupt.
func loadJSON[T any](path, what string) (T, error) {
	var v T
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%s %s is corrupt: %v", what, path, err)
	}
	return v, nil
}

// Applier is a node's side of replication and elections: it applies the
// master's batches to the local queue store in order, keeps the
// replication position, and keeps the voter record, stored durably before
// any answer depends on it.
type Applier struct {
	dataDir string
	st      *store.Store
	write   func(path string, data []byte) error // durable write (voter record)

	mu    sync.Mutex
	pos   cluster.Position
	voter cluster.Voter
	// The last resync started (its first chunk applied): the master's
	// epoch and the sequence it brings the replica to; resyncing while
	// its last chunk has not been applied.
	resyncing bool
	resync    cluster.Position
	// OnEpoch is called (under no lock) when a higher epoch is learnt, with
	// the master or candidate that has it.
	onEpoch func(epoch int64, who string)
}

// NewApplier loads the voter record and position of dataDir.
func NewApplier(dataDir string, st *store.Store, durableWrite func(path string, data []byte) error, onEpoch func(epoch int64, who string)) (*Applier, error) {
	v, err := LoadVoter(dataDir)
	if err != nil {
		return nil, err
	}
	p, err := LoadPosition(dataDir)
	if err != nil {
		return nil, err
	}
	return &Applier{dataDir: dataDir, st: st, write: durableWrite, pos: p, voter: v, onEpoch: onEpoch}, nil
}

// Position is the replica's position.
func (a *Applier) Position() cluster.Position {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pos
}

// Voter is the voter record.
func (a *Applier) Voter() cluster.Voter {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.voter
}

func (a *Applier) saveVoterLocked(v cluster.Voter) error {
	b, _ := json.Marshal(v)
	if err := a.write(VoterFile(a.dataDir), append(b, '\n')); err != nil {
		return fmt.Errorf("cannot store the voter record: %w", err)
	}
	a.voter = v
	return nil
}

// Observe records that epoch has a master (or a candidate), so that no
// older master's writes and no vote for an epoch up to it are accepted any
// more. It reports whether the epoch was new.
func (a *Applier) Observe(epoch int64, who string) (bool, error) {
	a.mu.Lock()
	nv := a.voter.Observe(epoch, who)
	if nv == a.voter {
		a.mu.Unlock()
		return false, nil
	}
	err := a.saveVoterLocked(nv)
	a.mu.Unlock()
	if err != nil {
		return false, err
	}
	if a.onEpoch != nil {
		a.onEpoch(epoch, who)
	}
	return true, nil
}

// ReloadPosition reads the position from disk again: while this node was
// the master, its replicator wrote it with every batch.
func (a *Applier) ReloadPosition() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, err := LoadPosition(a.dataDir)
	if err != nil {
		return err
	}
	a.pos = p
	return nil
}

// Follow records that master won epoch (cluster.Voter.Follow), durably.
func (a *Applier) Follow(epoch int64, master string) error {
	a.mu.Lock()
	nv := a.voter.Follow(epoch, master)
	if nv == a.voter {
		a.mu.Unlock()
		return nil
	}
	newer := nv.Epoch > a.voter.Epoch
	err := a.saveVoterLocked(nv)
	a.mu.Unlock()
	if err == nil && newer && a.onEpoch != nil {
		a.onEpoch(epoch, master)
	}
	return err
}

// Vote answers a vote request; the record is durable before the ballot
// is returned. The ballot's position is read from disk: on a master it
// moves with every batch the replicator writes.
func (a *Applier) Vote(self string, req *noderpc.VoteRequest) (*cluster.Ballot, error) {
	a.mu.Lock()
	if p, err := LoadPosition(a.dataDir); err == nil {
		a.pos = p
	}
	old := a.voter
	nv, granted := a.voter.Vote(req.Epoch, req.Candidate)
	if granted && nv != old {
		if err := a.saveVoterLocked(nv); err != nil {
			a.mu.Unlock()
			return nil, err
		}
	}
	b := &cluster.Ballot{Voter: self, Granted: granted, Epoch: a.voter.Epoch, Position: a.pos}
	a.mu.Unlock()
	if granted && nv.Epoch > old.Epoch && a.onEpoch != nil {
		a.onEpoch(nv.Epoch, req.Candidate)
	}
	return b, nil
}

// SetPosition stores the position durably (a new master starts its
// epoch's numbering).
func (a *Applier) SetPosition(p cluster.Position) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resyncing = false
	if err := a.st.Write(PositionName, PositionData(p)).Wait(); err != nil {
		return err
	}
	a.pos = p
	return nil
}

// Apply applies a replication request from the master (see
// noderpc.ApplyRequest).
//
// A normal request must follow the position (cluster.Accept). A resync's
// first chunk must not take the replica back behind its position
// (cluster.AcceptResync: a resync that arrives late would undo batches
// the replica has acknowledged) and must not be older than the last
// resync started here; its other chunks are accepted only while that
// resync is the one in progress (same epoch and sequence), so that a late
// chunk of an earlier resync cannot mix older files into it.
//
// The position never goes down (the model in package cluster shows why:
// a replica that claims less than it acknowledged can make an election
// lose acknowledged jobs). It stays where it is while a resync's chunks
// move the files towards the master's state, and is written only after
// every change it describes succeeded (store.WriteAfter): a request that
// fails half-way leaves it as it was.
func (a *Applier) Apply(req *noderpc.ApplyRequest) (*noderpc.ApplyReply, error) {
	a.mu.Lock()
	if !a.voter.AcceptWrite(req.Epoch, req.Master) {
		v := a.voter
		a.mu.Unlock()
		return nil, &noderpc.Error{Code: noderpc.CodeStaleEpoch, Epoch: v.Epoch,
			Message: fmt.Sprintf("refused a write from %s of epoch %d: this node has seen epoch %d (master %s)", req.Master, req.Epoch, v.Epoch, v.For)}
	}
	if req.Epoch > a.voter.Epoch {
		if err := a.saveVoterLocked(a.voter.Observe(req.Epoch, req.Master)); err != nil {
			a.mu.Unlock()
			return nil, err
		}
		if a.onEpoch != nil {
			// Under the lock, so that no second Apply overtakes it; the
			// callback must not call back into the applier.
			a.onEpoch(req.Epoch, req.Master)
		}
	}
	defer a.mu.Unlock()
	if err := a.acceptLocked(req); err != nil {
		return nil, err
	}
	if req.ResyncStart {
		a.resyncing, a.resync = true, cluster.Position{Epoch: req.Epoch, Seq: req.LastSeq}
	}
	var tickets []store.Ticket
	for _, c := range req.Changes {
		switch c.Op {
		case noderpc.OpWrite:
			tickets = append(tickets, a.st.Write(c.Name, c.Data))
		case noderpc.OpRename:
			tickets = append(tickets, a.st.Rename(c.Name, c.Dst))
		case noderpc.OpRemove:
			tickets = append(tickets, a.st.Remove(c.Name))
		}
	}
	newPos := a.pos
	if !req.Resync || req.ResyncEnd {
		newPos = cluster.Position{Epoch: req.Epoch, Seq: req.LastSeq}
		tickets = append(tickets, a.st.WriteAfter(PositionName, PositionData(newPos), tickets...))
	}
	var failed error
	for _, t := range tickets {
		if err := t.Wait(); err != nil && failed == nil {
			failed = err
		}
	}
	if failed != nil {
		// Some changes may be made: the files are between the old
		// position's state and the master's; the position stays.
		a.resyncing = false
		return nil, failed
	}
	if req.ResyncEnd {
		a.resyncing = false
	}
	a.pos = newPos
	return &noderpc.ApplyReply{Position: newPos}, nil
}

// acceptLocked decides whether req may be applied at the current
// position.
func (a *Applier) acceptLocked(req *noderpc.ApplyRequest) error {
	p := a.pos
	var why string
	switch {
	case !req.Resync:
		if cluster.Accept(p, req.Epoch, req.FirstSeq) {
			return nil
		}
		why = fmt.Sprintf("batch %d of epoch %d does not follow this replica's position %s", req.FirstSeq, req.Epoch, p)
	case req.ResyncStart:
		r := cluster.Position{Epoch: req.Epoch, Seq: req.LastSeq}
		if !cluster.AcceptResync(p, req.Epoch, req.LastSeq) {
			why = fmt.Sprintf("a resync to %s would take this replica back from its position %s", r, p)
		} else if r.Less(a.resync) {
			why = fmt.Sprintf("a resync to %s arrived after one to %s had started", r, a.resync)
		} else {
			return nil
		}
	default:
		r := cluster.Position{Epoch: req.Epoch, Seq: req.LastSeq}
		if a.resyncing && a.resync == r {
			return nil
		}
		why = fmt.Sprintf("a chunk of a resync to %s arrived, but no resync to it is in progress", r)
	}
	return &noderpc.Error{Code: noderpc.CodeOutOfSync, Position: &p, Message: why}
}
