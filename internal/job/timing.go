package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Jobs in time: jobq's additions to Ganeti's job file, each a member that
// Ganeti's readers ignore (its Python _QueuedJob.Restore and
// _QueuedOpCode.Restore read named members only):
//
//   - the job's "not_before" ([seconds, microseconds]): the job stays
//     queued until then;
//   - the job's "timeout" (seconds): the job's time limit, counted from
//     its start (the first opcode's start);
//   - an opcode's "timeout" (seconds): that opcode's time limit, counted
//     from the start of its execution (after its locks).
//
// An opcode past a limit is killed as "cancel --kill" does and ends in
// error (TimeOut). Every decision here takes the time as a parameter.

// MaxTimeout is the longest time limit a job or opcode may have.
const MaxTimeout = 366 * 24 * time.Hour

// maxNotBefore bounds a not-before time (year 10000 or so): far enough,
// and still a time.Time without overflow.
const maxNotBefore = 253402300799

// Timing is what a submission asks of a job's time.
type Timing struct {
	// NotBefore: the job does not start before then; nil: at once.
	NotBefore *Timestamp
	// Timeout is the job's time limit from its start; 0: none.
	Timeout time.Duration
	// OpTimeout is each opcode's time limit from the start of its
	// execution; 0: none.
	OpTimeout time.Duration
	// OpTimeouts, when set, are the opcodes' own limits by position (0:
	// OpTimeout's); a job has at least as many opcodes.
	OpTimeouts []time.Duration
}

// Zero reports whether t asks for nothing.
func (t Timing) Zero() bool {
	return t.NotBefore == nil && t.Timeout == 0 && t.OpTimeout == 0 && len(t.OpTimeouts) == 0
}

// Check refuses a timing a job cannot carry, in one sentence saying what
// to do.
func (t Timing) Check() error {
	limits := []struct {
		name string
		d    time.Duration
	}{{"job", t.Timeout}, {"opcode", t.OpTimeout}}
	for i, d := range t.OpTimeouts {
		limits = append(limits, struct {
			name string
			d    time.Duration
		}{fmt.Sprintf("opcode %d", i+1), d})
	}
	for _, c := range limits {
		if c.d < 0 {
			return fmt.Errorf("the %s time limit %s is negative; give a positive duration such as 10m", c.name, c.d)
		}
		if c.d > MaxTimeout {
			return fmt.Errorf("the %s time limit %s is longer than %s; give a shorter one", c.name, c.d, MaxTimeout)
		}
		if c.d > 0 && c.d < time.Millisecond {
			return fmt.Errorf("the %s time limit %s is shorter than a millisecond; give a longer one", c.name, c.d)
		}
	}
	if nb := t.NotBefore; nb != nil {
		if nb[0] < 0 || nb[0] > maxNotBefore || nb[1] < 0 || nb[1] > 999999 {
			return fmt.Errorf("the not-before time %v is not a valid [seconds, microseconds] time; give a time after 1970 and before 10000", *nb)
		}
	}
	return nil
}

// seconds is d in seconds, as the job file stores limits.
func seconds(d time.Duration) float64 { return d.Seconds() }

// duration is a stored limit back as a duration (0 for none or invalid).
func duration(s float64) time.Duration {
	if !(s > 0) || math.IsInf(s, 0) || s > MaxTimeout.Seconds() {
		return 0
	}
	// Microseconds, as the file's timestamps: 1.001 is not exact in
	// binary.
	return time.Duration(math.Round(s*1e6)) * time.Microsecond
}

// CheckOps refuses a timing with more opcode limits than the job's
// n opcodes.
func (t Timing) CheckOps(n int) error {
	if len(t.OpTimeouts) > n {
		return fmt.Errorf("op_timeouts has %d limits for a job of %d opcodes; give at most one per opcode", len(t.OpTimeouts), n)
	}
	return nil
}

// SetTiming records t in a new job: each opcode gets its own limit from
// t.OpTimeouts, else t.OpTimeout.
func (j *Job) SetTiming(t Timing) {
	if t.NotBefore != nil {
		j.NotBefore = t.NotBefore.ptr()
	}
	j.Timeout = seconds(t.Timeout)
	for i, op := range j.Ops {
		op.Timeout = seconds(t.OpTimeout)
		if i < len(t.OpTimeouts) && t.OpTimeouts[i] > 0 {
			op.Timeout = seconds(t.OpTimeouts[i])
		}
	}
}

// Due reports whether the job may start at now: it has no not-before
// time, or that time has come.
func (j *Job) Due(now Timestamp) bool {
	return j.NotBefore == nil || !now.Before(*j.NotBefore)
}

// Limit names which time limit a deadline comes from.
type Limit string

// The limits.
const (
	LimitNone   Limit = ""
	LimitJob    Limit = "job"
	LimitOpcode Limit = "opcode"
)

// OpDeadline is when running opcode i is past a time limit: the earlier
// of the job's start plus its limit and the opcode's execution start plus
// its own. which is LimitNone (and at zero) when neither applies.
func (j *Job) OpDeadline(i int) (at time.Time, which Limit) {
	if i < 0 || i >= len(j.Ops) {
		return time.Time{}, LimitNone
	}
	if t, ok := j.JobDeadline(); ok {
		at, which = t, LimitJob
	}
	op := j.Ops[i]
	if d := duration(op.Timeout); d > 0 && op.ExecTimestamp != nil {
		if t := op.ExecTimestamp.Time().Add(d); which == LimitNone || t.Before(at) {
			at, which = t, LimitOpcode
		}
	}
	return at, which
}

