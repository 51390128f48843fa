// Package queuelog makes the queue directory a state machine of the
// cluster's log: the master's store hands each group-commit batch to the
// log ([Log], a store.Log) instead of writing it, and every node, the
// master included, writes the batch when the log applies it ([FSM], a
// consensus.StateMachine). The log is thus the commit point: a batch is
// on no node's disk before a majority holds it in its log, and every node
// writes the same batches in the same order, so the queue directories are
// identical.
//
// # Entries
//
// An entry is versioned: a version byte (1), a type byte (1: a batch of
// file changes, 2: a cluster-wide setting: its name as a uvarint length
// and bytes, then its JSON value), then for a batch the changes: a count, and for each a kind byte
// (w: write, r: rename, d: remove) and its name, target and contents, each
// as a uvarint length and bytes. Names are checked as queue file names
// (noderpc.ValidQueueName) when applied. A node that meets a version or
// type it does not know stops with a message saying to upgrade it, rather
// than skip an entry and differ from the others.
//
// # Replays and snapshots
//
// Batches are written without syncs, and through the store's write-back
// buffer, which writes only the last of several changes of a file
// (store.ApplyBatch): the log holds them durably (the
// master acknowledges a batch once a majority has it in its fsynced log),
// and a snapshot, which the log takes every few thousand entries, first
// syncs the directory. After a crash, even a power loss that drops
// unsynced writes and renames, the log applies again every entry since
// its last snapshot; writing a batch again leaves the same files (see
// store.ApplyBatch), and every file changed after the snapshot, torn or
// lost, is written again by those entries, so a replay converges on the
// same directory. A node must not read its queue before the replay: the
// master waits for consensus.Node.Barrier before it opens the queue. A snapshot holds a manifest, not the files: the live
// files with their SHA-256 and the names of the archived jobs (the
// archive grows without bound and never changes once written). A node
// restoring a snapshot fetches from the master what it lacks or holds
// differently, removes what the manifest does not name, and then the log
// applies the entries after the snapshot: files fetched newer than the
// snapshot are rewritten by those entries into the same final state.
package queuelog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jobq-dev/jobq/internal/settings"

	"golang.org/x/sys/unix"

	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/durable"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/store"
)

const (
	entryVersion byte = 1
	typeBatch    byte = 1
	typeSetting  byte = 2
)

// Proposer is the log a batch is proposed to (consensus.Node).
type Proposer interface {
	Apply(ctx context.Context, data []byte) (any, error)
}

// Log is store.Log over the cluster's log.
type Log struct {
	P       Proposer
	Timeout time.Duration // how long a batch may take to be agreed; 0: 30s
	// Dir, when set, is the queue directory: a batch is proposed only
	// when its file system has room for it twice and a log segment
	// (consensus.SegmentBytes) besides, so that a full disk refuses
	// changes here (with an error that is syscall.ENOSPC) instead of
	// agreeing on what this node cannot write.
	Dir string
}

