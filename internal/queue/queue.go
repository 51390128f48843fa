// Package queue is jobq's job queue engine: it keeps the live jobs in
// memory, stores every change through package store, runs jobs on a pool of
// workers in priority order, and answers the LUXI calls (submit, query,
// wait, cancel, priority, archive, drain). The decisions themselves (status,
// transitions, dependencies) are package job's pure functions.
package queue

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/filter"
	"github.com/jobq-dev/jobq/internal/idem"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/metrics"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/locking"
	"github.com/jobq-dev/jobq/opcodes"
)

// DefaultMaxRunning is Ganeti's default max_running_jobs.
const DefaultMaxRunning = 20

// Config configures a Queue.
type Config struct {
	Store      *store.Store
	Registry   *opcodes.Registry // nil: opcodes.Builtin()
	MaxRunning int               // 0: DefaultMaxRunning
	NodeName   string
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now. Tests pass a fake one.
	Now func() time.Time
	// LockSchedule is the lock-attempt schedule; zero: Ganeti's
	// (locking.DefaultSchedule).
	LockSchedule locking.Schedule
	// OnLockWait, when set, is called with a job's id each time its worker
	// starts waiting for a lock (tests wait on it).
	OnLockWait func(jobID int64)
	// Metrics receives the engine's events; nil records nothing.
	Metrics *metrics.Set
	// KeepFinal is how many finished jobs stay whole in memory; 0 means
	// DefaultKeepFinal.
	KeepFinal int
	// Nodes reaches the cluster's nodes for opcodes; nil: only this node
	// (NodeName), whose restricted commands are in RestrictedDir.
	Nodes         opcodes.Nodes
	RestrictedDir string
	// NodeNames are the cluster's nodes, declared as node locks (NodeName
	// is always declared).
	NodeNames []string
	// KeepStore leaves the store open at Shutdown (a node that stops
	// being master goes on replicating into it).
	KeepStore bool
	// Limits bound each submitted job (opcodes, bytes, nesting); zero
	// fields take job's defaults. A job over one is refused, with an
	// error naming the limit, before anything is stored.
	Limits job.Limits
	// MaxLogEntries is the most log entries a job keeps (its file is
	// rewritten with each); 0 means DefaultMaxLogEntries, negative no
	// limit.
	MaxLogEntries int
	// LogFlushDelay is how long a log entry may wait to be stored with
	// the job's next write: the log entries of that time are stored with
	// one write of the job instead of one each (watchers see them at
	// once). 0 means DefaultLogFlushDelay, negative stores each at once.
	LogFlushDelay time.Duration
	// IdempotencyWindow is how long an idempotency key is kept; 0 means
	// idem.DefaultWindow (24 h).
	IdempotencyWindow time.Duration
	// Filters are the job filter rules the scheduler applies from the
	// start (SetFilters changes them); nil: none.
	Filters *filter.Set
	// testBetweenChunks, when set, is called between the chunks of a
	// submission, without the queue lock (tests submit meanwhile).
	testBetweenChunks func()
}

// DefaultMaxLogEntries is the default of Config.MaxLogEntries.
const DefaultMaxLogEntries = 1000

// DefaultLogFlushDelay is the default of Config.LogFlushDelay.
const DefaultLogFlushDelay = 500 * time.Millisecond

// submitChunk is how many jobs of one submission are built and handed to
// the store under one hold of the queue lock; others' calls get the lock
// between chunks, so a submission of many jobs does not stall them.
const submitChunk = 64

// Error is a call failure with Ganeti's error class, e.g.
// GenericError "Queue drained". The LUXI layer sends it as it is.
type Error struct {
	Class string
	Args  []any
}

func (e *Error) Error() string {
	if len(e.Args) > 0 {
		return fmt.Sprintf("%s: %v", e.Class, e.Args[0])
	}
	return e.Class
}

func genericError(format string, args ...any) *Error {
	return &Error{Class: "GenericError", Args: []any{fmt.Sprintf(format, args...)}}
}

// errKilled is the cause of a running job's context when it is killed.
var errKilled = errors.New("job killed")

type entry struct {
	id int64 // the job id; never changes, read without q.mu
	// idx replaces job and shown (both nil) for a final job evicted from
	// memory: what listings need; the rest is read from its file.
	idx *finalIndex
	// job is the working state, changed by workers and calls under q.mu.
	job *job.Job
	// shown is what readers see: the last durable state (plus log entries
	// and the waiting status, which need not be durable). Queries and
	// WaitForJobChange never report a state a crash could take back.
	shown *job.Job
	// version counts writes of job; shownVersion is the version of shown.
	version, shownVersion uint64
	// summary caches the opcode summaries (inputs never change).
	summary []string
	// author caches the "author" field ("" for none), so that listings
	// select by author without reading an evicted job's file.
	author string
	// watch is what WaitForJobChange reads without q.mu: replaced (and the
	// old one's changed channel closed) whenever the job changes, so that
	// ten thousand woken watchers do not queue on q.mu one by one; nil
	// once the job is evicted.
	watch atomic.Pointer[watchView]
	// heapIdx is the position in the ready heap, -1 when not in it.
	heapIdx int
	// owned is true while a worker executes the job.
	owned bool
	// worker identifies the runJob call that owns the job (0: none), so
	// that a worker that has parked the job does not disown its successor.
	worker uint64
	// cancelRun cancels the running opcode's context (kill).
	cancelRun context.CancelCauseFunc
	// lockCancel interrupts the worker's wait for locks (cancel).
	lockCancel context.CancelFunc
	// logPending is set while log entries wait for the next write of the
	// job (Config.LogFlushDelay); any write clears it.
	logPending bool
}

// newEntry makes the entry of a durable job; summary may be nil (computed
// here).
func (q *Queue) newEntry(j *job.Job, summary []string) *entry {
	if summary == nil {
		summary = q.summaries(j)
	}
	shown := j
	if !j.Final() {
		shown = j.Clone()
	}
	e := &entry{id: j.ID, job: j, shown: shown, heapIdx: -1, summary: summary, author: jobAuthor(j)}
	e.watch.Store(&watchView{shown: shown, summary: summary, changed: make(chan struct{})})
	return e
}

// watchView is one shown state of a live job as its watchers see it.
// Everything in it is immutable except the cache of encoded rows.
type watchView struct {
	shown   *job.Job // never nil
	summary []string
	changed chan struct{} // closed when a newer view replaces this one
	row     atomic.Pointer[waitRow]
}

// notify publishes e's shown state to watchers and wakes those waiting on
// the previous one. An evicted job gets no view (its watchers read its
// file), so that a hundred thousand finished jobs hold none. Called with
// q.mu held.
func (e *entry) notify() {
	var next *watchView
	if e.shown != nil {
		next = &watchView{shown: e.shown, summary: e.summary, changed: make(chan struct{})}
	}
	if old := e.watch.Swap(next); old != nil {
		close(old.changed)
	}
}

