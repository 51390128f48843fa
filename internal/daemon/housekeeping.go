package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/retention"
	"github.com/jobq-dev/jobq/internal/schedule"
	"github.com/jobq-dev/jobq/luxi"
)

// The built-in housekeeping's edge: its policy (retention.Key) and the
// watcher pause (retention.PauseKey) are cluster-wide settings, read
// through n.settings only; the master's queue runs the housekeeping and
// follows their changes.

// startHousekeeping starts q's housekeeping with the cluster's policy.
func (n *nodeRT) startHousekeeping(q *queue.Queue) {
	n.hkOnce.Do(func() {
		n.settings.Watch(func(key string, _ []byte) {
			if key != retention.Key && key != retention.PauseKey && key != schedule.Key {
				return
			}
			if q := n.queue(); q != nil {
				p, pause := n.housekeepingSettings()
				q.SetHousekeeping(p, pause)
				n.runSchedules(q)
			}
		})
	})
	p, pause := n.housekeepingSettings()
	q.StartHousekeeping(p, pause)
	n.runSchedules(q)
}

// housekeepingSettings are the cluster's policy (Default when none was
// set) and watcher pause.
func (n *nodeRT) housekeepingSettings() (retention.Policy, []byte) {
	p, err := retention.Parse(n.settings.Get(retention.Key))
	if err != nil {
		n.log.Error("the cluster's housekeeping policy cannot be read; using the default until it is set again", "err", err)
		p = retention.Default()
	}
	return p, n.settings.Get(retention.PauseKey)
}

// serveHousekeeping answers the housekeeping's LUXI calls; ok is false
// for other methods.
//
//	JobqHousekeeping []             the policy and the last run
//	JobqSetHousekeeping [POLICY]    sets the policy (retention's document)
func (n *nodeRT) serveHousekeeping(ctx context.Context, req *luxi.Request) (res any, ok bool, err error) {
	switch req.Method {
	case "JobqHousekeeping", "JobqSetHousekeeping":
	default:
		return nil, false, nil
	}
	q := n.queue()
	if q == nil {
		return nil, true, n.notMaster()
	}
	switch req.Method {
	case "JobqSetHousekeeping":
		var doc json.RawMessage
		if err := req.UnmarshalArgs(&doc); err != nil {
			return nil, true, err
		}
		p, err := retention.Parse(doc)
		if err != nil {
			return nil, true, luxi.NewError("OpPrereqError", err.Error(), "wrong_input")
		}
		if err := n.settings.Set(ctx, retention.Key, p.JSON()); err != nil {
			return nil, true, luxi.NewError("GenericError", fmt.Sprintf("Cannot store the housekeeping policy: %v", err))
		}
		return housekeepingInfo(q), true, nil
	}
	return housekeepingInfo(q), true, nil
}

// housekeepingInfo is JobqHousekeeping's answer.
func housekeepingInfo(q *queue.Queue) map[string]any {
	st := q.Housekeeping()
	secs := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return float64(t.UnixNano()) / 1e9
	}
	return map[string]any{
		"policy": json.RawMessage(st.Policy.JSON()), "running": st.Running,
		"paused_until": secs(st.PausedUntil), "last_run": secs(st.LastRun), "next_run": secs(st.NextRun),
		"archived": st.Archived, "deleted": st.Deleted,
		"total_archived": st.TotalArchived, "total_deleted": st.TotalDeleted, "last_error": st.LastError,
	}
}
