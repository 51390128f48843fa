// Package job is the pure core of jobq: the job and opcode data model in
// Ganeti's on-disk schema, status and priority derivation, and every state
// transition a job can make. It does no I/O and reads no clock: callers pass
// the current time in. The queue engine (package queue) wraps it with storage,
// workers and notifications.
package job

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Timestamp is Ganeti's [seconds, microseconds] pair.
type Timestamp [2]int64

// TS converts a time to a Timestamp.
func TS(t time.Time) Timestamp {
	return Timestamp{t.Unix(), int64(t.Nanosecond() / 1000)}
}

// Time converts back to a time.Time.
func (t Timestamp) Time() time.Time { return time.Unix(t[0], t[1]*1000) }

// Before reports whether t is strictly earlier than u.
func (t Timestamp) Before(u Timestamp) bool {
	return t[0] < u[0] || (t[0] == u[0] && t[1] < u[1])
}

// ptr returns a pointer to a copy of t.
func (t Timestamp) ptr() *Timestamp { return &t }

// UnmarshalJSON accepts [sec, usec] with integer or float members (Ganeti
// writers have produced both).
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	// Fast path for the usual [123, 456]: job files hold many timestamps.
	if s, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte("[")); ok {
		if s, ok = bytes.CutSuffix(s, []byte("]")); ok {
			if a, c, ok := bytes.Cut(s, []byte(",")); ok {
				x, err1 := strconv.ParseInt(string(bytes.TrimSpace(a)), 10, 64)
				y, err2 := strconv.ParseInt(string(bytes.TrimSpace(c)), 10, 64)
				if err1 == nil && err2 == nil {
					t[0], t[1] = x, y
					return nil
				}
			}
		}
	}
	var v []json.Number
	if err := json.Unmarshal(b, &v); err != nil || len(v) != 2 {
		return fmt.Errorf("timestamp must be [seconds, microseconds], got %s", truncate(b))
	}
	for i, n := range v {
		if x, err := n.Int64(); err == nil {
			t[i] = x
			continue
		}
		f, err := n.Float64()
		if err != nil {
			return fmt.Errorf("timestamp member %q is not a number", n)
		}
		t[i] = int64(f)
	}
	return nil
}

// LogEntry is one opcode log message: [serial, timestamp, type, message].
// The message is usually a string but Ganeti allows any JSON value.
type LogEntry struct {
	Serial  int64
	Time    Timestamp
	Type    string
	Message json.RawMessage
}

// MarshalJSON encodes the entry as Ganeti's four-element list.
func (e LogEntry) MarshalJSON() ([]byte, error) {
	msg := e.Message
	if len(msg) == 0 {
		msg = json.RawMessage("null")
	}
	return json.Marshal([]any{e.Serial, e.Time, e.Type, msg})
}

// UnmarshalJSON decodes Ganeti's four-element list.
func (e *LogEntry) UnmarshalJSON(b []byte) error {
	var v []json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil || len(v) != 4 {
		return fmt.Errorf("log entry must be [serial, timestamp, type, message], got %s", truncate(b))
	}
	if err := json.Unmarshal(v[0], &e.Serial); err != nil {
		return fmt.Errorf("log entry serial: %w", err)
	}
	if err := json.Unmarshal(v[1], &e.Time); err != nil {
		return fmt.Errorf("log entry time: %w", err)
	}
	if err := json.Unmarshal(v[2], &e.Type); err != nil {
		return fmt.Errorf("log entry type: %w", err)
	}
	e.Message = append(json.RawMessage(nil), v[3]...)
	return nil
}

// Op is one opcode of a job, as stored in the job file.
type Op struct {
	// Input is the opcode's parameters as a JSON object, including OP_ID.
	Input  json.RawMessage `json:"input"`
	Status OpStatus        `json:"status"`
	// Result is null, the opcode's result, or an encoded error.
	Result         json.RawMessage `json:"result"`
	Log            []LogEntry      `json:"log"`
	Priority       int             `json:"priority"`
	StartTimestamp *Timestamp      `json:"start_timestamp"`
	ExecTimestamp  *Timestamp      `json:"exec_timestamp"`
	EndTimestamp   *Timestamp      `json:"end_timestamp"`
	// Timeout is jobq's time limit of the opcode's execution, in seconds
	// (0: none); see timing.go. Ganeti's readers ignore the member.
	Timeout float64 `json:"timeout,omitempty"`
}

// Job is a job as stored in queue/job-N.
type Job struct {
	ID                int64      `json:"id"`
	Ops               []*Op      `json:"ops"`
	ReceivedTimestamp *Timestamp `json:"received_timestamp"`
	StartTimestamp    *Timestamp `json:"start_timestamp"`
	EndTimestamp      *Timestamp `json:"end_timestamp"`
	// NotBefore is jobq's "not before" time: the job stays queued until
	// then (nil: none). Timeout is the job's time limit in seconds from
	// its start (0: none). See timing.go; Ganeti's readers ignore both.
	NotBefore *Timestamp `json:"not_before,omitempty"`
	Timeout   float64    `json:"timeout,omitempty"`
	// Extra keeps members jobq does not use (Ganeti's "livelock",
	// "process_id") so a loaded file re-serialises without losing them.
	Extra map[string]json.RawMessage `json:"-"`
	// Repaired, set by Decode, says how a file the strict decoder refused
	// was read all the same; "" when it was not needed.
	Repaired string `json:"-"`
}

var knownJobKeys = map[string]bool{
	"id": true, "ops": true, "received_timestamp": true,
	"start_timestamp": true, "end_timestamp": true,
	"not_before": true, "timeout": true,
}

