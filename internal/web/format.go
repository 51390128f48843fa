package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
)

// timeView is a moment as pages show it; the zero value is "not yet".
type timeView struct {
	Text string `json:"text,omitempty"` // 2026-01-02 15:04:05 UTC
	ISO  string `json:"iso,omitempty"`  // for <time datetime>
	Ago  string `json:"ago,omitempty"`  // "5 min ago"
}

func (t timeView) Set() bool { return t.Text != "" }

func tsTime(ts *job.Timestamp) (time.Time, bool) {
	if ts == nil {
		return time.Time{}, false
	}
	return time.Unix(ts[0], ts[1]*1000).UTC(), true
}

func viewTime(ts *job.Timestamp, now time.Time) timeView {
	t, ok := tsTime(ts)
	if !ok {
		return timeView{}
	}
	return timeView{Text: t.Format("2006-01-02 15:04:05 UTC"), ISO: t.Format(time.RFC3339Nano), Ago: ago(now.Sub(t))}
}

// ago renders an age roughly, as people say it.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// duration renders the time between two timestamps ("" unless both are
// set).
func duration(a, b *job.Timestamp) string {
	ta, ok1 := tsTime(a)
	tb, ok2 := tsTime(b)
	if !ok1 || !ok2 {
		return ""
	}
	d := tb.Sub(ta)
	switch {
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// pretty renders a JSON value indented; "" for null or nothing.
func pretty(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// logMessage renders a log entry's message: a string as it is, anything
// else as JSON.
func logMessage(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// decodeRow decodes a QueryJobs row into dst, one pointer per field; it
// reports false for a missing job (null).
func decodeRow(raw json.RawMessage, dst ...any) (bool, error) {
	if string(bytes.TrimSpace(raw)) == "null" {
		return false, nil
	}
	var vals []json.RawMessage
	if err := json.Unmarshal(raw, &vals); err != nil {
		return false, err
	}
	if len(vals) != len(dst) {
		return false, fmt.Errorf("a row of %d values for %d fields", len(vals), len(dst))
	}
	for i, v := range vals {
		if err := json.Unmarshal(v, dst[i]); err != nil {
			return false, fmt.Errorf("field %d: %w", i, err)
		}
	}
	return true, nil
}

// jobData is a job's fields as QueryJobs and WaitForJobChange answer them.
type jobData struct {
	ID         int64
	Status     string
	Priority   int
	Archived   bool
	Ops        []json.RawMessage
	OpResult   []json.RawMessage
	OpStatus   []string
	OpLog      [][]job.LogEntry
	OpStart    []*job.Timestamp
	OpExec     []*job.Timestamp
	OpEnd      []*job.Timestamp
	OpPriority []int
	Summary    []string
	Received   *job.Timestamp
	Start      *job.Timestamp
	End        *job.Timestamp
	NotBefore  *job.Timestamp
}

// jobFields are the fields of the job page.
var jobFields = []string{"id", "status", "priority", "archived", "ops", "opresult", "opstatus", "oplog",
	"opstart", "opexec", "opend", "oppriority", "summary", "received_ts", "start_ts", "end_ts", "not_before"}

func (d *jobData) jobDst() []any {
	return []any{&d.ID, &d.Status, &d.Priority, &d.Archived, &d.Ops, &d.OpResult, &d.OpStatus, &d.OpLog,
		&d.OpStart, &d.OpExec, &d.OpEnd, &d.OpPriority, &d.Summary, &d.Received, &d.Start, &d.End, &d.NotBefore}
}

// stateFields are the fields event streams watch (everything on the job
// page that changes, except the log, which comes as log entries).
var stateFields = []string{"status", "priority", "opstatus", "opresult", "opstart", "opexec", "opend",
	"oppriority", "start_ts", "end_ts"}

func (d *jobData) stateDst() []any {
	return []any{&d.Status, &d.Priority, &d.OpStatus, &d.OpResult, &d.OpStart, &d.OpExec, &d.OpEnd,
		&d.OpPriority, &d.Start, &d.End}
}

// jobView is a job as its page shows it; the event stream's state events
// are its JSON (without inputs and logs).
type jobView struct {
	ID         int64    `json:"id"`
	Status     string   `json:"status"`
	Priority   int      `json:"priority"`
	Archived   bool     `json:"-"`
	Final      bool     `json:"final"`
	Summary    string   `json:"-"`
	Received   timeView `json:"-"`
	NotBefore  timeView `json:"-"`
	Start      timeView `json:"start"`
	End        timeView `json:"end"`
	Duration   string   `json:"duration"`
	Ops        []opView `json:"ops"`
	LastSerial int64    `json:"-"`
	// Failed is the opcode that failed the job (nil when none did), and
	// Reason its error message: the page shows them first.
	Failed *opView `json:"-"`
	Reason string  `json:"-"`
	// Author is who submitted the job ("" when not recorded), Actions
	// who canceled, reprioritised or archived it (author.LogType entries).
	Author  string   `json:"-"`
	Actions []string `json:"-"`
}

// ShownOps are the opcodes in the order the page shows them: the one that
// failed first (expanded), then the others in order.
func (v *jobView) ShownOps() []opView {
	if v.Failed == nil {
		return v.Ops
	}
	out := []opView{*v.Failed}
	for _, o := range v.Ops {
		if o.Index != v.Failed.Index {
			out = append(out, o)
		}
	}
	return out
}

type opView struct {
	Index    int       `json:"-"`
	OpID     string    `json:"-"`
	Summary  string    `json:"-"`
	Status   string    `json:"status"`
	Priority int       `json:"priority"`
	Start    timeView  `json:"start"`
	Exec     timeView  `json:"exec"`
	End      timeView  `json:"end"`
	Duration string    `json:"duration"`
	Input    string    `json:"-"`
	Result   string    `json:"result"`
	Logs     []logView `json:"-"`
}

type logView struct {
	Op      int      `json:"op"`
	Serial  int64    `json:"serial"`
	Time    timeView `json:"time"`
	Type    string   `json:"type"`
	Message string   `json:"message"`
}

func viewLog(op int, e job.LogEntry, now time.Time) logView {
	ts := e.Time
	return logView{Op: op, Serial: e.Serial, Time: viewTime(&ts, now), Type: e.Type, Message: logMessage(e.Message)}
}

func at[T any](s []T, i int) T {
	var zero T
	if i < len(s) {
		return s[i]
	}
	return zero
}

// view turns job data into what pages show.
func (d *jobData) view(now time.Time) *jobView {
	v := &jobView{ID: d.ID, Status: d.Status, Priority: d.Priority, Archived: d.Archived, Final: d.End != nil,
		Summary: strings.Join(d.Summary, ", "), Received: viewTime(d.Received, now),
		Start: viewTime(d.Start, now), End: viewTime(d.End, now), Duration: duration(d.Start, d.End),
		NotBefore: viewNotBefore(d.NotBefore, now)}
	if len(d.Ops) > 0 {
		if a, ok := author.Of(d.Ops[0]); ok {
			v.Author = a.String()
		}
	}
	for _, l := range d.OpLog {
		for _, e := range l {
			if e.Type == author.LogType {
				v.Actions = append(v.Actions, logMessage(e.Message))
			}
		}
	}
	n := max(len(d.Ops), len(d.OpStatus))
	for i := range n {
		o := opView{Index: i, Summary: at(d.Summary, i), Status: at(d.OpStatus, i), Priority: at(d.OpPriority, i),
			Start: viewTime(at(d.OpStart, i), now), Exec: viewTime(at(d.OpExec, i), now),
			End: viewTime(at(d.OpEnd, i), now), Duration: duration(at(d.OpStart, i), at(d.OpEnd, i)),
			Result: pretty(at(d.OpResult, i))}
		if in := at(d.Ops, i); in != nil {
			o.OpID = job.OpID(in)
			o.Input = pretty(in)
		}
		for _, e := range at(d.OpLog, i) {
			o.Logs = append(o.Logs, viewLog(i, e, now))
			v.LastSerial = max(v.LastSerial, e.Serial)
		}
		v.Ops = append(v.Ops, o)
	}
	if i, reason := failure(d.OpStatus, d.OpResult); i >= 0 && i < len(v.Ops) {
		v.Failed, v.Reason = &v.Ops[i], reason
	}
	return v
}

// failure finds the opcode that failed a job: the first in status error
// (those after it fail as "Preceding opcode failed"), and its error
// message; -1 when none failed.
func failure(status []string, results []json.RawMessage) (int, string) {
	for i, st := range status {
		if st == string(job.StatusError) {
			return i, errorMessage(at(results, i))
		}
	}
	return -1, ""
}

// errorMessage is an encoded opcode error's message: ["OpExecError",
// ["message"]] gives "message"; anything else its JSON, shortened.
func errorMessage(raw json.RawMessage) string {
	var enc []json.RawMessage
	var args []any
	if json.Unmarshal(raw, &enc) == nil && len(enc) == 2 && json.Unmarshal(enc[1], &args) == nil && len(args) > 0 {
		if msg, ok := args[0].(string); ok && msg != "" {
			return msg
		}
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// listRow is one job of the job list and the overview.
type listRow struct {
	ID       int64
	Status   string
	Priority int
	Summary  string
	Received timeView
	Start    timeView
	End      timeView
	Duration string
	Archived bool
	// NotBefore is a queued job's not-before time (jobs in time).
	NotBefore timeView
	// FailedOp (1-based) and Reason say why a job in error failed.
	FailedOp int
	Reason   string
	// Author is who submitted the job, "SOURCE WHO" ("" when not
	// recorded).
	Author string
}

// listFields are the fields of listRow, all answered from the queue's
// in-memory index (no job file is read).
var listFields = []string{"id", "status", "priority", "summary", "received_ts", "start_ts", "end_ts", "archived", "author"}

// listRowOf converts a Select row of listFields.
func listRowOf(vals []any, now time.Time) listRow {
	ts := func(v any) *job.Timestamp {
		if t, ok := v.(job.Timestamp); ok {
			return &t
		}
		return nil
	}
	r := listRow{}
	r.ID, _ = vals[0].(int64)
	r.Status = fmt.Sprint(vals[1])
	switch p := vals[2].(type) {
	case int:
		r.Priority = p
	case int64:
		r.Priority = int(p)
	}
	if s, ok := vals[3].([]string); ok {
		r.Summary = strings.Join(s, ", ")
	}
	rec, st, end := ts(vals[4]), ts(vals[5]), ts(vals[6])
	r.Received, r.Start, r.End = viewTime(rec, now), viewTime(st, now), viewTime(end, now)
	r.Duration = duration(st, end)
	r.Archived, _ = vals[7].(bool)
	r.Author, _ = vals[8].(string)
	return r
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
