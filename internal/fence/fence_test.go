package fence

import (
	"context"
	"errors"
	"testing"
)

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
	ctx2, end2, err := f.Begin(context.Background(), 2) // a newer master: epoch 1's work stops
	if err != nil {
		t.Fatal(err)
	}
	defer end2()
	for name, c := range map[string]context.Context{"epoch 1": ctx1, "epoch 0": ctx0} {
		select {
		case <-c.Done():
		default:
			t.Fatalf("%s's execution was not cancelled by epoch 2", name)
		}
		var se *StaleError
		if !errors.As(context.Cause(c), &se) || se.Newest != 2 {
			t.Fatalf("%s's cause: %v", name, context.Cause(c))
		}
	}
	if ctx2.Err() != nil {
		t.Fatal("epoch 2's own execution was cancelled")
	}
	end1()
	end0()
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
	if f.Newest() != 3 {
		t.Fatalf("newest %d", f.Newest())
	}
	// A parent's cancellation goes through.
	parent, cancel := context.WithCancel(context.Background())
	c, end, _ := f.Begin(parent, 3)
	cancel()
	<-c.Done()
	end()
	if len(f.Running()) != 0 {
		t.Fatalf("running after all ended: %v", f.Running())
	}
}

// TestReset: Reset stops every execution, and an epoch lower than those
// known before is accepted afterwards.
func TestReset(t *testing.T) {
	var f Fence
	ctx, end, err := f.Begin(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	defer end()
	if _, _, err := f.Begin(context.Background(), 2); err == nil {
		t.Fatal("epoch 2 accepted after 5")
	}
	if n := f.Reset(); n != 1 {
		t.Fatalf("Reset stopped %d executions", n)
	}
	if ctx.Err() == nil {
		t.Fatal("the execution of epoch 5 runs on")
	}
	_, end2, err := f.Begin(context.Background(), 2)
	if err != nil {
		t.Fatalf("epoch 2 after Reset: %v", err)
	}
	end2()
}
