package job

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Messages the state machine records in results.
const (
	MsgUncleanShutdown = "Unclean master shutdown"
	MsgPrecedingFailed = "Preceding opcode failed"
	MsgKilled          = "Job killed by request"
	// MsgCancelRunning refuses to cancel a running job, in luxid's words
	// (luxi-CancelJob-running.txt); kill is what stops one.
	MsgCancelRunning = "Job no longer waiting, can't cancel (informed it anyway)"
)

// Common holds the opcode parameters every opcode has that the queue itself
// interprets.
type Common struct {
	OpID     string
	Priority int
	Depends  []Dep
}

// Dep is one dependency: the job must be final with one of Statuses. An
// empty list accepts success and error; canceled must always be listed
// explicitly (as in Ganeti, a job depending on a canceled job is canceled
// unless it asked for canceled).
type Dep struct {
	JobID    int64
	Statuses []Status
}

// OpID returns the OP_ID of an opcode input, or "" when it has none.
func OpID(input json.RawMessage) string {
	var v struct {
		OpID any `json:"OP_ID"`
	}
	_ = json.Unmarshal(input, &v)
	s, _ := v.OpID.(string)
	return s
}

// ParseCommon reads OP_ID, priority and depends from an opcode input. A
// missing priority is DefaultPriority; a missing or null depends is none.
func ParseCommon(input json.RawMessage) (Common, error) {
	var v struct {
		OpID     any             `json:"OP_ID"`
		Priority json.RawMessage `json:"priority"`
		Depends  json.RawMessage `json:"depends"`
	}
	if err := json.Unmarshal(input, &v); err != nil {
		return Common{}, fmt.Errorf("opcode is not a JSON object")
	}
	var c Common
	s, ok := v.OpID.(string)
	if !ok || s == "" {
		return c, fmt.Errorf("opcode has no OP_ID")
	}
	c.OpID = s
	if p := v.Priority; len(p) > 0 && string(p) != "null" {
		var n json.Number
		if err := json.Unmarshal(p, &n); err != nil {
			return c, fmt.Errorf("priority must be an integer between %d and %d", PriorityHighest, PriorityLowest)
		}
		x, err := n.Int64()
		if err != nil || x < PriorityHighest || x > PriorityLowest {
			return c, fmt.Errorf("priority must be an integer between %d and %d, got %s", PriorityHighest, PriorityLowest, n)
		}
		c.Priority = int(x)
	}
	if d := v.Depends; len(d) > 0 && string(d) != "null" {
		deps, err := parseDeps(d)
		if err != nil {
			return c, err
		}
		c.Depends = deps
	}
	return c, nil
}

func parseDeps(raw json.RawMessage) ([]Dep, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("depends must be a list of [job_id, [statuses]]")
	}
	deps := make([]Dep, 0, len(list))
	for _, item := range list {
		var pair []json.RawMessage
		if err := json.Unmarshal(item, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("depends entry %s is not [job_id, [statuses]]", truncate(item))
		}
		var id json.Number
		if err := json.Unmarshal(pair[0], &id); err != nil {
			return nil, fmt.Errorf("depends job id %s is not an integer", truncate(pair[0]))
		}
		jid, err := id.Int64()
		if err != nil {
			return nil, fmt.Errorf("depends job id %s is not an integer", id)
		}
		var sts []Status
		if string(pair[1]) != "null" {
			if err := json.Unmarshal(pair[1], &sts); err != nil {
				return nil, fmt.Errorf("depends statuses %s are not a list of strings", truncate(pair[1]))
			}
		}
		for _, s := range sts {
			if !s.Final() {
				return nil, fmt.Errorf("depends status %q is not a final status (canceled, success, error)", s)
			}
		}
		deps = append(deps, Dep{JobID: jid, Statuses: sts})
	}
	return deps, nil
}

