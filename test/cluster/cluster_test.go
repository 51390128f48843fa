// Package cluster starts several real jobqd processes on 127.0.0.1,
// 127.0.0.2 and 127.0.0.3, joins them into one cluster, kills them with
// SIGKILL, fails the master over and compares the queue files on disk.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
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
// The files follow each node's log within its write-back buffer's flush
// interval (store.DefaultFlushInterval): it waits up to 10s for them to
// agree.
func sameFiles(t *testing.T, nodes ...*cnode) map[string][]byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ref, diff := compareFiles(t, nodes...)
		if diff == "" {
			return ref
		}
		if time.Now().After(deadline) {
			t.Fatal(diff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// compareFiles reads every node's queue files: the first node's, and
// how another's differ ("": none).
func compareFiles(t *testing.T, nodes ...*cnode) (map[string][]byte, string) {
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
			return ref, fmt.Sprintf("%s's queue differs from %s's: %v", n.name, nodes[0].name, diff)
		}
	}
	return ref, ""
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
// the master dies with SIGKILL while a job runs; the others elect a
// master by themselves, which node 2 becomes (master-failover is a
// leadership transfer), with every job, the running one in error; the old
// master comes back, refuses jobs and converges.
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

	// The two others elect a master by themselves; master-failover then
	// moves the mastership to node 2 if node 3 won.
	makeMaster(t, n2, n2, n3)
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
	// Job calls on it reach the master.
	if r := n1.jobq(t, "list", "--no-headers", "-o", "id"); r.Code != 0 || !strings.Contains(r.Stdout, itoa(next)+"\n") {
		t.Fatalf("jobq list on the old master does not show job %d of the new one: %+v", next, r)
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

// waitMaster waits (up to 30s) until one of among runs the queue (the
// voters elect a master by themselves) and returns it.
func waitMaster(t *testing.T, among ...*cnode) *cnode {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, n := range among {
			if n.runsQueue() {
				return n
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, n := range among {
				names = append(names, n.name)
			}
			t.Fatalf("no master among %v within 30s", names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runsQueue says whether n runs the queue now (is the master): every node
// answers job calls, handing them to the master, so its cluster info
// tells (it has job counts only where the queue runs).
func (n *cnode) runsQueue() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, n.d.Socket())
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetRetryWindow(0)
	var info struct {
		Jobs map[string]int `json:"jobs"`
	}
	return c.Call(ctx, &info, "JobqClusterInfo") == nil && info.Jobs != nil
}

// makeMaster makes n the master: once one is elected among among, a
// master-failover on n moves the mastership there unless it has it.
func makeMaster(t *testing.T, n *cnode, among ...*cnode) {
	t.Helper()
	if waitMaster(t, among...) == n {
		return
	}
	if r := n.jobq(t, "cluster", "master-failover"); r.Code != 0 || !strings.Contains(r.Stdout, n.name+" is now the master") {
		t.Fatalf("master-failover on %s: %+v", n.name, r)
	}
}

// voters is the nodes that vote, as master's node list says.
func voters(t *testing.T, master *cnode) map[string]bool {
	t.Helper()
	r := master.jobq(t, "node", "list", "--json")
	var list []struct {
		Name  string `json:"name"`
		Voter bool   `json:"voter"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil {
		t.Fatalf("node list --json: %v %+v", err, r)
	}
	out := map[string]bool{}
	for _, e := range list {
		out[e.Name] = e.Voter
	}
	return out
}

// waitVoters waits (up to 30s) until exactly the named nodes vote.
func waitVoters(t *testing.T, master *cnode, names ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := voters(t, master)
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		same := true
		for name, v := range got {
			if v != want[name] {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("voters %v, want %v after 30s:\n%s", got, names, master.d.Logs()+debugLogs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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

	// A candidate made a regular node stops voting and keeps receiving
	// the log: every node holds the queue.
	if r := n1.jobq(t, "node", "modify", "node3", "--master-candidate", "no"); r.Code != 0 {
		t.Fatalf("demote node3: %+v", r)
	}
	waitVoters(t, n1, "node1", "node2")
	submitAndFinish(t, c1, 3)
	waitInSync(t, n1)
	sameFiles(t, n1, n2, n3)

	// Without a majority of the voters, no submission is acknowledged.
	n2.d.Kill()
	_, err := c1.SubmitJob(context.Background(), delay(time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "majority") {
		t.Fatalf("submit without a majority: %v", err)
	}
}

// TestConcurrentFailovers: the master dies; the two others elect one of
// them by themselves, while both run master-failover at the same moment:
// each either becomes master (a transfer) or says why not, and in the end
// exactly one node runs the queue.
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
	for range 2 {
		r := <-results
		if r.Code != 0 && !strings.Contains(r.Stderr, "did not hand the leadership over") && !strings.Contains(r.Stderr, "is already the master") && !strings.Contains(r.Stderr, "No master is elected") && !strings.Contains(r.Stderr, "no master is elected") {
			t.Errorf("a refused master-failover's message: %+v", r)
		}
	}
	waitMaster(t, n2, n3)
	var masters []*cnode
	for _, n := range []*cnode{n2, n3} {
		if n.runsQueue() {
			masters = append(masters, n)
		}
	}
	if len(masters) != 1 {
		t.Fatalf("%d nodes accept jobs", len(masters))
	}
	// node1 is gone: marked offline, it no longer votes.
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

// TestTwoNodesOffline: a node that still answers may be marked offline
// (with a warning). A cluster of two voters that loses one stops
// acknowledging, as Ganeti's does, until the operator decides: marking
// the lost node offline needs a majority too, so the way out is
// master-failover --no-voting --yes-do-it, a new cluster of the survivor
// with every job; the lost node then joins again with an empty directory.
func TestTwoNodesOffline(t *testing.T) {
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	c1 := n1.client(t)
	submitAndFinish(t, c1, 3)
	waitVoters(t, n1, "node1", "node2")
	// Marking a node offline that still answers is allowed, with a warning.
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "yes"); r.Code != 0 || !strings.Contains(r.Stderr, "still answers") {
		t.Fatalf("offline while it answers: %+v", r)
	}
	waitVoters(t, n1, "node1")
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "no"); r.Code != 0 {
		t.Fatalf("online again: %+v", r)
	}
	waitVoters(t, n1, "node1", "node2")
	ids := submitAndFinish(t, c1, 3)
	waitInSync(t, n1)
	n2.d.Kill()
	// The node waits for a master itself; the client's retries would
	// only add to it.
	c1.SetRetryWindow(0)
	if _, err := c1.SubmitJob(context.Background(), delay(time.Millisecond)); err == nil {
		t.Fatal("a two-node cluster with one node down acknowledged a job")
	}
	if r := n1.jobq(t, "node", "modify", "node2", "--offline", "yes"); r.Code == 0 {
		t.Fatalf("marked offline without a majority: %+v", r)
	}
	r := n1.jobq(t, "cluster", "master-failover", "--no-voting", "--yes-do-it")
	if r.Code != 0 || !strings.Contains(r.Stdout, "node1 is now the master") || !strings.Contains(r.Stdout, "(node2) must join it again") {
		t.Fatalf("master-failover --no-voting: %+v\n%s", r, n1.d.Logs())
	}
	for _, id := range ids {
		if j, err := c1.Job(context.Background(), id); err != nil || j.Status != client.StatusSuccess {
			t.Fatalf("job %d after the forced failover: %+v %v", id, j, err)
		}
	}
	submitAndFinish(t, c1, 3)
	// node2 comes back as it was: it belongs to the old cluster and
	// cannot reach the new one.
	n2.start(t)
	if n2.runsQueue() {
		t.Fatalf("node2 of the old cluster runs a queue:\n%s", n2.d.Logs())
	}
	if got := voters(t, n1); len(got) != 1 || !got["node1"] {
		t.Fatalf("the new cluster's nodes: %v", got)
	}
	// With an empty directory, it joins the new cluster.
	if err := n2.d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(n2.dir); err != nil {
		t.Fatal(err)
	}
	tok := n1.jobq(t, "cluster", "join-token")
	n2.start(t, "--join", n1.addr, "--token", strings.TrimSpace(tok.Stdout))
	debugLogs = func() string { return "\n---- node2:\n" + n2.d.Logs() }
	waitVoters(t, n1, "node1", "node2")
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

	// The master hangs; the others elect one of them, node 2 takes over.
	if err := n1.d.Pause(); err != nil {
		t.Fatal(err)
	}
	makeMaster(t, n2, n2, n3)
	c2 := n2.client(t)
	submitAndFinish(t, c2, 5)
	// The old master wakes up with its clients still connected: it
	// acknowledges nothing on its own (the others refuse its epoch); a
	// submission there fails, or, once it knows it no longer leads, it
	// hands it to the new master, whose queue then holds the job.
	if err := n1.d.Resume(); err != nil {
		t.Fatal(err)
	}
	if id, err := c1.SubmitJob(context.Background(), delay(time.Millisecond)); err == nil {
		if st, err := c2.WatchJob(context.Background(), id, nil); err != nil || st != client.StatusSuccess {
			t.Fatalf("the old master acknowledged job %d, which the new master does not run: %v %v", id, st, err)
		}
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
// nothing more and steps down; the majority side elects a master by
// itself and goes on; when the network heals, the old master learns the
// new one and converges, and every job acknowledged on either side is
// there.
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
	makeMaster(t, n2, n2, n3)
	c2 := n2.client(t)
	after := submitAndFinish(t, c2, 10)
	heal()
	if !n1.d.WaitLog("master=node2") {
		t.Fatalf("the old master did not learn the new one:\n%s", n1.d.Logs())
	}
	// Job calls on the old master reach the new one.
	if r := n1.jobq(t, "list", "--no-headers", "-o", "id"); r.Code != 0 || !strings.Contains(r.Stdout, itoa(after[len(after)-1])+"\n") {
		t.Fatalf("jobq list on the old master does not show the new master's jobs: %+v", r)
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
// other voter is dead is not master alone: job calls say that no master
// is elected and what to do; --no-voting --yes-do-it makes it the master
// of a new cluster with every job.
func TestMasterRestartWithoutMajority(t *testing.T) {
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	ids := submitAndFinish(t, n1.client(t), 3)
	waitVoters(t, n1, "node1", "node2")
	waitInSync(t, n1)
	n2.d.Kill()
	n1.d.Kill()
	n1.start(t)
	// The node itself waits for a master (15 s) before it says there is
	// none; jobq's own retries (JOBQ_RETRY_TIMEOUT, 30 s) would only add
	// to that here.
	once := testbin.Options{Env: []string{"JOBQ_RETRY_TIMEOUT=0"}}
	if r := once.Jobq(t, "--data-dir", n1.dir, "list"); r.Code == 0 || !strings.Contains(r.Stderr, "No master is elected") || !strings.Contains(r.Stderr, "--no-voting --yes-do-it") {
		t.Fatalf("jobq list without a majority: %+v", r)
	}
	if r := once.Jobq(t, "--data-dir", n1.dir, "cluster", "master-failover"); r.Code == 0 || !strings.Contains(r.Stderr, "does not reach a majority of the voters") {
		t.Fatalf("master-failover without a majority: %+v", r)
	}
	if r := n1.jobq(t, "cluster", "master-failover", "--no-voting", "--yes-do-it"); r.Code != 0 {
		t.Fatalf("master-failover --no-voting: %+v", r)
	}
	c1 := n1.client(t)
	for _, id := range ids {
		if j, err := c1.Job(context.Background(), id); err != nil || j.Status != client.StatusSuccess {
			t.Fatalf("job %d: %+v %v", id, j, err)
		}
	}
	submitAndFinish(t, c1, 2)
	// Restarted, it is still the master of its new cluster.
	if err := n1.d.Stop(); err != nil {
		t.Fatal(err)
	}
	n1.start(t)
	submitAndFinish(t, n1.client(t), 1)
}

// TestRefusals: the cluster commands' refusals, each with its sentence,
// and the node RPC calls of the replication before the Raft log refused.
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
	refused(n1, "is already the master", "cluster", "master-failover")
	refused(n1, "node node9 is not in the cluster", "node", "modify", "node9", "--offline", "yes")
	refused(n1, "node node9 is not in the cluster", "node", "remove", "node9")
	refused(n1, "node node1 is the master and cannot be removed", "node", "remove", "node1")
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

	// The calls of the replication before the Raft log are gone: a node
	// of an older release that posts them, even with the cluster
	// certificate, gets 404 and cannot write here.
	cert, err := daemon.LoadOrCreateClusterCert(n1.dir, n1.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // the node's certificate is the cluster's; not what is tested
		MinVersion:         tls.VersionTLS13,
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	for _, node := range []*cnode{n1, n2} {
		for _, path := range []string{"/v1/apply", "/v1/purge", "/v1/vote", "/v1/config"} {
			resp, err := hc.Post("https://"+node.addr+path, "application/json", strings.NewReader(`{"master":"node1","epoch":99,"first_seq":1,"last_seq":1,"changes":[]}`))
			if err != nil {
				t.Errorf("%s on %s: %v", path, node.name, err)
				continue
			}
			var e noderpc.Error
			derr := json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || derr != nil || e.Code != noderpc.CodeBadRequest {
				t.Errorf("%s on %s: got %s %+v (%v), want 404 bad_request", path, node.name, resp.Status, e, derr)
			}
		}
	}
	waitInSync(t, n1)
	sameFiles(t, n1, n2, n3)

	// A regular node cannot become master, nor can a node that does not
	// vote.
	if r := n1.jobq(t, "node", "modify", "node3", "--master-candidate", "no"); r.Code != 0 {
		t.Fatalf("demote node3: %+v", r)
	}
	refused(n3, "node node3 is not an online master candidate", "cluster", "master-failover")
}

// TestCatchingUpNodeDoesNotBlock: a node that does not vote (a regular
// node, as one that joins until it holds the log) receives the log but
// the cluster never waits for it: with it down, a two-node cluster still
// takes jobs. Made a candidate again, it votes once it has caught up, and
// with it down again nothing is acknowledged.
func TestCatchingUpNodeDoesNotBlock(t *testing.T) {
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	c1 := n1.client(t)
	submitAndFinish(t, c1, 3)
	if r := n1.jobq(t, "node", "modify", "node2", "--master-candidate", "no"); r.Code != 0 {
		t.Fatalf("regular: %+v", r)
	}
	waitVoters(t, n1, "node1")
	n2.d.Kill()
	// node2 is down and does not vote: it does not count.
	ids := submitAndFinish(t, c1, 3)
	if r := n1.jobq(t, "cluster", "verify-queue"); r.Code != 1 || !strings.Contains(r.Stdout, "node2") {
		t.Fatalf("verify-queue with node2 down: %+v", r)
	}
	n2.start(t)
	waitInSync(t, n1)
	files := sameFiles(t, n1, n2)
	for _, id := range ids {
		if _, ok := files["job-"+itoa(id)]; !ok {
			t.Errorf("job %d, taken while node2 was down, is not on node2", id)
		}
	}
	if r := n1.jobq(t, "node", "modify", "node2", "--master-candidate", "yes"); r.Code != 0 {
		t.Fatalf("candidate: %+v", r)
	}
	waitVoters(t, n1, "node1", "node2")
	if !n1.d.WaitLog("changed who votes") {
		t.Fatalf("no promotion in the master's log:\n%s", n1.d.Logs())
	}
	if r := n1.jobq(t, "node", "list", "--no-headers", "-o", "name,voter,replication"); !strings.Contains(r.Stdout, "node2 Y in sync") {
		t.Errorf("node list: %+v", r)
	}
	n2.d.Kill()
	if _, err := c1.SubmitJob(context.Background(), delay(time.Millisecond)); err == nil || !strings.Contains(err.Error(), "majority") {
		t.Fatalf("with node2 voting and down, a job was acknowledged or refused for another reason: %v", err)
	}
}

// TestFiveNodeMembershipChange is the scenario that lost a job with the
// replication before the Raft log: A leads B and C; C stops; D and E join
// and vote (a pool of five); B stops; job 3 is acknowledged by A, D and E;
// A, D and E die; C and B start: they are two of five and must not elect
// (an election there would lose job 3 and give its id to another job);
// once D is back a master is elected, it has job 3, and the next job is 4.
func TestFiveNodeMembershipChange(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	base := t.TempDir()
	ca := a.client(t)
	ctx := context.Background()
	submitAndFinish(t, ca, 2)
	waitVoters(t, a, "node1", "node2", "node3")
	if err := c.d.Stop(); err != nil {
		t.Fatal(err)
	}
	d := &cnode{name: "node4", addr: testbin.FreePort(t, "127.0.0.4"), dir: filepath.Join(base, "n4")}
	e := &cnode{name: "node5", addr: testbin.FreePort(t, "127.0.0.5"), dir: filepath.Join(base, "n5")}
	for _, n := range []*cnode{d, e} {
		tok := a.jobq(t, "cluster", "join-token")
		n.start(t, "--join", a.addr, "--token", strings.TrimSpace(tok.Stdout))
	}
	// C is down: D and E are promoted once they hold the log.
	waitVoters(t, a, "node1", "node2", "node3", "node4", "node5")
	if err := b.d.Stop(); err != nil {
		t.Fatal(err)
	}
	id, err := ca.SubmitJob(ctx, client.RawOp{"OP_ID": "OP_TEST_DELAY", "duration": 0.001, "comment": "job three"})
	if err != nil || id != 3 {
		t.Fatalf("job 3 acknowledged by A, D and E: id %d, %v", id, err)
	}
	a.d.Kill()
	d.d.Kill()
	e.d.Kill()
	c.start(t)
	b.start(t)
	// Two of five: no election may succeed. Each asks for votes at every
	// election timeout (1s); watch them for five.
	watch := time.Now().Add(5 * time.Second)
	for time.Now().Before(watch) {
		for _, n := range []*cnode{b, c} {
			if n.runsQueue() {
				t.Fatalf("%s became master with two of five voters:\n%s", n.name, n.d.Logs())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.start(t)
	m := waitMaster(t, b, c, d)
	cm := m.client(t)
	j, err := cm.Job(ctx, 3)
	if err != nil || len(j.Ops) == 0 || !strings.Contains(string(j.Ops[0]), "job three") {
		t.Fatalf("job 3 on the new master %s: %+v %v", m.name, j, err)
	}
	next, err := cm.SubmitJob(ctx, delay(time.Millisecond))
	if err != nil || next != 4 {
		t.Fatalf("the next job on %s: id %d, %v", m.name, next, err)
	}
	e.start(t)
	a.start(t)
	waitMaster(t, a, b, c, d, e)
	waitInSync(t, m)
	sameFiles(t, m, a, b, c, d, e)
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

var debugLogs = func() string { return "" }
