package queue

import (
	"bytes"
	"container/heap"
	"encoding/json"

	"github.com/jobq-dev/jobq/internal/filter"
	"github.com/jobq-dev/jobq/internal/job"
)

// filterState is the scheduler's side of the job filter rules and of the
// ad hoc rate limits (package filter decides): which jobs a rule holds,
// which run, and the decoded view of each job the decision reads. Under
// q.mu.
type filterState struct {
	set *filter.Set
	// sweep asks the next dispatch to look at every ready job: the rules
	// changed (or the queue opened), so a REJECT or PAUSE may now apply to
	// jobs that were queued before.
	sweep bool
	// paused and limited are queued jobs out of the ready heap: paused by
	// a rule (back in the heap when the rules change), limited by a rate
	// limit (back when a running job stops, or the rules change). A job
	// canceled while paused is dropped when the rules change.
	paused, limited map[*entry]struct{}
	// running are the jobs in a worker (entry.owned when they were added;
	// those no longer owned are dropped at the next dispatch).
	running map[*entry]struct{}
	// views are the decoded jobs of running, the decision's input.
	views map[*entry]*filter.Job
}

// SetFilters replaces the job filter rules the scheduler applies (nil: no
// rules). Jobs a new REJECT rule matches are canceled, those a PAUSE rule
// no longer holds may start.
func (q *Queue) SetFilters(set *filter.Set) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.flt.set = set
	q.flt.sweep = true
	for e := range q.flt.paused {
		q.unholdLocked(e)
	}
	for e := range q.flt.limited {
		q.unholdLocked(e)
	}
	q.dispatchLocked()
}

// Filters are the rules the scheduler applies.
func (q *Queue) Filters() *filter.Set {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.flt.set
}

// Serial is the highest job id handed out (a filter's watermark).
func (q *Queue) Serial() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.serial
}

// unholdLocked puts a held job back among the ready ones.
func (q *Queue) unholdLocked(e *entry) {
	delete(q.flt.paused, e)
	delete(q.flt.limited, e)
	if e.job == nil || e.job.Final() {
		delete(q.flt.views, e) // canceled while held
		return
	}
	if e.heapIdx < 0 && !e.owned {
		heap.Push(&q.ready, e)
	}
}

// mayHoldLocked reports whether a rule or a rate limit could keep e from
// running: such a job does not start at submission but goes through the
// scheduler. A job that the rules let run whatever else runs (no
// RATE_LIMIT rule applies, no ad hoc bucket) starts at submission as
// without rules.
func (q *Queue) mayHoldLocked(e *entry) bool {
	if q.flt.set.Len() > 0 {
		d := q.flt.set.Decide(q.viewLocked(e), nil)
		return d.Verdict != filter.Run || d.Counted
	}
	for _, op := range e.job.Ops {
		if bytes.Contains(op.Input, []byte("rate-limit:")) {
			return true
		}
	}
	return false
}

func (q *Queue) viewLocked(e *entry) *filter.Job {
	if v, ok := q.flt.views[e]; ok {
		return v
	}
	if q.flt.views == nil {
		q.flt.views = map[*entry]*filter.Job{}
	}
	var v *filter.Job
	if e.job != nil {
		inputs := make([]json.RawMessage, len(e.job.Ops))
		for i, op := range e.job.Ops {
			inputs[i] = op.Input
		}
		v = filter.NewJob(e.id, inputs)
	} else {
		v = filter.NewJob(e.id, nil)
	}
	if e.owned {
		// Kept while the job is in a worker: every decision reads it.
		// Queued jobs are decoded again when decided again, so that jobs
		// canceled or ended elsewhere leave nothing behind.
		q.flt.views[e] = v
	}
	return v
}

// trackRunningLocked records that e is now in a worker.
func (q *Queue) trackRunningLocked(e *entry) {
	if q.flt.running == nil {
		q.flt.running = map[*entry]struct{}{}
	}
	q.flt.running[e] = struct{}{}
}

