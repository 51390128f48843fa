package cli

import (
	"strings"
	"testing"
	"time"
)

func TestClusterInfo(t *testing.T) {
	f := startFake(t)
	reply := `{"name":"cluster1","master":"node1","epoch":3,"serial":42,"node":"node1","candidate_pool_size":10,"nodes":` +
		testNodeList(testNode1, testNode2, testNode3, testNode4, testNode5, testNode7) + `}`
	f.script("JobqClusterInfo", reply)
	checkResult(t, run(t, f.path, "cluster", "info"), result{stdout: "" +
		"Cluster name: cluster1\n" +
		"Master node: node1\n" +
		"Epoch: 3\n" +
		"Configuration serial: 42\n" +
		"Candidate pool size: 10\n" +
		"Answering node: node1\n" +
		"\n" +
		"Node  Address       Role      Online Replication\n" +
		"node1 10.0.0.1:1811 master    Y      -\n" +
		"node2 10.0.0.2:1811 candidate Y      in sync\n" +
		"node3 10.0.0.3:1811 candidate Y      behind by 3 log entries\n" +
		"node4 10.0.0.4:1811 candidate Y      unreachable since 2026-11-27 10:01:02 (dial tcp 10.0.0.4:1811: connect: connection refused)\n" +
		"node5 10.0.0.5:1811 regular   N      not a replica\n" +
		"node7 10.0.0.7:1811 candidate Y      resyncing\n",
	})

	// The table is the same from another node; times are in the local zone.
	f.script("JobqClusterInfo", strings.Replace(reply, `"node":"node1"`, `"node":"node2"`, 1))
	got := runEnv(t, t.Context(), nil, "--socket", f.path, "cluster", "info")
	if got.code != 0 || !strings.Contains(got.stdout, "Answering node: node2\n") {
		t.Errorf("cluster info on node2: %+v", got)
	}
	// The master adds the drain flag and the live jobs by status.
	f.script("JobqClusterInfo", strings.Replace(reply, `"candidate_pool_size":10,`, `"candidate_pool_size":10,"drained":true,"jobs":{"queued":2,"running":1,"success":40},`, 1))
	got = run(t, f.path, "cluster", "info")
	if want := "Answering node: node1\nQueue: drained (submissions refused)\nLive jobs: 2 queued, 0 waiting, 1 running, 0 canceling, 40 success, 0 error, 0 canceled\n\n"; got.code != 0 || !strings.Contains(got.stdout, want) {
		t.Errorf("cluster info with queue state: %+v", got)
	}
	// QueryClusterInfo's facts, when jobqd answers them.
	f.script("JobqClusterInfo", strings.Replace(reply, `"candidate_pool_size":10,`, `"candidate_pool_size":10,"uuid":"4d107526-f805-4209-92b6-ba0e263f10ab",`+
		`"ctime":1796661812.35,"mtime":1796662114.76,"software_version":"1.2.3","protocol_version":3000000,"max_running_jobs":20,"max_tracked_jobs":25,"tags":["a","b:c"],`, 1))
	got = run(t, f.path, "cluster", "info")
	ts := func(sec int64) string { return time.Unix(sec, 0).Format("2006-01-02 15:04:05") }
	if want := "Cluster name: cluster1\nCluster UUID: 4d107526-f805-4209-92b6-ba0e263f10ab\n" +
		"Creation time: " + ts(1796661812) + "\nModification time: " + ts(1796662114) + "\n" +
		"Master node: node1\nEpoch: 3\nConfiguration serial: 42\nSoftware version: 1.2.3\nTags: a, b:c\n" +
		"Candidate pool size: 10\nMaximal number of jobs running simultaneously: 20\n" +
		"Maximal number of jobs tracked (Ganeti's; no effect in jobq): 25\nAnswering node: node1\n"; got.code != 0 || !strings.HasPrefix(got.stdout, want) {
		t.Errorf("cluster info with QueryClusterInfo's facts:\n%s\nwant prefix\n%s", got.stdout, want)
	}
	f.checkCalls(t, "JobqClusterInfo []", "JobqClusterInfo []", "JobqClusterInfo []", "JobqClusterInfo []")
}

