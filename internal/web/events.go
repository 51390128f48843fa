package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
)

// events streams a job's changes as server-sent events until the job ends
// or the client goes away:
//
//	event: state   data: the job's status, priority, times and each
//	               opcode's status, times and result (jobView's JSON)
//	event: log     id: serial; data: one log entry with its opcode's index
//	event: end     the job is final; the stream closes
//	event: gone    the job does not exist
//	event: failed  the queue failed (data: its message)
//
// It is one WaitForJobChange loop per client, woken by the queue's
// in-memory change notifications; log entries after ?after=SERIAL (or the
// Last-Event-ID of a reconnecting browser) are sent.
func (h *Handler) events(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	id, ok := h.jobID(w, r, s)
	if !ok {
		return
	}
	serial := int64(0)
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			h.errorPage(w, r, s, http.StatusBadRequest, "Bad request", "after is a log serial.")
			return
		}
		serial = n
		break
	}
	if n := h.streams.Add(1); n > int64(h.cfg.MaxStreams) {
		h.streams.Add(-1)
		w.Header().Set("Retry-After", "10")
		h.errorPage(w, r, s, http.StatusServiceUnavailable, "Busy", "Too many pages follow jobs right now.")
		return
	}
	defer func() {
		h.streams.Add(-1)
		if h.streamEnded != nil {
			h.streamEnded()
		}
	}()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	ctx := r.Context()
	var buf bytes.Buffer
	send := func() error {
		if buf.Len() == 0 {
			return nil
		}
		// A client that stops reading is cut off after ioTimeout.
		deadline := rc.SetWriteDeadline(time.Now().Add(ioTimeout)) == nil
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		if err == nil {
			err = rc.Flush()
		}
		if deadline && err == nil {
			err = rc.SetWriteDeadline(time.Time{})
		}
		return err
	}
	event := func(name, id string, data any) {
		b, err := json.Marshal(data)
		if err != nil {
			b = []byte("null")
		}
		if id != "" {
			fmt.Fprintf(&buf, "id: %s\n", id)
		}
		fmt.Fprintf(&buf, "event: %s\ndata: %s\n\n", name, b)
	}
	buf.WriteString("retry: 3000\n\n")
	if send() != nil {
		return
	}
	var prev json.RawMessage
	for {
		res, err := h.cfg.Queue.WaitForJobChange(ctx, id, stateFields, prev, serial, h.cfg.Heartbeat)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return // the client went away, or jobqd stops
			}
			h.log.Warn("web: watching a job failed", "job", id, "err", err)
			event("failed", "", err.Error())
			_ = send()
			return
		}
		if res == nil {
			event("gone", "", id)
			_ = send()
			return
		}
		now := h.cfg.Now()
		if len(res.Logs) > 0 {
			ops := h.logOps(id, res.Logs)
			for _, e := range res.Logs {
				event("log", strconv.FormatInt(e.Serial, 10), viewLog(ops[e.Serial], e, now))
				serial = max(serial, e.Serial)
			}
		}
		d := &jobData{ID: id}
		if _, err := decodeRow(res.Values, d.stateDst()...); err != nil {
			h.log.Warn("web: cannot decode a job's state", "job", id, "err", err)
			return
		}
		if !bytes.Equal(res.Values, prev) {
			event("state", "", d.view(now))
			prev = res.Values
		} else if len(res.Logs) == 0 {
			buf.WriteString(": nothing new\n\n")
		}
		if d.End != nil {
			event("end", "", d.Status)
		}
		if send() != nil || d.End != nil {
			return
		}
	}
}

// logOps finds the opcode of each log entry (WaitForJobChange's entries do
// not say); entries not found are put on opcode 0.
func (h *Handler) logOps(id int64, logs []job.LogEntry) map[int64]int {
	out := map[int64]int{}
	rows, err := h.cfg.Queue.Select(queue.Selector{IDs: []int64{id}}, []string{"oplog"})
	if err != nil || len(rows) != 1 {
		return out
	}
	perOp, _ := rows[0][0].([]any)
	want := map[int64]bool{}
	for _, e := range logs {
		want[e.Serial] = true
	}
	for i, l := range perOp {
		entries, _ := l.([]job.LogEntry)
		for _, e := range entries {
			if want[e.Serial] {
				out[e.Serial] = i
			}
		}
	}
	return out
}
