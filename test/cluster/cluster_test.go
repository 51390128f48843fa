// Package cluster starts several real jobqd processes on 127.0.0.1,
// 127.0.0.2 and 127.0.0.3, joins them into one cluster, kills them with
// SIGKILL, fails the master over and compares the queue files on disk.
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// cnode is one node of a test cluster.
type cnode struct {
	name, addr, dir string
	d               *testbin.Daemon
	extra           []string // more jobqd flags
}

func (n *cnode) args() []string {
	return append([]string{"--node-name", n.name, "--rpc-addr", n.addr, "--rapi-addr", "off", "--shutdown-timeout", "5s"}, n.extra...)
}

func (n *cnode) start(t *testing.T, extra ...string) {
	t.Helper()
	n.d = testbin.Start(t, n.dir, append(n.args(), extra...)...)
}

func (n *cnode) jobq(t *testing.T, args ...string) testbin.Result {
	t.Helper()
	return testbin.Jobq(t, append([]string{"--data-dir", n.dir}, args...)...)
}

func (n *cnode) client(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), n.d.Socket())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startCluster starts node 1 as a one-node cluster and joins the others
// to it with tokens, each on its own loopback address.
func startCluster(t *testing.T, count int, extra ...string) []*cnode {
	t.Helper()
	base := t.TempDir()
	var nodes []*cnode
	for i := 1; i <= count; i++ {
		host := "127.0.0." + string(rune('0'+i))
		nodes = append(nodes, &cnode{name: "node" + string(rune('0'+i)), addr: testbin.FreePort(t, host),
			dir: filepath.Join(base, "n"+string(rune('0'+i))), extra: extra})
	}
	nodes[0].start(t)
	for _, n := range nodes[1:] {
		tok := nodes[0].jobq(t, "cluster", "join-token")
		if tok.Code != 0 {
			t.Fatalf("join-token: %+v", tok)
		}
		n.start(t, "--join", nodes[0].addr, "--token", strings.TrimSpace(tok.Stdout))
	}
	waitInSync(t, nodes[0])
	return nodes
}

// waitInSync waits (on replication events, up to a minute) until every
// replica equals the master's queue.
func waitInSync(t *testing.T, master *cnode) {
	t.Helper()
	r := master.jobq(t, "cluster", "verify-queue", "--wait", "60s")
	if r.Code != 0 {
		t.Fatalf("the queues did not converge: %s%s", r.Stdout, r.Stderr)
	}
}

