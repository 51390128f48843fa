package format

import (
	"strings"
	"testing"
)

func TestErrorsReference(t *testing.T) {
	// cli-02: gnt-job wait on a job whose opcode was rejected.
	status, opstatus, opresult := decode(t, `"error"`), decode(t, `["error"]`),
		decode(t, `[["OpPrereqError",["Duration must be greater than zero"]]]`)
	e, failed := FinishedJobError(status, opstatus, opresult)
	if !failed {
		t.Fatal("FinishedJobError: not failed")
	}
	checkText(t, "cli-02", JobFailed(decode(t, "6039"), e)+"\n", golden(t, "cli-02-job-wait-zero"))

	// cli-15: gnt-debug delay (synchronous) with an unknown node.
	enc := decode(t, `["OpPrereqError",["Node 'no-such-node' not known","unknown_entity"]]`)
	rc, msg := FormatError(enc)
	if rc != 1 {
		t.Errorf("exit code %d, want 1", rc)
	}
	checkText(t, "cli-15", msg+"\n", golden(t, "cli-15-delay-fail"))
	checkText(t, "cli-15 OpError", OpError(enc)+"\n", golden(t, "cli-15-delay-fail"))

	// cli-firstrun-32: SubmitJob refused by a drained queue (a failed LUXI
	// call).
	rc, msg = LuxiError(decode(t, `["GenericError",["Queue drained"]]`))
	if rc != 1 {
		t.Errorf("exit code %d, want 1", rc)
	}
	checkText(t, "cli-firstrun-32", msg+"\n", golden(t, "cli-firstrun-32-delay-while-drained"))
}

func TestFormatError(t *testing.T) {
	tests := []struct {
		json string
		rc   int
		want string
	}{
		{`["OpPrereqError",["Duration must be greater than zero"]]`, 1,
			"Failure: prerequisites not met for this operation:\nDuration must be greater than zero"},
		{`["OpPrereqError",["This is not the master node, please connect to node n2","wrong_state"]]`, 1,
			"Failure: prerequisites not met for this operation:\nerror type: wrong_state, error details:\nThis is not the master node, please connect to node n2"},
		{`["OpPrereqError",["a","b","c"]]`, 1,
			"Failure: prerequisites not met for this operation:\n('a', 'b', 'c')"},
		{`["OpPrereqError",[]]`, 1, "Failure: prerequisites not met for this operation:"},
		{`["OpExecError",["Unclean master shutdown"]]`, 1, "Failure: command execution error:\nUnclean master shutdown"},
		{`["OpExecError",[["x",1]]]`, 1, "Failure: command execution error:\n['x', 1]"},
		{`["GenericError",["Queue drained"]]`, 1, "Unhandled Ganeti error: Queue drained"},
		{`["JobCanceled",["Job was canceled"]]`, 1, "Unhandled Ganeti error: Job was canceled"},
		{`["ProgrammerError",["bug"]]`, 1, "Unhandled Ganeti error: bug"},
		{`["LockError",["locked"]]`, 1, "Unhandled Ganeti error: locked"},
		{`["JobQueueDrainError",["x"]]`, 1, "Failure: the job queue is marked for drain and doesn't accept new requests"},
		{`["JobQueueFull",[]]`, 1, "Failure: the job queue is full and doesn't accept new job submissions until old jobs are archived"},
		{`["JobLost",["Job with id 5 lost"]]`, 1, "Error checking job status: Job with id 5 lost"},
		{`["ConfigurationError",["bad"]]`, 2, "Corrupt configuration file: bad\nAborting."},
		{`["ConfigVersionMismatch",[1,2]]`, 2, "Corrupt configuration file: (1, 2)\nAborting."},
		{`["TagError",["too long"]]`, 1, "Failure: invalid tag(s) given:\ntoo long"},
		{`["ParameterError",["duration"]]`, 1, "Failure: unknown/wrong parameter name 'duration'"},
		{`["TypeEnforcementError",["not an int"]]`, 1, "Parameter Error: not an int"},
		{`["HooksFailure",["no hooks"]]`, 1, "Failure: hooks general failure: no hooks"},
		{`["HooksAbort",[[["n1","s1","out"],["n2","s2",""]]]]`, 1,
			"Failure: hooks execution failed:\n  node: n1, script: s1, output: out\n  node: n2, script: s2 (no output)"},
		{`["ResolverError",["h.example",-2,"Name or service not known"]]`, 1, "Failure: can't resolve hostname 'h.example'"},
		{`["QueryFilterParseError",["Invalid filter",null]]`, 1, "Error while parsing query filter: Invalid filter"},
		{`["DeviceCreationError",["disk failed",[]]]`, 1, "Unhandled Ganeti error: disk failed"},
		// Not a known encoded error: Ganeti's job polling wraps it in an
		// OpExecError.
		{`["NoSuchError",["x"]]`, 1, "Failure: command execution error:\n['NoSuchError', ['x']]"},
		{`"plain text"`, 1, "Failure: command execution error:\nplain text"},
		{`null`, 1, "Failure: command execution error:\nNone"},
		{`["OpExecError","not a list"]`, 1, "Failure: command execution error:\n['OpExecError', 'not a list']"},
	}
	for _, tc := range tests {
		rc, got := FormatError(decode(t, tc.json))
		if rc != tc.rc || got != tc.want {
			t.Errorf("FormatError(%s) = %d, %q; want %d, %q", tc.json, rc, got, tc.rc, tc.want)
		}
	}
}

