package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/retention"
	"github.com/jobq-dev/jobq/internal/schedule"
	"github.com/jobq-dev/jobq/luxi"
)

// Recurring schedules' edge: the schedules are one cluster-wide setting
// (schedule.Key), read and written through n.settings only; the master's
// queue runs them (queue.SetSchedules) and follows every change.

// scheduleMu makes each change of the schedules a read-modify-write of
// the setting that no other change interleaves (on the master).
var scheduleMu sync.Mutex

// schedulesSetting is the cluster's schedules (none when unreadable,
// which is logged).
func (n *nodeRT) schedulesSetting() schedule.Doc {
	d, err := schedule.ParseDoc(n.settings.Get(schedule.Key))
	if err != nil {
		n.log.Error("the cluster's schedules cannot be read; none runs until they are set again", "err", err)
		return schedule.Doc{}
	}
	return d
}

// runSchedules hands q the cluster's schedules and the watcher pause.
func (n *nodeRT) runSchedules(q *queue.Queue) {
	q.SetSchedules(n.schedulesSetting().Schedules, n.settings.Get(retention.PauseKey))
}

// serveSchedules answers the schedules' LUXI calls; ok is false for other
// methods.
//
//	JobqScheduleAdd [SPEC]                  adds a schedule (schedule.Spec)
//	JobqScheduleList []                     every schedule with its state
//	JobqScheduleSet [NAME, {"paused": B}]   pauses or resumes one
//	JobqScheduleRemove [NAME]               removes one
func (n *nodeRT) serveSchedules(ctx context.Context, req *luxi.Request) (res any, ok bool, err error) {
	switch req.Method {
	case "JobqScheduleAdd", "JobqScheduleList", "JobqScheduleSet", "JobqScheduleRemove":
	default:
		return nil, false, nil
	}
	q := n.queue()
	if q == nil {
		return nil, true, n.notMaster()
	}
	prereq := func(format string, a ...any) error {
		return luxi.NewError("OpPrereqError", fmt.Sprintf(format, a...), "wrong_input")
	}
	if req.Method == "JobqScheduleList" {
		return scheduleList(q), true, nil
	}
	scheduleMu.Lock()
	defer scheduleMu.Unlock()
	doc := n.schedulesSetting()
	switch req.Method {
	case "JobqScheduleAdd":
		var sp schedule.Spec
		if err := req.UnmarshalArgs(&sp); err != nil {
			return nil, true, err
		}
		if sp.Concurrency == "" {
			sp.Concurrency = schedule.Allow
		}
		if sp.CatchUp == "" {
			sp.CatchUp = schedule.CatchSkip
		}
		sp.Created = schedule.Seconds(time.Now())
		if err := sp.Check(); err != nil {
			return nil, true, prereq("%s", err)
		}
		if doc.Find(sp.Name) != nil {
			return nil, true, prereq("schedule %s exists already; remove it first ('jobq schedule remove %s') or choose another name", sp.Name, sp.Name)
		}
		doc.Schedules = append(doc.Schedules, sp)
	case "JobqScheduleSet":
		var name string
		var change struct {
			Paused *bool `json:"paused"`
		}
		if err := req.UnmarshalArgs(&name, &change); err != nil {
			return nil, true, err
		}
		sp := doc.Find(name)
		if sp == nil {
			return nil, true, prereq("there is no schedule %s ('jobq schedule list' lists them)", name)
		}
		if change.Paused != nil {
			sp.Paused = *change.Paused
		}
	case "JobqScheduleRemove":
		var name string
		if err := req.UnmarshalArgs(&name); err != nil {
			return nil, true, err
		}
		if doc.Find(name) == nil {
			return nil, true, prereq("there is no schedule %s ('jobq schedule list' lists them)", name)
		}
		kept := doc.Schedules[:0]
		for _, s := range doc.Schedules {
			if s.Name != name {
				kept = append(kept, s)
			}
		}
		doc.Schedules = kept
	}
	if err := n.settings.Set(ctx, schedule.Key, doc.JSON()); err != nil {
		return nil, true, luxi.NewError("GenericError", fmt.Sprintf("Cannot store the schedules: %v", err))
	}
	return true, true, nil
}

// scheduleInfo is one schedule in JobqScheduleList's answer.
type scheduleInfo struct {
	schedule.Spec
	LastFire *float64 `json:"last_fire"`
	NextFire *float64 `json:"next_fire"`
	LastJob  int64    `json:"last_job"`
	Jobs     []int64  `json:"jobs"`
	Skipped  int64    `json:"skipped"`
	LastSkip string   `json:"last_skip"`
}

func scheduleList(q *queue.Queue) []scheduleInfo {
	out := []scheduleInfo{}
	for _, s := range q.Schedules() {
		i := scheduleInfo{Spec: s.Spec, LastJob: s.State.LastJob, Jobs: s.State.Jobs, Skipped: s.State.Skipped, LastSkip: s.LastSkip}
		if i.Jobs == nil {
			i.Jobs = []int64{}
		}
		if s.State.LastFire > 0 {
			v := s.State.LastFire
			i.LastFire = &v
		}
		if !s.Next.IsZero() {
			v := schedule.Seconds(s.Next)
			i.NextFire = &v
		}
		out = append(out, i)
	}
	return out
}