// JobDeadline is when the job is past its own limit (its start plus its
// timeout); ok is false when it has none or has not started.
func (j *Job) JobDeadline() (at time.Time, ok bool) {
	if d := duration(j.Timeout); d > 0 && j.StartTimestamp != nil {
		return j.StartTimestamp.Time().Add(d), true
	}
	return time.Time{}, false
}

// TimeoutMessage is the error of an opcode ended by a time limit.
func (j *Job) TimeoutMessage(i int, which Limit) string {
	switch which {
	case LimitJob:
		return fmt.Sprintf("Job timed out: it ran longer than its time limit of %s", duration(j.Timeout))
	case LimitOpcode:
		return fmt.Sprintf("Opcode timed out: it ran longer than its time limit of %s", duration(j.Ops[i].Timeout))
	}
	return "Opcode timed out"
}

// TimeOut ends running opcode i in error because of limit which: its
// result says it timed out, later opcodes fail ("Preceding opcode
// failed") and the job ends in error.
func (j *Job) TimeOut(i int, which Limit, now Timestamp) {
	if j.Final() || i < 0 || i >= len(j.Ops) {
		return
	}
	j.FinishOp(i, false, ExecError(j.TimeoutMessage(i, which)).Raw(), now)
}

// TimingMembers are the members of a submission's timing object (LUXI's
// optional last argument of SubmitJob/SubmitManyJobs, RAPI's POST
// /2/jobs body): "not_before" (seconds since the epoch, a number, or
// [seconds, microseconds]), "timeout" and "op_timeout" (seconds), and
// "op_timeouts" (each opcode's seconds, by position; null or 0: the
// op_timeout).
var TimingMembers = []string{"not_before", "timeout", "op_timeout", "op_timeouts"}

// ParseTiming reads a submission's timing from its members (missing or
// null ones ask for nothing); an error is one sentence saying what to
// send.
func ParseTiming(m map[string]json.RawMessage) (Timing, error) {
	var t Timing
	if raw, ok := m["not_before"]; ok && string(bytes.TrimSpace(raw)) != "null" {
		var ts Timestamp
		var secs float64
		switch {
		case json.Unmarshal(raw, &secs) == nil:
			if math.IsNaN(secs) || secs < 0 || secs > maxNotBefore {
				return t, fmt.Errorf("not_before %s is not a time; send seconds since the epoch, e.g. %d", raw, int64(1893456000))
			}
			whole := math.Floor(secs)
			ts = Timestamp{int64(whole), int64(math.Round((secs - whole) * 1e6))}
			if ts[1] == 1e6 {
				ts = Timestamp{ts[0] + 1, 0}
			}
		case ts.UnmarshalJSON(raw) == nil:
		default:
			return t, fmt.Errorf("not_before %s is not a time; send seconds since the epoch or [seconds, microseconds]", truncate(raw))
		}
		t.NotBefore = &ts
	}
	for _, l := range []struct {
		name string
		dst  *time.Duration
	}{{"timeout", &t.Timeout}, {"op_timeout", &t.OpTimeout}} {
		raw, ok := m[l.name]
		if !ok || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		var secs float64
		if err := json.Unmarshal(raw, &secs); err != nil || math.IsNaN(secs) || secs > MaxTimeout.Seconds() || secs < -MaxTimeout.Seconds() {
			return t, fmt.Errorf("%s %s is not a time limit; send a number of seconds up to %d", l.name, truncate(raw), int64(MaxTimeout.Seconds()))
		}
		*l.dst = time.Duration(math.Round(secs*1e6)) * time.Microsecond
	}
	if raw, ok := m["op_timeouts"]; ok && string(bytes.TrimSpace(raw)) != "null" {
		var list []*float64
		if err := json.Unmarshal(raw, &list); err != nil {
			return t, fmt.Errorf("op_timeouts %s is not a list of time limits; send seconds by opcode, such as [60, null, 600]", truncate(raw))
		}
		for i, s := range list {
			d := time.Duration(0)
			if s != nil {
				if math.IsNaN(*s) || math.Abs(*s) > MaxTimeout.Seconds() {
					return t, fmt.Errorf("op_timeouts member %d (%v) is not a time limit; send a number of seconds up to %d", i+1, *s, int64(MaxTimeout.Seconds()))
				}
				d = time.Duration(math.Round(*s*1e6)) * time.Microsecond
			}
			t.OpTimeouts = append(t.OpTimeouts, d)
		}
	}
	return t, t.Check()
}

// ParseTimingObject reads a submission's timing object, refusing members
// other than TimingMembers.
func ParseTimingObject(raw json.RawMessage) (Timing, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return Timing{}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return Timing{}, fmt.Errorf("the submission's options must be an object such as {\"not_before\": 1893456000, \"timeout\": 600}")
	}
	for k := range m {
		if !slices.Contains(TimingMembers, k) {
			return Timing{}, fmt.Errorf("unknown submission option %q; the options are %s", k, strings.Join(TimingMembers, ", "))
		}
	}
	return ParseTiming(m)
}

// Members is t as a submission's timing object (nil members omitted).
func (t Timing) Members() map[string]any {
	m := map[string]any{}
	if t.NotBefore != nil {
		m["not_before"] = *t.NotBefore
	}
	if t.Timeout != 0 {
		m["timeout"] = t.Timeout.Seconds()
	}
	if t.OpTimeout != 0 {
		m["op_timeout"] = t.OpTimeout.Seconds()
	}
	if len(t.OpTimeouts) > 0 {
		l := make([]any, len(t.OpTimeouts))
		for i, d := range t.OpTimeouts {
			if d != 0 {
				l[i] = d.Seconds()
			}
		}
		m["op_timeouts"] = l
	}
	return m
}
