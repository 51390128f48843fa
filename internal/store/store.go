// Package store keeps a node's queue directory (SPEC §2): job-N files,
// serial, version, lock, drain and archive/<N div 10000>/job-N.
//
// Every change is atomic and durable: new contents go to a temporary file in
// the same directory, the file system is synced, the temporary file is
// renamed over the target, and the rename is synced. Changes submitted
// concurrently are group-committed: while one batch is being synced the next
// one accumulates, so one pair of syncs covers many jobs' changes and
// throughput grows with load. Within a batch the latest content of a file
// wins. Batches a log keeps (ApplyBatch without durable) are written
// without syncs, through a write-back buffer (writeback.go).
package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jobq-dev/jobq/internal/durable"
)

// FormatVersion is the queue format this jobq reads and writes.
const FormatVersion = 1

// File modes of the queue directory.
const (
	DirMode  = 0o750
	FileMode = 0o640
)

// ErrLocked means another process holds the queue lock.
var ErrLocked = errors.New("queue is locked")

// ErrClosed is returned for changes submitted after Close.
var ErrClosed = errors.New("queue store is closed")

// ErrOutcomeUnknown is in the error of a change the log could not say
// was committed or not (a Log returns it wrapped): the change may still
// be made, on this node or a later master.
var ErrOutcomeUnknown = errors.New("the outcome is unknown")

type opKind int

const (
	opWrite opKind = iota
	opRename
	opRemove
)

type op struct {
	kind opKind
	name string // relative to the queue dir
	dst  string // rename target
	data []byte
	// deps: the write is made only if these changes succeeded (a
	// replica's position after the changes it describes); afterAll: only
	// if every earlier change of its batch did.
	deps     []Ticket
	afterAll bool
}

// ErrDependency fails a conditional write whose dependencies failed.
var ErrDependency = errors.New("not written: a change it depends on failed")

type batch struct {
	ops  []op
	last map[string]int // name -> index of the last op touching it
	errs []error
	done chan struct{}
	// noSync: written without syncs (ApplyBatch of a batch the log keeps).
	noSync bool
}

func newBatch() *batch {
	return &batch{last: map[string]int{}, done: make(chan struct{})}
}

// Ticket waits for one submitted change to be durable.
type Ticket struct {
	b   *batch
	idx int
}

// Wait blocks until the change is durable (nil) or failed.
func (t Ticket) Wait() error {
	if t.b == nil {
		return nil
	}
	<-t.b.done
	return t.b.errs[t.idx]
}

// FailedTicket is a ticket that has already failed with err.
func FailedTicket(err error) Ticket {
	b := &batch{errs: []error{err}, done: make(chan struct{})}
	close(b.done)
	return Ticket{b: b}
}

// Done is closed when the change's batch has been committed or failed.
func (t Ticket) Done() <-chan struct{} { return t.b.done }

// Stats are counters of the group commit, for benchmarks and metrics.
type Stats struct {
	Batches int64 // committed batches
	Ops     int64 // file changes in them
}

// FS is the store's file-system seam: the calls a group commit makes to
// change the queue directory. Paths are absolute. The default, [OSFS], makes
// them on the real file system; tests wrap it (see [WithFS]) to inject
// faults such as EIO or ENOSPC. Opening the store (lock, version, removing
// leftover temporary files) and reading always use the real file system.
type FS interface {
	// WriteFile creates or truncates path with mode perm and writes data.
	// It does not sync: the commit syncs what it changed afterwards.
	WriteFile(path string, data []byte, perm fs.FileMode) error
	Rename(oldpath, newpath string) error
	Remove(path string) error
	MkdirAll(path string, perm fs.FileMode) error
	// Sync makes durable the contents of files and the entries of dirs
	// (fsync of each): the store names every file it wrote and every
	// directory whose entries it changed since its last sync. Not
	// syncfs(2): a FUSE file system never receives it (the kernel sends
	// FUSE_SYNCFS to virtiofs only), so there it makes nothing durable.
	Sync(files, dirs []string) error
}