// Decode parses a job file. It accepts both of Ganeti's writers' styles
// (spaced and compact JSON) and checks the invariants jobq relies on.
//
// Top-level members are matched by their exact (case-sensitive) name, as
// Ganeti's Python reader does; every other member is kept in Extra.
//
// A file that jobq versions before the check at submission (CheckInput)
// wrote with text that is not valid UTF-8, or with a member twice in one
// object, is read all the same: invalid bytes become U+FFFD and the last
// of repeated members counts. Repaired then says what was done, and the
// caller should store the job again.
func Decode(b []byte) (*Job, error) {
	j, err := decode(b)
	if err == nil {
		return j, nil
	}
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) || !(strings.Contains(se.Err.Error(), "UTF-8") || errors.Is(err, jsontext.ErrDuplicateName)) {
		return nil, err
	}
	repaired := "repeated member names accepted"
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
		repaired = "text that was not valid UTF-8 replaced by U+FFFD"
	}
	j, lerr := decode(b, jsontext.AllowDuplicateNames(true))
	if lerr != nil {
		return nil, err
	}
	j.Repaired = repaired
	return j, nil
}

func decode(b []byte, opts ...jsontext.Options) (*Job, error) {
	// One pass over the top-level members: known ones are decoded into the
	// job, others kept as they are.
	dec := jsontext.NewDecoder(bytes.NewReader(b), opts...)
	invalid := func(err error) (*Job, error) {
		var v any
		if uerr := json.Unmarshal(b, &v); uerr != nil {
			err = uerr
		}
		return nil, fmt.Errorf("job file is not valid JSON: %w", err)
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return invalid(err)
	}
	if tok.Kind() != '{' {
		if _, err := dec.ReadValue(); err != nil && !errors.Is(err, io.EOF) {
			return invalid(err)
		}
		return nil, fmt.Errorf("job file is not a JSON object")
	}
	var j Job
	seen := map[string]bool{}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return invalid(err)
		}
		key := tok.String()
		if knownJobKeys[key] && seen[key] {
			// Only a lenient decoder gets here: which one counts is
			// not something to guess for the job's own members.
			return nil, fmt.Errorf("job file has the member %q twice", key)
		}
		seen[key] = true
		val, err := dec.ReadValue()
		if err != nil {
			return invalid(err)
		}
		var dst any
		switch key {
		case "id":
			j.ID, dst = 0, &j.ID
		case "ops":
			j.Ops, dst = nil, &j.Ops
		case "received_timestamp":
			j.ReceivedTimestamp, dst = nil, &j.ReceivedTimestamp
		case "start_timestamp":
			j.StartTimestamp, dst = nil, &j.StartTimestamp
		case "end_timestamp":
			j.EndTimestamp, dst = nil, &j.EndTimestamp
		case "not_before":
			j.NotBefore, dst = nil, &j.NotBefore
		case "timeout":
			j.Timeout, dst = 0, &j.Timeout
		default:
			if j.Extra == nil {
				j.Extra = map[string]json.RawMessage{}
			}
			j.Extra[key] = append(json.RawMessage(nil), val...)
			continue
		}
		if err := json.Unmarshal(val, dst); err != nil {
			return nil, fmt.Errorf("job file member %q is not valid: %v", key, err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return invalid(err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return invalid(fmt.Errorf("data after the job object"))
	}
	if err := j.check(); err != nil {
		return nil, err
	}
	return &j, nil
}

func (j *Job) check() error {
	if j.ID <= 0 {
		return fmt.Errorf("job file has no valid id")
	}
	if len(j.Ops) == 0 {
		return fmt.Errorf("job %d has no opcodes", j.ID)
	}
	for i, op := range j.Ops {
		if op == nil {
			return fmt.Errorf("job %d opcode %d is null", j.ID, i)
		}
		if !op.Status.Valid() {
			return fmt.Errorf("job %d opcode %d has unknown status %q", j.ID, i, op.Status)
		}
		if len(bytes.TrimSpace(op.Input)) == 0 || op.Input[0] != '{' {
			return fmt.Errorf("job %d opcode %d input is not an object", j.ID, i)
		}
		if len(op.Result) == 0 {
			op.Result = json.RawMessage("null")
		}
		if op.Log == nil {
			op.Log = []LogEntry{}
		}
	}
	return nil
}

// Encode serialises the job in jobq's file format: Ganeti's schema as
// compact JSON (the style Ganeti's luxid writes).
func (j *Job) Encode() ([]byte, error) {
	type plain Job
	b, err := json.Marshal((*plain)(j))
	if err != nil || len(j.Extra) == 0 {
		return b, err
	}
	// Append the extra members before the closing brace; a member that
	// would duplicate one of the job's own is not written.
	m := make(map[string]json.RawMessage, len(j.Extra))
	for k, v := range j.Extra {
		if !knownJobKeys[k] {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return b, nil
	}
	extra, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(extra))
	out = append(out, b[:len(b)-1]...)
	out = append(out, ',')
	out = append(out, extra[1:]...)
	return out, nil
}

// Clone returns a deep copy (raw JSON members and timestamps are shared;
// they are never modified in place).
func (j *Job) Clone() *Job {
	c := *j
	if j.Extra != nil {
		c.Extra = make(map[string]json.RawMessage, len(j.Extra))
		for k, v := range j.Extra {
			c.Extra[k] = v
		}
	}
	c.Ops = make([]*Op, len(j.Ops))
	for i, op := range j.Ops {
		o := *op
		if op.Log != nil {
			// Keep an empty log empty rather than nil: it is written as [].
			o.Log = append(make([]LogEntry, 0, len(op.Log)), op.Log...)
		}
		c.Ops[i] = &o
	}
	return &c
}

func truncate(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}
