package queue

import (
	"container/heap"
	"context"
	"errors"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
)

// Jobs in time, the engine's side (the decisions are package job's: Due,
// OpDeadline). A queued job with a not-before time in the future is held
// here, out of the ready heap, until that time; one timer is armed for
// the earliest. Cancel and priority changes work on it as on any queued
// job (it is queued, in no worker); a canceled or archived job is dropped
// when its time comes. A held job's not-before time is in its file, so a
// restart or a new master holds it again (load).

// delayed is the held jobs, earliest first, and the timer of the earliest.
type delayed struct {
	items delayHeap
	timer *time.Timer
	at    time.Time // when timer fires; zero when not armed
}

type delayItem struct {
	at job.Timestamp
	e  *entry
}

type delayHeap []delayItem

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(a, b int) bool {
	if h[a].at != h[b].at {
		return h[a].at.Before(h[b].at)
	}
	return h[a].e.id < h[b].e.id
}
func (h delayHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(delayItem)) }
func (h *delayHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// holdLocked keeps a queued job that is not due yet out of the ready
// heap until its not-before time; false when the job is due (the caller
// makes it ready).
func (q *Queue) holdLocked(e *entry) bool {
	j := e.job
	if j == nil || j.Due(q.ts()) {
		return false
	}
	heap.Push(&q.delay.items, delayItem{at: *j.NotBefore, e: e})
	q.armDelayLocked()
	return true
}

// armDelayLocked sets the timer to the earliest held job's time.
func (q *Queue) armDelayLocked() {
	d := &q.delay
	if d.items.Len() == 0 || q.closing {
		return
	}
	at := d.items[0].at.Time()
	if !d.at.IsZero() && !at.Before(d.at) {
		return // armed for that time or earlier
	}
	d.at = at
	wait := at.Sub(q.now())
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, q.releaseDue)
		return
	}
	d.timer.Reset(wait)
}

// releaseDue makes the held jobs whose time has come ready, and arms the
// timer for the next.
func (q *Queue) releaseDue() {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := &q.delay
	d.at = time.Time{}
	if q.closing {
		return
	}
	now := q.ts()
	for d.items.Len() > 0 && !now.Before(d.items[0].at) {
		e := heap.Pop(&d.items).(delayItem).e
		// Only a job still live and queued, in no worker and not ready
		// already (a cancel made it final; an archive removed it).
		if q.jobs[e.id] != e || e.job == nil || e.job.Final() || e.owned || e.heapIdx >= 0 {
			continue
		}
		if e.job.CalcStatus() != job.StatusQueued {
			continue
		}
		heap.Push(&q.ready, e)
	}
	if d.items.Len() > 0 {
		// The clock may be behind the timer (a fake one in tests): a
		// timer that came early is armed again for the rest.
		q.armDelayLocked()
	}
	q.dispatchLocked()
}

// stopDelay stops the timer (the queue shuts down).
func (q *Queue) stopDelay() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.delay.timer != nil {
		q.delay.timer.Stop()
	}
	q.delay.at = time.Time{}
}

// Delayed is the number of jobs held until their not-before time
// (canceled ones included until their time comes).
func (q *Queue) Delayed() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, it := range q.delay.items {
		if it.e.job != nil && !it.e.job.Final() && q.jobs[it.e.id] == it.e {
			n++
		}
	}
	return n
}

// timedOutError is the cause of a running opcode's context at its time
// limit.
type timedOutError struct{ limit job.Limit }

func (e *timedOutError) Error() string { return string(e.limit) + " time limit reached" }

// opContext is opcode i's execution context: kill cancels it, and it ends
// with a *timedOutError at the opcode's deadline (job.OpDeadline). The
// cancel function also stops the deadline's timer.
func (q *Queue) opContext(j *job.Job, i int) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(q.runCtx)
	at, which := j.OpDeadline(i)
	if which == job.LimitNone {
		return ctx, cancel
	}
	t := time.AfterFunc(at.Sub(q.now()), func() { cancel(&timedOutError{limit: which}) })
	return ctx, func(cause error) {
		t.Stop()
		cancel(cause)
	}
}

// waitContext is the context of a job's wait for its opcode's locks: a
// cancel ends it, and so does the job's own time limit (with a
// *timedOutError), so that a job past its limit does not wait on.
func (q *Queue) waitContext(j *job.Job) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(q.runCtx)
	at, ok := j.JobDeadline()
	if !ok {
		return ctx, func() { cancel(nil) }
	}
	t := time.AfterFunc(at.Sub(q.now()), func() { cancel(&timedOutError{limit: job.LimitJob}) })
	return ctx, func() {
		t.Stop()
		cancel(nil)
	}
}

// timedOut is the limit that ended ctx; LimitNone when none did.
func timedOut(ctx context.Context) job.Limit {
	var te *timedOutError
	if errors.As(context.Cause(ctx), &te) {
		return te.limit
	}
	return job.LimitNone
}

// timingField computes jobq's job fields of jobs in time: not_before (a
// timestamp or null), timeout (seconds or null), optimeout (per opcode).
func timingField(j *job.Job, name string) (any, bool) {
	limit := func(s float64) any {
		if s == 0 {
			return nil
		}
		return s
	}
	switch name {
	case "not_before":
		if j.NotBefore == nil {
			return nil, true
		}
		return *j.NotBefore, true
	case "timeout":
		return limit(j.Timeout), true
	case "optimeout":
		out := make([]any, len(j.Ops))
		for i, op := range j.Ops {
			out[i] = limit(op.Timeout)
		}
		return out, true
	}
	return nil, false
}
