package queue

import (
	"context"
	"time"
)

// HoldStarts stops starting jobs for good: submissions are still taken,
// stored and stay queued, and running jobs go on to their end. It returns
// when no job runs, or with ctx's error when ctx ends first. A master
// that hands its place over calls it so that its running opcodes finish
// before another master takes the queue, and the queued jobs run there.
func (q *Queue) HoldStarts(ctx context.Context) error {
	q.mu.Lock()
	q.holding = true
	q.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for q.Running() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// ResumeStarts undoes HoldStarts: jobs start again (a hand-over that
// failed).
func (q *Queue) ResumeStarts() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.holding = false
	q.dispatchLocked()
}

// HoldSubmissions refuses new submissions, as a queue that shuts down
// does (MsgShuttingDown: nothing was stored, so the caller, or the node
// that forwarded the call, sends it to the next master), and returns once
// the submissions already taken in have been answered, or with ctx's
// error when ctx ends first. A master calls it just before it hands the
// leadership over: a submission proposed to the log as the leadership
// moves would end with an unknown outcome (it may or may not be
// committed by the next leader). ResumeSubmissions undoes it.
func (q *Queue) HoldSubmissions(ctx context.Context) error {
	q.mu.Lock()
	q.holdingSubmits = true
	q.mu.Unlock()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		q.mu.Lock()
		n := q.submitting
		q.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// ResumeSubmissions undoes HoldSubmissions (a hand-over that failed).
func (q *Queue) ResumeSubmissions() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.holdingSubmits = false
}
