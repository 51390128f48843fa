package job

import (
	"fmt"
	"strings"
	"testing"
)

// oracleStatus is an independent statement of the SPEC §3 rule, written the
// way Ganeti's docstring for CalcStatus phrases it rather than as a scan:
//
//   - every opcode succeeded: success;
//   - otherwise, if some opcode is canceling, error or canceled, the first
//     such opcode gives the status;
//   - otherwise the last opcode that is waiting or running gives it;
//   - otherwise (only queued and success opcodes) the job is queued.
func oracleStatus(sts []Status) Status {
	nSuccess := 0
	for _, s := range sts {
		if s == StatusSuccess {
			nSuccess++
		}
	}
	if nSuccess == len(sts) {
		return StatusSuccess
	}
	terminal := map[Status]bool{StatusCanceling: true, StatusError: true, StatusCanceled: true}
	for _, s := range sts {
		if terminal[s] {
			return s
		}
	}
	for i := len(sts) - 1; i >= 0; i-- {
		if sts[i] == StatusWaiting || sts[i] == StatusRunning {
			return sts[i]
		}
	}
	return StatusQueued
}

// oraclePriority: the minimum over the unfinished opcodes, 0 when none.
func oraclePriority(sts []Status, prios []int) int {
	var pending []int
	for i, s := range sts {
		if s != StatusCanceled && s != StatusSuccess && s != StatusError {
			pending = append(pending, prios[i])
		}
	}
	if len(pending) == 0 {
		return 0
	}
	lowest := pending[0]
	for _, p := range pending[1:] {
		lowest = min(lowest, p)
	}
	return lowest
}

func jobWith(sts []Status, prios []int) *Job {
	j := &Job{ID: 1}
	for i, s := range sts {
		op := &Op{Input: []byte(`{"OP_ID":"OP_TEST_DELAY"}`), Status: s, Result: []byte("null")}
		if prios != nil {
			op.Priority = prios[i]
		}
		j.Ops = append(j.Ops, op)
	}
	return j
}

// forEachSequence calls f with every sequence of statuses of length 1..max.
func forEachSequence(max int, f func([]Status)) {
	var rec func(prefix []Status)
	rec = func(prefix []Status) {
		if len(prefix) > 0 {
			f(append([]Status(nil), prefix...))
		}
		if len(prefix) == max {
			return
		}
		for _, s := range AllStatuses {
			rec(append(prefix, s))
		}
	}
	rec(nil)
}

func TestCalcStatusExhaustive(t *testing.T) {
	n := 0
	forEachSequence(4, func(sts []Status) {
		n++
		got := jobWith(sts, nil).CalcStatus()
		if want := oracleStatus(sts); got != want {
			t.Errorf("CalcStatus(%v) = %s, want %s", sts, got, want)
		}
	})
	if want := 7 + 49 + 343 + 2401; n != want {
		t.Fatalf("checked %d sequences, want %d", n, want)
	}
}

func TestCalcPriorityExhaustive(t *testing.T) {
	// Priorities depend on the position so that the minimum is not always
	// the first or the last opcode: 5, -3, 19, -20.
	prioSets := [][]int{{5, -3, 19, -20}, {-20, 19, -3, 5}, {0, 0, 0, 0}, {10, 10, -10, 10}}
	forEachSequence(4, func(sts []Status) {
		for _, ps := range prioSets {
			prios := ps[:len(sts)]
			got := jobWith(sts, prios).CalcPriority()
			if want := oraclePriority(sts, prios); got != want {
				t.Errorf("CalcPriority(%v, %v) = %d, want %d", sts, prios, got, want)
			}
			if got < PriorityHighest || got > PriorityLowest {
				t.Errorf("CalcPriority(%v, %v) = %d, out of range", sts, prios, got)
			}
		}
	})
}

