package queue

import "time"

// SetMaxRunning changes how many jobs run at once (max_running_jobs) at
// run time; n <= 0 means DefaultMaxRunning. More workers start at once;
// with fewer, running jobs go on and no new one starts until fewer than n
// run.
func (q *Queue) SetMaxRunning(n int) {
	if n <= 0 {
		n = DefaultMaxRunning
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cfg.MaxRunning = n
	q.dispatchLocked()
}

// MaxRunning is how many jobs run at once at most.
func (q *Queue) MaxRunning() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg.MaxRunning
}

// SetIdempotencyWindow changes how long idempotency keys are kept; d <= 0
// means idem.DefaultWindow. It applies to the next decision.
func (q *Queue) SetIdempotencyWindow(d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cfg.IdempotencyWindow = d
}