// finalIndex is what a final job evicted from memory keeps: the fields of
// a default listing and of the engine's decisions.
type finalIndex struct {
	status                   job.Status
	received, started, ended *job.Timestamp
}

// DefaultKeepFinal is how many recently finished jobs stay whole in memory
// (their watchers and queries need no disk read); older ones keep only a
// finalIndex, so that 100,000 finished jobs cost little memory.
const DefaultKeepFinal = 2048

func tsCopy(t *job.Timestamp) *job.Timestamp {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// evict drops a final job's full state, keeping its index.
func (e *entry) evict() {
	j := e.shown
	e.idx = &finalIndex{status: j.CalcStatus(), received: tsCopy(j.ReceivedTimestamp),
		started: tsCopy(j.StartTimestamp), ended: tsCopy(j.EndTimestamp)}
	e.job, e.shown = nil, nil
	// Its watchers' view must not keep the whole job in memory.
	e.notify()
}

// status is the shown status.
func (e *entry) status() job.Status {
	if e.idx != nil {
		return e.idx.status
	}
	return e.shown.CalcStatus()
}

// final reports whether the shown state is final.
func (e *entry) final() bool { return e.idx != nil || e.shown.Final() }

// endTS is the shown end timestamp.
func (e *entry) endTS() *job.Timestamp {
	if e.idx != nil {
		return e.idx.ended
	}
	return e.shown.EndTimestamp
}

// publishLocked makes a snapshot visible to readers unless a newer one
// already is, and wakes watchers.
func (q *Queue) publishLocked(e *entry, snap *job.Job, v uint64) {
	if v > e.shownVersion && e.idx == nil {
		e.shown, e.shownVersion = snap, v
		if v == e.version && snap.Final() {
			// A final job never changes again: working and shown state
			// are one copy, and it joins the recently finished.
			e.job = snap
			q.keepRecentLocked(e)
		}
	}
	e.notify()
}

// keepRecentLocked records a newly final job and evicts the oldest
// recently finished one beyond Config.KeepFinal.
func (q *Queue) keepRecentLocked(e *entry) {
	q.recent = append(q.recent, e)
	if len(q.recent) <= q.cfg.KeepFinal {
		return
	}
	old := q.recent[0]
	q.recent[0] = nil
	q.recent = q.recent[1:]
	if old.idx == nil && old.shown != nil && old.shown.Final() {
		old.evict()
	}
}

// workingLocked is the job's working state; for an evicted final job, its
// file (which a final job's calls only read).
func (q *Queue) workingLocked(e *entry) (*job.Job, error) {
	if e.idx == nil {
		return e.job, nil
	}
	return q.readLive(e.id)
}

// readLive reads and decodes a live job's file.
func (q *Queue) readLive(id int64) (*job.Job, error) {
	b, err := q.store.ReadJob(id)
	if err != nil {
		return nil, fmt.Errorf("cannot read job %d: %w", id, err)
	}
	return job.Decode(b)
}

// showNowLocked publishes the working state at once, for changes that need
// not be durable (the waiting status, log entries).
func (q *Queue) showNowLocked(e *entry) {
	e.version++
	q.publishLocked(e, e.job.Clone(), e.version)
}

// Queue is the engine. Create it with Open.
type Queue struct {
	cfg   Config
	store *store.Store
	reg   *opcodes.Registry
	locks *locking.Manager
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	jobs    map[int64]*entry
	serial  int64
	ready   readyHeap
	running int
	// workerSeq numbers the workers started (entry.worker).
	workerSeq uint64
	// recent are the final jobs still whole in memory, oldest first.
	recent []*entry
	// archiving are the jobs whose move to the archive is not durable yet.
	archiving map[int64]bool
	idem      idemState // idempotency keys (idem.go)
	// depWaiters maps a job id to the jobs parked until it is final.
	depWaiters map[int64][]*entry
	drained    bool
	closing    bool
	holding    bool // HoldStarts: no job starts (handover.go)
	// holdingSubmits refuses new submissions (HoldSubmissions); submitting
	// counts the submissions taken in and not yet answered.
	holdingSubmits bool
	submitting     int
	// flt is the scheduler's state of the job filters (filters.go).
	flt filterState
	// delay holds queued jobs until their not-before time (delay.go).
	delay delayed
	// hk is the built-in housekeeping (archive.go).
	hk housekeeping
	// sched runs the recurring schedules (schedules.go).
	sched schedules

	runCtx    context.Context
	runCancel context.CancelFunc
	// history is what the dashboard's charts show; sampled ends when
	// its depth sampler has stopped.
	history History
	sampled chan struct{}
	wg      sync.WaitGroup
}

// Open loads the queue from the store and recovers it after a stop or a
// crash: jobs that were running or canceling end in error ("Unclean master
// shutdown"), waiting jobs go back to queued. It then starts the workers.
func Open(cfg Config) (*Queue, error) {
	if cfg.Registry == nil {
		cfg.Registry = opcodes.Builtin()
	}
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = DefaultMaxRunning
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeepFinal <= 0 {
		cfg.KeepFinal = DefaultKeepFinal
	}
	if cfg.MaxLogEntries == 0 {
		cfg.MaxLogEntries = DefaultMaxLogEntries
	}
	if cfg.LogFlushDelay == 0 {
		cfg.LogFlushDelay = DefaultLogFlushDelay
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	if len(cfg.LockSchedule.Timeouts) == 0 {
		cfg.LockSchedule = locking.DefaultSchedule()
	}
	q := &Queue{cfg: cfg, store: cfg.Store, reg: cfg.Registry, log: cfg.Logger, now: cfg.Now,
		jobs: map[int64]*entry{}, depWaiters: map[int64][]*entry{}, archiving: map[int64]bool{}}
	q.locks = locking.NewManager(locking.Config{Schedule: cfg.LockSchedule, OnWait: q.onLockWait})
	for _, n := range append([]string{cfg.NodeName}, cfg.NodeNames...) {
		if n == "" {
			continue
		}
		if err := q.locks.Declare(locking.LevelNode, n); err != nil {
			return nil, err
		}
	}
	q.flt.set, q.flt.sweep = cfg.Filters, true
	q.runCtx, q.runCancel = context.WithCancel(context.Background())
	if err := q.load(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	q.dispatchLocked()
	q.mu.Unlock()
	q.sampled = make(chan struct{})
	go q.sampleDepth()
	return q, nil
}

// sampleDepth records the number of unfinished jobs in the history now
// and every depthSampleEvery until the queue shuts down.
func (q *Queue) sampleDepth() {
	defer close(q.sampled)
	t := time.NewTicker(depthSampleEvery)
	defer t.Stop()
	for {
		q.SampleDepth()
		select {
		case <-q.runCtx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleDepth records the number of unfinished jobs in the history.
func (q *Queue) SampleDepth() {
	q.mu.Lock()
	n := 0
	for _, e := range q.jobs {
		if !e.status().Final() {
			n++
		}
	}
	q.mu.Unlock()
	q.history.Depth(q.now(), n)
}

// Charts are the history's last hour, per minute, and last day, per 15
// minutes.
func (q *Queue) Charts() (hour, day Chart) {
	now := q.now()
	return q.history.Chart(now, time.Minute, 60), q.history.Chart(now, 15*time.Minute, 96)
}

func (q *Queue) ts() job.Timestamp { return job.TS(q.now()) }

func (q *Queue) load() error {
	ids, err := q.store.JobIDs()
	if err != nil {
		return err
	}
	// Read and decode on every core; the results are applied in id order.
	type loaded struct {
		j       *job.Job
		summary []string
		err     error
	}
	results := make([]loaded, len(ids))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				b, err := q.store.ReadJob(ids[i])
				if err != nil {
					results[i].err = fmt.Errorf("cannot read job-%d: %w", ids[i], err)
					continue
				}
				j, err := job.Decode(b)
				if err == nil && j.ID != ids[i] {
					err = fmt.Errorf("file job-%d holds job %d", ids[i], j.ID)
				}
				if err != nil {
					results[i].err = err
					continue
				}
				results[i] = loaded{j: j, summary: q.summaries(j)}
			}
		}()
	}
	wg.Wait()

	now := q.ts()
	var maxID int64
	var tickets []store.Ticket
	recovered := 0
	for i, id := range ids {
		maxID = max(maxID, id)
		j, summary, err := results[i].j, results[i].summary, results[i].err
		results[i] = loaded{}
		if err != nil {
			// Kept here for inspection; the job leaves the queue on every
			// node (the others' copies follow the master's view).
			name := store.JobFileName(id)
			dst, merr := q.store.MoveAside(name, strconv.FormatInt(now[0], 10))
			if merr != nil {
				return fmt.Errorf("cannot move corrupt job file job-%d aside: %w", id, merr)
			}
			q.log.Error("job file is corrupt; moved aside", "file", name, "to", dst, "err", err)
			if err := q.store.Remove(name).Wait(); err != nil {
				return fmt.Errorf("cannot remove corrupt job file job-%d from the queue: %w", id, err)
			}
			continue
		}
		if j.Repaired != "" {
			q.log.Warn("job file written by an older jobq held what it no longer accepts; read it leniently and storing it again",
				"file", store.JobFileName(id), "repair", j.Repaired)
		}
		if j.RecoverRerunning(now, q.reg.Rerun) || j.Repaired != "" {
			if j.Repaired == "" {
				recovered++
			}
			j.Repaired = ""
			b, err := j.Encode()
			if err != nil {
				return err
			}
			tickets = append(tickets, q.store.Write(store.JobFileName(j.ID), b))
		}
		e := q.newEntry(j, summary)
		q.indexJobLocked(j)
		if j.Final() {
			e.evict() // finished before this start: its index is enough
		}
		q.jobs[j.ID] = e
		if j.CalcStatus() == job.StatusQueued && !q.holdLocked(e) {
			heap.Push(&q.ready, e)
		}
	}
	for _, t := range tickets {
		if err := t.Wait(); err != nil {
			return fmt.Errorf("cannot store recovered job: %w", err)
		}
	}
	q.serial, err = q.store.ReadSerial(maxID)
	if err != nil {
		return err
	}
	q.drained = q.store.Drained()
	if err := q.loadArchivedKeys(); err != nil {
		return fmt.Errorf("cannot read the archive's idempotency keys: %w", err)
	}
	q.log.Info("queue loaded", "jobs", len(q.jobs), "recovered", recovered, "serial", q.serial, "drained", q.drained)
	return nil
}

// Shutdown stops starting jobs, refuses submissions, waits for running
// opcodes until ctx is done, then cancels what still runs (it is recovered
// at the next start as after a crash) and closes the store.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	q.closing = true
	q.mu.Unlock()
	q.stopHousekeeping()
	q.stopSchedules()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("jobs still running at shutdown were interrupted; they end in error at the next start")
		q.runCancel()
		<-done
	}
	q.runCancel()
	q.stopDelay()
	<-q.sampled
	if q.cfg.KeepStore {
		return err
	}
	if cerr := q.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// MsgShuttingDown refuses a submission to a queue that shuts down:
// nothing of it was stored.
const MsgShuttingDown = "The job queue is shutting down, not accepting new jobs"

// RefusedError is a job refused for what it holds (its shape, its text,
// a limit): the client must change it before sending it again.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// SubmitResult is one job's submission outcome.
type SubmitResult struct {
	ID  int64
	Err error
}

// Submit stores new jobs durably and queues them. Each job is a list of
// opcode inputs. When the queue is drained and ignoreDrain is false the
// whole call fails with GenericError "Queue drained". A job whose shape is
// invalid (no opcodes, an opcode that is not an object the job file can
// hold as it is) or over Config.Limits gets an error of its own and no id;
// these checks run before the queue lock is taken. Jobs are built and
// handed to the store submitChunk at a time, releasing the lock between
// chunks, so that a submission of many jobs does not stall other calls.
func (q *Queue) Submit(jobs [][]json.RawMessage, ignoreDrain bool) ([]SubmitResult, error) {
	return q.SubmitTimed(jobs, ignoreDrain, job.Timing{})
}

// SubmitTimed is Submit with a timing for every job of the call: a
// not-before time (the job stays queued until then) and time limits
// (see job.Timing). A timing a job cannot carry refuses the whole call.
func (q *Queue) SubmitTimed(jobs [][]json.RawMessage, ignoreDrain bool, timing job.Timing) ([]SubmitResult, error) {
	return q.SubmitWith(jobs, SubmitOptions{IgnoreDrain: ignoreDrain, Timing: timing, Admin: true})
}

// SubmitWith is Submit with options (author.go): a timing, the author,
// whether the author may submit administrative opcodes, an idempotency
// key.
func (q *Queue) SubmitWith(jobs [][]json.RawMessage, o SubmitOptions) ([]SubmitResult, error) {
	ignoreDrain, timing := o.IgnoreDrain, o.Timing
	if err := o.check(jobs); err != nil {
		return nil, err
	}
	var rec idem.Record
	if o.IdempotencyKey != "" {
		r, res, done, err := q.idemBegin(jobs, o)
		if done {
			return res, err
		}
		defer q.idemEnd(o.IdempotencyKey)
		rec = r
	}
	if err := timing.Check(); err != nil {
		return nil, &RefusedError{Err: genericError("%s", err)}
	}
	for i, ops := range jobs {
		if err := timing.CheckOps(len(ops)); err != nil {
			if len(jobs) > 1 {
				return nil, &RefusedError{Err: genericError("Job %d of the submission: %s", i, err)}
			}
			return nil, &RefusedError{Err: genericError("%s", err)}
		}
	}
	// As Ganeti, an opcode priority a client may not ask for refuses the
	// whole call (luxid fails to parse the request).
	for i, ops := range jobs {
		if err := job.CheckSubmitPriorities(ops); err != nil {
			if len(jobs) > 1 {
				return nil, &RefusedError{Err: genericError("Job %d of the submission: %s", i, err)}
			}
			return nil, &RefusedError{Err: genericError("%s", err)}
		}
	}
	res := make([]SubmitResult, len(jobs))
	refused := make([]bool, len(jobs))
	for i, ops := range jobs {
		if err := job.CheckSubmission(ops, q.cfg.Limits); err != nil {
			res[i].Err, refused[i] = &RefusedError{Err: err}, true
		}
	}
	// Opcodes with a submission check (declared opcodes: typed
	// parameters, defaults, the definition's version) are refused or
	// completed here, before anything is stored.
	jobs = slices.Clone(jobs)
	for i, ops := range jobs {
		if refused[i] {
			continue
		}
		adm, err := q.reg.Admit(ops)
		if err != nil {
			res[i].Err, refused[i] = &RefusedError{Err: err}, true
			continue
		}
		jobs[i] = adm
	}
	entries := make([]*entry, len(jobs))
	starts := make([]*started, len(jobs))
	tickets := make([]store.Ticket, len(jobs))
	var serialTicket store.Ticket
	for lo := 0; lo < len(jobs) || lo == 0; lo += submitChunk {
		if lo > 0 && q.cfg.testBetweenChunks != nil {
			q.cfg.testBetweenChunks()
		}
		hi := min(lo+submitChunk, len(jobs))
		now := q.now()
		var reasons [][]any
		if !o.Author.IsZero() {
			reasons = append(reasons, o.Author.Entry(now.UnixMicro()*1000))
		}
		q.mu.Lock()
		if q.closing {
			q.mu.Unlock()
			if lo == 0 {
				return nil, genericError("%s", MsgShuttingDown)
			}
			for i := lo; i < len(jobs); i++ {
				if !refused[i] {
					res[i].Err = fmt.Errorf("the job queue is shutting down, not accepting new jobs")
				}
			}
			break
		}
		if lo == 0 && q.holdingSubmits {
			// Handing the leadership over: the next master takes it.
			q.mu.Unlock()
			return nil, genericError("%s", MsgShuttingDown)
		}
		if lo == 0 && q.drained && !ignoreDrain {
			q.mu.Unlock()
			return nil, genericError("Queue drained")
		}
		if lo == 0 {
			q.submitting++
			defer func() {
				q.mu.Lock()
				q.submitting--
				q.mu.Unlock()
			}()
		}
		any := false
		for i := lo; i < hi; i++ {
			if refused[i] {
				continue
			}
			// Relative dependencies name earlier jobs of this call; one
			// that was refused has no id to depend on.
			ops, err := job.ResolveRelativeDeps(jobs[i], func(rel int64) (int64, bool) {
				k := i + int(rel)
				if k < 0 || rel < int64(-len(jobs)) || res[k].ID == 0 {
					return 0, false
				}
				return res[k].ID, true
			})
			if err != nil {
				res[i].Err = &RefusedError{Err: err}
				continue
			}
			j, err := job.New(q.serial+1, ops, job.TS(now), now.UnixMicro()*1000, reasons...)
			if err != nil {
				res[i].Err = &RefusedError{Err: err}
				continue
			}
			j.SetTiming(timing)
			if rec.Key != "" {
				setIdem(j, rec, i)
			}
			e := q.newEntry(j, nil)
			// A job that a free worker would take at once starts here: its
			// first write already says "running", which saves one durable
			// write per short job.
			if !q.holding && q.running < q.cfg.MaxRunning && q.ready.Len() == 0 && j.Due(job.TS(now)) && !q.mayHoldLocked(e) {
				if st := q.tryStartLocked(e); st != nil {
					starts[i] = st
					q.running++
					q.wg.Add(1)
				}
			}
			b, err := j.Encode()
			if err != nil {
				res[i].Err = err
				q.abandonLocked(starts[i])
				starts[i] = nil
				continue
			}
			e.shown = j.Clone()
			e.notify() // nobody watches it yet: only its view is new
			q.serial++
			any = true
			res[i].ID = j.ID
			entries[i] = e
			tickets[i] = q.store.Write(store.JobFileName(j.ID), b)
		}
		if any {
			serialTicket = q.store.Write("serial", store.SerialData(q.serial))
		}
		q.mu.Unlock()
	}

	if err := serialTicket.Wait(); err != nil {
		// The serial file is a hint: loading raises it to the highest job
		// id on disk. A job whose own file is durable is submitted;
		// failing it would leave a file that runs at the next start.
		q.log.Warn("cannot store the queue serial", "err", err)
	}
	// Wait for the writes without the lock, then take the jobs in,
	// chunk by chunk.
	errs := make([]error, len(jobs))
	for i, e := range entries {
		if e != nil {
			errs[i] = tickets[i].Wait()
		}
	}
	for lo := 0; lo < len(jobs); lo += submitChunk {
		hi := min(lo+submitChunk, len(jobs))
		q.mu.Lock()
		for i := lo; i < hi; i++ {
			e := entries[i]
			if e == nil {
				continue
			}
			if err := errs[i]; err != nil {
				q.log.Error("job not stored", "job", e.id, "err", err)
				res[i] = SubmitResult{Err: storeFailure(e.id, err, o.IdempotencyKey)}
				q.abandonLocked(starts[i])
				// It may be on disk here (or on some replicas) all the same:
				// the client was told it is not a job, so it must not turn
				// up at the next start.
				q.store.Remove(store.JobFileName(e.id))
				continue
			}
			q.jobs[e.id] = e
			if rec.Key != "" {
				r := rec
				r.Index = i
				q.idemIndexLocked().Add(r, e.id)
			}
			q.cfg.Metrics.JobsSubmitted(1)
			if st := starts[i]; st != nil {
				q.ownLocked(e)
				go q.runJob(e, e.worker, st)
				continue
			}
			if !q.holdLocked(e) {
				q.pushReadyLocked(e)
			}
		}
		q.dispatchLocked()
		q.mu.Unlock()
	}
	return res, nil
}

// abandonLocked gives back the worker slot of a job started at submission
// whose submission failed.
func (q *Queue) abandonLocked(st *started) {
	if st == nil {
		return
	}
	st.cancel(nil)
	q.locks.ReleaseAll(locking.Owner(st.env.e.id))
	q.running--
	q.wg.Done()
}

// started is an opcode ready to execute: running in memory, its state
// written (or about to be) before it executes.
type started struct {
	i      int
	opID   string
	params opcodes.Params
	env    *jobEnv
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// tryStartLocked starts the first opcode of a new job at submission when
// nothing stands in the way (no dependencies, valid parameters); nil
// otherwise, and the job takes the normal way through the ready heap.
func (q *Queue) tryStartLocked(e *entry) *started {
	j := e.job
	if c, err := job.ParseCommon(j.Ops[0].Input); err != nil || len(c.Depends) > 0 {
		return nil
	}
	params, err := q.prepare(e, 0)
	if err != nil {
		return nil
	}
	if _, ok := params.(opcodes.Expander); ok {
		return nil // its step while waiting runs in the worker
	}
	owner := locking.Owner(j.ID)
	for _, r := range q.lockRequests(e, 0, params) {
		if ok, err := q.locks.TryAcquire(owner, j.Ops[0].Priority, r); !ok || err != nil {
			q.locks.ReleaseAll(owner)
			return nil
		}
	}
	now := q.ts()
	j.BeginOp(0, now)
	return q.execLocked(e, 0, params, now)
}

// onLockWait runs when a worker's lock request is queued. A priority
// change that came while the request was on its way is applied now, so
// that it is not lost.
func (q *Queue) onLockWait(owner locking.Owner, _ locking.LockID, _ locking.Mode) {
	q.mu.Lock()
	if e, ok := q.jobs[int64(owner)]; ok && e.lockCancel != nil && e.job != nil {
		if i := e.job.CurrentOp(); i >= 0 {
			q.locks.SetPriority(owner, e.job.Ops[i].Priority)
		}
	}
	hook := q.cfg.OnLockWait
	q.mu.Unlock()
	if hook != nil {
		hook(int64(owner))
	}
}

// lockRequests are the locks opcode i declares.
func (q *Queue) lockRequests(e *entry, i int, params opcodes.Params) []locking.Request {
	if l, ok := params.(opcodes.Locker); ok {
		return l.Locks(&jobEnv{q: q, e: e, op: i})
	}
	return nil
}

// acquireLocked takes opcode i's locks, level by level, with q.mu released
// while it waits; the job is "waiting" meanwhile and a cancel interrupts
// the wait. It reports whether the opcode may run; when not, it has ended
// the job (canceled, or failed when the locks cannot be had) and released
// q.mu, or, at a hard shutdown, only released q.mu.
func (q *Queue) acquireLocked(e *entry, i int, params opcodes.Params) bool {
	reqs := q.lockRequests(e, i, params)
	if len(reqs) == 0 {
		return true
	}
	owner := locking.Owner(e.id)
	ctx, cancel := q.waitContext(e.job)
	defer cancel()
	e.lockCancel = cancel
	prio := e.job.Ops[i].Priority
	q.mu.Unlock()
	var err error
	began := time.Now()
	for _, r := range reqs {
		if err = q.locks.Acquire(ctx, owner, prio, r); err != nil {
			break
		}
	}
	q.cfg.Metrics.LockWaited(time.Since(began))
	q.mu.Lock()
	e.lockCancel = nil
	j := e.job
	switch {
	case q.runCtx.Err() != nil:
		// Hard shutdown: the job is queued on disk and runs again.
		q.locks.ReleaseAll(owner)
		q.mu.Unlock()
		return false
	case j.CalcStatus() == job.StatusCanceling:
		q.locks.ReleaseAll(owner)
		j.FinishCanceled(q.ts())
		q.endLocked(e)
		return false
	case timedOut(ctx) != job.LimitNone:
		q.locks.ReleaseAll(owner)
		j.TimeOut(i, job.LimitJob, q.ts())
		q.endLocked(e)
		return false
	case err != nil:
		q.locks.ReleaseAll(owner)
		j.FinishOp(i, false, job.ExecError("Cannot acquire the opcode's locks: "+err.Error()).Raw(), q.ts())
		q.endLocked(e)
		return false
	}
	return true
}

// expandLocked runs opcode i's step before its locks (opcodes.Expander)
// with q.mu released, the job shown waiting; a cancel ends the step as it
// ends a wait for locks. It reports whether the opcode goes on; when not,
// it has ended the job (canceled, or failed with the step's
// OpPrereqError) and released q.mu, or, at a hard shutdown, only released
// q.mu.
func (q *Queue) expandLocked(e *entry, i int, x opcodes.Expander) bool {
	ctx, cancel := context.WithCancel(q.runCtx)
	defer cancel()
	e.lockCancel = cancel
	env := &jobEnv{q: q, e: e, op: i}
	q.mu.Unlock()
	err := x.ExpandNames(ctx, env)
	q.mu.Lock()
	e.lockCancel = nil
	j := e.job
	switch {
	case q.runCtx.Err() != nil:
		q.mu.Unlock()
		return false
	case j.CalcStatus() == job.StatusCanceling:
		j.FinishCanceled(q.ts())
		q.endLocked(e)
		return false
	case err != nil:
		j.FinishOp(i, false, encodeErr(opcodes.AsPrereq(err)), q.ts())
		q.endLocked(e)
		return false
	}
	return true
}

// prepare decodes and checks opcode i's parameters. An opcode that asks
// for a dry run is checked the same way and then replaced by dryRun.
func (q *Queue) prepare(e *entry, i int) (opcodes.Params, error) {
	params, err := q.reg.Prepare(e.job.Ops[i].Input)
	if err == nil {
		if p, ok := params.(opcodes.Preparer); ok {
			err = p.Prepare(&jobEnv{q: q, e: e, op: i})
		}
	}
	if err == nil && opcodes.DryRun(e.job.Ops[i].Input) {
		return dryRun{}, nil
	}
	return params, err
}

// dryRun stands for a checked opcode that asked for a dry run: it takes no
// locks and executes nothing, it logs that it does not (opcodes.DryRun).
type dryRun struct{}

func (dryRun) Validate() error { return nil }

func (dryRun) Exec(_ context.Context, env opcodes.Env) (any, error) {
	opcodes.LogInfo(env, "%s", opcodes.DryRunMessage)
	return nil, nil
}

// execLocked marks opcode i running and gives it a context that kill
// cancels.
func (q *Queue) execLocked(e *entry, i int, params opcodes.Params, now job.Timestamp) *started {
	e.job.ExecOp(i, now)
	ctx, cancel := q.opContext(e.job, i)
	e.cancelRun = cancel
	return &started{i: i, opID: job.OpID(e.job.Ops[i].Input), params: params, env: &jobEnv{q: q, e: e, op: i}, ctx: ctx, cancel: cancel}
}

// ownLocked marks e as executed by a new worker.
func (q *Queue) ownLocked(e *entry) {
	q.workerSeq++
	e.owned, e.worker = true, q.workerSeq
	q.trackRunningLocked(e)
}

// dispatchLocked starts workers for ready jobs while slots are free.
func (q *Queue) dispatchLocked() {
	q.beforeDispatchLocked()
	for !q.closing && !q.holding && q.running < q.cfg.MaxRunning && q.ready.Len() > 0 {
		e := heap.Pop(&q.ready).(*entry)
		if !q.admitLocked(e) {
			continue // held or rejected by a filter or a rate limit
		}
		q.running++
		q.ownLocked(e)
		q.wg.Add(1)
		go q.runJob(e, e.worker, nil)
	}
}

// pendingWrite is a job state on its way to disk.
type pendingWrite struct {
	t    store.Ticket
	snap *job.Job
	v    uint64
}

// writeLocked queues the job's current state for storage. Called with q.mu
// held so that the store sees a job's versions in order.
func (q *Queue) writeLocked(e *entry) pendingWrite {
	e.logPending = false // this write carries them
	snap := e.job.Clone()
	b, err := snap.Encode()
	if err != nil {
		// Results are marshalled before they are recorded, so this is a
		// bug; keep the old file rather than write a broken one.
		q.log.Error("cannot encode job", "job", e.id, "err", err)
		return pendingWrite{t: store.FailedTicket(err), snap: snap}
	}
	e.version++
	return pendingWrite{t: q.store.Write(store.JobFileName(e.id), b), snap: snap, v: e.version}
}

// persist makes e's current state durable, retrying while the store fails
// (a full disk recovers by itself when space returns), then notifies
// watchers. It returns false when the queue is shutting down hard.
func (q *Queue) persist(e *entry, w pendingWrite) bool {
	for attempt := 0; ; attempt++ {
		err := w.t.Wait()
		if err == nil {
			q.mu.Lock()
			q.publishLocked(e, w.snap, w.v)
			q.mu.Unlock()
			return true
		}
		if errors.Is(err, store.ErrClosed) {
			return false
		}
		q.log.Error("cannot store job; retrying", "job", e.id, "attempt", attempt+1, "err", err)
		delay := min(time.Duration(1<<min(attempt, 6))*50*time.Millisecond, 5*time.Second)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-q.runCtx.Done():
			timer.Stop()
			return false
		}
		q.mu.Lock()
		w = q.writeLocked(e)
		q.mu.Unlock()
	}
}

// finishLocked is called when a job has become final: dependents waiting
// for it are made ready again.
func (q *Queue) finishLocked(e *entry) {
	for _, d := range q.depWaiters[e.id] {
		if d.heapIdx < 0 && !d.owned && !d.job.Final() {
			heap.Push(&q.ready, d)
		}
	}
	delete(q.depWaiters, e.id)
}

// statusOfLocked looks a job up, live or archived, for dependency checks.
func (q *Queue) statusOfLocked(id int64) (job.Status, bool) {
	if e, ok := q.jobs[id]; ok {
		return e.status(), true
	}
	j, err := q.loadArchived(id)
	if err != nil || j == nil {
		return "", false
	}
	return j.CalcStatus(), true
}

func (q *Queue) loadArchived(id int64) (*job.Job, error) {
	b, ok, err := q.store.ReadArchived(id)
	if err != nil || !ok {
		return nil, err
	}
	return job.Decode(b)
}

type jobEnv struct {
	q  *Queue
	e  *entry
	op int
}

func (v *jobEnv) JobID() int64     { return v.e.id }
func (v *jobEnv) OpIndex() int     { return v.op }
func (v *jobEnv) NodeName() string { return v.q.cfg.NodeName }
func (v *jobEnv) Nodes() opcodes.Nodes {
	if v.q.cfg.Nodes != nil {
		return v.q.cfg.Nodes
	}
	return localNodes{name: v.q.cfg.NodeName, dir: v.q.cfg.RestrictedDir}
}
func (v *jobEnv) Log(msg string) { v.LogTyped("message", msg) }

// LogTyped implements opcodes.TypedLogger.
func (v *jobEnv) LogTyped(kind string, msg any) {
	if kind == author.LogType {
		kind = "message" // only the queue says who acted on a job
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		raw, _ = json.Marshal(fmt.Sprintf("log message cannot be encoded: %v", err))
	}
	q := v.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := v.e.job.AppendLogLimited(v.op, q.ts(), kind, raw, q.cfg.MaxLogEntries); !ok {
		return
	}
	q.showNowLocked(v.e)
	// Log messages are stored with the next write of the job, at the
	// latest after LogFlushDelay, and nobody waits for them to be
	// durable: a job that logs a lot is not rewritten for every line.
	if q.cfg.LogFlushDelay < 0 {
		q.writeLocked(v.e)
		return
	}
	if v.e.logPending {
		return
	}
	v.e.logPending = true
	e := v.e
	time.AfterFunc(q.cfg.LogFlushDelay, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		// Not when another write carried them, nor once the job left
		// memory or the queue stops (the node may not be master any
		// more: it must not write).
		if !e.logPending || e.job == nil || q.jobs[e.id] != e || q.closing {
			e.logPending = false
			return
		}
		q.writeLocked(e)
	})
}

// runJob executes e's opcodes one after the other until the job is final,
// parked on a dependency, or the daemon stops.
func (q *Queue) runJob(e *entry, worker uint64, first *started) {
	defer q.wg.Done()
	defer func() {
		q.locks.ReleaseAll(locking.Owner(e.id))
		q.mu.Lock()
		if e.worker == worker {
			e.owned, e.worker = false, 0
		}
		q.running--
		q.dispatchLocked()
		q.mu.Unlock()
	}()
	for {
		st := first
		first = nil
		if st == nil {
			var ok bool
			if st, ok = q.nextOp(e); !ok {
				return
			}
		}
		params, env, ctx, i := st.params, st.env, st.ctx, st.i
		began := time.Now()
		result, err := safeExec(ctx, params, env)
		q.cfg.Metrics.OpcodeDone(st.opID, time.Since(began))
		killed := errors.Is(context.Cause(ctx), errKilled)
		limit := timedOut(ctx)
		st.cancel(nil)
		// Locks are held for one opcode, as Ganeti's logical units do.
		q.locks.ReleaseAll(locking.Owner(e.id))

		q.mu.Lock()
		e.cancelRun = nil
		if !killed && limit == job.LimitNone && q.runCtx.Err() != nil {
			// Hard shutdown: leave the job running on disk; recovery ends
			// it in error, as after a crash.
			q.mu.Unlock()
			return
		}
		j := e.job
		now := q.ts()
		switch {
		case limit != job.LimitNone:
			j.TimeOut(i, limit, now)
		case killed:
			j.Kill(now)
		case err != nil:
			j.FinishOp(i, false, encodeErr(opcodes.AsError(err)), now)
		default:
			raw, merr := json.Marshal(result)
			if merr != nil {
				j.FinishOp(i, false, job.ExecError("opcode result cannot be stored: "+merr.Error()).Raw(), now)
			} else {
				j.FinishOp(i, true, raw, now)
			}
		}
		if j.Final() {
			q.endLocked(e)
			return
		}
		w := q.writeLocked(e)
		q.mu.Unlock()
		if !q.persist(e, w) {
			return
		}
	}
}

// nextOp takes the job's next opcode to running, durably; ok is false when
// the job ended (or was parked on a dependency) instead.
func (q *Queue) nextOp(e *entry) (*started, bool) {
	q.mu.Lock()
	j := e.job
	i := j.CurrentOp()
	if i < 0 || q.runCtx.Err() != nil {
		q.mu.Unlock()
		return nil, false
	}
	if j.CalcStatus() == job.StatusCanceling {
		j.FinishCanceled(q.ts())
		q.endLocked(e)
		return nil, false
	}
	if j.Ops[i].Status == job.StatusQueued {
		j.BeginOp(i, q.ts())
		q.showNowLocked(e)
	}
	common, cerr := job.ParseCommon(j.Ops[i].Input)
	if cerr == nil && len(common.Depends) > 0 {
		outcome, msg := job.CheckDeps(j.ID, common.Depends, q.statusOfLocked)
		switch outcome {
		case job.DepWait:
			// Park: the job leaves the worker until its dependency is
			// final (finishLocked makes it ready again).
			for _, d := range common.Depends {
				if de, ok := q.jobs[d.JobID]; ok && !de.final() {
					q.depWaiters[d.JobID] = append(q.depWaiters[d.JobID], e)
					break
				}
			}
			// Not owned from now on, under the same lock: a cancel or the
			// dependency's end that comes before the worker has gone must
			// see the job as parked.
			e.owned, e.worker = false, 0
			q.mu.Unlock()
			return nil, false
		case job.DepCancel:
			j.FinishCanceled(q.ts())
			q.endLocked(e)
			return nil, false
		case job.DepError, job.DepWrongStatus:
			j.FinishOp(i, false, job.ExecError(msg).Raw(), q.ts())
			q.endLocked(e)
			return nil, false
		}
	}
	params, perr := q.prepare(e, i)
	if perr != nil {
		j.FinishOp(i, false, encodeErr(opcodes.AsPrereq(perr)), q.ts())
		q.endLocked(e)
		return nil, false
	}
	if x, ok := params.(opcodes.Expander); ok && !q.expandLocked(e, i, x) {
		return nil, false
	}
	if !q.acquireLocked(e, i, params) {
		return nil, false
	}
	st := q.execLocked(e, i, params, q.ts())
	w := q.writeLocked(e)
	q.mu.Unlock()

	// The running state is durable before the opcode executes, so a crash
	// from here on ends the job in error at recovery.
	if !q.persist(e, w) {
		st.cancel(nil)
		return nil, false
	}
	return st, true
}

// recordEnd puts a job that ended into the history.
func (q *Queue) recordEnd(j *job.Job, status job.Status) {
	if j == nil || j.EndTimestamp == nil {
		return
	}
	end := j.EndTimestamp.Time()
	var wait, run time.Duration
	started := j.StartTimestamp != nil && j.ReceivedTimestamp != nil
	if started {
		wait = j.StartTimestamp.Time().Sub(j.ReceivedTimestamp.Time())
		run = end.Sub(j.StartTimestamp.Time())
	}
	q.history.Finished(end, status, started, wait, run)
}

// endLocked stores a job that became final, wakes its dependents and
// notifies watchers once it is durable. It releases q.mu.
func (q *Queue) endLocked(e *entry) {
	w := q.writeLocked(e)
	status := e.job.CalcStatus()
	q.mu.Unlock()
	if !q.persist(e, w) {
		return
	}
	q.cfg.Metrics.JobFinished(string(status))
	q.recordEnd(w.snap, status)
	// Dependents look at the durable state, so they are woken only now.
	q.mu.Lock()
	q.finishLocked(e)
	q.dispatchLocked()
	q.mu.Unlock()
}

func safeExec(ctx context.Context, p opcodes.Params, env opcodes.Env) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = opcodes.ExecError("opcode crashed: %v", r)
		}
	}()
	return p.Exec(ctx, env)
}