func TestCalcStatusCases(t *testing.T) {
	for _, tc := range []struct {
		ops  string
		want Status
	}{
		{"queued", StatusQueued},
		{"success", StatusSuccess},
		{"success success success", StatusSuccess},
		{"queued queued", StatusQueued},
		{"success queued", StatusQueued}, // between two opcodes
		{"success waiting queued", StatusWaiting},
		{"success running queued", StatusRunning},
		{"success canceling canceling", StatusCanceling},
		{"success error error", StatusError},
		{"error error", StatusError},
		{"canceled canceled", StatusCanceled},
		{"success success canceled", StatusCanceled},
		// Waiting and running do not end the scan (Ganeti's rule): a later
		// waiting/running opcode wins, a later terminal one wins too.
		{"running waiting", StatusWaiting},
		{"waiting running", StatusRunning},
		{"running queued waiting", StatusWaiting},
		{"running error", StatusError},
		{"waiting canceled", StatusCanceled},
		{"waiting canceling", StatusCanceling},
		// The first terminal opcode ends the scan.
		{"error canceled", StatusError},
		{"canceled error", StatusCanceled},
		{"canceling error", StatusCanceling},
		{"queued error", StatusError},
		{"queued success", StatusQueued},
	} {
		sts := statuses(tc.ops)
		if got := jobWith(sts, nil).CalcStatus(); got != tc.want {
			t.Errorf("CalcStatus(%s) = %s, want %s", tc.ops, got, tc.want)
		}
		if got := oracleStatus(sts); got != tc.want {
			t.Errorf("oracle(%s) = %s, want %s", tc.ops, got, tc.want)
		}
	}
}

func TestCalcPriorityCases(t *testing.T) {
	for _, tc := range []struct {
		ops   string
		prios []int
		want  int
	}{
		{"queued", []int{0}, 0},
		{"queued", []int{-20}, -20},
		{"queued", []int{19}, 19},
		{"success", []int{10}, 0}, // all done: default priority
		{"error error", []int{-5, -5}, 0},
		{"success queued", []int{-10, 10}, 10},  // finished opcodes do not count
		{"running queued", []int{10, -10}, -10}, // running counts
		{"waiting queued", []int{3, 7}, 3},      // lowest value = highest priority
		{"canceling canceling", []int{4, 2}, 2}, // canceling is not final
		{"success canceled canceled", []int{-20, 5, 1}, 0},
	} {
		if got := jobWith(statuses(tc.ops), tc.prios).CalcPriority(); got != tc.want {
			t.Errorf("CalcPriority(%s, %v) = %d, want %d", tc.ops, tc.prios, got, tc.want)
		}
	}
}

func TestStatusPredicates(t *testing.T) {
	final := map[Status]bool{StatusCanceled: true, StatusSuccess: true, StatusError: true}
	pending := map[Status]bool{StatusQueued: true, StatusWaiting: true, StatusCanceling: true}
	for _, s := range AllStatuses {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
		if s.Final() != final[s] {
			t.Errorf("%s.Final() = %v", s, s.Final())
		}
		if s.Pending() != pending[s] {
			t.Errorf("%s.Pending() = %v", s, s.Pending())
		}
	}
	for _, s := range []Status{"", "Queued", "waitlock", "unknown"} {
		if s.Valid() || s.Final() || s.Pending() {
			t.Errorf("%q: Valid/Final/Pending should all be false", s)
		}
	}
	if len(AllStatuses) != 7 {
		t.Errorf("AllStatuses has %d members", len(AllStatuses))
	}
}

func TestEncodedError(t *testing.T) {
	for _, tc := range []struct {
		e         EncodedError
		json, msg string
	}{
		{ExecError("boom"), `["OpExecError",["boom"]]`, "OpExecError: boom"},
		{PrereqError("Duration must be greater than zero", ""),
			`["OpPrereqError",["Duration must be greater than zero"]]`,
			"OpPrereqError: Duration must be greater than zero"},
		{PrereqError("Node 'x' not known", "unknown_entity"),
			`["OpPrereqError",["Node 'x' not known","unknown_entity"]]`,
			"OpPrereqError: Node 'x' not known"},
		{EncodedError{Class: "GenericError"}, `["GenericError",[]]`, "GenericError"},
		{EncodedError{Class: "X", Args: []any{3}}, `["X",[3]]`, "X"},
	} {
		if got := string(tc.e.Raw()); got != tc.json {
			t.Errorf("Raw() = %s, want %s", got, tc.json)
		}
		if got := tc.e.Error(); got != tc.msg {
			t.Errorf("Error() = %q, want %q", got, tc.msg)
		}
	}
}

func statuses(s string) []Status {
	var out []Status
	for _, f := range strings.Fields(s) {
		out = append(out, Status(f))
	}
	return out
}

func ExampleJob_CalcStatus() {
	j := &Job{ID: 7, Ops: []*Op{
		{Status: StatusSuccess, Priority: -10},
		{Status: StatusRunning, Priority: 0},
		{Status: StatusQueued, Priority: 10},
	}}
	fmt.Println(j.CalcStatus(), j.CalcPriority())

	j.Ops[1].Status = StatusError
	j.Ops[2].Status = StatusError
	fmt.Println(j.CalcStatus(), j.CalcPriority())
	// Output:
	// running 0
	// error 0
}