// Commit proposes the batch and waits until it is agreed and written here.
func (l *Log) Commit(changes []store.Change) error {
	data, err := EncodeBatch(changes)
	if err != nil {
		return err
	}
	if err := l.checkRoom(int64(len(data))); err != nil {
		return err
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.propose(ctx, data)
}

// checkRoom refuses a batch of size bytes that Dir's file system has no
// room for.
func (l *Log) checkRoom(size int64) error {
	if l.Dir == "" {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(l.Dir, &st); err != nil {
		return nil // no answer: the write itself will tell
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if need := 2*size + consensus.SegmentBytes; free < need {
		return fmt.Errorf("%w: the queue's file system has %d bytes free, a change of %d bytes needs %d", syscall.ENOSPC, free, size, need)
	}
	return nil
}

// propose proposes an entry and returns the log's error or the state
// machine's.
func (l *Log) propose(ctx context.Context, data []byte) error {
	res, err := l.P.Apply(ctx, data)
	switch {
	case errors.Is(err, consensus.ErrOutcomeUnknown):
		return fmt.Errorf("%w: a majority of the voters did not confirm it (this node lost its place as master, or the others are unreachable): %w", store.ErrOutcomeUnknown, err)
	case errors.Is(err, consensus.ErrNotLeader):
		return fmt.Errorf("this node is no longer the master, elected by a majority of the voters: %w", err)
	case err != nil:
		return err
	}
	if err, ok := res.(error); ok && err != nil {
		return err
	}
	return nil
}

// Set proposes the cluster-wide setting key (see FSM.Setting) and waits
// until it is agreed and stored here.
func (l *Log) Set(ctx context.Context, key string, value []byte) error {
	data, err := EncodeSetting(key, value)
	if err != nil {
		return err
	}
	return l.propose(ctx, data)
}

// EncodeSetting is the entry that sets key to value (JSON).
func EncodeSetting(key string, value []byte) ([]byte, error) {
	if err := settings.ValidKey(key); err != nil {
		return nil, err
	}
	if !json.Valid(value) {
		return nil, fmt.Errorf("the value of setting %s is not JSON", key)
	}
	buf := []byte{entryVersion, typeSetting}
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	return append(buf, value...), nil
}

func decodeSetting(data []byte) (string, []byte, error) {
	rest := data[2:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return "", nil, errors.New("the setting entry is truncated")
	}
	key := string(rest[k : k+int(n)])
	value := rest[k+int(n):]
	if err := settings.ValidKey(key); err != nil {
		return "", nil, err
	}
	if !json.Valid(value) {
		return "", nil, fmt.Errorf("the value of setting %s is not JSON", key)
	}
	return key, value, nil
}

// EncodeBatch is the entry of a batch of changes.
func EncodeBatch(changes []store.Change) ([]byte, error) {
	size := 2 + binary.MaxVarintLen64
	for _, c := range changes {
		size += 1 + 3*binary.MaxVarintLen64 + len(c.Name) + len(c.Dst) + len(c.Data)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, entryVersion, typeBatch)
	buf = binary.AppendUvarint(buf, uint64(len(changes)))
	for _, c := range changes {
		var k byte
		switch c.Kind {
		case "write":
			k = 'w'
		case "rename":
			k = 'r'
		case "remove":
			k = 'd'
		default:
			return nil, fmt.Errorf("unknown change kind %q", c.Kind)
		}
		buf = append(buf, k)
		for _, field := range [][]byte{[]byte(c.Name), []byte(c.Dst), c.Data} {
			buf = binary.AppendUvarint(buf, uint64(len(field)))
			buf = append(buf, field...)
		}
	}
	return buf, nil
}

// ErrUnknownEntry: the entry was written by a newer jobqd.
var ErrUnknownEntry = errors.New("unknown log entry")

// DecodeBatch reads a batch entry, checking every name.
func DecodeBatch(data []byte) ([]store.Change, error) {
	if len(data) < 2 {
		return nil, errors.New("the log entry is too short")
	}
	if err := checkKind(data); err != nil {
		return nil, err
	}
	if data[1] != typeBatch {
		return nil, fmt.Errorf("the log entry of type %d is not a batch", data[1])
	}
	rest := data[2:]
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, errors.New("the log entry is truncated")
		}
		field := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return field, nil
	}
	count, k := binary.Uvarint(rest)
	if k <= 0 || count > uint64(len(rest)) {
		return nil, errors.New("the log entry is truncated")
	}
	rest = rest[k:]
	out := make([]store.Change, 0, count)
	for range count {
		if len(rest) == 0 {
			return nil, errors.New("the log entry is truncated")
		}
		var c store.Change
		switch rest[0] {
		case 'w':
			c.Kind = "write"
		case 'r':
			c.Kind = "rename"
		case 'd':
			c.Kind = "remove"
		default:
			return nil, fmt.Errorf("unknown change kind %q in the log entry", rest[0])
		}
		rest = rest[1:]
		var fields [3][]byte
		for i := range fields {
			f, err := next()
			if err != nil {
				return nil, err
			}
			fields[i] = f
		}
		c.Name, c.Dst = string(fields[0]), string(fields[1])
		if len(fields[2]) > 0 {
			c.Data = fields[2]
		}
		if err := noderpc.ValidQueueName(c.Name); err != nil {
			return nil, err
		}
		if c.Kind == "rename" {
			if err := noderpc.ValidQueueName(c.Dst); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	if len(rest) != 0 {
		return nil, errors.New("the log entry has trailing bytes")
	}
	return out, nil
}

// checkKind refuses an entry this jobqd does not know.
func checkKind(data []byte) error {
	if len(data) < 2 {
		return errors.New("the log entry is too short")
	}
	if data[0] != entryVersion || (data[1] != typeBatch && data[1] != typeSetting) {
		return fmt.Errorf("%w: version %d, type %d (this jobqd knows version %d, types %d and %d): upgrade jobqd on this node", ErrUnknownEntry, data[0], data[1], entryVersion, typeBatch, typeSetting)
	}
	return nil
}

// Fetch returns the current contents of queue files from the master,
// leaving out those it does not have.
type Fetch func(ctx context.Context, names []string) ([]noderpc.Change, error)

// FSM is consensus.StateMachine over a queue directory's store and the
// cluster-wide settings: the cluster configuration and what later issues
// add (filters, opcode definitions, schedules), each a JSON document
// stored durably as SettingsDir/KEY.json.
type FSM struct {
	st       *store.Store
	fetch    Fetch
	log      *slog.Logger
	settings string // directory of the settings files

	mu        sync.Mutex
	applied   uint64
	broken    error
	values    map[string][]byte
	onSetting func(key string, value []byte)
}

// NewFSM returns the state machine writing into st and settingsDir
// (created if needed; the settings there are loaded); fetch reaches the
// master when a snapshot must be restored.
func NewFSM(st *store.Store, settingsDir string, fetch Fetch, log *slog.Logger) (*FSM, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FSM{st: st, fetch: fetch, log: log, settings: settingsDir, values: map[string][]byte{}}
	if err := durable.MkdirAll(settingsDir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create the settings directory: %w", err)
	}
	ents, err := os.ReadDir(settingsDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		key, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || settings.ValidKey(key) != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(settingsDir, e.Name()))
		if err != nil {
			return nil, err
		}
		f.values[key] = b
	}
	return f, nil
}

// OnSetting sets a function called (from the log's goroutine) after each
// setting is stored, and after a snapshot changed settings.
func (f *FSM) OnSetting(fn func(key string, value []byte)) {
	f.mu.Lock()
	f.onSetting = fn
	f.mu.Unlock()
}

// Setting is the agreed value of key as this node has applied it (nil:
// never set).
func (f *FSM) Setting(key string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.values[key]
}

// setSetting stores a setting durably and reports it.
func (f *FSM) setSetting(key string, value []byte) error {
	if err := durable.WriteFile(filepath.Join(f.settings, key+".json"), value, 0o640); err != nil {
		return fmt.Errorf("cannot store setting %s: %w", key, err)
	}
	f.mu.Lock()
	f.values[key] = append([]byte(nil), value...)
	fn := f.onSetting
	f.mu.Unlock()
	if fn != nil {
		fn(key, value)
	}
	return nil
}

// Apply writes a batch, through the store's write-back buffer: the
// files follow within its flush interval (every read through the store
// flushes first). A write that fails (a full disk) is retried, and no
// snapshot is taken meanwhile, so the log keeps the entries. When the
// buffer is full and writing still fails, the batch is refused: this
// node's directory is behind the log, the error goes to the proposer (on
// the master: the batch is agreed, yet its submitter hears of the
// failure, so the error says the cluster agreed), Broken reports it, no
// later batch is written and no snapshot taken, and the node must stop
// serving the queue until a restart applies the log again.
func (f *FSM) Apply(e consensus.Entry) any {
	if err := checkKind(e.Data); err != nil {
		panic(fmt.Sprintf("jobqd: log entry %d: %v", e.Index, err))
	}
	if e.Data[1] == typeSetting {
		key, value, err := decodeSetting(e.Data)
		if err != nil {
			panic(fmt.Sprintf("jobqd: log entry %d is malformed: %v", e.Index, err))
		}
		if err := f.setSetting(key, value); err != nil {
			f.mu.Lock()
			f.broken = err
			f.mu.Unlock()
			return err
		}
		return nil
	}
	changes, err := DecodeBatch(e.Data)
	if err != nil {
		panic(fmt.Sprintf("jobqd: log entry %d is malformed: %v", e.Index, err))
	}
	if broken := f.Broken(); broken != nil {
		// Writing later batches over a missing one would make this
		// node's queue differ from the others': nothing more is written
		// until a restart applies the log again.
		return broken
	}
	if err := f.st.ApplyBatch(changes, false); err != nil {
		broken := fmt.Errorf("the cluster agreed on log entry %d but this node cannot write it to its queue directory (it stops writing the queue until it is restarted): %w", e.Index, err)
		f.mu.Lock()
		f.broken = broken
		f.mu.Unlock()
		f.log.Error("the queue directory is behind the log", "index", e.Index, "err", err)
		return broken
	}
	f.mu.Lock()
	f.applied = e.Index
	f.mu.Unlock()
	return nil
}

// Broken says why the queue directory is behind the log, or nil.
func (f *FSM) Broken() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.broken
}

// manifest is a snapshot's data.
type manifest struct {
	Live     []noderpc.FileInfo         `json:"live"`
	Archive  []noderpc.FileInfo         `json:"archive"`
	Settings map[string]json.RawMessage `json:"settings,omitempty"`
}

// Snapshot makes the directory durable (one sync for every batch applied
// since the last snapshot) and lists it.
func (f *FSM) Snapshot() ([]byte, error) {
	if broken := f.Broken(); broken != nil {
		// A snapshot now would let the log drop entries this node
		// never wrote.
		return nil, broken
	}
	if err := f.st.Sync(); err != nil {
		return nil, err
	}
	live, arch, err := Scan(f.st.Dir(), true, false)
	if err != nil {
		return nil, fmt.Errorf("cannot list the queue for a snapshot: %w", err)
	}
	m := manifest{Live: live, Archive: arch, Settings: map[string]json.RawMessage{}}
	f.mu.Lock()
	for k, v := range f.values {
		m.Settings[k] = v
	}
	f.mu.Unlock()
	return json.Marshal(m)
}

// Restore makes the directory hold what the snapshot names, fetching
// from the master what this node lacks or holds differently.
func (f *FSM) Restore(data []byte) error {
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("the snapshot's manifest is malformed: %w", err)
	}
	for k, v := range m.Settings {
		if settings.ValidKey(k) != nil {
			return fmt.Errorf("the snapshot holds a setting named %q", k)
		}
		if !bytes.Equal(f.Setting(k), v) {
			if err := f.setSetting(k, v); err != nil {
				return err
			}
		}
	}
	f.mu.Lock()
	var stale []string
	for k := range f.values {
		if _, ok := m.Settings[k]; !ok {
			stale = append(stale, k)
		}
	}
	f.mu.Unlock()
	for _, k := range stale {
		if err := durable.Remove(filepath.Join(f.settings, k+".json")); err != nil {
			return err
		}
		f.mu.Lock()
		delete(f.values, k)
		f.mu.Unlock()
	}
	if err := f.st.Flush(); err != nil {
		return err
	}
	live, arch, err := Scan(f.st.Dir(), true, false)
	if err != nil {
		return err
	}
	diff := CompareQueues(m.Live, m.Archive, live, arch)
	var changes []store.Change
	if len(diff.Write) > 0 {
		if f.fetch == nil {
			return errors.New("a snapshot must be restored but no master can be asked for its files")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		got, err := f.fetch(ctx, diff.Write)
		if err != nil {
			return fmt.Errorf("cannot fetch the queue files of a snapshot: %w", err)
		}
		have := map[string]bool{}
		for _, c := range got {
			if err := noderpc.ValidQueueName(c.Name); err != nil {
				return err
			}
			have[c.Name] = true
			changes = append(changes, store.Change{Kind: "write", Name: c.Name, Data: c.Data})
		}
		// Gone on the master since the snapshot: the entries after it
		// recreate and move them.
		for _, n := range diff.Write {
			if !have[n] {
				changes = append(changes, store.Change{Kind: "remove", Name: n})
			}
		}
	}
	for _, n := range diff.Remove {
		changes = append(changes, store.Change{Kind: "remove", Name: n})
	}
	if len(changes) == 0 {
		return nil
	}
	f.log.Info("restoring the queue from a snapshot", "fetched", len(diff.Write), "removed", len(diff.Remove))
	return f.st.ApplyBatch(changes, true)
}