func encodeErr(e *opcodes.Error) json.RawMessage {
	return job.EncodedError{Class: e.Class, Args: e.Args}.Raw()
}

// CancelJob cancels a job (SPEC §3). With kill, a running job's opcode
// context is cancelled too. The result is Ganeti's [bool, message].
func (q *Queue) CancelJob(id int64, kill bool) (bool, string, error) {
	return q.CancelJobBy(id, kill, author.Actor{})
}

// CancelJobBy is CancelJob asked by who, whom the job's log names
// (author.go).
func (q *Queue) CancelJobBy(id int64, kill bool, who author.Actor) (bool, string, error) {
	q.mu.Lock()
	e, ok := q.jobs[id]
	if !ok {
		q.mu.Unlock()
		return false, fmt.Sprintf("Job %d not found in queue", id), nil
	}
	j, err := q.workingLocked(e)
	if err != nil {
		q.mu.Unlock()
		return false, "", genericError("%v", err)
	}
	if kill && j.CalcStatus() == job.StatusRunning && e.cancelRun != nil {
		noteAction(j, q.ts(), "Killed", who) // stored with the opcode's end
		e.cancelRun(errKilled)
		q.mu.Unlock()
		return true, fmt.Sprintf("Job %d will be killed", id), nil
	}
	res := j.Cancel(q.ts())
	if !res.Changed {
		q.mu.Unlock()
		return res.OK, res.Message, nil
	}
	noteAction(j, q.ts(), "Canceled", who)
	if e.heapIdx >= 0 {
		heap.Remove(&q.ready, e.heapIdx)
	}
	if !e.owned && !j.Final() {
		// Waiting but not in a worker (parked on a dependency or ready
		// again): finish the cancellation here.
		j.FinishCanceled(q.ts())
	}
	if e.lockCancel != nil {
		// Its worker waits for locks: wake it to finish the cancellation.
		e.lockCancel()
	}
	w := q.writeLocked(e)
	q.mu.Unlock()
	// The job has left the ready heap and is canceled in memory: store
	// that, retrying while the store fails (a full disk), as for every
	// other change of state; giving up would leave the job neither
	// queued nor canceled until the next start.
	if !q.persist(e, w) {
		return false, "", genericError("Cannot store canceled job %d: the job queue is shutting down", id)
	}
	q.mu.Lock()
	final := j.Final()
	if final {
		q.finishLocked(e)
		q.dispatchLocked()
		q.cfg.Metrics.JobFinished(string(job.StatusCanceled))
	}
	q.mu.Unlock()
	if final {
		q.recordEnd(w.snap, job.StatusCanceled)
	}
	return res.OK, res.Message, nil
}

