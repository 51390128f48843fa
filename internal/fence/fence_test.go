package fence

import (
	"context"
	"errors"
	"testing"
	"time"
)

// wait is how long a test waits for what must happen at once.
const wait = 10 * time.Second

func TestFence(t *testing.T) {
	var f Fence
	ctx1, end1, err := f.Begin(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx0, end0, err := f.Begin(context.Background(), 0) // an older master that does not say
	if err != nil {
		t.Fatal(err)
	}
	// A newer master: epoch 1's and 0's work stops, and epoch 2's begins
	// only once both have ended.
	type begun struct {
		ctx context.Context
		end func()
		err error
	}
	began := make(chan begun, 1)
	go func() {
		c, e, err := f.Begin(context.Background(), 2)
		began <- begun{c, e, err}
	}()
	for name, c := range map[string]context.Context{"epoch 1": ctx1, "epoch 0": ctx0} {
		select {
		case <-c.Done():
		case <-time.After(wait):
			t.Fatalf("%s's execution was not cancelled by epoch 2", name)
		}
		var se *StaleError
		if !errors.As(context.Cause(c), &se) || se.Newest != 2 {
			t.Fatalf("%s's cause: %v", name, context.Cause(c))
		}
	}
	if n := f.Stopping(); n != 2 {
		t.Fatalf("stopping: %d, want 2", n)
	}
	end1()
	end1() // twice is harmless
	if n := f.Stopping(); n != 1 {
		t.Fatalf("stopping after one ended: %d, want 1", n)
	}
	select {
	case b := <-began:
		t.Fatalf("epoch 2 began (%v) while an execution of epoch 0 still ran", b.err)
	default:
	}
	end0()
	var b begun
	select {
	case b = <-began:
	case <-time.After(wait):
		t.Fatal("epoch 2 did not begin once the older executions ended")
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	ctx2, end2 := b.ctx, b.end
	defer end2()
	if ctx2.Err() != nil {
		t.Fatal("epoch 2's own execution was cancelled")
	}
	// Epoch 1 is refused from now on; 0 is not refused (but fenced).
	if _, _, err := f.Begin(context.Background(), 1); err == nil {
		t.Fatal("an execution of epoch 1 began after epoch 2")
	} else if err.Error() != "refused an execution of epoch 1: this node knows epoch 2, whose master is another" {
		t.Fatalf("message: %v", err)
	}
	if got := f.Running(); got[2] != 1 || len(got) != 1 {
		t.Fatalf("running: %v", got)
	}
	if n := f.Observe(2); n != 0 {
		t.Fatalf("observing the same epoch cancelled %d", n)
	}
	if n := f.Observe(3); n != 1 || ctx2.Err() == nil {
		t.Fatalf("observing epoch 3 cancelled %d, epoch 2's context: %v", n, ctx2.Err())
	}
	if n := f.Observe(4); n != 0 {
		t.Fatalf("observing epoch 4 cancelled %d again", n)
	}
	if f.Newest() != 4 {
		t.Fatalf("newest %d", f.Newest())
	}
	end2()
	// A parent's cancellation goes through.
	parent, cancel := context.WithCancel(context.Background())
	c, end, err := f.Begin(parent, 4)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-c.Done()
	end()
	if len(f.Running()) != 0 || f.Stopping() != 0 {
		t.Fatalf("running after all ended: %v, stopping %d", f.Running(), f.Stopping())
	}
}

// TestBeginGivesUp: an execution the fence stopped that does not end
// keeps the next master's executions out until their callers give up,
// with an error that says so.
func TestBeginGivesUp(t *testing.T) {
	var f Fence
	_, end5, err := f.Begin(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	f.Observe(6)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = f.Begin(ctx, 6)
	var se *StoppingError
	if !errors.As(err, &se) || se.Stopping != 1 || err.Error() != "cannot begin an execution of epoch 6: 1 execution(s) of older masters were told to stop and have not ended yet (context canceled); try again" {
		t.Fatalf("Begin: %v", err)
	}
	// An older epoch is still refused as stale, not as waiting.
	var stale *StaleError
	if _, _, err := f.Begin(ctx, 5); !errors.As(err, &stale) {
		t.Fatalf("Begin(5): %v", err)
	}
	end5()
	_, end6, err := f.Begin(context.Background(), 6)
	if err != nil {
		t.Fatal(err)
	}
	end6()
}

// TestReset: Reset stops every execution, the next begins once they have
// ended, and an epoch lower than those known before is accepted.
func TestReset(t *testing.T) {
	var f Fence
	ctx, end, err := f.Begin(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Begin(context.Background(), 2); err == nil {
		t.Fatal("epoch 2 accepted after 5")
	}
	if n := f.Reset(); n != 1 {
		t.Fatalf("Reset stopped %d executions", n)
	}
	if ctx.Err() == nil {
		t.Fatal("the execution of epoch 5 runs on")
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var se *StoppingError
	if _, _, err := f.Begin(gone, 2); !errors.As(err, &se) {
		t.Fatalf("epoch 2 while epoch 5's execution ends: %v", err)
	}
	end()
	_, end2, err := f.Begin(context.Background(), 2)
	if err != nil {
		t.Fatalf("epoch 2 after Reset: %v", err)
	}
	end2()
}
