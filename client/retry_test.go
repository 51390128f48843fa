package client_test

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/luxi"
)

// fakeNode serves LUXI on a socket, answer deciding each call's answer;
// it counts the calls.
func fakeNode(t *testing.T, answer func(n int32, req *luxi.Request) (any, error)) (string, *atomic.Int32) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	l, err := luxi.ListenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv := &luxi.Server{Handler: luxi.HandlerFunc(func(ctx context.Context, req *luxi.Request) (any, error) {
		return answer(calls.Add(1), req)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return path, &calls
}

var errHangUp = &luxi.Error{Class: "hang up"}

// hangUpNode reads each request on a connection of its own and, when
// answer says errHangUp, closes the connection without an answer (as a
// master that died); otherwise it answers an empty list.
func hangUpNode(t *testing.T, answer func(n int32) error) (string, *atomic.Int32) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var calls atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64<<10)
			n, _ := c.Read(buf)
			if n == 0 {
				c.Close()
				continue
			}
			if answer(calls.Add(1)) == errHangUp {
				c.Close()
				continue
			}
			// Answer an empty list.
			c.Write([]byte(`{"success":true,"result":[]}` + "\x03"))
			c.Close()
		}
	}()
	return path, &calls
}

// TestRetry: a call that no master took is sent again within the retry
// window (a submission too); a refusal is not; a submission whose
// connection broke after it was sent is not (its outcome is unknown), a
// read is; a window of 0 sends each call once.
func TestRetry(t *testing.T) {
	ctx := context.Background()
	noMaster := luxi.NoMasterError(luxi.NoMasterPrefix + ": an election")
	path, calls := fakeNode(t, func(n int32, req *luxi.Request) (any, error) {
		if n <= 2 {
			return nil, noMaster
		}
		return 7, nil
	})
	c, err := client.Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if id, err := c.SubmitJob(ctx, client.OpTestDelay{Duration: time.Millisecond}); err != nil || id != 7 {
		t.Fatalf("SubmitJob after two answers of no master: %d %v", id, err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("SubmitJob was sent %d times, want 3", n)
	}

	calls.Store(0)
	c.SetRetryWindow(0)
	if _, err := c.SubmitJob(ctx, client.OpTestDelay{Duration: time.Millisecond}); !luxi.IsNoMaster(err) || calls.Load() != 1 {
		t.Errorf("SubmitJob with no retry window: %v, sent %d times", err, calls.Load())
	}

	// The queue's refusal while it stops, and a plain refusal.
	for _, tc := range []struct {
		err   error
		sends int32
	}{
		{luxi.NewError("GenericError", queue.MsgShuttingDown), 2},
		{luxi.NewError("GenericError", "Queue drained"), 1},
		{luxi.NewError("GenericError", luxi.OutcomeUnknownPrefix+": the master went away"), 1},
		{luxi.NewError("OpPrereqError", "This is not the master node, please connect to node n1", "wrong_state"), 1},
	} {
		path, calls := fakeNode(t, func(n int32, req *luxi.Request) (any, error) {
			if n == 1 {
				return nil, tc.err
			}
			return 8, nil
		})
		c, err := client.Dial(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		c.SubmitJob(ctx, client.OpTestDelay{Duration: time.Millisecond})
		c.Close()
		if n := calls.Load(); n != tc.sends {
			t.Errorf("SubmitJob answered %v: sent %d times, want %d", tc.err, n, tc.sends)
		}
	}

	// The connection breaks after the request went out.
	path, calls = hangUpNode(t, func(n int32) error {
		if n == 1 {
			return errHangUp
		}
		return nil
	})
	c2, err := client.Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.SubmitJob(ctx, client.OpTestDelay{Duration: time.Millisecond}); err == nil || calls.Load() != 1 {
		t.Errorf("a submission whose connection broke: %v, sent %d times, want once", err, calls.Load())
	}
	if _, err := c2.QueryJobs(ctx, nil, "id"); err != nil || calls.Load() != 2 {
		t.Errorf("a read answered at once: %v, the node had %d calls, want 2", err, calls.Load())
	}
	path, calls = hangUpNode(t, func(n int32) error {
		if n == 1 {
			return errHangUp
		}
		return nil
	})
	c3, err := client.Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := c3.QueryJobs(ctx, nil, "id"); err != nil || calls.Load() != 2 {
		t.Errorf("a read whose connection broke: %v, sent %d times, want twice", err, calls.Load())
	}
}

// TestRetryWindowFromTheStart: the retry window counts from the call's
// start, the node's own waits included: a node that holds each call for a
// while before it answers that no master took it gets it at most twice in
// a window not much longer than its hold (counted from the first answer,
// a third attempt would fit).
func TestRetryWindowFromTheStart(t *testing.T) {
	ctx := context.Background()
	const hold = 300 * time.Millisecond
	noMaster := luxi.NoMasterError(luxi.NoMasterPrefix + ": this node does not reach a majority")
	path, calls := fakeNode(t, func(n int32, req *luxi.Request) (any, error) {
		time.Sleep(hold) // the node waits for a master before it answers
		return nil, noMaster
	})
	c, err := client.Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetRetryWindow(hold + hold*2/3)
	if _, err := c.SubmitJob(ctx, client.OpTestDelay{Duration: time.Millisecond}); !luxi.IsNoMaster(err) {
		t.Fatalf("SubmitJob to a node without a majority: %v, want its answer", err)
	}
	if n := calls.Load(); n > 2 {
		t.Errorf("SubmitJob was sent %d times in a window of %v with each answer taking %v, want at most 2", n, hold+hold*2/3, hold)
	}
}
