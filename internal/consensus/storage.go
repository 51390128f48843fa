package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/jobq-dev/jobq/internal/durable"
)

// storage is the node's durable log: etcd's write-ahead log (hard state
// and entries, fsynced before the engine acts on them), etcd's
// snapshotter, and the engine's in-memory view of both (MemoryStorage),
// as etcd's raftexample keeps them.
type storage struct {
	w     *wal.WAL
	snaps *snap.Snapshotter
	mem   *raft.MemoryStorage
	dir   string
}

func walDir(dir string) string  { return filepath.Join(dir, "wal") }
func snapDir(dir string) string { return filepath.Join(dir, "snap") }

func walExists(dir string) bool { return wal.Exist(walDir(dir)) }

// SegmentBytes is the size of each log segment file, allocated whole
// ahead of use (etcd's default is 64 MB; jobq's entries are batches of
// small files, and a node's disk may be small): a write that fits in a
// segment never fails for want of space.
const SegmentBytes = 4 << 20

func init() { wal.SegmentSizeBytes = SegmentBytes }

// openStorage opens (or creates) the log in dir and loads it into
// memory; it returns the newest snapshot, if any.
func openStorage(dir string, log *slog.Logger) (*storage, *pb.Snapshot, error) {
	lg := zap.NewNop()
	if err := durable.MkdirAll(snapDir(dir), 0o700); err != nil {
		return nil, nil, fmt.Errorf("cannot create the snapshot directory: %w", err)
	}
	s := &storage{snaps: snap.New(lg, snapDir(dir)), mem: raft.NewMemoryStorage(), dir: dir}
	if !wal.Exist(walDir(dir)) {
		w, err := wal.Create(lg, walDir(dir), nil)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot create the consensus log in %s: %w", walDir(dir), err)
		}
		s.w = w
		return s, nil, nil
	}
	walSnaps, err := wal.ValidSnapshotEntries(lg, walDir(dir))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the consensus log in %s: %w", walDir(dir), err)
	}
	sn, err := s.snaps.LoadNewestAvailable(walSnaps)
	if err != nil && !errors.Is(err, snap.ErrNoSnapshot) {
		return nil, nil, fmt.Errorf("cannot read the consensus snapshot in %s: %w", snapDir(dir), err)
	}
	walSnap := &walpb.Snapshot{Index: proto.Uint64(0), Term: proto.Uint64(0)}
	if sn != nil {
		walSnap = &walpb.Snapshot{Index: proto.Uint64(sn.GetMetadata().GetIndex()), Term: proto.Uint64(sn.GetMetadata().GetTerm()), ConfState: sn.GetMetadata().GetConfState()}
	}
	w, err := wal.Open(lg, walDir(dir), walSnap)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open the consensus log in %s: %w", walDir(dir), err)
	}
	_, hs, ents, err := w.ReadAll()
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("cannot read the consensus log in %s: %w", walDir(dir), err)
	}
	s.w = w
	if sn != nil {
		if err := s.mem.ApplySnapshot(sn); err != nil {
			w.Close()
			return nil, nil, err
		}
	}
	if hs != nil {
		s.mem.SetHardState(hs)
	}
	if err := s.mem.Append(ents); err != nil {
		w.Close()
		return nil, nil, err
	}
	log.Debug("consensus log loaded", "entries", len(ents), "commit", hs.GetCommit(), "term", hs.GetTerm())
	return s, sn, nil
}

// save makes a Ready's snapshot, hard state and entries durable, then
// hands them to the engine's memory.
func (s *storage) save(hs *pb.HardState, ents []*pb.Entry, sn *pb.Snapshot) error {
	if sn != nil && !raft.IsEmptySnap(sn) {
		if err := s.saveSnap(sn); err != nil {
			return err
		}
	}
	if err := s.w.Save(hs, ents); err != nil {
		return fmt.Errorf("cannot write the consensus log: %w", err)
	}
	if sn != nil && !raft.IsEmptySnap(sn) {
		if err := s.mem.ApplySnapshot(sn); err != nil {
			return err
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		s.mem.SetHardState(hs)
	}
	return s.mem.Append(ents)
}

// saveSnap stores a snapshot: the snapshot file first, then its mark in
// the log, then the log files it makes useless are released.
func (s *storage) saveSnap(sn *pb.Snapshot) error {
	md := sn.GetMetadata()
	if err := s.snaps.SaveSnap(sn); err != nil {
		return fmt.Errorf("cannot store a consensus snapshot: %w", err)
	}
	if err := s.w.SaveSnapshot(&walpb.Snapshot{Index: proto.Uint64(md.GetIndex()), Term: proto.Uint64(md.GetTerm()), ConfState: md.GetConfState()}); err != nil {
		return fmt.Errorf("cannot mark a consensus snapshot in the log: %w", err)
	}
	return s.w.ReleaseLockTo(md.GetIndex())
}

// snapshot makes a snapshot of the state data at index and drops the log
// before index-trailing from memory.
func (s *storage) snapshot(index uint64, cs *pb.ConfState, data []byte, trailing uint64) error {
	sn, err := s.mem.CreateSnapshot(index, cs, data)
	if err != nil {
		if errors.Is(err, raft.ErrSnapOutOfDate) {
			return nil
		}
		return err
	}
	if err := s.saveSnap(sn); err != nil {
		return err
	}
	if index > trailing {
		if err := s.mem.Compact(index - trailing); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
	}
	return nil
}

func (s *storage) close() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.w = nil
	return err
}
