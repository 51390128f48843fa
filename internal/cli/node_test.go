package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// Nodes as jobqd describes them (JobqNodeList, JobqClusterInfo), seen from
// node1, the master.
const (
	testNode1 = `{"name":"node1","address":"10.0.0.1:1811","role":"master","online":true,"master_candidate":true,` +
		`"replication":{"state":"self","behind":0,"unreachable_since":null,"position":{"epoch":3,"seq":120}}}`
	testNode2 = `{"name":"node2","address":"10.0.0.2:1811","role":"candidate","online":true,"master_candidate":true,` +
		`"replication":{"state":"in sync","behind":0,"unreachable_since":null,"position":{"epoch":3,"seq":120}}}`
	testNode3 = `{"name":"node3","address":"10.0.0.3:1811","role":"candidate","online":true,"master_candidate":true,` +
		`"replication":{"state":"behind","behind":3,"unreachable_since":null,"position":{"epoch":3,"seq":117}}}`
	// 1795773662.5 is 2026-11-27 10:01:02.5 UTC.
	testNode4 = `{"name":"node4","address":"10.0.0.4:1811","role":"candidate","online":true,"master_candidate":true,` +
		`"replication":{"state":"unreachable","behind":7,"unreachable_since":1795773662.5,"last_error":"dial tcp 10.0.0.4:1811: connect: connection refused","position":{"epoch":3,"seq":113}}}`
	testNode5 = `{"name":"node5","address":"10.0.0.5:1811","role":"regular","online":false,"master_candidate":false,` +
		`"replication":{"state":"not a replica","behind":0,"unreachable_since":null,"position":{"epoch":2,"seq":40}}}`
	testNode6 = `{"name":"node6","address":"10.0.0.6:1811","role":"candidate","online":true,"master_candidate":true,` +
		`"replication":{"state":"behind","behind":1,"unreachable_since":null,"position":{"epoch":3,"seq":119}}}`
	testNode7 = `{"name":"node7","address":"10.0.0.7:1811","role":"candidate","online":true,"master_candidate":true,` +
		`"replication":{"state":"resyncing","behind":20,"unreachable_since":null,"position":{"epoch":3,"seq":100}}}`
)

func testNodeList(nodes ...string) string { return "[" + strings.Join(nodes, ",") + "]" }

func TestNodeList(t *testing.T) {
	f := startFake(t)
	all := testNodeList(testNode1, testNode2, testNode3, testNode4, testNode5, testNode6, testNode7)
	for _, tc := range []struct {
		args []string
		out  string
	}{
		{nil, "" +
			"Node  Address       Role      Online\n" +
			"node1 10.0.0.1:1811 master    Y\n" +
			"node2 10.0.0.2:1811 candidate Y\n" +
			"node3 10.0.0.3:1811 candidate Y\n" +
			"node4 10.0.0.4:1811 candidate Y\n" +
			"node5 10.0.0.5:1811 regular   N\n" +
			"node6 10.0.0.6:1811 candidate Y\n" +
			"node7 10.0.0.7:1811 candidate Y\n"},
		{[]string{"-o", "+master_candidate,replication"}, "" +
			"Node  Address       Role      Online Candidate Replication\n" +
			"node1 10.0.0.1:1811 master    Y      Y         -\n" +
			"node2 10.0.0.2:1811 candidate Y      Y         in sync\n" +
			"node3 10.0.0.3:1811 candidate Y      Y         behind by 3 log entries\n" +
			"node4 10.0.0.4:1811 candidate Y      Y         unreachable since 2026-11-27 10:01:02 (dial tcp 10.0.0.4:1811: connect: connection refused)\n" +
			"node5 10.0.0.5:1811 regular   N      N         not a replica\n" +
			"node6 10.0.0.6:1811 candidate Y      Y         behind by 1 log entry\n" +
			"node7 10.0.0.7:1811 candidate Y      Y         resyncing\n"},
		{[]string{"--no-headers", "--separator=|", "-o", "name,role"}, "" +
			"node1|master\nnode2|candidate\nnode3|candidate\nnode4|candidate\nnode5|regular\nnode6|candidate\nnode7|candidate\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f.script("JobqNodeList", all)
			checkResult(t, run(t, f.path, append([]string{"node", "list"}, tc.args...)...), result{stdout: tc.out})
		})
	}
	f.checkCalls(t, "JobqNodeList []", "JobqNodeList []", "JobqNodeList []")

	// An empty cluster (never, but no crash) and no headers.
	f.script("JobqNodeList", `[]`)
	checkResult(t, run(t, f.path, "node", "list"), result{stdout: "Node Address Role Online\n"})
}

