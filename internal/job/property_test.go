package job

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// legalActions lists what the queue engine may do to a job in its current
// state. Transitions that a final job must ignore are offered in every
// state, so that "once final, nothing changes" is exercised. Progress is
// listed several times so that jobs get through their opcodes often.
func legalActions(j *Job) []string {
	always := []string{"cancel", "change-priority", "recover", "reload"}
	progress := func(a ...string) []string {
		var out []string
		for _, x := range a {
			out = append(out, x, x, x, x)
		}
		return out
	}
	switch j.CalcStatus() {
	case StatusQueued:
		return append(always, progress("begin")...)
	case StatusWaiting:
		// A waiting opcode acquires its locks and runs, fails on a
		// dependency, or is canceled because a dependency was.
		return append(always, append(progress("exec", "log"), "fail", "dep-canceled", "kill")...)
	case StatusCanceling:
		return append(always, "finish-canceled")
	case StatusRunning:
		return append(always, append(progress("succeed", "log"), "fail", "kill")...)
	}
	// Final.
	return append(always, "kill", "finish-canceled")
}

// opShape: success opcodes, then either only queued ones, one waiting or
// running opcode followed by queued ones, or a run of one non-success
// terminal (or canceling) status to the end.
var opShape = regexp.MustCompile(`^S*(Q*|[WR]Q*|C+|E+|X+)$`)

func shape(j *Job) string {
	letter := map[Status]byte{StatusQueued: 'Q', StatusWaiting: 'W', StatusRunning: 'R',
		StatusCanceling: 'C', StatusSuccess: 'S', StatusError: 'E', StatusCanceled: 'X'}
	b := make([]byte, len(j.Ops))
	for i, op := range j.Ops {
		b[i] = letter[op.Status]
	}
	return string(b)
}

func TestTransitionProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id := rapid.Int64Range(1, 1_000_000).Draw(t, "id")
		nOps := rapid.IntRange(1, 4).Draw(t, "ops")
		inputs := make([]json.RawMessage, nOps)
		for i := range inputs {
			in := map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 0.01}
			if rapid.Bool().Draw(t, "has-priority") {
				in["priority"] = rapid.IntRange(PriorityHighest, PriorityLowest).Draw(t, "priority")
			}
			inputs[i], _ = json.Marshal(in)
		}
		// The clock in microseconds; equal times are allowed.
		clock := rapid.Int64Range(0, 2_000_000_000_000_000).Draw(t, "start")
		now := func() Timestamp {
			clock += rapid.Int64Range(0, 2_000_000).Draw(t, "dt")
			return Timestamp{clock / 1_000_000, clock % 1_000_000}
		}
		j, err := New(id, inputs, now(), clock*1000)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		checkInvariants(t, j)

		var lastSerial int64
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for step := 0; step < steps; step++ {
			action := rapid.SampledFrom(legalActions(j)).Draw(t, "action")
			before := j.Clone()
			encBefore, err := j.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			statusBefore := j.CalcStatus()
			cur := j.CurrentOp()

			switch action {
			case "begin":
				j.BeginOp(cur, now())
				if j.Ops[cur].Status != StatusWaiting || j.Ops[cur].StartTimestamp == nil || j.StartTimestamp == nil {
					t.Fatalf("BeginOp(%d): %s", cur, show(j))
				}
			case "exec":
				j.ExecOp(cur, now())
				if j.CalcStatus() != StatusRunning || j.Ops[cur].ExecTimestamp == nil {
					t.Fatalf("ExecOp(%d): %s", cur, show(j))
				}
			case "succeed":
				j.FinishOp(cur, true, json.RawMessage(`{"ok":true}`), now())
				want := StatusQueued
				if cur == len(j.Ops)-1 {
					want = StatusSuccess
				}
				if st := j.CalcStatus(); st != want {
					t.Fatalf("FinishOp(%d, ok) gives %s, want %s", cur, st, want)
				}
			case "fail":
				j.FinishOp(cur, false, ExecError("boom").Raw(), now())
				if st := j.CalcStatus(); st != StatusError {
					t.Fatalf("FinishOp(%d, error) gives %s", cur, st)
				}
				for _, op := range j.Ops[cur+1:] {
					if string(op.Result) != `["OpExecError",["Preceding opcode failed"]]` {
						t.Fatalf("later opcode result %s", op.Result)
					}
				}
			case "dep-canceled", "finish-canceled":
				j.FinishCanceled(now())
				if !statusBefore.Final() && j.CalcStatus() != StatusCanceled {
					t.Fatalf("FinishCanceled gives %s", j.CalcStatus())
				}
			case "kill":
				j.Kill(now())
				if !statusBefore.Final() {
					if j.CalcStatus() != StatusCanceled ||
						string(j.Ops[cur].Result) != `["OpExecError",["Job killed by request"]]` {
						t.Fatalf("Kill: %s", show(j))
					}
				}
			case "log":
				msg, _ := json.Marshal(rapid.StringMatching(`[a-z <&>]{0,8}`).Draw(t, "msg"))
				e := j.AppendLog(cur, now(), "message", msg)
				if e.Serial != lastSerial+1 || e.Serial != j.LastLogSerial() {
					t.Fatalf("log serial %d after %d (LastLogSerial %d)", e.Serial, lastSerial, j.LastLogSerial())
				}
				lastSerial = e.Serial
			case "cancel":
				res := j.Cancel(now())
				want := map[Status]Status{StatusQueued: StatusCanceled, StatusWaiting: StatusCanceling,
					StatusCanceling: StatusCanceling}[statusBefore]
				switch {
				case want == "":
					msg := fmt.Sprintf("Job %d is no longer waiting in the queue", j.ID)
					if statusBefore == StatusRunning {
						msg = MsgCancelRunning
					}
					if res.OK || res.Changed || res.Message != msg {
						t.Fatalf("Cancel of a %s job: %+v", statusBefore, res)
					}
				case !res.OK || j.CalcStatus() != want || res.Changed != (statusBefore != StatusCanceling):
					t.Fatalf("Cancel of a %s job: %+v, now %s", statusBefore, res, j.CalcStatus())
				}
			case "change-priority":
				prio := rapid.IntRange(PriorityHighest-2, PriorityLowest+2).Draw(t, "new-priority")
				res, err := j.ChangePriority(prio)
				pending := 0
				for _, op := range before.Ops {
					if op.Status == StatusQueued || op.Status == StatusWaiting {
						pending++
					}
				}
				switch {
				case prio < PriorityHighest || prio > PriorityLowest:
					if err == nil {
						t.Fatalf("ChangePriority(%d) accepted", prio)
					}
				case err != nil:
					t.Fatalf("ChangePriority(%d): %v", prio, err)
				case statusBefore.Final() || statusBefore == StatusCanceling || pending == 0:
					if res.OK || res.Changed {
						t.Fatalf("ChangePriority on a %s job: %+v", statusBefore, res)
					}
				default:
					if !res.OK || !res.Changed {
						t.Fatalf("ChangePriority on a %s job: %+v", statusBefore, res)
					}
					for i, op := range j.Ops {
						pend := before.Ops[i].Status == StatusQueued || before.Ops[i].Status == StatusWaiting
						if pend && op.Priority != prio || !pend && op.Priority != before.Ops[i].Priority {
							t.Fatalf("op %d (%s) priority %d -> %d after ChangePriority(%d)", i,
								op.Status, before.Ops[i].Priority, op.Priority, prio)
						}
					}
				}
			case "recover":
				changed := j.Recover(now())
				want := map[Status]Status{StatusRunning: StatusError, StatusCanceling: StatusError,
					StatusWaiting: StatusQueued}[statusBefore]
				if want == "" {
					want = statusBefore
				}
				if st := j.CalcStatus(); st != want || changed != (want != statusBefore) {
					t.Fatalf("Recover of a %s job: %s, changed=%v", statusBefore, st, changed)
				}
			case "reload":
				// The master writes the job and reads it back (e.g. after a
				// failover): the same job, and logging continues.
				back, err := Decode(encBefore)
				if err != nil {
					t.Fatalf("Decode(Encode()): %v\n%s", err, encBefore)
				}
				if diff := cmp.Diff(j, back); diff != "" {
					t.Fatalf("Encode/Decode round trip (-before +after):\n%s", diff)
				}
				j = back
			default:
				t.Fatalf("unknown action %s", action)
			}

			checkInvariants(t, j)
			if statusBefore.Final() {
				if diff := cmp.Diff(before, j); diff != "" {
					t.Fatalf("%s changed a final (%s) job:\n%s", action, statusBefore, diff)
				}
			}
			// The clone taken before the step was not affected by it.
			if enc, _ := before.Encode(); string(enc) != string(encBefore) {
				t.Fatalf("%s changed the clone taken before it", action)
			}
		}
	})
}