func TestReplicationText(t *testing.T) {
	since := 1795773662.5
	zone := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		r    replicationInfo
		want string
	}{
		{replicationInfo{State: "self"}, "-"},
		{replicationInfo{State: "in sync"}, "in sync"},
		{replicationInfo{State: "behind", Behind: 1}, "behind by 1 log entry"},
		{replicationInfo{State: "behind", Behind: 250}, "behind by 250 log entries"},
		{replicationInfo{State: "unreachable", UnreachableSince: &since, LastError: "no route to host"}, "unreachable since 2026-11-27 11:01:02 (no route to host)"},
		{replicationInfo{State: "unreachable", UnreachableSince: &since}, "unreachable since 2026-11-27 11:01:02"},
		{replicationInfo{State: "unreachable", LastError: "tls: bad certificate\nretrying"}, `unreachable (tls: bad certificate\nretrying)`},
		{replicationInfo{State: "resyncing"}, "resyncing"},
		{replicationInfo{State: "not a replica"}, "not a replica"},
		{replicationInfo{State: "unknown"}, "unknown"},
		{replicationInfo{}, "unknown"},
	} {
		if got := replicationText(tc.r, zone); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestClusterInfoJSON(t *testing.T) {
	f := startFake(t)
	f.script("JobqClusterInfo", `{"name":"c","master":"node2","epoch":4,"serial":7,"node":"node1","candidate_pool_size":3,"nodes":[`+testNode5+`]}`)
	checkResult(t, run(t, f.path, "cluster", "info", "--json"), result{stdout: `{
  "name": "c",
  "master": "node2",
  "epoch": 4,
  "serial": 7,
  "node": "node1",
  "candidate_pool_size": 3,
  "nodes": [
    {
      "name": "node5",
      "address": "10.0.0.5:1811",
      "role": "regular",
      "online": false,
      "master_candidate": false,
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
}
`})
	// An answer of the wrong shape.
	f.script("JobqClusterInfo", `{"name":"c","epoch":"four"}`)
	got := run(t, f.path, "cluster", "info")
	if got.code != 1 || got.stdout != "" || !strings.HasPrefix(got.stderr, "jobqd's answer to JobqClusterInfo is not what jobq expects (") ||
		strings.Count(got.stderr, "\n") != 1 {
		t.Errorf("bad answer: %+v", got)
	}
}

func TestClusterErrors(t *testing.T) {
	f := startFake(t)
	f.fail("JobqClusterInfo", luxiError("OpPrereqError", "This is not the master node, please connect to node node1", "wrong_state"))
	checkResult(t, run(t, f.path, "cluster", "info"), result{
		stderr: "Failure: prerequisites not met for this operation:\nerror type: wrong_state, error details:\n" +
			"This is not the master node, please connect to node node1\n",
		code: 1,
	})
	f.fail("JobqJoinToken", luxiError("OpPrereqError", "Join tokens are made by the master, node1"))
	checkResult(t, run(t, f.path, "cluster", "join-token"), result{
		stderr: "Failure: prerequisites not met for this operation:\nJoin tokens are made by the master, node1\n",
		code:   1,
	})
	f.fail("JobqVerifyQueue", luxiError("OpExecError", "Cannot scan the local queue: permission denied"))
	checkResult(t, run(t, f.path, "cluster", "verify-queue"), result{
		stderr: "Failure: command execution error:\nCannot scan the local queue: permission denied\n",
		code:   1,
	})
	f.fail("JobqMasterFailover", luxiError("OpPrereqError", "Node node3 is not a master candidate", "wrong_state"))
	checkResult(t, run(t, f.path, "cluster", "master-failover"), result{
		stderr: "Failure: prerequisites not met for this operation:\nerror type: wrong_state, error details:\nNode node3 is not a master candidate\n",
		code:   1,
	})
}

func TestJoinToken(t *testing.T) {
	f := startFake(t)
	f.script("JobqJoinToken",
		`{"token":"jq1.abcdef0123456789","expires":1795777262.25}`,
		`{"token":"jq1.second","expires":1795777262}`,
		`{"token":"jq1.third","expires":1795777262}`,
		`{"token":"jq1.fourth","expires":1795777262}`)
	checkResult(t, run(t, f.path, "cluster", "join-token"), result{
		stdout: "jq1.abcdef0123456789\n",
		stderr: "The token is valid until 2026-11-27 11:01:02.\n",
	})
	checkResult(t, run(t, f.path, "cluster", "join-token", "--ttl", "15m"), result{
		stdout: "jq1.second\n",
		stderr: "The token is valid until 2026-11-27 11:01:02.\n",
	})
	run(t, f.path, "cluster", "join-token", "--ttl=90")
	run(t, f.path, "cluster", "join-token", "--ttl=2d")
	f.checkCalls(t, "JobqJoinToken [0]", "JobqJoinToken [900]", "JobqJoinToken [90]", "JobqJoinToken [172800]")

	// A token-less answer is an error, not an empty line.
	f.script("JobqJoinToken", `{"token":"","expires":null}`)
	checkResult(t, run(t, f.path, "cluster", "join-token"), result{stderr: "jobqd answered JobqJoinToken without a token\n", code: 1})
}

func TestVerifyQueue(t *testing.T) {
	f := startFake(t)
	many := make([]string, 12)
	for i := range many {
		many[i] = `"job-` + string(rune('a'+i)) + `"`
	}
	f.script("JobqVerifyQueue",
		// All identical.
		`{"ok":true,"reference":"node1","repaired":false,"nodes":[{"name":"node1","ok":true,"missing":[],"extra":[],"differ":[]},`+
			`{"name":"node2","ok":true,"missing":[],"extra":[],"differ":[]}]}`,
		// Differences and an unreachable node.
		`{"ok":false,"reference":"node1","repaired":false,"nodes":[{"name":"node1","ok":true,"missing":[],"extra":[],"differ":[]},`+
			`{"name":"node2","ok":false,"missing":["job-7","job-8"],"extra":[],"differ":["job-3"]},`+
			`{"name":"node3","ok":false,"missing":[`+strings.Join(many, ",")+`],"extra":["job-99"],"differ":null},`+
			`{"name":"node4","ok":false,"error":"dial tcp 10.0.0.4:1811: connect: connection refused","missing":null,"extra":null,"differ":null}]}`,
		// Repaired.
		`{"ok":true,"reference":"node1","repaired":true,"nodes":[{"name":"node2","ok":true,"missing":[],"extra":[],"differ":[]}]}`,
		// A repair that could not reach a node.
		`{"ok":false,"reference":"node1","repaired":true,"nodes":[{"name":"node2","ok":true,"missing":[],"extra":[],"differ":[]},`+
			`{"name":"node4","ok":false,"error":"connection refused"}]}`,
		// Only one node differs.
		`{"ok":false,"reference":"node1","repaired":false,"nodes":[{"name":"node2","ok":false,"missing":[],"extra":["job-9"],"differ":[]}]}`,
		// Two nodes catching up, one with the master's files already.
		`{"ok":false,"reference":"node1","repaired":false,"nodes":[{"name":"node2","ok":false,"catching_up":true,"missing":[],"extra":[],"differ":[]},`+
			`{"name":"node3","ok":false,"catching_up":true,"missing":["job-4"],"extra":[],"differ":[]}]}`,
	)
	checkResult(t, run(t, f.path, "cluster", "verify-queue"), result{
		stdout: "node1: ok\nnode2: ok\nEvery node's queue is identical to the master's (node1).\n",
	})
	checkResult(t, run(t, f.path, "cluster", "verify-queue", "--wait", "30s"), result{
		stdout: "node1: ok\n" +
			"node2: 2 missing (job-7, job-8), 1 differ (job-3), 0 extra\n" +
			"node3: 12 missing (job-a, job-b, job-c, job-d, job-e, job-f, job-g, job-h, job-i, job-j, ... and 2 more), 0 differ, 1 extra (job-99)\n" +
			"node4: unreachable: dial tcp 10.0.0.4:1811: connect: connection refused\n",
		stderr: "Queue verification failed: the queues of 2 nodes differ from the master's (node1) and 1 node could not be checked; " +
			"run \"jobq cluster verify-queue --repair\" to repair the differences.\n",
		code: 1,
	})
	checkResult(t, run(t, f.path, "cluster", "verify-queue", "--repair"), result{
		stdout: "node2: ok\nRepaired: every node's queue is now identical to the master's (node1).\n",
	})
	checkResult(t, run(t, f.path, "cluster", "verify-queue", "--repair", "--wait=1.5"), result{
		stdout: "node2: ok\nnode4: unreachable: connection refused\n",
		stderr: "Queue verification failed after the repair: 1 node could not be checked.\n",
		code:   1,
	})
	checkResult(t, run(t, f.path, "cluster", "verify-queue"), result{
		stdout: "node2: 0 missing, 0 differ, 1 extra (job-9)\n",
		stderr: "Queue verification failed: the queue of 1 node differs from the master's (node1); " +
			"run \"jobq cluster verify-queue --repair\" to repair the differences.\n",
		code: 1,
	})
	checkResult(t, run(t, f.path, "cluster", "verify-queue"), result{
		stdout: "node2: catching up (its files are the master's; it counts in majorities once the master marks it in sync)\n" +
			"node3: catching up: 1 missing (job-4), 0 differ, 0 extra\n",
		stderr: "Queue verification failed: 2 nodes still catching up with the master's queue (give --wait to wait for them).\n",
		code:   1,
	})
	f.checkCalls(t,
		`JobqVerifyQueue [{"repair":false,"wait":0}]`,
		`JobqVerifyQueue [{"repair":false,"wait":30}]`,
		`JobqVerifyQueue [{"repair":true,"wait":0}]`,
		`JobqVerifyQueue [{"repair":true,"wait":1.5}]`,
		`JobqVerifyQueue [{"repair":false,"wait":0}]`,
		`JobqVerifyQueue [{"repair":false,"wait":0}]`)
}

func TestVerifyQueueJSON(t *testing.T) {
	f := startFake(t)
	f.script("JobqVerifyQueue",
		`{"ok":false,"reference":"node1","repaired":false,"nodes":[{"name":"node2","ok":false,"missing":["job-7"],"extra":[],"differ":[]}]}`,
		`{"ok":true,"reference":"node1","repaired":true,"nodes":[]}`)
	checkResult(t, run(t, f.path, "cluster", "verify-queue", "--json"), result{
		stdout: `{
  "ok": false,
  "reference": "node1",
  "repaired": false,
  "nodes": [
    {
      "name": "node2",
      "ok": false,
      "missing": [
        "job-7"
      ],
      "extra": [],
      "differ": []
    }
  ]
}
`,
		code: 1,
	})
	checkResult(t, run(t, f.path, "cluster", "verify-queue", "--json", "--repair"), result{
		stdout: "{\n  \"ok\": true,\n  \"reference\": \"node1\",\n  \"repaired\": true,\n  \"nodes\": []\n}\n",
	})
}

func TestMasterFailover(t *testing.T) {
	f := startFake(t)
	// --no-voting without --yes-do-it is refused before any call.
	for _, args := range [][]string{{"--no-voting"}, {"--no-voting", "--yes-do-it=false"}} {
		got := run(t, f.path, append([]string{"cluster", "master-failover"}, args...)...)
		if got.code != 1 || got.stdout != "" || strings.Count(got.stderr, "\n") != 1 ||
			!strings.HasPrefix(got.stderr, "Refusing to fail over without a vote: ") ||
			!strings.Contains(got.stderr, "jobs it does not hold are lost") || !strings.HasSuffix(got.stderr, "add --yes-do-it if a majority of the voters is lost for good.\n") {
			t.Errorf("master-failover %v: %+v", args, got)
		}
	}
	f.checkCalls(t)

	f.script("JobqMasterFailover",
		`{"master":"node2","epoch":4,"message":"node2 is now the master (epoch 4); 3 running jobs were ended in error"}`,
		`{"master":"node2","epoch":5,"message":""}`)
	checkResult(t, run(t, f.path, "cluster", "master-failover"), result{
		stdout: "node2 is now the master (epoch 4); 3 running jobs were ended in error\n",
	})
	checkResult(t, run(t, f.path, "cluster", "master-failover", "--no-voting", "--yes-do-it"), result{
		stdout: "node2 is now the master (epoch 5).\n",
	})
	f.checkCalls(t, `JobqMasterFailover [{"no_voting":false}]`, `JobqMasterFailover [{"no_voting":true}]`)

	// Another candidate won the same epoch: a clear refusal, exit code 1.
	f.fail("JobqMasterFailover", luxiError("OpPrereqError", "Node node3 won the election for epoch 5; this node stays a candidate", "wrong_state"))
	checkResult(t, run(t, f.path, "cluster", "master-failover"), result{
		stderr: "Failure: prerequisites not met for this operation:\nerror type: wrong_state, error details:\n" +
			"Node node3 won the election for epoch 5; this node stays a candidate\n",
		code: 1,
	})
}

func TestRenewCrypto(t *testing.T) {
	f := startFake(t)
	f.script("JobqRenewCrypto",
		`{"fingerprint":"ab12","nodes":3,"warnings":["node node4 is offline and keeps the old certificate"],"message":"The cluster certificate was renewed on 3 nodes; its fingerprint is ab12."}`,
		`{"fingerprint":"ab12","nodes":1,"warnings":[],"message":"The cluster certificate was renewed on 1 node; its fingerprint is ab12."}`)
	checkResult(t, run(t, f.path, "cluster", "renew-crypto"), result{
		stdout: "The cluster certificate was renewed on 3 nodes; its fingerprint is ab12.\n",
		stderr: "Warning: node node4 is offline and keeps the old certificate\n",
	})
	checkResult(t, run(t, f.path, "cluster", "renew-crypto", "--json"), result{
		stdout: "{\n  \"fingerprint\": \"ab12\",\n  \"nodes\": 1,\n  \"warnings\": [],\n  \"message\": \"The cluster certificate was renewed on 1 node; its fingerprint is ab12.\"\n}\n",
	})
	f.fail("JobqRenewCrypto", luxiError("OpPrereqError", "the cluster certificate was not renewed, nothing changed: not every online node could store the new one (node2: connection refused); mark nodes that are gone offline, or try again", "wrong_state"))
	checkResult(t, run(t, f.path, "cluster", "renew-crypto"), result{
		stderr: "Failure: prerequisites not met for this operation:\nerror type: wrong_state, error details:\nthe cluster certificate was not renewed, nothing changed: not every online node could store the new one (node2: connection refused); mark nodes that are gone offline, or try again\n",
		code:   1,
	})
}
