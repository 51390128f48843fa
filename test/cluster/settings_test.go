package cluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// TestSettingsSurviveFailover: the cluster-wide settings — a job filter,
// a schedule, the queue's max_running_jobs, the watcher pause, the
// cluster's and a node's tags, the cluster's uuid and creation time — are
// agreed through the log: every node holds the same, and after the
// master is killed the new master has them all and acts on them (the
// filter still holds a job until it is deleted there).
func TestSettingsSurviveFailover(t *testing.T) {
	nodes := startCluster(t, 3)
	n1 := nodes[0]
	waitVoters(t, n1, "node1", "node2", "node3")
	ok := func(n *cnode, args ...string) string {
		t.Helper()
		r := n.jobq(t, args...)
		if r.Code != 0 {
			t.Fatalf("jobq %v on %s: %+v", args, n.name, r)
		}
		return r.Stdout
	}
	ok(n1, "filter", "add", `--predicates=[["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]]`, "--action=PAUSE")
	// A rate limit is a rule too (it matches no job here).
	ok(n1, "filter", "add", "--priority=5", `--predicates=[["opcode", ["=", "OP_ID", "OP_NOT_SUBMITTED"]]]`, "--action=RATE_LIMIT 2")
	ok(n1, "schedule", "add", "tick", "--every", "1h", "--", `{"OP_ID": "OP_TEST_DELAY", "duration": 1}`)
	ok(n1, "cluster", "modify", "--max-running-jobs=3")
	ok(n1, "cluster", "watcher", "pause", "1h")
	ok(n1, "cluster", "add-tags", "rack:a1", "owner:ops")
	ok(n1, "node", "add-tags", "node2", "ssd")
	infoBefore := ok(n1, "cluster", "info")
	ctx := context.Background()
	held, err := n1.client(t).SubmitJob(ctx, delay(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	waitInSync(t, n1)
	// Every node holds the same settings, byte for byte.
	ref := settingsFiles(t, n1)
	for _, key := range []string{"filters.json", "schedules.json", "queue.json", "watcher-pause.json", "cluster.json", "tags.json", "cluster-identity.json"} {
		if ref[key] == nil {
			t.Errorf("setting %s is not on %s (it has %v)", key, n1.name, names(ref))
		}
	}
	for _, n := range nodes[1:] {
		got := settingsFiles(t, n)
		for k, v := range ref {
			if !bytes.Equal(got[k], v) {
				t.Errorf("setting %s differs on %s", k, n.name)
			}
		}
	}

	n1.d.Kill()
	m := waitMaster(t, nodes[1], nodes[2])
	if out := ok(m, "filter", "list", "--no-headers", "-o", "action"); !strings.Contains(out, "PAUSE") || !strings.Contains(out, "['RATE_LIMIT', 2]") {
		t.Errorf("filters on the new master %s: %q", m.name, out)
	}
	if out := ok(m, "schedule", "list"); !strings.Contains(out, "tick") {
		t.Errorf("schedules on the new master %s: %q", m.name, out)
	}
	if out := ok(m, "cluster", "watcher", "info"); !strings.Contains(out, "paused until") {
		t.Errorf("watcher on the new master %s: %q", m.name, out)
	}
	if out := ok(m, "cluster", "list-tags"); out != "owner:ops\nrack:a1\n" {
		t.Errorf("cluster tags on the new master %s: %q", m.name, out)
	}
	if out := ok(m, "node", "list-tags", "node2"); out != "ssd\n" {
		t.Errorf("node2's tags on the new master %s: %q", m.name, out)
	}
	// The cluster's uuid and creation time are the first master's.
	infoAfter := ok(m, "cluster", "info")
	for _, label := range []string{"Cluster UUID: ", "Creation time: ", "Tags: "} {
		if a, b := lineOf(infoBefore, label), lineOf(infoAfter, label); a == "" || a != b {
			t.Errorf("%q before the failover, %q after", a, b)
		}
	}
	cm := m.client(t)
	if j, err := cm.Job(ctx, held); err != nil || j.Status != client.StatusQueued {
		t.Fatalf("the paused job on the new master: %+v %v", j, err)
	}
	var uuid string
	for _, line := range strings.Split(ok(m, "filter", "list", "--no-headers", "-o", "uuid,action"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "PAUSE" {
			uuid = f[0]
		}
	}
	ok(m, "filter", "delete", uuid)
	if st, err := cm.WatchJob(ctx, held, func(client.LogEntry) error { return nil }); err != nil || st != client.StatusSuccess {
		t.Fatalf("the job once the filter is gone: %v %v", st, err)
	}
}

// settingsFiles reads a node's agreed settings.
func settingsFiles(t *testing.T, n *cnode) map[string][]byte {
	t.Helper()
	dir := filepath.Join(n.dir, "cluster", "settings")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// lineOf is the line of text that starts with prefix, or "".
func lineOf(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func names(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