// beforeDispatchLocked forgets the jobs that left their worker (and lets
// the jobs a rate limit held try again), and after a change of the rules
// cancels the ready jobs a REJECT rule matches and holds those a PAUSE
// rule matches.
func (q *Queue) beforeDispatchLocked() {
	stopped := false
	for e := range q.flt.running {
		if !e.owned {
			delete(q.flt.running, e)
			delete(q.flt.views, e)
			stopped = true
		}
	}
	if stopped {
		for e := range q.flt.limited {
			q.unholdLocked(e)
		}
	}
	if !q.flt.sweep || q.closing {
		return
	}
	q.flt.sweep = false
	if q.flt.set.Len() == 0 {
		return
	}
	var out []*entry
	var verdicts []filter.Verdict
	for _, e := range q.ready {
		d := q.flt.set.Decide(q.viewLocked(e), nil)
		if d.Verdict == filter.Rejected || d.Verdict == filter.Paused {
			out = append(out, e)
			verdicts = append(verdicts, d.Verdict)
		}
	}
	for i, e := range out {
		heap.Remove(&q.ready, e.heapIdx)
		q.holdOrRejectLocked(e, verdicts[i])
	}
	// Jobs parked until a dependency ends are in the queue too: a REJECT
	// cancels them now (a PAUSE holds them when they are ready again).
	for _, parked := range q.parkedLocked() {
		if q.flt.set.Decide(q.viewLocked(parked), nil).Verdict == filter.Rejected {
			q.holdOrRejectLocked(parked, filter.Rejected)
		}
	}
}

// parkedLocked are the jobs parked until a dependency ends: in no worker,
// not ready, not final (see Queue.depWaiters).
func (q *Queue) parkedLocked() []*entry {
	var out []*entry
	seen := map[*entry]bool{}
	for _, ds := range q.depWaiters {
		for _, d := range ds {
			if !seen[d] && d.job != nil && !d.owned && d.heapIdx < 0 && !d.job.Final() {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// pushReadyLocked makes a new job ready, unless a rule rejects or pauses
// it (whether or not a worker is free).
func (q *Queue) pushReadyLocked(e *entry) {
	if q.flt.set.Len() > 0 {
		if d := q.flt.set.Decide(q.viewLocked(e), nil); d.Verdict == filter.Rejected || d.Verdict == filter.Paused {
			q.holdOrRejectLocked(e, d.Verdict)
			return
		}
	}
	heap.Push(&q.ready, e)
}

// admitLocked decides whether e, just taken from the ready heap, starts
// now; a job that does not is held or canceled.
func (q *Queue) admitLocked(e *entry) bool {
	delete(q.flt.paused, e)
	delete(q.flt.limited, e)
	if !q.mayHoldLocked(e) {
		return true
	}
	running := make([]*filter.Job, 0, len(q.flt.running))
	for r := range q.flt.running {
		if r.owned {
			running = append(running, q.viewLocked(r))
		}
	}
	d := q.flt.set.Decide(q.viewLocked(e), running)
	if d.Verdict == filter.Run {
		return true
	}
	q.holdOrRejectLocked(e, d.Verdict)
	return false
}

func (q *Queue) holdOrRejectLocked(e *entry, v filter.Verdict) {
	if v != filter.Rejected {
		if q.flt.paused == nil {
			q.flt.paused, q.flt.limited = map[*entry]struct{}{}, map[*entry]struct{}{}
		}
		if v == filter.Paused {
			q.flt.paused[e] = struct{}{}
		} else {
			q.flt.limited[e] = struct{}{}
		}
		return
	}
	delete(q.flt.views, e)
	j := e.job
	now := q.ts()
	if res := j.Cancel(now); !res.Changed {
		return
	}
	if !j.Final() {
		// Waiting for a dependency, in no worker: end it here.
		j.FinishCanceled(now)
	}
	q.log.Info("job canceled by a REJECT filter", "job", e.id)
	w := q.writeLocked(e)
	go func() {
		if !q.persist(e, w) {
			return
		}
		q.cfg.Metrics.JobFinished(string(job.StatusCanceled))
		q.recordEnd(w.snap, job.StatusCanceled)
		q.mu.Lock()
		q.finishLocked(e)
		q.dispatchLocked()
		q.mu.Unlock()
	}()
}