// New builds a freshly submitted job. Each input must be a JSON object; its
// relative dependencies (negative job ids) are resolved against id, and a
// reason entry ["gnt:opcode:<op>", "job=<id>;index=<i>", nowNanos] is
// appended, as Ganeti does. An input that is not a JSON object the job file
// can hold as it is (see CheckInput, with HardMaxDepth) is refused; inputs
// whose common parameters are invalid are
// kept as they are: the opcode fails with OpPrereqError when it is reached.
// Entries in reasons ([source, text, nanos], such as the job's author) are
// appended to each opcode's reason trail before Ganeti's entry.
func New(id int64, inputs []json.RawMessage, now Timestamp, nowNanos int64, reasons ...[]any) (*Job, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("a job needs at least one opcode")
	}
	j := &Job{ID: id, Ops: make([]*Op, len(inputs)), ReceivedTimestamp: now.ptr()}
	for i, in := range inputs {
		// What is stored must read back as it is: the job file decoder
		// refuses invalid UTF-8 and repeated member names.
		if err := CheckInput(i, in, HardMaxDepth); err != nil {
			return nil, err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(in, &m); err != nil || m == nil {
			return nil, fmt.Errorf("opcode %d is not a JSON object", i)
		}
		c, cerr := ParseCommon(in)
		prio := DefaultPriority
		if cerr == nil {
			prio = c.Priority
			if len(c.Depends) > 0 {
				m["depends"] = resolveDeps(id, c.Depends)
			}
		}
		normaliseInput(m)
		opName := strings.ToLower(strings.TrimPrefix(OpID(in), "OP_"))
		if opName == "" {
			opName = "unknown"
		}
		for _, r := range reasons {
			m["reason"] = appendReason(m["reason"], r)
		}
		m["reason"] = appendReason(m["reason"], []any{"gnt:opcode:" + opName,
			fmt.Sprintf("job=%d;index=%d", id, i), nowNanos})
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("opcode %d: %w", i, err)
		}
		j.Ops[i] = &Op{Input: b, Status: StatusQueued, Result: json.RawMessage("null"),
			Log: []LogEntry{}, Priority: prio}
	}
	return j, nil
}

// normaliseInput stores an opcode's parameters the way Ganeti's opcode
// serialisation does: a null parameter means "not given" and is left out,
// except depends and comment, which are always present (null when unset);
// debug_level and priority get their defaults (0).
func normaliseInput(m map[string]json.RawMessage) {
	for k, v := range m {
		if string(v) == "null" && k != "depends" && k != "comment" {
			delete(m, k)
		}
	}
	for _, k := range []string{"depends", "comment"} {
		if _, ok := m[k]; !ok {
			m[k] = json.RawMessage("null")
		}
	}
	for _, k := range []string{"debug_level", "priority"} {
		if _, ok := m[k]; !ok {
			m[k] = json.RawMessage("0")
		}
	}
}

func resolveDeps(id int64, deps []Dep) json.RawMessage {
	out := make([]any, len(deps))
	for i, d := range deps {
		jid := d.JobID
		if jid < 0 {
			jid = id + jid
		}
		sts := d.Statuses
		if sts == nil {
			sts = []Status{}
		}
		out[i] = []any{jid, sts}
	}
	b, _ := json.Marshal(out)
	return b
}

func appendReason(raw json.RawMessage, entry []any) json.RawMessage {
	var list []json.RawMessage
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &list); err != nil {
			list = nil
		}
	}
	e, _ := json.Marshal(entry)
	list = append(list, e)
	b, _ := json.Marshal(list)
	return b
}

// CurrentOp returns the index of the first opcode that is not final, or -1.
func (j *Job) CurrentOp() int {
	for i, op := range j.Ops {
		if !op.Status.Final() {
			return i
		}
	}
	return -1
}

// CancelResult is the outcome of a cancel request.
type CancelResult struct {
	OK      bool
	Message string
	// Changed reports whether the job was modified and must be stored.
	Changed bool
}

