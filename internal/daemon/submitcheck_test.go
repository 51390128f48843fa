package daemon

import (
	"fmt"
	"strings"
	"testing"
)

// Ganeti's submission checks on the wire: a priority outside -10/0/10
// refuses SubmitJob and the whole SubmitManyJobs call with GenericError, a
// relative dependency refuses a SubmitJob, and nothing is stored.
func TestSubmitChecksOnTheWire(t *testing.T) {
	n := startNode(t, 1, nil)
	c := n.dialRaw()
	delay := `{"OP_ID": "OP_TEST_DELAY", "duration": 0.01}`
	for _, tc := range []struct{ method, args, want string }{
		{"SubmitJob", `[[` + delay + `, {"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "priority": 19}]]`,
			`{"success":false,"result":["GenericError",["Opcode 1 has invalid priority 19, allowed are 0, 10, -10"]]}`},
		{"SubmitManyJobs", `[[[` + delay + `], [{"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "priority": -20}]]]`,
			`{"success":false,"result":["GenericError",["Job 1 of the submission: Opcode 0 has invalid priority -20, allowed are 0, 10, -10"]]}`},
		{"SubmitJob", `[[{"OP_ID": "OP_TEST_DELAY", "duration": 0, "depends": [[-1, null]]}]]`,
			`{"success":false,"result":["GenericError",["Opcode 0 has invalid dependencies, must match None or (List of (((List of Anything) or Tuple) and (Length 2) and (Item 0 is JobId, item 1 is (List of (OneOf canceled, success, error))))): [[-1, None]]"]]}`},
		{"SubmitManyJobs", `[[[{"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "depends": [[-1, []]]}]]]`,
			`{"success":true,"result":[[false,"Unable to resolve relative job ID -1"]]}`},
	} {
		if rep := strings.TrimSuffix(string(c.pyCall(tc.method, tc.args)), "\x03"); rep != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.method, tc.args, rep, tc.want)
		}
	}
	if rep := string(c.pyCall("QueryJobs", `[null, ["id"]]`)); rep != `{"success":true,"result":[]}`+"\x03" {
		t.Errorf("refused submissions stored jobs: %s", rep)
	}
	// The priorities Ganeti allows are taken.
	var res [][2]any
	n.call(&res, "SubmitManyJobs", [][]map[string]any{
		{{"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "priority": -10}},
		{{"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "priority": 10, "depends": [][]any{{-1, []string{"success"}}}}},
	})
	if fmt.Sprint(res) != "[[true 1] [true 2]]" {
		t.Fatalf("SubmitManyJobs with allowed priorities: %v", res)
	}
	n.waitStatus(2, "success")
}
