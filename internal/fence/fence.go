// Package fence stops the work of a deposed master on the nodes. Every
// execution a master starts on a node (a restricted command, a delay, an
// opcode's program) carries the master's epoch (its term); a node refuses
// an execution from an epoch older than the newest it knows, and when it
// learns of a newer epoch it cancels the executions of older ones, so
// that a master that lost its place (cut off, paused, slow to notice)
// cannot go on acting on the cluster through the nodes while the next
// master runs.
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
}

type execution struct {
	epoch  int64
	cancel context.CancelCauseFunc
}

// Begin starts an execution of epoch: its context is ctx's, cancelled
// (with a *StaleError as cause) when the node learns a newer epoch; end
// must be called when it is over. An epoch older than the newest known is
// refused with a *StaleError. Epoch 0 (a caller that does not say) is
// fenced like the oldest epoch but never refused.
func (f *Fence) Begin(ctx context.Context, epoch int64) (context.Context, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if epoch != 0 && epoch < f.newest {
		return nil, nil, &StaleError{Epoch: epoch, Newest: f.newest}
	}
	if epoch > f.newest {
		f.observeLocked(epoch)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	e := &execution{epoch: epoch, cancel: cancel}
	if f.running == nil {
		f.running = map[*execution]struct{}{}
	}
	f.running[e] = struct{}{}
	end := func() {
		f.mu.Lock()
		delete(f.running, e)
		f.mu.Unlock()
		cancel(nil)
	}
	return cctx, end, nil
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
		if e.epoch < epoch {
			e.cancel(&StaleError{Epoch: e.epoch, Newest: epoch})
			delete(f.running, e)
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

// Running is how many executions run, by epoch.
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
		e.cancel(&StaleError{Epoch: e.epoch, Newest: f.newest + 1})
		delete(f.running, e)
		n++
	}
	f.newest = 0
	return n
}
