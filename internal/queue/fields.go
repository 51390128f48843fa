package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
)

// view is a job as seen by queries: live or loaded from the archive. For
// an evicted final job j is nil until loadLocked reads its file; idx
// answers the index fields meanwhile.
type view struct {
	id       int64
	j        *job.Job
	idx      *finalIndex
	archived bool
	summary  []string // cached per live job; nil: compute
	// author is the cached "author" field of a live job when authorSet
	// ("" for none); otherwise it is computed from j.
	author    string
	authorSet bool
}

// jobAuthor is a job's author as the "author" field answers it, "SOURCE
// WHO" (package author), or "" for a job without one.
func jobAuthor(j *job.Job) string {
	if len(j.Ops) > 0 {
		if a, ok := author.Of(j.Ops[0].Input); ok {
			return a.String()
		}
	}
	return ""
}

// authorValue is the "author" field's value: null for none.
func (v view) authorValue() any {
	a := v.author
	if !v.authorSet {
		a = jobAuthor(v.j)
	}
	if a == "" {
		return nil
	}
	return a
}

// indexFields can be answered from a finalIndex, without the job's file.
var indexFields = map[string]bool{"id": true, "status": true, "priority": true, "archived": true,
	"summary": true, "received_ts": true, "start_ts": true, "end_ts": true, "author": true}

// needsFull reports whether any of fields needs the whole job.
func needsFull(fields []string) bool {
	for _, f := range fields {
		if !indexFields[f] {
			return true
		}
	}
	return false
}

// loadLocked reads an evicted job's file when v lacks the whole job.
func (q *Queue) loadLocked(v *view) error {
	if v.j != nil {
		return nil
	}
	j, err := q.readLive(v.id)
	if err != nil {
		return genericError("%v", err)
	}
	v.j = j
	return nil
}

// JobFieldNames are the job fields queries accept.
var JobFieldNames = []string{"id", "status", "priority", "archived", "ops", "opresult",
	"opstatus", "oplog", "opstart", "opexec", "opend", "oppriority", "summary",
	"received_ts", "start_ts", "end_ts", "not_before", "timeout", "optimeout", "author"}

var knownField = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range JobFieldNames {
		m[f] = true
	}
	return m
}()

// field computes one field's value; ok is false for an unknown field.
func (q *Queue) field(v view, name string) (any, bool) {
	j := v.j
	tsv := func(t *job.Timestamp) any {
		if t == nil {
			return nil
		}
		return *t
	}
	if j == nil {
		x := v.idx
		switch name {
		case "id":
			return v.id, true
		case "status":
			return x.status, true
		case "priority":
			return job.DefaultPriority, true // final: no pending opcode
		case "archived":
			return v.archived, true
		case "summary":
			return v.summary, true
		case "received_ts":
			return tsv(x.received), true
		case "start_ts":
			return tsv(x.started), true
		case "end_ts":
			return tsv(x.ended), true
		case "author":
			return v.authorValue(), true
		}
		return nil, false
	}
	perOp := func(f func(*job.Op) any) []any {
		out := make([]any, len(j.Ops))
		for i, op := range j.Ops {
			out[i] = f(op)
		}
		return out
	}
	switch name {
	case "id":
		return j.ID, true
	case "status":
		return j.CalcStatus(), true
	case "priority":
		return j.CalcPriority(), true
	case "archived":
		return v.archived, true
	case "ops":
		return perOp(func(op *job.Op) any { return op.Input }), true
	case "opresult":
		return perOp(func(op *job.Op) any { return op.Result }), true
	case "opstatus":
		return perOp(func(op *job.Op) any { return op.Status }), true
	case "oplog":
		return perOp(func(op *job.Op) any {
			if op.Log == nil {
				return []job.LogEntry{}
			}
			return op.Log
		}), true
	case "opstart":
		return perOp(func(op *job.Op) any { return tsv(op.StartTimestamp) }), true
	case "opexec":
		return perOp(func(op *job.Op) any { return tsv(op.ExecTimestamp) }), true
	case "opend":
		return perOp(func(op *job.Op) any { return tsv(op.EndTimestamp) }), true
	case "oppriority":
		return perOp(func(op *job.Op) any { return op.Priority }), true
	case "summary":
		if v.summary != nil {
			return v.summary, true
		}
		return q.summaries(j), true
	case "received_ts":
		return tsv(j.ReceivedTimestamp), true
	case "start_ts":
		return tsv(j.StartTimestamp), true
	case "end_ts":
		return tsv(j.EndTimestamp), true
	case "author":
		// "SOURCE WHO", or null for a job without one.
		return v.authorValue(), true
	}
	return timingField(j, name)
}

