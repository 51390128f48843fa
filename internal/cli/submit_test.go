package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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

// TestSubmitDeclared: "jobq submit OP_ID key=value" types the values by
// the definition (JobqOpcodeInfo) and refuses a bad one before any
// SubmitJob; --submit prints the id; --depends and --priority apply;
// --file submits its opcodes.
func TestSubmitDeclared(t *testing.T) {
	f := startFake(t)
	info := `{"id":"OP_X","summary":"x","version":"abcd","params":[
		{"name":"n","type":"integer","required":true,"min":1,"max":5},
		{"name":"nodes","type":"list"},
		{"name":"mode","type":"enum","values":["a","b"]}],
		"run":{"on":"master"},"program":{"path":"/bin/true"}}`
	for range 6 {
		f.script("JobqOpcodeInfo", info)
	}
	f.script("SubmitJob", "21", "22")
	checkResult(t, run(t, f.path, "submit", "--submit", "--priority", "low", "--depends", "7", "OP_X", "n=3", "nodes=a,b", "mode=b"),
		result{stdout: "JobID: 21\n"})
	for _, bad := range []struct{ args, want string }{
		{"n=9", "OP_X: parameter 'n' must be an integer from 1 to 5, got 9"},
		{"n=x", `arameter 'n' must be an integer from 1 to 5, got "x"`},
		{"mode=c n=1", `parameter 'mode' must be one of a, b, got "c"`},
		{"size=1 n=1", `"size" is not a parameter of OP_X (it takes n, nodes, mode)`},
		{"nodes=a", "parameter 'n' is missing"},
	} {
		got := run(t, f.path, append([]string{"submit", "--submit", "OP_X"}, strings.Fields(bad.args)...)...)
		if got.code != 2 || !strings.Contains(got.stderr, bad.want) {
			t.Errorf("%s: %+v, want %q", bad.args, got, bad.want)
		}
	}
	file := filepath.Join(t.TempDir(), "job.json")
	os.WriteFile(file, []byte(`[{"OP_ID":"OP_X","n":1},{"OP_ID":"OP_TEST_DELAY","duration":0}]`), 0o644)
	checkResult(t, run(t, f.path, "submit", "--submit", "--file", file), result{stdout: "JobID: 22\n"})
	if got := run(t, f.path, "submit", "--file", file, "OP_X"); got.code != 2 {
		t.Errorf("--file with opcodes: %+v", got)
	}
	calls := f.getCalls()
	var submits []string
	for _, c := range calls {
		if strings.HasPrefix(c, "SubmitJob") {
			submits = append(submits, c)
		}
	}
	want := []string{
		`SubmitJob [[{"OP_ID":"OP_X","depends":[[7,["success"]]],"mode":"b","n":3,"nodes":["a","b"],"opcode_version":"abcd","priority":10}]]`,
		`SubmitJob [[{"OP_ID":"OP_X","n":1},{"OP_ID":"OP_TEST_DELAY","duration":0}]]`,
	}
	if strings.Join(submits, "\n") != strings.Join(want, "\n") {
		t.Errorf("submissions:\n%s\nwant:\n%s", strings.Join(submits, "\n"), strings.Join(want, "\n"))
	}
}
