package cli

import (
	"testing"
)

const commandOp = `{"command":"uptime","nodes":["node1","node2"],"use_locking":false,"dry_run":false,"debug_level":0,` +
	`"priority":0,"depends":null,"comment":null,"reason":[["gnt:client:jobq","command",1795758421569201152]],` +
	`"OP_ID":"OP_RESTRICTED_COMMAND"}`

// jobq command submits one OP_RESTRICTED_COMMAND job, follows it like
// debug delay, then prints each node's outcome and output.
func TestRestrictedCommand(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "21")
	f.script("WaitForJobChange", `[["running"],[]]`, `[["success"],[]]`)
	f.script("QueryJobs",
		`[["success",["success"],[[[true,"up 3 days\n\nload 0.1\n"],[false,"oops\n[exited with status 2]"]]]]]`,
		`[[[[[true,"up 3 days\n\nload 0.1\n"],[false,"oops\n[exited with status 2]"]]]]]`)
	checkResult(t, run(t, f.path, "command", "uptime", "--nodes", "node1,node2"), result{
		stdout: "node1: success\n  up 3 days\n\n  load 0.1\nnode2: failure\n  oops\n  [exited with status 2]\n",
		stderr: "Restricted command 'uptime' failed on 1 of 2 nodes: node2\n",
		code:   1,
	})
	f.checkCalls(t,
		`SubmitJob [[`+commandOp+`]]`,
		`WaitForJobChange [21,["status"],null,null,30]`,
		`WaitForJobChange [21,["status"],["running"],null,30]`,
		`QueryJobs [[21],["status","opstatus","opresult"]]`,
		`QueryJobs [[21],["opresult"]]`,
	)
}

func TestRestrictedCommandSuccess(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "22")
	f.script("WaitForJobChange", `[["success"],[]]`)
	f.script("QueryJobs", `[["success",["success"],[[[true,""],[true,"ok"]]]]]`, `[[[[[true,""],[true,"ok"]]]]]`)
	checkResult(t, run(t, f.path, "command", "-n", "node1", "--nodes=node2", "--use-locking", "--priority", "low", "check"), result{
		stdout: "node1: success\nnode2: success\n  ok\n",
	})
	calls := f.getCalls()
	want := `SubmitJob [[{"command":"check","nodes":["node1","node2"],"use_locking":true,"dry_run":false,"debug_level":0,` +
		`"priority":10,"depends":null,"comment":null,"reason":[["gnt:client:jobq","command",1795758421569201152]],` +
		`"OP_ID":"OP_RESTRICTED_COMMAND"}]]`
	if len(calls) == 0 || calls[0] != want {
		t.Errorf("calls %q", calls)
	}
}

func TestRestrictedCommandJSON(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "23")
	f.script("WaitForJobChange", `[["running"],[[1,[1795758426,180542],"message"," - INFO: not printed"]]]`, `[["success"],[]]`)
	f.script("QueryJobs", `[["success",["success"],[[[true,"a\"<b>\n"],[false,"no"]]]]]`, `[[[[[true,"a\"<b>\n"],[false,"no"]]]]]`)
	checkResult(t, run(t, f.path, "command", "--json", "uptime", "--nodes", "node1,node2"), result{
		stdout: `[
  {
    "node": "node1",
    "success": true,
    "output": "a\"<b>\n"
  },
  {
    "node": "node2",
    "success": false,
    "output": "no"
  }
]
`,
		stderr: "Restricted command 'uptime' failed on 1 of 2 nodes: node2\n",
		code:   1,
	})
}

func TestRestrictedCommandSubmit(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "24", "25")
	checkResult(t, run(t, f.path, "command", "--submit", "uptime", "--nodes", "node1,node2"), result{stdout: "JobID: 24\n"})
	checkResult(t, run(t, f.path, "command", "--submit", "--json", "uptime", "--nodes", "node1,node2"), result{stdout: "{\n  \"id\": 25\n}\n"})
	f.checkCalls(t, `SubmitJob [[`+commandOp+`]]`, `SubmitJob [[`+commandOp+`]]`)
}

// A job that fails (an unknown node, a bad name) fails the command with
// the job's error, as debug delay does.
func TestRestrictedCommandJobFails(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "26")
	f.script("WaitForJobChange", `[["error"],[]]`)
	f.script("QueryJobs", `[["error",["error"],[["OpPrereqError",["Node 'node9' not known","unknown_entity"]]]]]`)
	got := run(t, f.path, "command", "uptime", "--nodes", "node9")
	if got.code != 1 || got.stdout != "" || got.stderr != "Failure: prerequisites not met for this operation:\nerror type: unknown_entity, error details:\nNode 'node9' not known\n" {
		t.Errorf("%+v", got)
	}
}

func TestRestrictedCommandBadResult(t *testing.T) {
	f := startFake(t)
	for _, opresult := range []string{`[[null]]`, `[[[[true,"x"]]]]`, `[[[[true,1],[true,"y"]]]]`, `[[[[true],[true,"y"]]]]`, `[]`} {
		f.script("SubmitJob", "27")
		f.script("WaitForJobChange", `[["success"],[]]`)
		f.script("QueryJobs", `[["success",["success"],[null]]]`, opresult)
		checkResult(t, run(t, f.path, "command", "uptime", "--nodes", "node1,node2"), result{
			stderr: "The result of job 27 is not one [success, output] pair per node\n",
			code:   1,
		})
	}
}

func TestRestrictedCommandUsage(t *testing.T) {
	f := startFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"command", "uptime"}, `Give the nodes to run "uptime" on with --nodes NODE[,NODE...] (see "jobq command --help")`},
		{[]string{"command", "uptime", "--nodes", "a,,b"}, `--nodes has an empty node name (see "jobq command --help")`},
		{[]string{"command", "--nodes", "a"}, `"jobq command" takes exactly one command name, got 0 arguments (see "jobq command --help")`},
		{[]string{"command", "a", "b", "--nodes", "a"}, `"jobq command" takes exactly one command name, got 2 arguments (see "jobq command --help")`},
		{[]string{"command", "a", "--nodes", "a", "--priority", "urgent"}, ``},
	} {
		got := run(t, f.path, tc.args...)
		if got.code != 2 || got.stdout != "" || (tc.want != "" && got.stderr != tc.want+"\n") {
			t.Errorf("%q: %+v", tc.args, got)
		}
	}
	f.checkCalls(t)
}

// A node listed twice counts once in the failure sentence.
func TestRestrictedCommandRepeatedNode(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "28")
	f.script("WaitForJobChange", `[["success"],[]]`)
	f.script("QueryJobs", `[["success",["success"],[null]]]`, `[[[[[false,"x"],[true,""],[false,"x"]]]]]`)
	checkResult(t, run(t, f.path, "command", "c", "--nodes", "node1,node2,node1"), result{
		stdout: "node1: failure\n  x\nnode2: success\nnode1: failure\n  x\n",
		stderr: "Restricted command 'c' failed on 1 of 2 nodes: node1\n",
		code:   1,
	})
}
