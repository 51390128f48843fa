package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/google/go-cmp/cmp"
)

// TestScenarios runs the scripts in testdata/*.txt. Regenerate the expected
// output with: go test ./internal/job -run TestScenarios -rewrite
//
// Commands (every command takes an optional id=N selecting the job; the
// default is the job most recently created or loaded; t=SECONDS is the
// current time, by default one second after the previous command's):
//
//	new id=N [ops=K] [prio=(P0,P1,..)] [depI=(JOB[:ST+ST..], ..)] [ns=NANOS]
//	    K opcodes OP_TEST_DELAY (default 1); prio sets each opcode's
//	    "priority" parameter, depI opcode I's "depends" (JOB may be negative,
//	    "JOB" or "JOB:" is an empty status list). With an input block, each
//	    line is one opcode input instead.
//	load                     input block is a job file, decoded with Decode
//	begin|exec op=I          BeginOp / ExecOp
//	finish op=I ok|error [result=JSON]
//	                         FinishOp; an error's result defaults to an
//	                         OpExecError with the input block as message
//	log op=I [type=T]        AppendLog, one message per input line
//	logs [after=S]           LogsAfter
//	cancel | kill | finish-canceled | recover | change-priority prio=P
//	checkdeps [op=I]         CheckDeps for opcode I's depends; the input
//	                         block is a table "JOBID STATUS" of other jobs,
//	                         jobs of the script are found too
//	show | input op=I | encode
//	parse-common             ParseCommon of the input block
//	timing [not-before=T] [timeout=DUR] [op-timeout=DUR]
//	                         Timing.Check, then SetTiming
//	due                      Due at the current time
//	deadline op=I            OpDeadline of opcode I
//	timeout op=I             OpDeadline's limit, then TimeOut
//
// After every command each job of the script is checked: Encode then Decode
// must give the same job, and a job whose end timestamp disagrees with its
// status is reported in the output with "!!".
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			t.Skip("not a scenario")
		}
		s := &scenario{jobs: map[int64]*Job{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out := s.run(t, d)
			out += s.check(t)
			if out == "" {
				out = "ok\n"
			}
			return out
		})
	})
}

type scenario struct {
	jobs map[int64]*Job
	cur  int64
	now  int64
}

