package client

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

// DefaultRetryWindow is how long a Client goes on sending a call again
// while no master takes it (an election, a restart of its node's jobqd),
// unless the call's context ends first.
const DefaultRetryWindow = 30 * time.Second

// SetRetryWindow sets how long a call is sent again while no master takes
// it (see the package documentation); 0 sends each call once. It is safe
// to call while calls are in progress; those in progress keep the window
// they started with.
func (c *Client) SetRetryWindow(d time.Duration) { c.retry.set(max(d, 0)) }

type retryWindow struct{ d atomic.Int64 }

func (w *retryWindow) set(d time.Duration) { w.d.Store(int64(d)) }
func (w *retryWindow) get() time.Duration  { return time.Duration(w.d.Load()) }

// Pauses between two attempts: from retryFirst, doubled, up to retryMax.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
)

// readOnly says whether method only reads: sent again after any failure.
func readOnly(method string) bool {
	switch method {
	case "WaitForJobChange", "QueryJobs", "Query", "QueryFields", "QueryFilters", "QueryConfigValues",
		"JobqClusterInfo", "JobqNodeList":
		return true
	}
	return false
}

// retryable says whether a call of method that failed with err may be
// sent again: it was not carried out (not sent, or no master took it),
// or it only reads and failed for its connection or a stopping server.
func retryable(method string, err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var de *luxi.DialError
	if errors.As(err, &de) || luxi.IsNoMaster(err) {
		return true
	}
	var le *luxi.Error
	if errors.As(err, &le) {
		if le.Class != "GenericError" || len(le.Args) != 1 {
			return false
		}
		switch le.Args[0] {
		case "The job queue is shutting down, not accepting new jobs":
			return true // nothing was stored
		case "Server is shutting down":
			return readOnly(method)
		}
		return false
	}
	// The connection broke after the request went out.
	return readOnly(method)
}

// callRetrying calls method, sending it again as retryable allows within
// the retry window and ctx.
func (c *Client) callRetrying(ctx context.Context, method string, args []any) ([]byte, error) {
	window := c.retry.get()
	// The window counts from the call's start: a node without a master
	// holds a call for a while before it answers so, and that wait is
	// part of the window, not before it.
	giveUp := time.Now().Add(window)
	pause := retryFirst
	for {
		raw, err := c.lc.Call(ctx, method, args...)
		if err == nil || window == 0 || !retryable(method, err) {
			return raw, err
		}
		if time.Now().Add(pause).After(giveUp) {
			return nil, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		pause = min(2*pause, retryMax)
	}
}