// OSFS is the real file system, the default [FS].
type OSFS struct{}

// WriteFile implements FS.
func (OSFS) WriteFile(path string, data []byte, perm fs.FileMode) error {
	return writeFile(path, data, perm)
}

// Rename implements FS.
func (OSFS) Rename(oldpath, newpath string) error { return rename(oldpath, newpath) }

// Remove implements FS.
func (OSFS) Remove(path string) error { return os.Remove(path) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// Sync implements FS: the files first, then the directories, each
// fsynced, up to 16 at a time (a journaling file system commits
// concurrent fsyncs together). A file or directory gone since (renamed
// or removed later) has nothing left to sync.
func (OSFS) Sync(files, dirs []string) error {
	if err := fsyncAll(files); err != nil {
		return err
	}
	return fsyncAll(dirs)
}

func fsyncAll(paths []string) error {
	const workers = 16
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan string)
	for range min(workers, len(paths)) {
		wg.Go(func() {
			for p := range next {
				if err := fsyncPath(p); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range paths {
		next <- p
	}
	close(next)
	wg.Wait()
	return first
}

func fsyncPath(p string) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Option configures [Open].
type Option func(*Store)

// WithFS makes the group commit use f instead of [OSFS] (for fault
// injection in tests).
func WithFS(f FS) Option { return func(s *Store) { s.fs = f } }

// Store is an open queue directory. Methods are safe for concurrent use.
type Store struct {
	dir  string
	lock *os.File
	log  *slog.Logger
	fs   FS

	mu       sync.Mutex
	cond     *sync.Cond
	pending  *batch
	closed   bool
	stats    Stats
	wg       sync.WaitGroup
	onCommit atomic.Pointer[func(changes int, d time.Duration)]
	repl     atomic.Pointer[Replicator]
	agreed   atomic.Pointer[Log]
	applyMu  sync.Mutex // one commit at a time: they share temporary names
	// What was changed and not synced yet (under applyMu): files by
	// path (contents), directories by path (entries).
	dirtyFiles, dirtyDirs map[string]bool

	// The write-back buffer (writeback.go). flushMu: one flush at a
	// time (before applyMu); wbMu guards the rest.
	flushEvery time.Duration
	maxWaiting int
	flushMu    sync.Mutex
	wbMu       sync.Mutex
	wb         *batch // waiting
	wbFlight   *batch // being written, or failed and to be written again
	wbBytes    int
	wbSince    time.Time // when the first waiting change came
	wbErr      error     // the last flush's failure
	wbClosed   bool
	flushes    int64
	wbApplied  int64
	wbWritten  int64
	wbKick     chan struct{}
	wbStop     chan struct{}
	flushWG    sync.WaitGroup
}

// Change is one file change of a batch as a Replicator sees it: Kind is
// "write", "rename" or "remove"; names are relative to the queue
// directory.
type Change struct {
	Kind string
	Name string
	Dst  string
	Data []byte
}

// Replicator sends the store's batches elsewhere. The committer calls
// Begin with each batch before writing it locally; Begin may return extra
// changes to apply locally in the same batch (not replicated) and a wait
// function, called after the local commit with its error, whose error
// fails the whole batch. Batches are begun one at a time, in order: Begin
// for a batch is called only after the previous batch's wait returned.
type Replicator interface {
	Begin(changes []Change) (extra []Change, wait func(localErr error) error)
}

// SetReplicator makes every following batch go through r (nil: none).
func (s *Store) SetReplicator(r Replicator) {
	if r == nil {
		s.repl.Store(nil)
		return
	}
	s.repl.Store(&r)
}

// Log is an agreed log that the store's batches go through (the
// cluster's consensus). With a Log set, the committer does not write a
// batch itself: it hands the batch to Commit, which returns once the
// batch is agreed and written — by ApplyBatch, which the log calls on
// every node, this one included, in the log's order — or says why not;
// the batch's tickets complete with that. Batches are handed over one at
// a time, in order.
type Log interface {
	Commit(changes []Change) error
}

// SetLog makes every following batch go through l (nil: the store writes
// its batches itself).
func (s *Store) SetLog(l Log) {
	if l == nil {
		s.agreed.Store(nil)
		return
	}
	s.agreed.Store(&l)
}

// ApplyBatch applies changes and returns the first failure. Durable:
// written now as one group commit (temporary files, a sync, renames, a
// sync), after whatever waits in the write-back buffer. Else without
// syncs, through the write-back buffer (writeback.go): the log keeps the
// batch until Sync, see package queuelog; the files follow within the
// flush interval, and every read through the store sees them current.
// Applying a batch again, or a sequence of batches again in order,
// leaves the same files: writes replace whole files, a rename whose
// source is gone and whose target exists is done, removing a missing
// file is no error.
func (s *Store) ApplyBatch(changes []Change, durable bool) error {
	if !durable {
		if ok, err := s.buffer(changes); ok {
			return err
		}
	} else if err := s.Flush(); err != nil {
		return err
	}
	b := newBatch()
	b.addChanges(changes)
	for i := range b.ops {
		b.ops[i].afterAll = false // each change stands alone
	}
	b.noSync = !durable
	s.commit(b)
	for _, err := range b.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *batch) changes() []Change {
	out := make([]Change, len(b.ops))
	for i, o := range b.ops {
		c := Change{Name: o.name, Dst: o.dst, Data: o.data}
		switch o.kind {
		case opWrite:
			c.Kind = "write"
		case opRename:
			c.Kind = "rename"
		case opRemove:
			c.Kind = "remove"
		}
		out[i] = c
	}
	return out
}

func (b *batch) addChanges(cs []Change) {
	for _, c := range cs {
		o := op{name: c.Name, dst: c.Dst, data: c.Data, afterAll: true}
		switch c.Kind {
		case "rename":
			o.kind = opRename
		case "remove":
			o.kind = opRemove
		}
		b.ops = append(b.ops, o)
	}
}

// Open opens (creating when needed) the queue directory dir, takes its
// lock, checks its format version and removes temporary files left by a
// crash.
func Open(dir string, log *slog.Logger, opts ...Option) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := durable.MkdirAll(dir, DirMode); err != nil {
		return nil, fmt.Errorf("cannot create queue directory: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("cannot open queue lock: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by another jobqd; only one daemon may use a data directory", ErrLocked, filepath.Join(dir, "lock"))
		}
		return nil, fmt.Errorf("cannot lock queue: %w", err)
	}
	s := &Store{dir: dir, lock: lf, log: log, fs: OSFS{}, pending: newBatch(),
		dirtyFiles: map[string]bool{}, dirtyDirs: map[string]bool{},
		flushEvery: defaultFlushInterval(), maxWaiting: MaxWaiting, wb: newWriteBack(),
		wbKick: make(chan struct{}, 1), wbStop: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.cond = sync.NewCond(&s.mu)
	if err := s.checkVersion(); err != nil {
		lf.Close()
		return nil, err
	}
	if err := durable.MkdirAll(filepath.Join(dir, "archive"), DirMode); err != nil {
		lf.Close()
		return nil, fmt.Errorf("cannot create archive directory: %w", err)
	}
	s.removeTemps(dir)
	s.wg.Add(1)
	go s.run()
	if s.flushEvery > 0 {
		s.flushWG.Add(1)
		go s.flusher()
	}
	return s, nil
}

// Dir is the queue directory.
func (s *Store) Dir() string { return s.dir }

// changedDir records that the entries of path's directory changed, and
// those of its parents up to the queue directory (they may be new).
func (s *Store) changedDir(path string) {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		s.dirtyDirs[d] = true
		if d == s.dir || !strings.HasPrefix(d, s.dir+"/") {
			return
		}
	}
}

// moved records a rename: unsynced contents move with the file.
func (s *Store) moved(from, to string) {
	if s.dirtyFiles[from] {
		delete(s.dirtyFiles, from)
		s.dirtyFiles[to] = true
	}
	s.changedDir(from)
	s.changedDir(to)
}

func (s *Store) checkVersion() error {
	p := filepath.Join(s.dir, "version")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := writeFileDurable(s.dir, "version", []byte(strconv.Itoa(FormatVersion)+"\n")); err != nil {
			return fmt.Errorf("cannot write queue version: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read queue version: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v != FormatVersion {
		return fmt.Errorf("queue format version %q in %s is not supported: this jobqd reads version %d; upgrade or downgrade jobqd to match, or migrate the queue (format upgrades need an empty queue)",
			strings.TrimSpace(string(b)), p, FormatVersion)
	}
	return nil
}

func isTemp(name string) bool { return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp") }

func (s *Store) removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if isTemp(e.Name()) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// JobFileName is the name of job id's file in the queue directory.
func JobFileName(id int64) string { return "job-" + strconv.FormatInt(id, 10) }

// ArchiveName is the archived file name of job id, relative to the queue
// directory: archive/<id div 10000>/job-<id>.
func ArchiveName(id int64) string {
	return filepath.Join("archive", strconv.FormatInt(id/10000, 10), JobFileName(id))
}

// ParseJobFileName returns the id of a "job-N" name.
func ParseJobFileName(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, "job-")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return id, true
}

// add queues one change in the accumulating batch.
func (s *Store) add(o op) Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(o)
}

func (s *Store) addLocked(o op) Ticket {
	if s.closed {
		return FailedTicket(ErrClosed)
	}
	b := s.pending
	if i, ok := b.last[o.name]; ok && o.kind == opWrite && b.ops[i].kind == opWrite && o.deps == nil && b.ops[i].deps == nil {
		b.ops[i].data = o.data // latest content wins
		s.cond.Signal()
		return Ticket{b: b, idx: i}
	}
	b.ops = append(b.ops, o)
	idx := len(b.ops) - 1
	b.last[o.name] = idx
	if o.kind == opRename {
		b.last[o.dst] = idx
	}
	s.cond.Signal()
	return Ticket{b: b, idx: idx}
}

// Write atomically replaces the file name (relative to the queue
// directory) with data.
func (s *Store) Write(name string, data []byte) Ticket {
	return s.add(op{kind: opWrite, name: name, data: data})
}

// WriteAfter is Write made only if every change of deps succeeded
// (otherwise it fails with ErrDependency and the file keeps its old
// content). deps must have been submitted before, from the same
// goroutine or in an order it knows; they are in this batch or an earlier
// one.
func (s *Store) WriteAfter(name string, data []byte, deps ...Ticket) Ticket {
	return s.add(op{kind: opWrite, name: name, data: data, deps: deps})
}

// Rename atomically moves src to dst (both relative to the queue
// directory), creating dst's directory.
func (s *Store) Rename(src, dst string) Ticket {
	return s.add(op{kind: opRename, name: src, dst: dst})
}

// MoveAside moves the file name of this node's queue directory to
// quarantine/NAME.SUFFIX at once and durably, outside the group commit and
// the log: a file found corrupt here is this node's own damage, kept for
// inspection; removing the job from the queue (on every node) is a
// separate Remove. It returns where the file went, relative to Dir.
func (s *Store) MoveAside(name, suffix string) (string, error) {
	if strings.ContainsAny(name, "/\\") || strings.ContainsAny(suffix, "/\\") || name == "" {
		return "", fmt.Errorf("cannot move %q aside: not a file of the queue directory", name)
	}
	dst := "quarantine/" + name + "." + suffix
	if err := s.Flush(); err != nil {
		return "", err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.fs.MkdirAll(filepath.Join(s.dir, "quarantine"), DirMode); err != nil {
		return "", err
	}
	if err := durable.Rename(filepath.Join(s.dir, name), filepath.Join(s.dir, dst)); err != nil {
		return "", err
	}
	return dst, nil
}

// Remove deletes name; a missing file is not an error.
func (s *Store) Remove(name string) Ticket {
	return s.add(op{kind: opRemove, name: name})
}

// OnCommit sets a function called after every group commit with the
// number of file changes in it and the time it took (for metrics).
func (s *Store) OnCommit(fn func(changes int, d time.Duration)) { s.onCommit.Store(&fn) }

// Stats returns the group-commit counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close commits what is pending, stops the committer, writes the
// write-back buffer and releases the lock.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cond.Signal()
	s.mu.Unlock()
	s.wg.Wait()
	s.stopFlusher()
	return s.lock.Close()
}

func (s *Store) run() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		for len(s.pending.ops) == 0 && !s.closed {
			s.cond.Wait()
		}
		b := s.pending
		if len(b.ops) == 0 && s.closed {
			s.mu.Unlock()
			return
		}
		s.pending = newBatch()
		s.mu.Unlock()

		start := time.Now()
		if l := s.agreed.Load(); l != nil {
			err := (*l).Commit(b.changes())
			b.errs = make([]error, len(b.ops))
			for i := range b.errs {
				b.errs[i] = err
			}
			s.finish(b, start)
			continue
		}
		var wait func(error) error
		if r := s.repl.Load(); r != nil {
			var extra []Change
			extra, wait = (*r).Begin(b.changes())
			b.addChanges(extra)
		}
		if err := s.Flush(); err != nil {
			// Written in order or not at all.
			b.errs = make([]error, len(b.ops))
			for i := range b.errs {
				b.errs[i] = err
			}
		} else {
			s.commit(b)
		}
		if wait != nil {
			var localErr error
			for _, e := range b.errs {
				if e != nil {
					localErr = e
					break
				}
			}
			if err := wait(localErr); err != nil {
				for i := range b.errs {
					if b.errs[i] == nil {
						b.errs[i] = err
					}
				}
			}
		}
		s.finish(b, start)
	}
}

// finish counts a batch and completes its tickets.
func (s *Store) finish(b *batch, start time.Time) {
	if fn := s.onCommit.Load(); fn != nil {
		(*fn)(len(b.ops), time.Since(start))
	}
	s.mu.Lock()
	s.stats.Batches++
	s.stats.Ops += int64(len(b.ops))
	s.mu.Unlock()
	close(b.done)
}

// commit applies one batch: temporary files, one sync, renames, one sync.
// Sync makes every change applied so far durable (an fsync of each file
// written and each directory changed since the last sync).
func (s *Store) Sync() error {
	if err := s.Flush(); err != nil {
		return err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.syncChanged(); err != nil {
		return fmt.Errorf("cannot sync queue: %w", err)
	}
	return nil
}

func (s *Store) commit(b *batch) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	b.errs = make([]error, len(b.ops))
	temps := make([]string, len(b.ops))
	failAll := func(err error) {
		for i := range b.errs {
			if b.errs[i] == nil {
				b.errs[i] = err
			}
		}
	}
	wrote := false
	for i, o := range b.ops {
		if o.kind != opWrite {
			continue
		}
		// Temporary names are reused from batch to batch (".tmp<index in
		// the batch>"): creating a name the directory has seen before is
		// about twice as fast on ext4 as creating a new one each time.
		tmp := filepath.Join(filepath.Dir(filepath.Join(s.dir, o.name)), ".tmp"+strconv.Itoa(i))
		err := s.fs.WriteFile(tmp, o.data, FileMode)
		if errors.Is(err, fs.ErrNotExist) {
			// The first file of a new directory (archive/N sent to a
			// replica): create it; the syncs make it durable.
			if err = s.fs.MkdirAll(filepath.Dir(tmp), DirMode); err == nil {
				err = s.fs.WriteFile(tmp, o.data, FileMode)
			}
		}
		if err != nil {
			b.errs[i] = fmt.Errorf("cannot write %s: %w", o.name, err)
			_ = s.fs.Remove(tmp)
			continue
		}
		s.dirtyFiles[tmp] = true
		s.changedDir(tmp)
		temps[i] = tmp
		wrote = true
	}
	if wrote && !b.noSync {
		if err := s.syncChanged(); err != nil {
			for i := range temps {
				if temps[i] != "" {
					_ = s.fs.Remove(temps[i])
				}
			}
			failAll(fmt.Errorf("cannot sync queue: %w", err))
			return
		}
	}
	for i, o := range b.ops {
		if b.errs[i] != nil {
			continue
		}
		var err error
		if !depsOK(b, i) {
			_ = s.fs.Remove(temps[i])
			b.errs[i] = ErrDependency
			continue
		}
		switch o.kind {
		case opWrite:
			err = s.fs.Rename(temps[i], filepath.Join(s.dir, o.name))
			if err != nil {
				_ = s.fs.Remove(temps[i])
			}
			s.moved(temps[i], filepath.Join(s.dir, o.name))
		case opRename:
			dst := filepath.Join(s.dir, o.dst)
			if err = s.fs.MkdirAll(filepath.Dir(dst), DirMode); err == nil {
				err = s.fs.Rename(filepath.Join(s.dir, o.name), dst)
				s.moved(filepath.Join(s.dir, o.name), dst)
				if errors.Is(err, fs.ErrNotExist) {
					// Moved already (a replica receiving a rename
					// again after a resync): done if dst is there.
					if _, serr := os.Stat(dst); serr == nil {
						err = nil
					}
				}
			}
		case opRemove:
			delete(s.dirtyFiles, filepath.Join(s.dir, o.name))
			s.changedDir(filepath.Join(s.dir, o.name))
			err = s.fs.Remove(filepath.Join(s.dir, o.name))
			if errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
		if err != nil {
			b.errs[i] = fmt.Errorf("cannot update %s: %w", o.name, err)
		}
	}
	if b.noSync {
		return
	}
	if err := s.syncChanged(); err != nil {
		failAll(fmt.Errorf("cannot sync queue: %w", err))
	}
}

// depsOK reports whether the conditions of op i of b hold: changes of
// this batch before it are final by now, earlier batches are done.
func depsOK(b *batch, i int) bool {
	o := b.ops[i]
	if o.afterAll {
		for j := range i {
			if b.errs[j] != nil {
				return false
			}
		}
	}
	for _, t := range o.deps {
		if t.b == nil {
			continue
		}
		if t.b == b {
			if t.idx >= i || b.errs[t.idx] != nil {
				return false
			}
			continue
		}
		select {
		case <-t.b.done:
			if t.b.errs[t.idx] != nil {
				return false
			}
		default:
			return false // a later batch: cannot be
		}
	}
	return true
}

// syncChanged makes what changed since the last sync durable (under applyMu).
func (s *Store) syncChanged() error {
	files, dirs := slices.Sorted(maps.Keys(s.dirtyFiles)), slices.Sorted(maps.Keys(s.dirtyDirs))
	if err := s.fs.Sync(files, dirs); err != nil {
		return err
	}
	clear(s.dirtyFiles)
	clear(s.dirtyDirs)
	return nil
}

// writeFile is os.WriteFile in three system calls (open, write, close):
// an os.File costs an fstat more (to decide on polling), and a group
// commit writes thousands of files a second.
func writeFile(path string, data []byte, perm fs.FileMode) error {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, uint32(perm.Perm()))
	})
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	for len(data) > 0 && err == nil {
		var n int
		n, err = ignoringEINTR(func() (int, error) { return unix.Write(fd, data) })
		switch {
		case err != nil:
		case n <= 0:
			err = io.ErrShortWrite
		default:
			data = data[n:]
		}
	}
	if err != nil {
		err = &fs.PathError{Op: "write", Path: path, Err: err}
	}
	if cerr := unix.Close(fd); cerr != nil && err == nil {
		err = &fs.PathError{Op: "close", Path: path, Err: cerr}
	}
	return err
}

