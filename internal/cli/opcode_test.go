package cli

import "testing"

// TestOpcodeOutputNotFound: "jobq opcode output" of a job that does not
// exist is an error (exit 1, the message of info and watch); of a job
// whose opcodes printed nothing it says so and succeeds.
func TestOpcodeOutputNotFound(t *testing.T) {
	f := startFake(t)
	f.addTestJobs("6040")
	f.script("JobqJobOutput", "[]", "[]")
	checkResult(t, run(t, f.path, "opcode", "output", "99999"), result{code: 1,
		stderr: "Job 99999 not found: there is no such job in the queue or its archive ('jobq list --archived' lists the jobs)\n"})
	checkResult(t, run(t, f.path, "opcode", "output", "6040"),
		result{stderr: "No node kept output of job 6040 (its opcodes printed nothing, or are not declared ones)\n"})
	f.checkCalls(t, `JobqJobOutput [99999]`, `QueryJobs [[99999],["id"]]`, `JobqJobOutput [6040]`, `QueryJobs [[6040],["id"]]`)
}