func TestFinishedJobError(t *testing.T) {
	tests := []struct {
		name                       string
		status, opstatus, opresult string
		wantFailed                 bool
		wantMsg                    string
	}{
		{"success", `"success"`, `["success","success"]`, `[null,null]`, false, ""},
		{"canceled", `"canceled"`, `["canceled"]`, `[null]`, true, "Unhandled Ganeti error: Job was canceled"},
		{"canceling", `"canceling"`, `["canceling"]`, `[null]`, true, "Unhandled Ganeti error: Job was canceled"},
		{"encoded error", `"error"`, `["success","error","error"]`,
			`[null,["OpExecError",["Test failure"]],["OpExecError",["Preceding opcode failed"]]]`, true,
			"Failure: command execution error:\nTest failure"},
		{"plain error first", `"error"`, `["error"]`, `["it broke"]`, true,
			"Failure: command execution error:\nit broke"},
		{"plain error after success", `"error"`, `["success","error"]`, `[null,["x"]]`, true,
			"Failure: command execution error:\npartial failure (opcode 1): ['x']"},
		{"no failed opcode", `"error"`, `["success"]`, `[5]`, true,
			"Failure: command execution error:\n[5]"},
	}
	for _, tc := range tests {
		e, failed := FinishedJobError(decode(t, tc.status), decode(t, tc.opstatus), decode(t, tc.opresult))
		if failed != tc.wantFailed {
			t.Errorf("%s: failed = %v", tc.name, failed)
			continue
		}
		if !failed {
			continue
		}
		if got := OpError(e); got != tc.wantMsg {
			t.Errorf("%s: OpError = %q, want %q", tc.name, got, tc.wantMsg)
		}
		if got := JobFailed(12, e); got != "Job 12 failed: "+tc.wantMsg {
			t.Errorf("%s: JobFailed = %q", tc.name, got)
		}
	}
}

func TestLuxiError(t *testing.T) {
	rc, msg := LuxiError(decode(t, `"Failed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: \"NoSuchMethod\""`))
	want := "Unhandled protocol error while talking to the master daemon:\nFailed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: \"NoSuchMethod\""
	if rc != 1 || msg != want {
		t.Errorf("LuxiError = %d, %q", rc, msg)
	}
	rc, msg = LuxiError(decode(t, `["OpPrereqError",["This is not the master node, please connect to node n2","wrong_state"]]`))
	if rc != 1 || !strings.HasPrefix(msg, "Failure: prerequisites not met for this operation:\nerror type: wrong_state") {
		t.Errorf("LuxiError = %d, %q", rc, msg)
	}
	if got := CannotConnect("/var/lib/jobq/socket/jobq-query"); got != "Cannot communicate with socket '/var/lib/jobq/socket/jobq-query'.\nIs the process running and listening for connections?" {
		t.Errorf("CannotConnect = %q", got)
	}
}

func TestDecodeError(t *testing.T) {
	class, args, ok := DecodeError(EncodeError("OpExecError", "x", 1))
	if !ok || class != "OpExecError" || len(args) != 2 {
		t.Errorf("DecodeError(EncodeError) = %q, %v, %v", class, args, ok)
	}
	if PyRepr(EncodeError("JobCanceled")) != "['JobCanceled', []]" {
		t.Errorf("EncodeError without args = %s", PyRepr(EncodeError("JobCanceled")))
	}
	for _, bad := range []string{`null`, `[]`, `["OpExecError"]`, `[1,[]]`, `["Exception",["x"]]`, `["OpExecError",["x"],3]`} {
		if _, _, ok := DecodeError(decode(t, bad)); ok {
			t.Errorf("DecodeError(%s) recognised an error", bad)
		}
	}
}