func TestNodeListUnknownField(t *testing.T) {
	f := startFake(t)
	f.script("JobqNodeList", testNodeList(testNode1), testNodeList(testNode1))
	checkResult(t, run(t, f.path, "node", "list", "-o", "name,pip,sip"), result{
		stdout: "Node  pip sip\nnode1 ??  ??\n",
		stderr: "Warning: Queried for unknown fields pip, sip\n",
		code:   14,
	})
	checkResult(t, run(t, f.path, "node", "list", "--json", "-o", "name,pip"), result{
		stdout: "[\n  {\n    \"name\": \"node1\",\n    \"pip\": null\n  }\n]\n",
		stderr: "Warning: Queried for unknown fields pip\n",
		code:   14,
	})
}

func TestNodeListJSON(t *testing.T) {
	f := startFake(t)
	f.script("JobqNodeList", testNodeList(testNode1, testNode4), testNodeList(testNode5, testNode2), `[]`)
	got := run(t, f.path, "node", "list", "--json")
	if got.code != 0 || got.stderr != "" {
		t.Fatalf("node list --json: %+v", got)
	}
	// The nodes as received, indented like every --json output.
	want := `[
  {
    "name": "node1",
    "address": "10.0.0.1:1811",
    "role": "master",
    "online": true,
    "master_candidate": true,
    "replication": {
      "state": "self",
      "behind": 0,
      "unreachable_since": null,
      "position": {
        "epoch": 3,
        "seq": 120
      }
    }
  },
  {
    "name": "node4",
    "address": "10.0.0.4:1811",
    "role": "candidate",
    "online": true,
    "master_candidate": true,
    "replication": {
      "state": "unreachable",
      "behind": 7,
      "unreachable_since": 1795773662.5,
      "last_error": "dial tcp 10.0.0.4:1811: connect: connection refused",
      "position": {
        "epoch": 3,
        "seq": 113
      }
    }
  }
]
`
	checkResult(t, got, result{stdout: want})

	// SPEC §11: one object per node with at least name, address, role and
	// online.
	got = run(t, f.path, "node", "list", "--json")
	var nodes []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(got.stdout), &nodes); err != nil || got.code != 0 {
		t.Fatalf("node list --json: %v %+v", err, got)
	}
	if len(nodes) != 2 || string(nodes[0]["name"]) != `"node5"` || string(nodes[0]["role"]) != `"regular"` ||
		string(nodes[0]["online"]) != "false" || string(nodes[1]["address"]) != `"10.0.0.2:1811"` {
		t.Errorf("node list --json:\n%s", got.stdout)
	}
	checkResult(t, run(t, f.path, "node", "list", "--json"), result{stdout: "[]\n"})

	// -o chooses the members.
	f.script("JobqNodeList", testNodeList(testNode5))
	checkResult(t, run(t, f.path, "node", "list", "--json", "-o", "name,online,replication"), result{stdout: `[
  {
    "name": "node5",
    "online": false,
    "replication": {
      "state": "not a replica",
      "behind": 0,
      "unreachable_since": null,
      "position": {
        "epoch": 2,
        "seq": 40
      }
    }
  }
]
`})
}