func (s *scenario) run(t *testing.T, d *datadriven.TestData) string {
	if d.HasArg("t") {
		d.ScanArgs(t, "t", &s.now)
	} else {
		s.now++
	}
	now := Timestamp{s.now, 0}
	id := s.cur
	if d.HasArg("id") {
		d.ScanArgs(t, "id", &id)
	}
	if d.Cmd == "new" {
		return s.newJob(t, d, id, now)
	}
	if d.Cmd == "load" {
		j, err := Decode([]byte(d.Input))
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		s.jobs[j.ID] = j
		s.cur = j.ID
		return summary(j)
	}
	if d.Cmd == "parse-common" {
		c, err := ParseCommon(json.RawMessage(d.Input))
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return fmt.Sprintf("op_id=%s priority=%d depends=%s\n", c.OpID, c.Priority, formatDeps(c.Depends))
	}
	j := s.jobs[id]
	if j == nil {
		d.Fatalf(t, "no job %d", id)
	}
	s.cur = id
	op := -1
	if d.HasArg("op") {
		d.ScanArgs(t, "op", &op)
	}
	needOp := func() int {
		if op < 0 || op >= len(j.Ops) {
			d.Fatalf(t, "%s needs op=I with 0 <= I < %d", d.Cmd, len(j.Ops))
		}
		return op
	}
	switch d.Cmd {
	case "begin":
		j.BeginOp(needOp(), now)
		return summary(j)
	case "exec":
		j.ExecOp(needOp(), now)
		return summary(j)
	case "finish":
		i := needOp()
		ok := d.HasArg("ok")
		if ok == d.HasArg("error") {
			d.Fatalf(t, "finish needs exactly one of ok, error")
		}
		var result json.RawMessage
		if d.HasArg("result") {
			var r string
			d.ScanArgs(t, "result", &r)
			result = json.RawMessage(r)
		} else if !ok {
			msg := strings.TrimSpace(d.Input)
			if msg == "" {
				msg = "boom"
			}
			result = ExecError(msg).Raw()
		}
		j.FinishOp(i, ok, result, now)
		return summary(j)
	case "log":
		i := needOp()
		typ := "message"
		if d.HasArg("type") {
			d.ScanArgs(t, "type", &typ)
		}
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			msg, _ := json.Marshal(line)
			e := j.AppendLog(i, now, typ, msg)
			b.WriteString(formatLog(e))
		}
		return b.String()
	case "logs":
		var after int64
		if d.HasArg("after") {
			d.ScanArgs(t, "after", &after)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "last serial %d\n", j.LastLogSerial())
		for _, e := range j.LogsAfter(after) {
			b.WriteString(formatLog(e))
		}
		return b.String()
	case "cancel":
		return formatResult(j.Cancel(now)) + summary(j)
	case "kill":
		j.Kill(now)
		return summary(j)
	case "finish-canceled":
		j.FinishCanceled(now)
		return summary(j)
	case "recover":
		changed := j.Recover(now)
		return fmt.Sprintf("changed=%v\n", changed) + summary(j)
	case "change-priority":
		var prio int
		d.ScanArgs(t, "prio", &prio)
		res, err := j.ChangePriority(prio)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err) + summary(j)
		}
		return formatResult(res) + summary(j)
	case "checkdeps":
		return s.checkDeps(t, d, j, needOp())
	case "timing", "due", "deadline", "timeout":
		return s.timing(t, d, j, op, now)
	case "show":
		return show(j)
	case "input":
		return string(j.Ops[needOp()].Input) + "\n"
	case "encode":
		b, err := j.Encode()
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return string(b) + "\n"
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func (s *scenario) newJob(t *testing.T, d *datadriven.TestData, id int64, now Timestamp) string {
	var inputs []json.RawMessage
	if in := strings.TrimSpace(d.Input); in != "" {
		for _, line := range strings.Split(in, "\n") {
			inputs = append(inputs, json.RawMessage(line))
		}
	} else {
		n := 1
		if d.HasArg("ops") {
			d.ScanArgs(t, "ops", &n)
		}
		var prios []int
		if d.HasArg("prio") {
			d.ScanArgs(t, "prio", &prios)
		}
		for i := 0; i < n; i++ {
			in := map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 0.01}
			if i < len(prios) {
				in["priority"] = prios[i]
			}
			if arg, ok := d.Arg(fmt.Sprintf("dep%d", i)); ok {
				in["depends"] = parseDepArg(t, d, arg.Vals)
			}
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, b)
		}
	}
	ns := now[0] * 1e9
	if d.HasArg("ns") {
		d.ScanArgs(t, "ns", &ns)
	}
	j, err := New(id, inputs, now, ns)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	s.jobs[id] = j
	s.cur = id
	return summary(j)
}

// parseDepArg turns ("-1:success+error", "3") into [[-1,["success","error"]],[3,[]]].
func parseDepArg(t *testing.T, d *datadriven.TestData, vals []string) []any {
	var deps []any
	for _, v := range vals {
		idStr, sts, _ := strings.Cut(v, ":")
		jid, err := strconv.ParseInt(idStr, 10, 64)
		if err != nil {
			d.Fatalf(t, "bad dependency %q", v)
		}
		list := []string{}
		if sts != "" {
			list = strings.Split(sts, "+")
		}
		deps = append(deps, []any{jid, list})
	}
	return deps
}

func (s *scenario) checkDeps(t *testing.T, d *datadriven.TestData, j *Job, i int) string {
	table := map[int64]Status{}
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			d.Fatalf(t, "checkdeps table line %q is not \"JOBID STATUS\"", line)
		}
		jid, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			d.Fatalf(t, "checkdeps table line %q: %v", line, err)
		}
		table[jid] = Status(f[1])
	}
	c, err := ParseCommon(j.Ops[i].Input)
	if err != nil {
		return fmt.Sprintf("error: %v\n", err)
	}
	var asked []string
	lookup := func(jid int64) (Status, bool) {
		asked = append(asked, strconv.FormatInt(jid, 10))
		if st, ok := table[jid]; ok {
			return st, true
		}
		if other, ok := s.jobs[jid]; ok {
			return other.CalcStatus(), true
		}
		return "", false
	}
	outcome, msg := CheckDeps(j.ID, c.Depends, lookup)
	names := map[DepOutcome]string{DepContinue: "continue", DepWait: "wait", DepCancel: "cancel",
		DepWrongStatus: "wrong-status", DepError: "error"}
	return fmt.Sprintf("depends=%s looked-up=[%s]\n%s %q\n", formatDeps(c.Depends),
		strings.Join(asked, " "), names[outcome], msg)
}

