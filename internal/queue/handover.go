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