// Cancel applies a cancel request: a queued job is canceled at once, a
// waiting job becomes canceling (the worker finishes it), anything else is
// refused: a running job with Ganeti 3.0's MsgCancelRunning, a final one
// with "Job N is no longer waiting in the queue" (SPEC §3; luxid says "Job
// N not found in queue", which reads as if the job did not exist).
func (j *Job) Cancel(now Timestamp) CancelResult {
	switch j.CalcStatus() {
	case StatusQueued:
		j.markUnfinished(StatusCanceled, json.RawMessage("null"), now)
		j.EndTimestamp = now.ptr()
		return CancelResult{OK: true, Message: fmt.Sprintf("Dequeued job %d", j.ID), Changed: true}
	case StatusWaiting:
		for _, op := range j.Ops {
			if !op.Status.Final() {
				op.Status = StatusCanceling
			}
		}
		return CancelResult{OK: true, Message: fmt.Sprintf("Job %d will be canceled", j.ID), Changed: true}
	case StatusCanceling:
		return CancelResult{OK: true, Message: fmt.Sprintf("Job %d will be canceled", j.ID)}
	case StatusRunning:
		return CancelResult{OK: false, Message: MsgCancelRunning}
	}
	return CancelResult{OK: false, Message: fmt.Sprintf("Job %d is no longer waiting in the queue", j.ID)}
}

// FinishCanceled ends a canceling job (or one whose dependency was
// canceled): every unfinished opcode becomes canceled. A job that is
// already final is left as it is.
func (j *Job) FinishCanceled(now Timestamp) {
	if j.Final() {
		return
	}
	j.markUnfinished(StatusCanceled, json.RawMessage("null"), now)
	j.EndTimestamp = now.ptr()
}

// Kill ends a job whose running opcode was cancelled through its context:
// that opcode is canceled with an OpExecError saying so, the rest canceled.
// A job that is already final (it finished before the kill took effect) is
// left as it is.
func (j *Job) Kill(now Timestamp) {
	if j.Final() {
		return
	}
	if i := j.CurrentOp(); i >= 0 {
		op := j.Ops[i]
		op.Status = StatusCanceled
		op.Result = ExecError(MsgKilled).Raw()
		op.EndTimestamp = now.ptr()
	}
	j.FinishCanceled(now)
}

func (j *Job) markUnfinished(st Status, result json.RawMessage, now Timestamp) {
	for _, op := range j.Ops {
		if op.Status.Final() {
			continue
		}
		op.Status = st
		op.Result = result
		op.EndTimestamp = now.ptr()
	}
}

// ChangePriority sets the priority of every pending (queued or waiting)
// opcode.
func (j *Job) ChangePriority(prio int) (CancelResult, error) {
	if prio < PriorityHighest || prio > PriorityLowest {
		return CancelResult{}, fmt.Errorf("priority %d is out of range %d..%d", prio, PriorityHighest, PriorityLowest)
	}
	switch st := j.CalcStatus(); {
	case st.Final():
		return CancelResult{Message: fmt.Sprintf("Job %d is finished", j.ID)}, nil
	case st == StatusCanceling:
		return CancelResult{Message: fmt.Sprintf("Job %d is cancelling", j.ID)}, nil
	}
	n := 0
	for _, op := range j.Ops {
		if op.Status == StatusQueued || op.Status == StatusWaiting {
			op.Priority = prio
			n++
		}
	}
	if n == 0 {
		return CancelResult{Message: fmt.Sprintf("Job %d had no pending opcodes", j.ID)}, nil
	}
	return CancelResult{OK: true, Changed: true,
		Message: fmt.Sprintf("Priorities of pending opcodes for job %d have been changed to %d", j.ID, prio)}, nil
}

// BeginOp moves opcode i from queued to waiting (acquiring locks and
// dependencies) and sets its start timestamp, and the job's on its first
// opcode.
func (j *Job) BeginOp(i int, now Timestamp) {
	op := j.Ops[i]
	op.Status = StatusWaiting
	if op.StartTimestamp == nil {
		op.StartTimestamp = now.ptr()
	}
	if j.StartTimestamp == nil {
		j.StartTimestamp = now.ptr()
	}
}

