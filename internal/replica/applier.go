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
	var p cluster.Position
	b, err := os.ReadFile(PositionFile(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("replication position %s is corrupt: %v", PositionFile(dataDir), err)
	}
	return p, nil
}

// LoadVoter reads a data directory's voter record (zero when none).
func LoadVoter(dataDir string) (cluster.Voter, error) {
	var v cluster.Voter
	b, err := os.ReadFile(VoterFile(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("voter record %s is corrupt: %v", VoterFile(dataDir), err)
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
	if err := a.st.Write(PositionName, PositionData(p)).Wait(); err != nil {
		return err
	}
	a.pos = p
	return nil
}

// Apply applies a replication request from the master (see
// noderpc.ApplyRequest).
func (a *Applier) Apply(req *noderpc.ApplyRequest) (*noderpc.ApplyReply, error) {
	a.mu.Lock()
	if !a.voter.AcceptWrite(req.Epoch, req.Master) {
		v := a.voter
		a.mu.Unlock()
		return nil, &noderpc.Error{Code: noderpc.CodeStaleEpoch, Epoch: v.Epoch,
			Message: fmt.Sprintf("refused a write from %s of epoch %d: this node has seen epoch %d (master %s)", req.Master, req.Epoch, v.Epoch, v.For)}
	}
	learnt := false
	if req.Epoch > a.voter.Epoch {
		if err := a.saveVoterLocked(a.voter.Observe(req.Epoch, req.Master)); err != nil {
			a.mu.Unlock()
			return nil, err
		}
		learnt = true
	}
	if learnt && a.onEpoch != nil {
		// Told outside the lock would race with a second Apply; the
		// callback must not call back into the applier.
		a.onEpoch(req.Epoch, req.Master)
	}
	defer a.mu.Unlock()
	if !req.Resync && !cluster.Accept(a.pos, req.Epoch, req.FirstSeq) {
		p := a.pos
		return nil, &noderpc.Error{Code: noderpc.CodeOutOfSync, Position: &p,
			Message: fmt.Sprintf("batch %d of epoch %d does not follow this replica's position %s", req.FirstSeq, req.Epoch, p)}
	}
	var tickets []store.Ticket
	if req.ResyncStart {
		if err := a.st.Write(PositionName, PositionData(cluster.Position{})).Wait(); err != nil {
			return nil, err
		}
		a.pos = cluster.Position{}
	}
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
		tickets = append(tickets, a.st.Write(PositionName, PositionData(newPos)))
	}
	for _, t := range tickets {
		if err := t.Wait(); err != nil {
			return nil, err
		}
	}
	a.pos = newPos
	return &noderpc.ApplyReply{Position: newPos}, nil
}
