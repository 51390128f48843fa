package job

import (
	"encoding/json"
	"testing"
)

func raws(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

// Ganeti accepts only its three submit priorities (OP_PRIO_SUBMIT_VALID)
// and names the opcode, the value and the allowed set, in its set's order.
func TestCheckSubmitPriorities(t *testing.T) {
	for _, tc := range []struct {
		ops  []json.RawMessage
		want string
	}{
		{raws(`{"OP_ID":"OP_TEST_DELAY"}`, `{"OP_ID":"OP_TEST_DELAY","priority":null}`), ""},
		{raws(`{"priority":-10}`, `{"priority":0}`, `{"priority":10}`), ""},
		{raws(`{"priority":0}`, `{"priority":19}`), "Opcode 1 has invalid priority 19, allowed are 0, 10, -10"},
		{raws(`{"priority":-21}`), "Opcode 0 has invalid priority -21, allowed are 0, 10, -10"},
		{raws(`{"priority":1}`), "Opcode 0 has invalid priority 1, allowed are 0, 10, -10"},
		{raws(`{"priority":-20}`), "Opcode 0 has invalid priority -20, allowed are 0, 10, -10"},
		{raws(`{"priority":"high"}`), "Opcode 0 has invalid priority 'high', allowed are 0, 10, -10"},
		{raws(`{"priority":0.5}`), "Opcode 0 has invalid priority 0.5, allowed are 0, 10, -10"},
	} {
		err := CheckSubmitPriorities(tc.ops)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.ops, got, tc.want)
		}
	}
}

func TestCheckNoRelativeDeps(t *testing.T) {
	desc := "None or (List of (((List of Anything) or Tuple) and (Length 2) and (Item 0 is JobId, item 1 is (List of (OneOf canceled, success, error)))))"
	for _, tc := range []struct {
		ops  []json.RawMessage
		want string
	}{
		{raws(`{"OP_ID":"OP_TEST_DELAY","depends":[[3,[]]]}`), ""},
		{raws(`{"OP_ID":"OP_TEST_DELAY","depends":null}`), ""},
		{raws(`{"OP_ID":"OP_TEST_DELAY"}`, `{"OP_ID":"OP_TEST_DELAY","depends":[[-1,[]]]}`),
			"Opcode 1 has invalid dependencies, must match " + desc + ": [[-1, []]]"},
		{raws(`{"OP_ID":"OP_TEST_DELAY","depends":[[4,["success","error"]],[-2,null]]}`),
			"Opcode 0 has invalid dependencies, must match " + desc + ": [[4, ['success', 'error']], [-2, None]]"},
	} {
		err := CheckNoRelativeDeps(tc.ops)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.ops, got, tc.want)
		}
	}
}

func TestResolveRelativeDeps(t *testing.T) {
	ids := map[int64]int64{-1: 41, -2: 40}
	resolve := func(rel int64) (int64, bool) { id, ok := ids[rel]; return id, ok }
	in := raws(`{"OP_ID":"OP_TEST_DELAY"}`, `{"OP_ID":"OP_TEST_DELAY","depends":[[-1,["success"]],[7,[]],[-2,null]]}`)
	out, err := ResolveRelativeDeps(in, resolve)
	if err != nil {
		t.Fatal(err)
	}
	if string(out[0]) != string(in[0]) {
		t.Errorf("opcode without dependencies changed: %s", out[0])
	}
	c, err := ParseCommon(out[1])
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(c.Depends); string(got) != `[{"JobID":41,"Statuses":["success"]},{"JobID":7,"Statuses":[]},{"JobID":40,"Statuses":[]}]` {
		t.Errorf("resolved to %s", got)
	}
	if _, err := ResolveRelativeDeps(raws(`{"OP_ID":"X","depends":[[-3,[]]]}`), resolve); err == nil || err.Error() != "Unable to resolve relative job ID -3" {
		t.Errorf("unresolvable: %v", err)
	}
}