func TestNodeModify(t *testing.T) {
	f := startFake(t)
	offline := strings.Replace(strings.Replace(testNode4, `"online":true`, `"online":false`, 1), `"master_candidate":true`, `"master_candidate":false`, 1)
	f.script("JobqNodeModify",
		`{"node":`+offline+`,"warnings":["Node node4 still answers: it is marked offline anyway","Only 1 master candidate is left"]}`,
		`{"node":`+testNode2+`,"warnings":[]}`,
		`{"node":`+testNode5+`,"warnings":null}`)
	checkResult(t, run(t, f.path, "node", "modify", "node4", "--offline", "yes", "--master-candidate=no"), result{
		stdout: "Modified node node4\n - master_candidate -> False\n - offline -> True\n",
		stderr: "Warning: Node node4 still answers: it is marked offline anyway\nWarning: Only 1 master candidate is left\n",
	})
	checkResult(t, run(t, f.path, "node", "modify", "-C", "YES", "node2"), result{
		stdout: "Modified node node2\n - master_candidate -> True\n",
	})
	checkResult(t, run(t, f.path, "node", "modify", "node5", "-O", "true"), result{
		stdout: "Modified node node5\n - offline -> True\n",
	})
	f.checkCalls(t,
		`JobqNodeModify [{"name":"node4","master_candidate":false,"offline":true}]`,
		`JobqNodeModify [{"name":"node2","master_candidate":true,"offline":null}]`,
		`JobqNodeModify [{"name":"node5","master_candidate":null,"offline":true}]`)

	// Refused by the master: Ganeti's rendering, exit code 1.
	f.fail("JobqNodeModify", luxiError("OpPrereqError", "The master node node1 must stay a master candidate", "wrong_input"))
	checkResult(t, run(t, f.path, "node", "modify", "node1", "-C", "no"), result{
		stderr: "Failure: prerequisites not met for this operation:\nerror type: wrong_input, error details:\nThe master node node1 must stay a master candidate\n",
		code:   1,
	})
}

func TestNodeRemove(t *testing.T) {
	f := startFake(t)
	f.script("JobqNodeRemove", `{"warnings":[]}`, `{"warnings":["Node node3 could not be told that it was removed: connection refused"]}`)
	checkResult(t, run(t, f.path, "node", "remove", "node2"), result{})
	checkResult(t, run(t, f.path, "node", "remove", "node3"), result{
		stderr: "Warning: Node node3 could not be told that it was removed: connection refused\n",
	})
	f.fail("JobqNodeRemove", luxiError("OpPrereqError", "Node nosuch is not in the cluster", "unknown_entity"))
	checkResult(t, run(t, f.path, "node", "remove", "nosuch"), result{
		stderr: "Failure: prerequisites not met for this operation:\nerror type: unknown_entity, error details:\nNode nosuch is not in the cluster\n",
		code:   1,
	})
	f.checkCalls(t, `JobqNodeRemove ["node2"]`, `JobqNodeRemove ["node3"]`, `JobqNodeRemove ["nosuch"]`)
}

