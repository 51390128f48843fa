package daemon

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

// watcherPauseKey is the cluster-wide setting that holds until when the
// watcher is paused (Ganeti's watcher pause file): seconds since the
// epoch, or null. In jobq it is where the queue's automatic actions (auto
// archiving, scheduled jobs) look before they act.
const watcherPauseKey = "watcher-pause"

// watcherPause is until when the watcher is paused, or nil when it is not
// (never paused, continued, or the time has passed).
func (n *nodeRT) watcherPause(now time.Time) *float64 {
	var until *float64
	if b := n.settings.Get(watcherPauseKey); b != nil {
		if err := json.Unmarshal(b, &until); err != nil {
			n.log.Error("the stored watcher pause cannot be read; the watcher counts as not paused", "err", err)
			return nil
		}
	}
	if until == nil || *until < float64(now.UnixNano())/1e9 {
		return nil
	}
	return until
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
	b, err := json.Marshal(until)
	if err != nil {
		return nil, err
	}
	if err := n.settings.Set(ctx, watcherPauseKey, b); err != nil {
		return nil, luxi.NewError("GenericError", "Cannot store the watcher pause: "+err.Error())
	}
	if until == nil {
		return nil, nil
	}
	return *until, nil
}