// queueFiles reads a node's replicated queue files (job-N, serial,
// version, drain, archive/...).
func queueFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	q := filepath.Join(dir, "queue")
	err := filepath.WalkDir(q, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(q, p)
		base := filepath.Base(rel)
		if base == "lock" || strings.HasPrefix(base, ".") || strings.HasPrefix(rel, "quarantine") {
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameFiles checks that every node holds byte-identical queue files.
func sameFiles(t *testing.T, nodes ...*cnode) map[string][]byte {
	t.Helper()
	ref := queueFiles(t, nodes[0].dir)
	for _, n := range nodes[1:] {
		got := queueFiles(t, n.dir)
		var diff []string
		for name, b := range ref {
			if g, ok := got[name]; !ok {
				diff = append(diff, name+" missing")
			} else if !bytes.Equal(g, b) {
				diff = append(diff, name+" differs")
			}
		}
		for name := range got {
			if _, ok := ref[name]; !ok {
				diff = append(diff, name+" extra")
			}
		}
		sort.Strings(diff)
		if len(diff) > 0 {
			t.Fatalf("%s's queue differs from %s's: %v", n.name, nodes[0].name, diff)
		}
	}
	return ref
}

func delay(d time.Duration) client.Opcode { return client.OpTestDelay{Duration: d} }

// submitAndFinish submits count short jobs and waits until each is final.
func submitAndFinish(t *testing.T, c *client.Client, count int) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for range count {
		id, err := c.SubmitJob(ctx, delay(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		st, err := c.WatchJob(ctx, id, func(client.LogEntry) error { return nil })
		if err != nil || st != client.StatusSuccess {
			t.Fatalf("job %d: %v %v", id, st, err)
		}
	}
	return ids
}

// waitRunning waits until job id runs.
func waitRunning(t *testing.T, c *client.Client, id int64) {
	t.Helper()
	ctx := context.Background()
	var prev []json.RawMessage
	for {
		r, err := c.WaitForJobChange(ctx, id, []string{"status"}, prev, 0, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			continue
		}
		prev = r.Info
		var st string
		_ = json.Unmarshal(r.Info[0], &st)
		if st == "running" {
			return
		}
	}
}

// TestFailover: three nodes join; 50 jobs are byte-identical everywhere;
// the master dies with SIGKILL while a job runs; node 2 takes over with
// every job, the running one in error; the old master comes back, refuses
// jobs and converges.
func TestFailover(t *testing.T) {
	nodes := startCluster(t, 3, "--max-running-jobs", "1")
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	c1 := n1.client(t)
	ids := submitAndFinish(t, c1, 50)
	waitInSync(t, n1)
	sameFiles(t, n1, n2, n3)

	ctx := context.Background()
	long, err := c1.SubmitJob(ctx, delay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c1, long)
	// With one worker, this one waits in the queue behind it.
	queued, err := c1.SubmitJob(ctx, delay(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n1.d.Kill()

	// Job calls on node 2 point at the (dead) master until it fails over.
	if r := n2.jobq(t, "list"); r.Code == 0 || !strings.Contains(r.Stderr, "please connect to node node1") {
		t.Fatalf("jobq list on a candidate: %+v", r)
	}
	r := n2.jobq(t, "cluster", "master-failover")
	if r.Code != 0 {
		t.Fatalf("master-failover: %+v\n%s", r, n2.d.Logs())
	}
	if !strings.Contains(r.Stdout, "node2 is now the master") {
		t.Errorf("master-failover said: %q", r.Stdout)
	}
	c2 := n2.client(t)
	for _, id := range ids {
		j, err := c2.Job(ctx, id)
		if err != nil || j.Status != client.StatusSuccess {
			t.Fatalf("job %d on the new master: %+v %v", id, j, err)
		}
	}
	j, err := c2.Job(ctx, long)
	if err != nil || j.Status != client.StatusError {
		t.Fatalf("the job running at the crash: %+v %v", j, err)
	}
	if !strings.Contains(string(j.OpResult[0]), "Unclean master shutdown") {
		t.Errorf("its result: %s", j.OpResult[0])
	}
	if st, err := c2.WatchJob(ctx, queued, func(client.LogEntry) error { return nil }); err != nil || st != client.StatusSuccess {
		t.Fatalf("the job queued at the crash: %v %v", st, err)
	}
	next, err := c2.SubmitJob(ctx, delay(time.Millisecond))
	if err != nil || next <= queued {
		t.Fatalf("new job on the new master: id %d (last %d), %v", next, long, err)
	}

	// The old master comes back: it learns the new epoch, stops acting as
	// master and is brought in sync.
	n1.start(t)
	if !n1.d.WaitLog("master=node2") {
		t.Fatalf("the old master did not learn the new one:\n%s", n1.d.Logs())
	}
	if r := n1.jobq(t, "list"); r.Code == 0 || !strings.Contains(r.Stderr, "This is not the master node, please connect to node node2") {
		t.Fatalf("jobq list on the old master: %+v", r)
	}
	if _, err := c2.WatchJob(ctx, next, func(client.LogEntry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	waitInSync(t, n2)
	files := sameFiles(t, n2, n1, n3)
	if _, ok := files["job-"+itoa(next)]; !ok {
		t.Errorf("job %d is not in the converged queue", next)
	}
	info := n2.jobq(t, "node", "list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(info.Stdout), &list); err != nil || len(list) != 3 {
		t.Fatalf("node list --json: %v %q", err, info.Stdout)
	}
	roles := map[string]any{}
	for _, e := range list {
		roles[e["name"].(string)] = e["role"]
	}
	if roles["node1"] != "candidate" || roles["node2"] != "master" || roles["node3"] != "candidate" {
		t.Errorf("roles after failover: %v", roles)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestCatchUpAndRepair: a node stopped during 200 submissions comes back
// and converges by itself; verify-queue finds a file corrupted by hand
// and --repair fixes it; without a majority, submissions fail.
func TestCatchUpAndRepair(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	c1 := n1.client(t)
	submitAndFinish(t, c1, 50)
	n3.d.Kill()
	submitAndFinish(t, c1, 100)
	n3.start(t)
	submitAndFinish(t, c1, 50)
	waitInSync(t, n1)
	files := sameFiles(t, n1, n2, n3)
	if len(files) < 200 {
		t.Fatalf("only %d queue files", len(files))
	}

	// Corrupt a finished job's file on node 3 by hand.
	victim := filepath.Join(n3.dir, "queue", "job-7")
	if err := os.WriteFile(victim, []byte("{\"id\": 7, garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	r := n1.jobq(t, "cluster", "verify-queue")
	if r.Code != 1 || !strings.Contains(r.Stdout, "job-7") {
		t.Fatalf("verify-queue over a corrupted file: %+v", r)
	}
	r = n1.jobq(t, "cluster", "verify-queue", "--repair")
	if r.Code != 0 {
		t.Fatalf("verify-queue --repair: %+v", r)
	}
	sameFiles(t, n1, n2, n3)

	// A candidate demoted to a regular node deletes its copy of the queue.
	if r := n1.jobq(t, "node", "modify", "node3", "--master-candidate", "no"); r.Code != 0 {
		t.Fatalf("demote node3: %+v", r)
	}
	if left := queueFiles(t, n3.dir); len(left) != 1 || left["version"] == nil {
		names := make([]string, 0, len(left))
		for n := range left {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("node3 kept %d queue files after its demotion: %v", len(left), names[:min(len(names), 10)])
	}
	if r := n1.jobq(t, "cluster", "verify-queue"); r.Code != 0 {
		t.Fatalf("verify-queue with a regular node: %+v", r)
	}

	// Without a majority of the candidates, no submission is acknowledged.
	n2.d.Kill()
	n3.d.Kill()
	_, err := c1.SubmitJob(context.Background(), delay(time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "majority") {
		t.Fatalf("submit without a majority: %v", err)
	}
}

// TestConcurrentFailovers: two candidates run master-failover at the same
// moment after the master died: at most one wins; the loser is told why;
// the cluster then has exactly one master.
func TestConcurrentFailovers(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	submitAndFinish(t, n1.client(t), 5)
	waitInSync(t, n1)
	n1.d.Kill()
	results := make(chan testbin.Result, 2)
	for _, n := range []*cnode{n2, n3} {
		go func() { results <- n.jobq(t, "cluster", "master-failover") }()
	}
	a, b := <-results, <-results
	wins := 0
	for _, r := range []testbin.Result{a, b} {
		if r.Code == 0 {
			wins++
		} else if !strings.Contains(r.Stderr, "master-failover refused") && !strings.Contains(r.Stderr, "a master-failover is under way or done") && !strings.Contains(r.Stderr, "is the master and is running") && !strings.Contains(r.Stderr, "is starting") {
			t.Errorf("the loser's message: %+v", r)
		}
	}
	if wins > 1 {
		t.Fatalf("two masters: %+v %+v", a, b)
	}
	if wins == 0 {
		// Split vote: both voted for themselves. A second attempt wins.
		if r := n2.jobq(t, "cluster", "master-failover"); r.Code != 0 {
			t.Fatalf("second attempt: %+v", r)
		}
	}
	var masters []*cnode
	for _, n := range []*cnode{n2, n3} {
		if r := n.jobq(t, "list"); r.Code == 0 {
			masters = append(masters, n)
		}
	}
	if len(masters) != 1 {
		t.Fatalf("%d nodes accept jobs", len(masters))
	}
	// The other candidate, whatever it voted, follows the winner and is
	// brought in sync (node1 is gone: marked offline).
	m := masters[0]
	if r := m.jobq(t, "node", "modify", "node1", "--offline", "yes"); r.Code != 0 {
		t.Fatalf("offline node1: %+v", r)
	}
	submitAndFinish(t, m.client(t), 3)
	waitInSync(t, m)
	sameFiles(t, n2, n3)
}

// TestJoinRefusals: a wrong token and a reused token are refused with a
// clear message and the node does not start.
func TestJoinRefusals(t *testing.T) {
	nodes := startCluster(t, 2)
	n1 := nodes[0]
	base := t.TempDir()
	tok := strings.TrimSpace(n1.jobq(t, "cluster", "join-token").Stdout)
	bad := tok[:len(tok)-71] + strings.Repeat("0", 6) + tok[len(tok)-65:]
	n3 := &cnode{name: "node3", addr: testbin.FreePort(t, "127.0.0.3"), dir: filepath.Join(base, "n3")}
	if _, err := testbin.StartErr(t, n3.dir, append(n3.args(), "--join", n1.addr, "--token", bad)...); err == nil || !strings.Contains(err.Error(), "unknown or was used already") {
		t.Fatalf("wrong token: %v", err)
	}
	// The good token was not spent by the failed attempt of another.
	n3.start(t, "--join", n1.addr, "--token", tok)
	n4 := &cnode{name: "node4", addr: testbin.FreePort(t, "127.0.0.4"), dir: filepath.Join(base, "n4")}
	if _, err := testbin.StartErr(t, n4.dir, append(n4.args(), "--join", n1.addr, "--token", tok)...); err == nil || !strings.Contains(err.Error(), "unknown or was used already") {
		t.Fatalf("reused token: %v", err)
	}
	if _, err := testbin.StartErr(t, n4.dir, append(n4.args(), "--join", n1.addr, "--token", "nonsense")...); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("malformed token: %v", err)
	}

	// A node that first ran alone (as the package's service does on
	// install) and holds no job joins with join/token in its
	// configuration file: its fresh one-node cluster is replaced.
	n5 := &cnode{name: "node5", addr: testbin.FreePort(t, "127.0.0.5"), dir: filepath.Join(base, "n5")}
	n5.start(t)
	if err := n5.d.Stop(); err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(n1.jobq(t, "cluster", "join-token").Stdout)
	conf := filepath.Join(base, "n5.conf")
	if err := os.WriteFile(conf, []byte("join = "+n1.addr+"\ntoken = "+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n5.start(t, "--config", conf)
	if !strings.Contains(n1.jobq(t, "node", "list").Stdout, "node5") {
		t.Fatalf("node5 did not join:\n%s", n5.d.Logs())
	}
	waitInSync(t, n1)
	// Restarted with the same configuration, it stays in the cluster.
	if err := n5.d.Stop(); err != nil {
		t.Fatal(err)
	}
	n5.start(t, "--config", conf)
	if !n5.d.WaitLog("--join is ignored") {
		t.Fatalf("node5 restarted:\n%s", n5.d.Logs())
	}
}

// TestRestrictedCommandsAndDelayOnNodes: OP_RESTRICTED_COMMAND runs each
// node's own executable through the node RPC; a node without it fails
// alone; OP_TEST_DELAY sleeps on other nodes.
func TestRestrictedCommandsAndDelayOnNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	n1 := nodes[0]
	for _, n := range nodes[:2] {
		dir := filepath.Join(n.dir, "restricted-commands")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		script := "#!/bin/sh\necho hello from " + n.name + "\n"
		if err := os.WriteFile(filepath.Join(dir, "hello"), []byte(script), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	r := n1.jobq(t, "command", "hello", "--nodes", "node1,node2")
	if r.Code != 0 || !strings.Contains(r.Stdout, "node1: success\n  hello from node1") || !strings.Contains(r.Stdout, "node2: success\n  hello from node2") {
		t.Fatalf("command on two nodes: %+v", r)
	}
	r = n1.jobq(t, "command", "--json", "hello", "--nodes", "node2,node3")
	var res []struct {
		Node    string `json:"node"`
		Success bool   `json:"success"`
		Output  string `json:"output"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || r.Code != 1 || len(res) != 2 {
		t.Fatalf("command with a node lacking it: %v %+v", err, r)
	}
	if !res[0].Success || res[0].Output != "hello from node2\n" || res[1].Success || !strings.Contains(res[1].Output, "hello") {
		t.Errorf("results: %+v", res)
	}
	if r := n1.jobq(t, "command", "../../bin/sh", "--nodes", "node2"); r.Code == 0 {
		t.Errorf("a path as command name was accepted: %+v", r)
	}
	if r := n1.jobq(t, "debug", "delay", "--on-nodes", "node2", "-n", "node3", "0.01"); r.Code != 0 {
		t.Errorf("delay on nodes: %+v", r)
	}
	if r := n1.jobq(t, "debug", "delay", "--on-nodes", "node9", "0.01"); r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "node9") {
		t.Errorf("delay on an unknown node: %+v", r)
	}
}

// TestTwoNodesOffline: a two-node cluster that lost a node takes no jobs
// (no majority) until the operator marks the node offline; marked online
// again when it is back, it is brought in sync.
func TestTwoNodesOffline(t *testing.T) {
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	c1 := n1.client(t)
	submitAndFinish(t, c1, 3)
	// Marking a node offline that still answers is allowed, with a warning.
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "yes"); r.Code != 0 || !strings.Contains(r.Stderr, "still answers") {
		t.Fatalf("offline while it answers: %+v", r)
	}
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "no"); r.Code != 0 {
		t.Fatalf("online again: %+v", r)
	}
	waitInSync(t, n1)
	n2.d.Kill()
	if _, err := c1.SubmitJob(context.Background(), delay(time.Millisecond)); err == nil {
		t.Fatal("a two-node cluster with one node down acknowledged a job")
	}
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "yes"); r.Code != 0 || strings.Contains(r.Stderr, "still answers") {
		t.Fatalf("offline: %+v", r)
	}
	submitAndFinish(t, c1, 3)
	n2.start(t)
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "no"); r.Code != 0 {
		t.Fatalf("online: %+v", r)
	}
	waitInSync(t, n1)
	sameFiles(t, n1, n2)
	if r := n1.jobq(t, "node", "remove", "node1"); r.Code == 0 || !strings.Contains(r.Stderr, "master") {
		t.Errorf("removing the master: %+v", r)
	}
}

// TestPausedNodes: a replica paused with SIGSTOP during submissions does
// not stop them and catches up when it continues; a master paused while
// the others fail over comes back to find itself fenced: nothing it
// accepts is acknowledged, it steps down and converges.
func TestPausedNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	c1 := n1.client(t)
	submitAndFinish(t, c1, 10)
	if err := n3.d.Pause(); err != nil {
		t.Fatal(err)
	}
	submitAndFinish(t, c1, 30)
	if err := n3.d.Resume(); err != nil {
		t.Fatal(err)
	}
	waitInSync(t, n1)
	sameFiles(t, n1, n2, n3)

	// The master hangs; node 2 takes over.
	if err := n1.d.Pause(); err != nil {
		t.Fatal(err)
	}
	if r := n2.jobq(t, "cluster", "master-failover"); r.Code != 0 {
		t.Fatalf("master-failover with the master paused: %+v", r)
	}
	c2 := n2.client(t)
	submitAndFinish(t, c2, 5)
	// The old master wakes up with its clients still connected: a
	// submission there is not acknowledged (the others refuse its epoch).
	if err := n1.d.Resume(); err != nil {
		t.Fatal(err)
	}
	if id, err := c1.SubmitJob(context.Background(), delay(time.Millisecond)); err == nil {
		t.Fatalf("the fenced old master acknowledged job %d", id)
	}
	if !n1.d.WaitLog("master=node2") {
		t.Fatalf("the old master did not learn the new one:\n%s", n1.d.Logs())
	}
	submitAndFinish(t, c2, 5)
	waitInSync(t, n2)
	sameFiles(t, n2, n1, n3)
}

// partition drops every packet between the addresses of a and of each of
// others (nodes talk from their own address), until the test ends or heal
// is called. It needs root and iptables; without them the test fails in
// CI and is skipped elsewhere (testbin.Missing).
func partition(t *testing.T, a *cnode, others ...*cnode) (heal func()) {
	t.Helper()
	host := func(n *cnode) string { h, _, _ := strings.Cut(n.addr, ":"); return h }
	var hosts []string
	for _, o := range others {
		hosts = append(hosts, host(o))
	}
	return testbin.Partition(t, host(a), hosts...)
}

// TestPartition: the master is cut off from both other nodes by the
// network while it and its clients go on running. It acknowledges
// nothing more; the majority side fails over and goes on; when the
// network heals, the old master learns the new epoch, steps down and
// converges, and every job acknowledged on either side is there.
func TestPartition(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	c1 := n1.client(t)
	before := submitAndFinish(t, c1, 10)
	waitInSync(t, n1)
	heal := partition(t, n1, n2, n3)

	ctx := context.Background()
	if id, err := c1.SubmitJob(ctx, delay(time.Millisecond)); err == nil {
		t.Fatalf("the cut-off master acknowledged job %d", id)
	} else if !strings.Contains(err.Error(), "majority") {
		t.Errorf("its error: %v", err)
	}
	if r := n2.jobq(t, "cluster", "master-failover"); r.Code != 0 {
		t.Fatalf("master-failover on the majority side: %+v", r)
	}
	c2 := n2.client(t)
	after := submitAndFinish(t, c2, 10)
	heal()
	if !n1.d.WaitLog("master=node2") {
		t.Fatalf("the old master did not learn the new one:\n%s", n1.d.Logs())
	}
	if r := n1.jobq(t, "list"); r.Code == 0 || !strings.Contains(r.Stderr, "please connect to node node2") {
		t.Fatalf("jobq list on the old master: %+v", r)
	}
	waitInSync(t, n2)
	files := sameFiles(t, n2, n1, n3)
	for _, id := range append(before, after...) {
		if _, ok := files["job-"+itoa(id)]; !ok {
			t.Errorf("acknowledged job %d is missing", id)
		}
	}
}

// TestMasterRestartWithoutMajority: a master that restarts while the only
// other candidate is dead waits for a majority and says why; marking the
// dead node offline on it lets it start the queue.
func TestMasterRestartWithoutMajority(t *testing.T) {
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	ids := submitAndFinish(t, n1.client(t), 3)
	waitInSync(t, n1)
	n2.d.Kill()
	n1.d.Kill()
	n1.start(t)
	if !n1.d.WaitLog("waiting for a majority of the master candidates") {
		t.Fatalf("the master did not wait for a majority:\n%s", n1.d.Logs())
	}
	if r := n1.jobq(t, "list"); r.Code == 0 || !strings.Contains(r.Stderr, "does not accept jobs yet") || !strings.Contains(r.Stderr, "offline") {
		t.Fatalf("jobq list while waiting: %+v", r)
	}
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "yes"); r.Code != 0 {
		t.Fatalf("marking node2 offline while waiting: %+v", r)
	}
	if !n1.d.WaitLog("running as master") {
		t.Fatalf("the master did not start:\n%s", n1.d.Logs())
	}
	c1 := n1.client(t)
	for _, id := range ids {
		if j, err := c1.Job(context.Background(), id); err != nil || j.Status != client.StatusSuccess {
			t.Fatalf("job %d: %+v %v", id, j, err)
		}
	}
	submitAndFinish(t, c1, 2)
}

// TestRefusals: the cluster commands' refusals, each with its sentence,
// and the node RPC purge refused from a stale epoch, on a candidate and
// on the master.
func TestRefusals(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	refused := func(n *cnode, want string, args ...string) {
		t.Helper()
		r := n.jobq(t, args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, want) {
			t.Errorf("jobq %v on %s: %+v, want a refusal saying %q", args, n.name, r, want)
		}
	}
	refused(n2, "node node1 is the master and is running", "cluster", "master-failover")
	refused(n1, "is already the master", "cluster", "master-failover")
	refused(n1, "node node9 is not in the cluster", "node", "modify", "node9", "--offline", "yes")
	refused(n1, "node node9 is not in the cluster", "node", "remove", "node9")
	refused(n2, "This is not the master node, please connect to node node1", "node", "modify", "node3", "--offline", "yes")
	refused(n2, "This is not the master node, please connect to node node1", "cluster", "join-token")
	victim := filepath.Join(n3.dir, "queue", "serial")
	if err := os.WriteFile(victim, []byte("garbage\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	refused(n2, "only the master can repair the queue; run this on node1", "cluster", "verify-queue", "--repair")
	if r := n1.jobq(t, "cluster", "verify-queue", "--repair"); r.Code != 0 {
		t.Fatalf("repair on the master: %+v", r)
	}

	// Purge is only for regular nodes, and only from the current master.
	cert, err := daemon.LoadOrCreateClusterCert(n1.dir, n1.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := noderpc.NewClient(cert)
	defer c.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		node  *cnode
		epoch int64
		code  string
		want  string
	}{
		{n2, 0, noderpc.CodeStaleEpoch, "this node has seen epoch 1"},
		{n2, 1, noderpc.CodeRefused, "this node is a master candidate"},
		{n1, 1, noderpc.CodeRefused, "this node is the master"},
	} {
		err := c.Purge(ctx, tc.node.addr, &noderpc.PurgeRequest{Master: "node1", Epoch: tc.epoch})
		var e *noderpc.Error
		if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Message, tc.want) {
			t.Errorf("purge on %s from epoch %d: %v, want %s %q", tc.node.name, tc.epoch, err, tc.code, tc.want)
		}
	}
	sameFiles(t, n1, n2, n3)

	// A regular node cannot become master.
	if r := n1.jobq(t, "node", "modify", "node3", "--master-candidate", "no"); r.Code != 0 {
		t.Fatalf("demote node3: %+v", r)
	}
	refused(n3, "node node3 is not an online master candidate", "cluster", "master-failover")
}

// TestCatchingUpNodeDoesNotBlock: a master candidate that comes back
// online (as one that joins) catches up before it counts in majorities,
// so that the cluster never waits for a node that holds nothing yet: with
// it down, a two-node cluster still takes jobs; once it has caught up it
// counts, and with it down again nothing is acknowledged.
func TestCatchingUpNodeDoesNotBlock(t *testing.T) {
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	c1 := n1.client(t)
	submitAndFinish(t, c1, 3)
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "yes"); r.Code != 0 {
		t.Fatalf("offline: %+v", r)
	}
	n2.d.Kill()
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "no"); r.Code != 0 {
		t.Fatalf("online again: %+v", r)
	}
	// node2 is down and catching up: it does not count.
	ids := submitAndFinish(t, c1, 3)
	r := n1.jobq(t, "cluster", "verify-queue")
	if r.Code != 1 || !strings.Contains(r.Stdout, "node2: unreachable") {
		t.Fatalf("verify-queue with node2 down: %+v", r)
	}

	n2.start(t)
	waitInSync(t, n1) // returns once node2 counts again
	if !n1.d.WaitLog("a node caught up with the queue and counts in majorities now") {
		t.Fatalf("no catch-up in the master's log:\n%s", n1.d.Logs())
	}
	if r := n1.jobq(t, "node", "list", "--no-headers", "-o", "name,replication"); !strings.Contains(r.Stdout, "node2 in sync") {
		t.Errorf("node list: %+v", r)
	}
	files := sameFiles(t, n1, n2)
	for _, id := range ids {
		if _, ok := files["job-"+itoa(id)]; !ok {
			t.Errorf("job %d, taken while node2 was down, is not on node2", id)
		}
	}
	n2.d.Kill()
	if _, err := c1.SubmitJob(context.Background(), delay(time.Millisecond)); err == nil || !strings.Contains(err.Error(), "majority") {
		t.Fatalf("with node2 counted and down, a job was acknowledged or refused for another reason: %v", err)
	}
}

// TestFailoverRefusedWhileMasterStarts: a master that answers but does not
// run its queue yet (restarted, it waits for a majority) is not deposed by
// a master-failover elsewhere: the refusal says it is starting. Made
// deterministic with iptables (root): the master cannot open connections
// to node2 (so it waits), node2 can open connections to it (so it sees it
// answer).
func TestFailoverRefusedWhileMasterStarts(t *testing.T) {
	if os.Geteuid() != 0 {
		testbin.Missing(t, "needs root (iptables)")
	}
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		testbin.Missing(t, "needs iptables")
	}
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	submitAndFinish(t, n1.client(t), 3)
	waitInSync(t, n1)
	n3.d.Kill()
	n1.d.Kill()
	host := func(n *cnode) string { h, _, _ := strings.Cut(n.addr, ":"); return h }
	rule := []string{"INPUT", "-p", "tcp", "--syn", "-s", host(n1), "-d", host(n2), "-j", "DROP"}
	if out, err := exec.Command(ipt, append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
		testbin.Missing(t, "iptables does not work here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ipt, append([]string{"-D"}, rule...)...).CombinedOutput(); err != nil {
			t.Errorf("iptables -D: %v %s", err, out)
		}
	})
	n1.start(t)
	if !n1.d.WaitLog("waiting for a majority of the master candidates") {
		t.Fatalf("the master did not wait:\n%s", n1.d.Logs())
	}
	r := n2.jobq(t, "cluster", "master-failover")
	if r.Code == 0 || !strings.Contains(r.Stderr, "node node1 is the master (epoch 1) and is starting") {
		t.Fatalf("master-failover while the master starts: %+v", r)
	}
	if r := n2.jobq(t, "list"); r.Code == 0 || !strings.Contains(r.Stderr, "please connect to node node1") {
		t.Fatalf("node2 took the mastership: %+v", r)
	}
}

// TestDeposedMastersExecutionsStop: a restricted command that the master
// runs on node2 stops as soon as node2 learns of a newer epoch, although
// the old master, paused, never hangs up on it (fence).
func TestDeposedMastersExecutionsStop(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	dir := filepath.Join(n2.dir, "restricted-commands")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(n2.dir, "sleeper.pid")
	script := "#!/bin/sh\necho $$ > " + pidFile + "\nexec sleep 50\n"
	if err := os.WriteFile(filepath.Join(dir, "sleeper"), []byte(script), 0o750); err != nil {
		t.Fatal(err)
	}
	c1 := n1.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := c1.SubmitJob(ctx, client.RawOp{"OP_ID": "OP_RESTRICTED_COMMAND", "command": "sleeper", "nodes": []string{"node2"}})
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(pidFile)
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			if pid, err = strconv.Atoi(string(bytes.TrimSpace(b))); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d's command did not start on node2 within 30s:\n%s", id, n2.d.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The master hangs with its call to node2 open; node2 takes over.
	if err := n1.d.Pause(); err != nil {
		t.Fatal(err)
	}
	defer n1.d.Resume()
	if r := n2.jobq(t, "cluster", "master-failover"); r.Code != 0 {
		t.Fatalf("master-failover with the master paused: %+v", r)
	}
	deadline = time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the old master's command (pid %d) still runs on node2 10s after the failover:\n%s", pid, n2.d.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !n2.d.WaitLog("stopped the executions older masters ordered here") {
		t.Fatalf("node2 does not say it stopped the old master's command:\n%s", n2.d.Logs())
	}
}