// Command-line mistakes of "jobq node" and "jobq cluster": one sentence,
// exit code 2, and no call to jobqd.
func TestNodeClusterUsageErrors(t *testing.T) {
	f := startFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node"}, `"jobq node" needs a command: one of add-tags, list, list-tags, modify, remove, remove-tags (see "jobq node --help")`},
		{[]string{"node", "lsit"}, `Unknown command "lsit" for "jobq node" (did you mean "list"?) (see "jobq node --help")`},
		{[]string{"node", "list", "x"}, `"jobq node list" takes no arguments, got "x" (see "jobq node list --help")`},
		{[]string{"node", "modify", "node2"}, `Give --master-candidate or --offline (or both) to say what to change on node node2 (see "jobq node modify --help")`},
		{[]string{"node", "modify", "--offline", "yes"}, `"jobq node modify" takes exactly one node name, got 0 arguments (see "jobq node modify --help")`},
		{[]string{"node", "modify", "node2", "--offline", "maybe"}, `Invalid argument "maybe" for "-O, --offline" flag: give yes or no (see "jobq node modify --help")`},
		{[]string{"node", "remove"}, `"jobq node remove" takes exactly one node name, got 0 arguments (see "jobq node remove --help")`},
		{[]string{"node", "remove", "a", "b"}, `"jobq node remove" takes exactly one node name, got 2 arguments (see "jobq node remove --help")`},
		{[]string{"cluster"}, `"jobq cluster" needs a command: one of add-tags, info, join-token, list-tags, master-failover, modify, remove-tags, renew-crypto, verify-queue, watcher (see "jobq cluster --help")`},
		{[]string{"cluster", "verify"}, `Unknown command "verify" for "jobq cluster" (did you mean "verify-queue"?) (see "jobq cluster --help")`},
		{[]string{"cluster", "add"}, `Unknown command "add" for "jobq cluster" (did you mean "add-tags"?) (see "jobq cluster --help")`},
		{[]string{"cluster", "frob"}, `Unknown command "frob" for "jobq cluster"; its commands are add-tags, info, join-token, list-tags, master-failover, modify, remove-tags, renew-crypto, verify-queue, watcher (see "jobq cluster --help")`},
		{[]string{"cluster", "add-tags"}, `Give at least one tag (see "jobq cluster add-tags --help")`},
		{[]string{"cluster", "add-tags", "ok", "not ok"}, `Tag "not ok": Tag contains invalid characters (see "jobq cluster add-tags --help")`},
		{[]string{"cluster", "remove-tags", strings.Repeat("t", 129)}, `Tag "` + strings.Repeat("t", 129) + `": Tag too long (>128 characters) (see "jobq cluster remove-tags --help")`},
		{[]string{"cluster", "list-tags", "x"}, `"jobq cluster list-tags" takes no tags, got "x" (see "jobq cluster list-tags --help")`},
		{[]string{"node", "add-tags"}, `Give the node's name, then the tags (see "jobq node add-tags --help")`},
		{[]string{"node", "add-tags", "node2"}, `Give at least one tag (see "jobq node add-tags --help")`},
		{[]string{"cluster", "info", "now"}, `"jobq cluster info" takes no arguments, got "now" (see "jobq cluster info --help")`},
		{[]string{"cluster", "join-token", "--ttl", "soon"}, `--ttl: invalid duration "soon": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobq cluster join-token --help")`},
		{[]string{"cluster", "join-token", "--ttl=-5"}, `--ttl: invalid duration "-5": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobq cluster join-token --help")`},
		{[]string{"cluster", "verify-queue", "--wait", "all"}, `--wait: invalid duration "all": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobq cluster verify-queue --help")`},
		{[]string{"cluster", "master-failover", "--force"}, `Unknown flag: --force (see "jobq cluster master-failover --help")`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			checkResult(t, run(t, f.path, tc.args...), result{stderr: tc.want + "\n", code: 2})
		})
	}
	f.checkCalls(t)
}

// The node and cluster commands find the socket as every command does.
func TestNodeClusterSocketResolution(t *testing.T) {
	dir := shortTempDir(t)
	f := startFakeAt(t, dir+"/socket/jobq-query")
	f.script("JobqNodeList", `[]`, `[]`)
	f.script("JobqJoinToken", `{"token":"t1","expires":null}`)
	checkResult(t, runEnv(t, context.Background(), nil, "--data-dir", dir, "node", "list", "--json"), result{stdout: "[]\n"})
	checkResult(t, runEnv(t, context.Background(), map[string]string{SocketEnv: f.path}, "node", "list", "--no-headers"), result{})
	checkResult(t, runEnv(t, context.Background(), map[string]string{SocketEnv: dir + "/nosuch"}, "--socket", f.path, "cluster", "join-token"), result{stdout: "t1\n"})
	f.checkCalls(t, "JobqNodeList []", "JobqNodeList []", "JobqJoinToken [0]")

	got := runEnv(t, context.Background(), nil, "--data-dir", dir+"/nosuch", "cluster", "info")
	if got.code != 1 || got.stdout != "" || !strings.HasPrefix(got.stderr, "Cannot connect to jobqd at socket '"+dir+"/nosuch/socket/jobq-query'") {
		t.Errorf("cluster info without jobqd: %+v", got)
	}
}