// ChangeJobPriority changes the priority of a job's pending opcodes.
func (q *Queue) ChangeJobPriority(id int64, prio int) (bool, string, error) {
	return q.ChangeJobPriorityBy(id, prio, author.Actor{})
}

// ChangeJobPriorityBy is ChangeJobPriority asked by who, whom the job's
// log names (author.go).
func (q *Queue) ChangeJobPriorityBy(id int64, prio int, who author.Actor) (bool, string, error) {
	q.mu.Lock()
	e, ok := q.jobs[id]
	if !ok {
		q.mu.Unlock()
		return false, fmt.Sprintf("Job %d not found in queue", id), nil
	}
	j, err := q.workingLocked(e)
	if err != nil {
		q.mu.Unlock()
		return false, "", genericError("%v", err)
	}
	res, err := j.ChangePriority(prio)
	if err != nil {
		q.mu.Unlock()
		return false, "", &Error{Class: "OpPrereqError", Args: []any{err.Error(), "wrong_input"}}
	}
	if !res.Changed {
		q.mu.Unlock()
		return res.OK, res.Message, nil
	}
	noteAction(j, q.ts(), fmt.Sprintf("Priority changed to %d", prio), who)
	if e.heapIdx >= 0 {
		heap.Fix(&q.ready, e.heapIdx)
	}
	if e.lockCancel != nil {
		// Waiting for locks: its place in the lock queues moves too.
		q.locks.SetPriority(locking.Owner(e.id), prio)
	}
	w := q.writeLocked(e)
	q.mu.Unlock()
	if err := w.t.Wait(); err != nil {
		return false, "", genericError("Cannot store job %d: %v", id, err)
	}
	q.mu.Lock()
	q.publishLocked(e, w.snap, w.v)
	q.mu.Unlock()
	return res.OK, res.Message, nil
}