// check verifies every job of the script after each command.
func (s *scenario) check(t *testing.T) string {
	var out strings.Builder
	ids := make([]int64, 0, len(s.jobs))
	for id := range s.jobs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	for _, id := range ids {
		j := s.jobs[id]
		if st := j.CalcStatus(); st.Final() != (j.EndTimestamp != nil) {
			fmt.Fprintf(&out, "!! job %d: status %s but end timestamp %s\n", id, st, fmtTS(j.EndTimestamp))
		}
		b, err := j.Encode()
		if err != nil {
			t.Errorf("job %d: Encode: %v", id, err)
			continue
		}
		back, err := Decode(b)
		if err != nil {
			t.Errorf("job %d: Decode(Encode()): %v\n%s", id, err, b)
			continue
		}
		if diff := cmp.Diff(j, back, jsonEqual); diff != "" {
			t.Errorf("job %d: Encode/Decode round trip differs (-before +after):\n%s", id, diff)
		}
	}
	return out.String()
}

func summary(j *Job) string {
	sts := make([]string, len(j.Ops))
	for i, op := range j.Ops {
		sts[i] = string(op.Status)
	}
	end := ""
	if j.EndTimestamp != nil {
		end = " end=" + fmtTS(j.EndTimestamp)
	}
	return fmt.Sprintf("job %d %s prio=%d ops=[%s]%s\n", j.ID, j.CalcStatus(), j.CalcPriority(),
		strings.Join(sts, " "), end)
}

func show(j *Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %d status=%s prio=%d received=%s start=%s end=%s\n", j.ID, j.CalcStatus(),
		j.CalcPriority(), fmtTS(j.ReceivedTimestamp), fmtTS(j.StartTimestamp), fmtTS(j.EndTimestamp))
	for i, op := range j.Ops {
		name := OpID(op.Input)
		if name == "" {
			name = "(no OP_ID)"
		}
		fmt.Fprintf(&b, "  op %d %s %s prio=%d start=%s exec=%s end=%s result=%s\n", i, name,
			op.Status, op.Priority, fmtTS(op.StartTimestamp), fmtTS(op.ExecTimestamp),
			fmtTS(op.EndTimestamp), op.Result)
		for _, e := range op.Log {
			b.WriteString("    " + formatLog(e))
		}
	}
	if j.NotBefore != nil || j.Timeout != 0 {
		fmt.Fprintf(&b, "  not-before=%s timeout=%v\n", fmtTS(j.NotBefore), j.Timeout)
	}
	for i, op := range j.Ops {
		if op.Timeout != 0 {
			fmt.Fprintf(&b, "  op %d timeout=%v\n", i, op.Timeout)
		}
	}
	if len(j.Extra) > 0 {
		keys := make([]string, 0, len(j.Extra))
		for k := range j.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  extra %s=%s\n", k, j.Extra[k])
		}
	}
	return b.String()
}

func fmtTS(ts *Timestamp) string {
	switch {
	case ts == nil:
		return "-"
	case ts[1] == 0:
		return strconv.FormatInt(ts[0], 10)
	}
	return fmt.Sprintf("%d.%06d", ts[0], ts[1])
}

func formatLog(e LogEntry) string {
	return fmt.Sprintf("log %d t=%s %s %s\n", e.Serial, fmtTS(&e.Time), e.Type, e.Message)
}

func formatResult(r CancelResult) string {
	return fmt.Sprintf("ok=%v changed=%v %q\n", r.OK, r.Changed, r.Message)
}

func formatDeps(deps []Dep) string {
	if len(deps) == 0 {
		return "none"
	}
	parts := make([]string, len(deps))
	for i, d := range deps {
		sts := make([]string, len(d.Statuses))
		for k, s := range d.Statuses {
			sts[k] = string(s)
		}
		parts[i] = fmt.Sprintf("%d:[%s]", d.JobID, strings.Join(sts, " "))
	}
	return strings.Join(parts, ",")
}

// jsonEqual compares raw JSON members by meaning (the Ganeti writers space
// their JSON, Encode does not; an empty raw member means null).
var jsonEqual = cmp.Comparer(func(a, b json.RawMessage) bool {
	norm := func(r json.RawMessage) any {
		if len(bytes.TrimSpace(r)) == 0 {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "invalid JSON: " + string(r)
		}
		return v
	}
	return cmp.Equal(norm(a), norm(b))
})
