package job

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRecoverRerunning: a running opcode that may be rerun is queued
// again with a log entry counting the losses, until rerun says no; then
// it fails as Recover fails it.
var TS0 = Timestamp{1700000000, 0}

func TestRecoverRerunning(t *testing.T) {
	j, err := New(1, []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_A"}`), json.RawMessage(`{"OP_ID":"OP_B"}`)}, TS0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	rerun := func(in json.RawMessage, lost int) bool {
		seen = append(seen, lost)
		return strings.Contains(string(in), "OP_A") && lost < 2
	}
	for round := range 3 {
		j.Ops[0].Status = StatusRunning
		if !j.RecoverRerunning(TS0, rerun) {
			t.Fatalf("round %d: nothing changed", round)
		}
		if round < 2 {
			if j.Ops[0].Status != StatusQueued || j.CalcStatus() != StatusQueued {
				t.Fatalf("round %d: op %s, job %s", round, j.Ops[0].Status, j.CalcStatus())
			}
			continue
		}
		if j.Ops[0].Status != StatusError || j.Ops[1].Status != StatusError {
			t.Fatalf("round %d: %s %s", round, j.Ops[0].Status, j.Ops[1].Status)
		}
	}
	if len(seen) != 3 || seen[0] != 0 || seen[1] != 1 || seen[2] != 2 {
		t.Fatalf("losses counted %v", seen)
	}
	var m string
	json.Unmarshal(j.Ops[0].Log[1].Message, &m)
	if !strings.HasPrefix(m, MsgRerunAfterLoss+" (2 time(s) now)") {
		t.Fatal(m)
	}
	// Not rerun: as Recover.
	k, _ := New(2, []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_B"}`)}, TS0, 0)
	k.Ops[0].Status = StatusRunning
	k.RecoverRerunning(TS0, rerun)
	if k.Ops[0].Status != StatusError {
		t.Fatal(k.Ops[0].Status)
	}
}