// ArchiveJob moves a final job to the archive; false when the job is not
// live or not final.
func (q *Queue) ArchiveJob(id int64) (bool, error) {
	return q.ArchiveJobBy(id, author.Actor{})
}

// ArchiveJobBy is ArchiveJob asked by who, whom the job's log names
// (author.go).
func (q *Queue) ArchiveJobBy(id int64, who author.Actor) (bool, error) {
	n, err := q.archiveBy([]int64{id}, who)
	return n == 1, err
}

func (q *Queue) archive(ids []int64) (int, error) {
	return q.archiveBy(ids, author.Actor{})
}

func (q *Queue) archiveBy(ids []int64, who author.Actor) (int, error) {
	q.mu.Lock()
	var moved []*entry
	var tickets []store.Ticket
	for _, id := range ids {
		e, ok := q.jobs[id]
		if !ok || !e.final() {
			continue
		}
		if !who.IsZero() {
			// The file goes to the archive with the line saying who
			// moved it (the write and the rename in this order, in one
			// batch or two).
			if j, err := q.workingLocked(e); err == nil {
				j = j.Clone()
				noteAction(j, q.ts(), "Archived", who)
				if b, err := j.Encode(); err == nil {
					q.store.Write(store.JobFileName(id), b)
				}
			}
		}
		delete(q.jobs, id)
		q.archiving[id] = true
		moved = append(moved, e)
		tickets = append(tickets, q.store.Rename(store.JobFileName(id), store.ArchiveName(id)))
	}
	q.mu.Unlock()
	n := 0
	var firstErr error
	for i, t := range tickets {
		err := t.Wait()
		q.mu.Lock()
		delete(q.archiving, moved[i].id)
		if err != nil {
			// Still live: put it back.
			q.jobs[moved[i].job.ID] = moved[i]
			if firstErr == nil {
				firstErr = genericError("Cannot archive job %d: %v", moved[i].job.ID, err)
			}
		} else {
			n++
		}
		moved[i].notify()
		q.mu.Unlock()
	}
	return n, firstErr
}