// summaries computes the per-opcode summaries of a job.
func (q *Queue) summaries(j *job.Job) []string {
	out := make([]string, len(j.Ops))
	for i, op := range j.Ops {
		out[i] = q.reg.Summary(op.Input)
	}
	return out
}

// filterValue turns a field value into what the filter language compares:
// numbers, strings, booleans, lists; timestamps as [seconds, microseconds].
func filterValue(v any) any {
	switch x := v.(type) {
	case int64, int, bool, string, nil:
		return x
	case job.Status:
		return string(x)
	case job.Timestamp:
		return []any{x[0], x[1]}
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	return decodeJSON(v)
}

// checkFields refuses unknown field names with Ganeti's error shape.
func checkFields(fields []string) error {
	var unknown []string
	for _, f := range fields {
		if !knownField[f] {
			unknown = append(unknown, f)
		}
	}
	if len(unknown) > 0 {
		return &Error{Class: "OpPrereqError", Args: []any{"Unknown output fields selected: " + strings.Join(unknown, ", "), "wrong_input"}}
	}
	return nil
}

// row computes the values of fields for a job, as JSON so that the result
// no longer refers to the live job.
func (q *Queue) row(v view, fields []string) json.RawMessage {
	vals := make([]any, len(fields))
	for i, f := range fields {
		vals[i], _ = q.field(v, f)
	}
	b, err := json.Marshal(vals)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("cannot encode job %d: %v", v.j.ID, err))
	}
	return b
}

// lookupLocked returns a live job (whole when full is set, otherwise
// perhaps only its index), or an archived one read from disk.
func (q *Queue) lookupLocked(id int64, full bool) (view, bool, error) {
	if e, ok := q.jobs[id]; ok {
		v := view{id: id, j: e.shown, idx: e.idx, summary: e.summary, author: e.author, authorSet: true}
		if full {
			if err := q.loadLocked(&v); err != nil {
				return view{}, false, err
			}
		}
		return v, true, nil
	}
	j, err := q.loadArchived(id)
	if err != nil {
		q.log.Warn("cannot read archived job", "job", id, "err", err)
	}
	if j == nil && q.archiving[id] {
		// Being archived: gone from the live jobs, its file not moved yet.
		if lj, lerr := q.readLive(id); lerr == nil {
			j = lj
		}
	}
	if j == nil {
		return view{}, false, nil
	}
	return view{id: id, j: j, archived: true}, true, nil
}

// QueryJobs answers Ganeti's QueryJobs: one row per requested id (null for
// a job that does not exist), or every live job in id order when ids is
// nil.
func (q *Queue) QueryJobs(ids []int64, fields []string) ([]json.RawMessage, error) {
	if err := checkFields(fields); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if ids == nil {
		ids = q.liveIDsLocked()
	}
	out := make([]json.RawMessage, len(ids))
	full := needsFull(fields)
	for i, id := range ids {
		v, ok, err := q.lookupLocked(id, full)
		if err != nil {
			return nil, err
		}
		if !ok {
			out[i] = json.RawMessage("null")
			continue
		}
		out[i] = q.row(v, fields)
	}
	return out, nil
}