func checkInvariants(t *rapid.T, j *Job) {
	st := j.CalcStatus()
	if st.Final() != (j.EndTimestamp != nil) || j.Final() != st.Final() {
		t.Fatalf("status %s, end timestamp %v, Final() %v", st, j.EndTimestamp, j.Final())
	}
	if s := shape(j); !opShape.MatchString(s) {
		t.Fatalf("opcode statuses %s are not a state the queue can reach", s)
	}
	if p := j.CalcPriority(); p < PriorityHighest || p > PriorityLowest {
		t.Fatalf("priority %d out of range", p)
	}
	if st.Final() && j.CalcPriority() != DefaultPriority {
		t.Fatalf("final job has priority %d", j.CalcPriority())
	}
	if cur := j.CurrentOp(); (cur == -1) != st.Final() && st != StatusCanceling {
		t.Fatalf("CurrentOp %d for a %s job", cur, st)
	}

	// Log serials strictly increase, in opcode order, from 1 without gaps.
	all := j.LogsAfter(0)
	for i, e := range all {
		if e.Serial != int64(i+1) {
			t.Fatalf("log serials %v", all)
		}
	}
	if k := len(all) / 2; len(all) > 0 {
		after := j.LogsAfter(all[k].Serial)
		if len(after) != len(all)-k-1 {
			t.Fatalf("LogsAfter(%d) returned %d entries of %d", all[k].Serial, len(after), len(all))
		}
	}

	// Timestamps never go backwards.
	order := func(what string, ts ...*Timestamp) {
		var prev *Timestamp
		for _, x := range ts {
			if x == nil {
				continue
			}
			if prev != nil && x.Before(*prev) {
				t.Fatalf("%s timestamps out of order: %v", what, ts)
			}
			prev = x
		}
	}
	order("job", j.ReceivedTimestamp, j.StartTimestamp, j.EndTimestamp)
	for i, op := range j.Ops {
		order(fmt.Sprintf("op %d", i), j.ReceivedTimestamp, op.StartTimestamp, op.ExecTimestamp, op.EndTimestamp)
		if op.Status.Final() != (op.EndTimestamp != nil) {
			t.Fatalf("op %d is %s with end timestamp %v", i, op.Status, op.EndTimestamp)
		}
		if op.ExecTimestamp != nil && op.StartTimestamp == nil {
			t.Fatalf("op %d executed without starting", i)
		}
		if op.Status.Final() && j.EndTimestamp != nil && j.EndTimestamp.Before(*op.EndTimestamp) {
			t.Fatalf("op %d ends after the job", i)
		}
	}

	// Encode then Decode gives an equal job.
	b, err := j.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(Encode()): %v\n%s", err, b)
	}
	if diff := cmp.Diff(j, back); diff != "" {
		t.Fatalf("Encode/Decode round trip (-before +after):\n%s", diff)
	}
	if strings.Contains(string(b), `"log":null`) {
		t.Fatalf("a log is written as null: %s", b)
	}
}