// AutoArchiveJobs archives final jobs that ended at least age seconds ago
// (every final job when age is -1), spending at most timeout seconds; it
// returns how many were archived and how many were left unchecked.
func (q *Queue) AutoArchiveJobs(age int64, timeout float64) (int, int, error) {
	deadline := q.now().Add(time.Duration(timeout * float64(time.Second)))
	q.mu.Lock()
	limit := q.now().Unix() - age
	var ids []int64
	for id, e := range q.jobs {
		if !e.final() {
			continue
		}
		if end := e.endTS(); age >= 0 && end != nil && end[0] > limit {
			continue
		}
		ids = append(ids, id)
	}
	q.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	archived := 0
	const chunk = 1000
	for start := 0; start < len(ids); start += chunk {
		if timeout >= 0 && q.now().After(deadline) {
			return archived, len(ids) - start, nil
		}
		n, err := q.archive(ids[start:min(start+chunk, len(ids))])
		archived += n
		if err != nil {
			return archived, len(ids) - start - n, err
		}
	}
	return archived, 0, nil
}

// SetDrainFlag sets or clears the drain flag durably.
func (q *Queue) SetDrainFlag(on bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.store.SetDrain(on); err != nil {
		return genericError("Cannot set the drain flag: %v", err)
	}
	q.drained = on
	return nil
}

// Drained reports the drain flag.
func (q *Queue) Drained() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.drained
}

// DeclareNodes makes node locks known (a node joined).
func (q *Queue) DeclareNodes(names ...string) error {
	return q.locks.Declare(locking.LevelNode, names...)
}

// Running is the number of jobs in workers.
func (q *Queue) Running() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running
}

// Locks describes every lock: mode, owners and waiters (jobq locks).
func (q *Queue) Locks() []locking.LockInfo { return q.locks.Snapshot() }

// Counts returns the number of live jobs by status.
func (q *Queue) Counts() map[job.Status]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := map[job.Status]int{}
	for _, e := range q.jobs {
		c[e.status()]++
	}
	return c
}

// readyHeap orders ready jobs by priority, then id.
type readyHeap []*entry

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(a, b int) bool {
	pa, pb := h[a].job.CalcPriority(), h[b].job.CalcPriority()
	if pa != pb {
		return pa < pb
	}
	return h[a].job.ID < h[b].job.ID
}
func (h readyHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].heapIdx = a
	h[b].heapIdx = b
}
func (h *readyHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *readyHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}
