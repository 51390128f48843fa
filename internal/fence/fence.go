// Package fence stops the work of a deposed master on the nodes. Every
// execution a master starts on a node (a restricted command, a delay, an
// opcode's program) carries the master's epoch (its term); a node refuses
// an execution from an epoch older than the newest it knows, and when it
// learns of a newer epoch it cancels the executions of older ones, so
// that a master that lost its place (cut off, paused, slow to notice)
// cannot go on acting on the cluster through the nodes while the next
// master runs. A cancelled execution counts until it has ended (its
// caller's end): until then the node begins no new execution, so the
// next master's work on a node never overlaps the last one's, whatever
// locks the two masters held.
package fence

import (
	"context"
	"fmt"
	"sync"
)

// StaleError refuses an execution from an older epoch.
type StaleError struct {
	Epoch  int64 // the execution's
	Newest int64 // the newest this node knows
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("refused an execution of epoch %d: this node knows epoch %d, whose master is another", e.Epoch, e.Newest)
}

// Fence tracks the newest epoch a node knows and the executions running
// on it. The zero value is ready.
type Fence struct {
	mu      sync.Mutex
	newest  int64
	running map[*execution]struct{}
	// ended is closed and replaced when an execution the fence stopped
	// ends; nil until one is stopped.
	ended chan struct{}
}

type execution struct {
	epoch  int64
	cancel context.CancelCauseFunc
	// stopped: the fence cancelled it for a newer epoch (or Reset); it
	// still runs until its end is called.
	stopped bool
}

// StoppingError is a Begin given up because executions the fence stopped
// had not ended before the caller's context did.
type StoppingError struct {
	Epoch    int64 // the execution's
	Stopping int   // executions of older masters still ending
	Err      error // the context's
}

func (e *StoppingError) Error() string {
	return fmt.Sprintf("cannot begin an execution of epoch %d: %d execution(s) of older masters were told to stop and have not ended yet (%v); try again", e.Epoch, e.Stopping, e.Err)
}

// Begin starts an execution of epoch: its context is ctx's, cancelled
// (with a *StaleError as cause) when the node learns a newer epoch; end
// must be called when it is over. An epoch older than the newest known is
// refused with a *StaleError. Epoch 0 (a caller that does not say) is
// fenced like the oldest epoch but never refused. Begin waits until every
// execution the fence stopped has ended; if ctx ends first it gives up
// with a *StoppingError.
func (f *Fence) Begin(ctx context.Context, epoch int64) (context.Context, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if epoch != 0 && epoch < f.newest {
			return nil, nil, &StaleError{Epoch: epoch, Newest: f.newest}
		}
		if epoch > f.newest {
			f.observeLocked(epoch)
		}
		n := f.stoppingLocked()
		if n == 0 {
			break
		}
		ended := f.ended
		f.mu.Unlock()
		select {
		case <-ended:
			f.mu.Lock()
		case <-ctx.Done():
			f.mu.Lock()
			return nil, nil, &StoppingError{Epoch: epoch, Stopping: n, Err: ctx.Err()}
		}
	}
	cctx, cancel := context.WithCancelCause(ctx)
	e := &execution{epoch: epoch, cancel: cancel}
	if f.running == nil {
		f.running = map[*execution]struct{}{}
	}
	f.running[e] = struct{}{}
	var once sync.Once
	end := func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.running, e)
			if e.stopped {
				close(f.ended)
				f.ended = make(chan struct{})
			}
			f.mu.Unlock()
			cancel(nil)
		})
	}
	return cctx, end, nil
}

// stoppingLocked counts the executions stopped but not yet ended.
func (f *Fence) stoppingLocked() int {
	n := 0
	for e := range f.running {
		if e.stopped {
			n++
		}
	}
	return n
}

// stopLocked cancels e with cause; it counts as running until it ends.
func (f *Fence) stopLocked(e *execution, cause error) {
	e.cancel(cause)
	e.stopped = true
	if f.ended == nil {
		f.ended = make(chan struct{})
	}
}

// Observe records that epoch exists and cancels the executions of older
// epochs. It returns how many it cancelled.
func (f *Fence) Observe(epoch int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if epoch <= f.newest {
		return 0
	}
	return f.observeLocked(epoch)
}

func (f *Fence) observeLocked(epoch int64) int {
	f.newest = epoch
	n := 0
	for e := range f.running {
		if e.epoch < epoch && !e.stopped {
			f.stopLocked(e, &StaleError{Epoch: e.epoch, Newest: epoch})
			n++
		}
	}
	return n
}

// Newest is the newest epoch known.
func (f *Fence) Newest() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.newest
}

// Stopping is how many executions were stopped for a newer master and
// have not ended yet.
func (f *Fence) Stopping() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stoppingLocked()
}

// Running is how many executions run, by epoch, those stopping included.
func (f *Fence) Running() map[int64]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int64]int{}
	for e := range f.running {
		out[e.epoch]++
	}
	return out
}

// Reset stops every execution and forgets the epochs known: the node
// starts a new cluster (master-failover --no-voting), whose epochs start
// again from the beginning. It returns how many executions it stopped.
func (f *Fence) Reset() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for e := range f.running {
		if !e.stopped {
			f.stopLocked(e, &StaleError{Epoch: e.epoch, Newest: f.newest + 1})
			n++
		}
	}
	f.newest = 0
	return n
}