// ExecOp moves opcode i from waiting to running.
func (j *Job) ExecOp(i int, now Timestamp) {
	op := j.Ops[i]
	op.Status = StatusRunning
	op.ExecTimestamp = now.ptr()
}

// FinishOp records opcode i's outcome. On success the job ends when it was
// the last opcode; on error every later opcode fails too
// ("Preceding opcode failed") and the job ends.
func (j *Job) FinishOp(i int, ok bool, result json.RawMessage, now Timestamp) {
	op := j.Ops[i]
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	op.Result = result
	op.EndTimestamp = now.ptr()
	if ok {
		op.Status = StatusSuccess
		if i == len(j.Ops)-1 {
			j.EndTimestamp = now.ptr()
		}
		return
	}
	op.Status = StatusError
	j.markUnfinished(StatusError, ExecError(MsgPrecedingFailed).Raw(), now)
	j.EndTimestamp = now.ptr()
}

// AppendLog adds a log entry to opcode i with the job's next log serial.
func (j *Job) AppendLog(i int, now Timestamp, typ string, msg json.RawMessage) LogEntry {
	if len(msg) == 0 {
		msg = json.RawMessage("null")
	}
	e := LogEntry{Serial: j.LastLogSerial() + 1, Time: now, Type: typ, Message: msg}
	j.Ops[i].Log = append(j.Ops[i].Log, e)
	return e
}

// AppendLogLimited is AppendLog for a job that keeps at most max log
// entries (every entry rewrites the job file, so an unbounded log makes
// the writes quadratic): the entry that reaches max says that later
// messages are not kept, and later ones are dropped. It reports whether
// an entry was added. max <= 0 means no limit.
func (j *Job) AppendLogLimited(i int, now Timestamp, typ string, msg json.RawMessage, max int) (LogEntry, bool) {
	if max <= 0 {
		return j.AppendLog(i, now, typ, msg), true
	}
	n := j.LastLogSerial()
	switch {
	case n >= int64(max):
		return LogEntry{}, false
	case n == int64(max)-1:
		note, _ := json.Marshal(fmt.Sprintf("Log limit of %d entries reached (max_log_entries): later messages of this job are not kept", max))
		return j.AppendLog(i, now, "message", note), true
	}
	return j.AppendLog(i, now, typ, msg), true
}

// LastLogSerial is the highest log serial of the job, 0 without logs.
func (j *Job) LastLogSerial() int64 {
	var s int64
	for _, op := range j.Ops {
		if n := len(op.Log); n > 0 && op.Log[n-1].Serial > s {
			s = op.Log[n-1].Serial
		}
	}
	return s
}

// LogsAfter returns every log entry with a serial above serial, in order.
func (j *Job) LogsAfter(serial int64) []LogEntry {
	var out []LogEntry
	for _, op := range j.Ops {
		for _, e := range op.Log {
			if e.Serial > serial {
				out = append(out, e)
			}
		}
	}
	return out
}

// Recover brings a job loaded at master start into a consistent state:
// running or canceling jobs failed with the master ("Unclean master
// shutdown"); waiting opcodes go back to queued so the job runs again; the
// end timestamp is made to agree with the status. It looks at every opcode,
// so that even a damaged file ends in a state a second Recover leaves alone.
// It reports whether the job changed.
func (j *Job) Recover(now Timestamp) bool {
	wasFinal := j.CalcStatus().Final()
	active, waiting := false, false
	for _, op := range j.Ops {
		active = active || op.Status == StatusRunning || op.Status == StatusCanceling
		waiting = waiting || op.Status == StatusWaiting
	}
	changed := false
	switch {
	case active:
		j.markUnfinished(StatusError, ExecError(MsgUncleanShutdown).Raw(), now)
		if !wasFinal {
			j.EndTimestamp = now.ptr()
		}
		changed = true
	case waiting:
		for _, op := range j.Ops {
			if op.Status == StatusWaiting {
				op.Status = StatusQueued
				op.StartTimestamp = nil
				op.ExecTimestamp = nil
			}
		}
		changed = true
	}
	switch final := j.CalcStatus().Final(); {
	case final && j.EndTimestamp == nil:
		// A final job must carry its end timestamp.
		j.EndTimestamp = now.ptr()
		changed = true
	case !final && j.EndTimestamp != nil:
		// A job that is not final must not carry one.
		j.EndTimestamp = nil
		changed = true
	}
	return changed
}