func (q *Queue) liveIDsLocked() []int64 {
	ids := make([]int64, 0, len(q.jobs))
	for id := range q.jobs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Selector picks the jobs of a Query: explicit ids (live or archived), or
// every live job (plus the archive when Archived is set) that Match accepts.
type Selector struct {
	IDs      []int64 // nil: scan
	Archived bool
	// Match filters jobs; get returns a field's value. nil matches all.
	Match func(get func(field string) (any, bool)) (bool, error)
}

// Select returns the values of fields for the selected jobs, in id order.
// Values are Go values that encode to the fields' JSON; they do not refer
// to state that changes later.
func (q *Queue) Select(sel Selector, fields []string) ([][]any, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := sel.IDs
	if ids == nil {
		ids = q.liveIDsLocked()
		if sel.Archived {
			arch, err := q.store.ArchivedIDs()
			if err != nil {
				return nil, genericError("Cannot list archived jobs: %v", err)
			}
			ids = mergeIDs(ids, arch)
		}
	} else {
		ids = mergeIDs(nil, ids)
	}
	var rows [][]any
	full := needsFull(fields)
	for _, id := range ids {
		v, ok, err := q.lookupLocked(id, full)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if sel.Match != nil {
			var loadErr error
			get := func(f string) (any, bool) {
				if !indexFields[f] && knownField[f] {
					if loadErr = q.loadLocked(&v); loadErr != nil {
						return nil, false
					}
				}
				val, ok := q.field(v, f)
				if !ok {
					return nil, false
				}
				return filterValue(val), true
			}
			m, err := sel.Match(get)
			if err == nil {
				err = loadErr
			}
			if err != nil {
				return nil, err
			}
			if !m {
				continue
			}
		}
		vals := make([]any, len(fields))
		for i, f := range fields {
			vals[i], _ = q.field(v, f)
		}
		rows = append(rows, vals)
	}
	return rows, nil
}

func mergeIDs(a, b []int64) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, l := range [][]int64{a, b} {
		for _, id := range l {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// decodeJSON turns a field value into what a client decodes, keeping
// numbers exact (json.Number).
func decodeJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	_ = unmarshalNumber(b, &out)
	return out
}

func unmarshalNumber(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// waitRow is the values of some fields of one shown state, encoded and
// decoded, and the whole answer when there are no new log entries: shared
// by every watcher woken by the same change.
type waitRow struct {
	key     string
	vals    json.RawMessage
	decoded any
	answer  json.RawMessage // [vals, []]
}

// rowFor returns the values of fields for w's shown state, computed once
// per state and field list however many watchers ask (a second field list
// replaces the first in the cache). It needs no lock.
func (q *Queue) rowFor(id int64, w *watchView, fields []string) *waitRow {
	key := strings.Join(fields, "\x00")
	if c := w.row.Load(); c != nil && c.key == key {
		return c
	}
	c := &waitRow{key: key, vals: q.row(view{id: id, j: w.shown, summary: w.summary}, fields)}
	_ = json.Unmarshal(c.vals, &c.decoded)
	c.answer = append(append([]byte("["), c.vals...), ",[]]"...)
	w.row.Store(c)
	return c
}

// WaitResult is WaitForJobChange's answer: the field values and the log
// entries after the client's serial. Nil when the job does not exist.
type WaitResult struct {
	Values json.RawMessage
	Logs   []job.LogEntry
	// answer is the encoding, shared by many watchers (never modified).
	answer json.RawMessage
}

// MarshalJSON encodes [values, log_entries].
func (r *WaitResult) MarshalJSON() ([]byte, error) {
	if r.answer != nil && r.Logs == nil {
		return r.answer, nil
	}
	logs := r.Logs
	if logs == nil {
		logs = []job.LogEntry{}
	}
	return json.Marshal([]any{r.Values, logs})
}

// WaitForJobChange waits until the job's fields differ from prevInfo or it
// has log entries after prevLogSerial, and answers at once when that is
// already so or the job is final; at the timeout it answers the current
// values. It is answered from memory: watchers are woken by the change
// itself, with no limit on their number.
func (q *Queue) WaitForJobChange(ctx context.Context, id int64, fields []string,
	prevInfo json.RawMessage, prevLogSerial int64, timeout time.Duration) (*WaitResult, error) {
	if err := checkFields(fields); err != nil {
		return nil, err
	}
	var prev any
	hasPrev := len(prevInfo) > 0 && string(prevInfo) != "null"
	if hasPrev {
		if err := json.Unmarshal(prevInfo, &prev); err != nil {
			return nil, &Error{Class: "OpPrereqError", Args: []any{"previous job info is not valid JSON", "wrong_input"}}
		}
	}
	q.cfg.Metrics.Waiter(1)
	defer q.cfg.Metrics.Waiter(-1)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	q.mu.Lock()
	e, live := q.jobs[id]
	q.mu.Unlock()
	for {
		var w *watchView
		if live {
			w = e.watch.Load()
		}
		if w == nil {
			// Archived, or final and evicted: read once, answered at once.
			q.mu.Lock()
			v, ok, err := q.lookupLocked(id, true)
			q.mu.Unlock()
			if !ok || err != nil {
				return nil, err
			}
			return &WaitResult{Values: q.row(v, fields), Logs: v.j.LogsAfter(prevLogSerial)}, nil
		}
		r := q.rowFor(id, w, fields)
		logs := w.shown.LogsAfter(prevLogSerial)
		res := &WaitResult{Values: r.vals, Logs: logs, answer: r.answer}
		if w.shown.Final() || len(logs) > 0 || !hasPrev || !reflect.DeepEqual(r.decoded, prev) {
			return res, nil
		}
		select {
		case <-w.changed:
		case <-timer.C:
			res.Logs = nil
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
