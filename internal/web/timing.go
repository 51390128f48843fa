package web

import (
	"fmt"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
)

// Jobs in time on the dashboard: a delayed job shows when it may start,
// on its page and in the lists ("queued, starts in 10 min").

// viewNotBefore shows a not-before time: "in 10 min" while it is ahead.
func viewNotBefore(ts *job.Timestamp, now time.Time) timeView {
	v := viewTime(ts, now)
	if t, ok := tsTime(ts); ok && t.After(now) {
		v.Ago = "in " + until(t.Sub(now))
	}
	return v
}

// until renders a time ahead roughly.
func until(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds())+1)
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// addNotBefore fills the not-before times of the queued jobs among rows
// (queued jobs are in memory: no file is read).
func (h *Handler) addNotBefore(byID map[int64]listRow, now time.Time) error {
	var queued []int64
	for id, row := range byID {
		if row.Status == string(job.StatusQueued) {
			queued = append(queued, id)
		}
	}
	if len(queued) == 0 {
		return nil
	}
	res, err := h.cfg.Queue.Select(queue.Selector{IDs: queued}, []string{"id", "not_before"})
	if err != nil {
		return err
	}
	for _, vals := range res {
		id, _ := vals[0].(int64)
		if ts, ok := vals[1].(job.Timestamp); ok {
			row := byID[id]
			row.NotBefore = viewNotBefore(&ts, now)
			byID[id] = row
		}
	}
	return nil
}

// tsOf is t as a job timestamp.
func tsOf(t time.Time) *job.Timestamp {
	ts := job.TS(t)
	return &ts
}
