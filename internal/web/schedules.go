package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/internal/schedule"
)

// scheduleRow is one recurring schedule as the schedules page shows it.
type scheduleRow struct {
	Name, When, Concurrency, CatchUp, LastSkip string
	Paused                                     bool
	Next, Last                                 timeView
	Jobs                                       []int64
	Skipped                                    int64
	Ops                                        string
}

// schedulesPage lists the recurring schedules: when each fires, its
// policies, its next and last fire and the jobs it made.
func (h *Handler) schedulesPage(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	now := h.cfg.Now()
	var rows []scheduleRow
	for _, st := range h.cfg.Queue.Schedules() {
		sp := st.Spec
		row := scheduleRow{Name: sp.Name, Concurrency: sp.Concurrency, CatchUp: sp.CatchUp, Paused: sp.Paused,
			Skipped: st.State.Skipped, LastSkip: st.LastSkip, Jobs: st.State.Jobs}
		if sp.Every > 0 {
			row.When = "every " + (time.Duration(sp.Every * float64(time.Second))).String()
		} else {
			tz := sp.TZ
			if tz == "" {
				tz = "UTC"
			}
			row.When = "cron " + sp.Cron + " (" + tz + ")"
		}
		if !st.Next.IsZero() {
			row.Next = viewNotBefore(tsOf(st.Next), now)
		}
		if st.State.LastFire > 0 {
			row.Last = viewTime(tsOf(schedule.Time(st.State.LastFire)), now)
		}
		ops := make([]string, len(sp.Ops))
		for i, op := range sp.Ops {
			ops[i] = string(op)
		}
		row.Ops = strings.Join(ops, "\n")
		rows = append(rows, row)
	}
	h.render(w, r, s, http.StatusOK, "schedules", &page{Title: "Schedules", Nav: "schedules", Refresh: h.refresh(), Data: rows})
}
