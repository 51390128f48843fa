package rapi

import (
	"encoding/json"

	"github.com/jobq-dev/jobq/internal/schedule"
)

// getSchedules answers GET /2/schedules (jobq's; Ganeti has no
// schedules): every recurring schedule with its state, by name.
func (s *Server) getSchedules(*request) (any, error) {
	out := []any{}
	secs := func(f float64) any {
		if f == 0 {
			return nil
		}
		return f
	}
	for _, st := range s.cfg.Queue.Schedules() {
		sp := st.Spec
		o := new(object).Add("name", sp.Name)
		if sp.Every > 0 {
			o.Add("every", sp.Every)
		} else {
			tz := sp.TZ
			if tz == "" {
				tz = "UTC"
			}
			o.Add("cron", sp.Cron).Add("timezone", tz)
		}
		ops := make([]json.RawMessage, len(sp.Ops))
		copy(ops, sp.Ops)
		jobs := st.State.Jobs
		if jobs == nil {
			jobs = []int64{}
		}
		var next any
		if !st.Next.IsZero() {
			next = schedule.Seconds(st.Next)
		}
		o.Add("paused", sp.Paused).Add("concurrency", sp.Concurrency).Add("catch_up", sp.CatchUp).
			Add("ops", ops).Add("last_fire", secs(st.State.LastFire)).Add("next_fire", next).
			Add("last_job", st.State.LastJob).Add("jobs", jobs).Add("skipped", st.State.Skipped).
			Add("last_skip", st.LastSkip)
		out = append(out, o)
	}
	return out, nil
}
