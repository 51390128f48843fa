package daemon

import (
	"context"
	"math"
	"time"

	"github.com/jobq-dev/jobq/internal/retention"
	"github.com/jobq-dev/jobq/luxi"
)

// watcherPause is until when the watcher is paused, or nil when it is not
// (never paused, continued, or the time has passed). The pause is the
// cluster-wide setting retention.PauseKey, where the queue's automatic
// actions (the built-in archiving, the schedules) look before they act.
func (n *nodeRT) watcherPause(now time.Time) *float64 {
	until, ok := retention.PauseUntil(n.settings.Get(retention.PauseKey))
	if !ok || until.Before(now) {
		return nil
	}
	f := float64(until.UnixNano()) / 1e9
	return &f
}

// setWatcherPause answers SetWatcherPause([until or null]), what
// gnt-cluster watcher pause and continue send: the time is agreed
// cluster-wide and answered back (null for continue).
func (n *nodeRT) setWatcherPause(ctx context.Context, req *luxi.Request) (any, error) {
	var until *float64
	if err := req.UnmarshalArgs(&until); err != nil {
		return nil, luxi.NewError("OpPrereqError", "SetWatcherPause takes one argument: until when (seconds since the epoch), or null to continue", "wrong_input")
	}
	if until != nil && (math.IsNaN(*until) || math.IsInf(*until, 0)) {
		return nil, luxi.NewError("OpPrereqError", "The watcher pause must end at a finite time (seconds since the epoch)", "wrong_input")
	}
	if err := n.settings.Set(ctx, retention.PauseKey, retention.PauseJSON(until)); err != nil {
		return nil, luxi.NewError("GenericError", "Cannot store the watcher pause: "+err.Error())
	}
	if until == nil {
		return nil, nil
	}
	return *until, nil
}
