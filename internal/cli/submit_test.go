package cli

import "testing"

// TestSubmit: "jobq submit" sends the opcodes as given (a priority added
// where an opcode has none), with the timing when one is asked for, and
// refuses what is not an opcode before any call.
func TestSubmit(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "12", "13")
	checkResult(t, run(t, f.path, "submit", "--priority", "high", "--",
		`{"OP_ID": "OP_TEST_DELAY", "duration": 1}`, `{"OP_ID": "OP_TEST_DELAY", "duration": 2, "priority": 0}`),
		result{stdout: "JobID: 12\n"})
	checkResult(t, run(t, f.path, "submit", "--json", "--in", "10m", "--", `{"OP_ID": "OP_TEST_DELAY", "duration": 1}`),
		result{stdout: "{\"id\": 13}\n"})
	for _, bad := range []struct{ args []string }{
		{[]string{"submit"}},
		{[]string{"submit", "--", `[1]`}},
		{[]string{"submit", "--", `{"duration": 1}`}},
		{[]string{"submit", "--", `{"OP_ID": "OP_TEST_DELAY"`}},
		{[]string{"submit", "--at", "soon", "--", `{"OP_ID": "OP_TEST_DELAY"}`}},
		{[]string{"submit", "--priority", "urgent", "--", `{"OP_ID": "OP_TEST_DELAY"}`}},
	} {
		if got := run(t, f.path, bad.args...); got.code != 2 || got.stdout != "" || got.stderr == "" {
			t.Errorf("%v: %+v", bad.args, got)
		}
	}
	f.checkCalls(t,
		`SubmitJob [[{"OP_ID":"OP_TEST_DELAY","duration":1,"priority":-10},{"OP_ID":"OP_TEST_DELAY","duration":2,"priority":0}]]`,
		`SubmitJob [[{"OP_ID":"OP_TEST_DELAY","duration":1}],{"not_before":[1795759021,569201]}]`)
}

// TestSubmitIdempotencyKey: --idempotency-key travels in SubmitJob's
// options object, with a timing or alone, for submit, debug delay and
// command.
func TestSubmitIdempotencyKey(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "12", "12", "14")
	checkResult(t, run(t, f.path, "submit", "--idempotency-key", "deploy-42", "--", `{"OP_ID": "OP_TEST_DELAY", "duration": 1}`),
		result{stdout: "JobID: 12\n"})
	checkResult(t, run(t, f.path, "submit", "--idempotency-key", "deploy-42", "--in", "10m", "--", `{"OP_ID": "OP_TEST_DELAY", "duration": 1}`),
		result{stdout: "JobID: 12\n"})
	checkResult(t, run(t, f.path, "debug", "delay", "--submit", "--idempotency-key", "k2", "1"),
		result{stdout: "JobID: 14\n"})
	f.checkCalls(t,
		`SubmitJob [[{"OP_ID":"OP_TEST_DELAY","duration":1}],{"idempotency_key":"deploy-42"}]`,
		`SubmitJob [[{"OP_ID":"OP_TEST_DELAY","duration":1}],{"idempotency_key":"deploy-42","not_before":[1795759021,569201]}]`,
		`SubmitJob [[{"duration":1.0,"on_master":true,"on_nodes":[],"repeat":0,"interruptible":false,"no_locks":false,"dry_run":false,"debug_level":0,"priority":0,"depends":null,"comment":null,"reason":[["gnt:client:jobq","delay",1795758421569201152]],"OP_ID":"OP_TEST_DELAY"}],{"idempotency_key":"k2"}]`)
}