// MsgRerunAfterLoss starts the log entry of an opcode that was running
// when the master was lost and that the new master runs again.
const MsgRerunAfterLoss = "The master was lost while this opcode ran"

// RecoverRerunning is Recover, except that a running opcode for which
// rerun(input, lost) says so (lost: how many times a master was lost
// while it ran before) is queued again with a log entry saying so,
// instead of failing with its job: an idempotent declared opcode that
// may be retried. The entry counts the losses for the next time.
func (j *Job) RecoverRerunning(now Timestamp, rerun func(input json.RawMessage, lost int) bool) bool {
	changed := false
	if rerun != nil {
		for i, op := range j.Ops {
			if op.Status != StatusRunning {
				continue
			}
			lost := 0
			for _, e := range op.Log {
				var m string
				if json.Unmarshal(e.Message, &m) == nil && strings.HasPrefix(m, MsgRerunAfterLoss) {
					lost++
				}
			}
			if !rerun(op.Input, lost) {
				continue
			}
			op.Status = StatusQueued
			op.StartTimestamp, op.ExecTimestamp = nil, nil
			msg, _ := json.Marshal(fmt.Sprintf("%s (%d time(s) now); the new master runs it again: its definition is idempotent", MsgRerunAfterLoss, lost+1))
			j.AppendLog(i, now, "message", msg)
			changed = true
		}
	}
	return j.Recover(now) || changed
}

// DepOutcome is the result of checking an opcode's dependencies.
type DepOutcome int

// Dependency outcomes.
const (
	DepContinue    DepOutcome = iota // all dependencies met
	DepWait                          // a dependency is not final yet
	DepCancel                        // a dependency was canceled and that was not wanted
	DepWrongStatus                   // a dependency ended in a status not wanted
	DepError                         // missing job or self-dependency
)

// CheckDeps decides whether an opcode of job self with dependencies deps can
// run. lookup returns a job's status and whether the job exists (live or
// archived).
func CheckDeps(self int64, deps []Dep, lookup func(int64) (Status, bool)) (DepOutcome, string) {
	for _, d := range deps {
		if d.JobID == self {
			return DepError, fmt.Sprintf("Job %d can't depend on itself", self)
		}
		st, ok := lookup(d.JobID)
		if !ok {
			return DepError, fmt.Sprintf("Dependency job %d not found", d.JobID)
		}
		if !st.Final() {
			return DepWait, fmt.Sprintf("Need to wait for job %d", d.JobID)
		}
		wanted := false
		for _, s := range d.Statuses {
			wanted = wanted || s == st
		}
		if wanted {
			continue
		}
		// Ganeti checks canceled before the empty list: an empty list means
		// every final status except canceled.
		if st == StatusCanceled {
			return DepCancel, fmt.Sprintf("Dependency job %d was canceled", d.JobID)
		}
		if len(d.Statuses) == 0 {
			continue
		}
		names := make([]string, len(d.Statuses))
		for i, s := range d.Statuses {
			names[i] = string(s)
		}
		return DepWrongStatus, fmt.Sprintf("Dependency job %d has status '%s', not one of '%s' as required",
			d.JobID, st, strings.Join(names, ", "))
	}
	return DepContinue, ""
}