func ignoringEINTR(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// rename is os.Rename without its lstat of newpath (which refuses to
// replace a directory; rename(2) refuses that too, with EISDIR).
func rename(oldpath, newpath string) error {
	_, err := ignoringEINTR(func() (int, error) { return 0, unix.Rename(oldpath, newpath) })
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// writeFileDurable replaces dir/name outside the group commit (used while
// opening, before the committer runs).
func writeFileDurable(dir, name string, data []byte) error {
	return durable.WriteFile(filepath.Join(dir, name), data, FileMode)
}

// ReadSerial returns the last job id handed out: the serial file, raised
// to the highest job id present live or in the archive (a job file can be
// durable a moment before the serial that covers it).
func (s *Store) ReadSerial(liveMax int64) (int64, error) {
	if err := s.Flush(); err != nil {
		return 0, err
	}
	var serial int64
	b, err := os.ReadFile(filepath.Join(s.dir, "serial"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("cannot read queue serial: %w", err)
	default:
		serial, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || serial < 0 {
			return 0, fmt.Errorf("queue serial file %s is corrupt: %q", filepath.Join(s.dir, "serial"), bytes.TrimSpace(b))
		}
	}
	serial = max(serial, liveMax, s.maxArchived())
	return serial, nil
}

// SerialData is the content of the serial file for id.
func SerialData(id int64) []byte { return []byte(strconv.FormatInt(id, 10) + "\n") }

func (s *Store) maxArchived() int64 {
	ents, err := os.ReadDir(filepath.Join(s.dir, "archive"))
	if err != nil {
		return 0
	}
	var dirs []int64
	for _, e := range ents {
		if n, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && e.IsDir() {
			dirs = append(dirs, n)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i] > dirs[j] })
	for _, d := range dirs {
		files, _ := os.ReadDir(filepath.Join(s.dir, "archive", strconv.FormatInt(d, 10)))
		var m int64
		for _, f := range files {
			if id, ok := ParseJobFileName(f.Name()); ok && id > m {
				m = id
			}
		}
		if m > 0 {
			return m
		}
	}
	return 0
}

// JobIDs lists the ids of the live job files, sorted.
func (s *Store) JobIDs() ([]int64, error) {
	if err := s.Flush(); err != nil {
		return nil, err
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list queue directory: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("cannot list queue directory: %w", err)
	}
	var ids []int64
	for _, n := range names {
		if id, ok := ParseJobFileName(n); ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// ReadJob reads a live job's file.
func (s *Store) ReadJob(id int64) ([]byte, error) {
	return s.ReadFile(JobFileName(id))
}

// ReadArchived reads an archived job's file; ok is false when there is
// none.
func (s *Store) ReadArchived(id int64) ([]byte, bool, error) {
	b, err := s.ReadFile(ArchiveName(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// ArchivedIDs lists every archived job id, sorted. It reads the whole
// archive: only for explicit requests (jobq list --archived).
func (s *Store) ArchivedIDs() ([]int64, error) {
	if err := s.Flush(); err != nil {
		return nil, err
	}
	var ids []int64
	root := filepath.Join(s.dir, "archive")
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if id, ok := ParseJobFileName(f.Name()); ok {
				ids = append(ids, id)
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// Drained reports whether the drain flag file exists.
func (s *Store) Drained() bool {
	_ = s.flushFor("drain") // a failure: the file as it is
	_, err := os.Stat(filepath.Join(s.dir, "drain"))
	return err == nil
}

// SetDrain sets or clears the drain flag durably.
func (s *Store) SetDrain(on bool) error {
	if on {
		return s.Write("drain", nil).Wait()
	}
	return s.Remove("drain").Wait()
}
