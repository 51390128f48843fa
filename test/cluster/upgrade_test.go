package cluster

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// The data directories in testdata/release-before-raft were made by the
// last release before the Raft log (commit c667fcd): a one-node cluster
// (jobs 2 and 3 done, job 1 archived) and a three-node cluster on
// 127.0.0.11-13:1821x (jobs 1 and 2 done, every queue identical).

// copyTree copies the fixture src to a new directory.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o640)
		if strings.HasSuffix(p, "key.pem") {
			mode = 0o600
		}
		return os.WriteFile(to, b, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestUpgradeOneNode: a one-node data directory of the release before the
// Raft log starts: its jobs, the archived one too, are there, the next id
// follows them, and it starts again from its log.
func TestUpgradeOneNode(t *testing.T) {
	n := &cnode{name: "node1", addr: "off", dir: copyTree(t, "testdata/release-before-raft/single")}
	n.start(t)
	if !n.d.WaitLog("upgrading the cluster to the Raft log") {
		t.Fatalf("no upgrade in the log:\n%s", n.d.Logs())
	}
	ctx := context.Background()
	c := n.client(t)
	for _, id := range []int64{1, 2, 3} {
		j, err := c.Job(ctx, id)
		if err != nil || j.Status != client.StatusSuccess {
			t.Fatalf("job %d after the upgrade: %+v %v", id, j, err)
		}
	}
	if id, err := c.SubmitJob(ctx, delay(time.Millisecond)); err != nil || id != 4 {
		t.Fatalf("the first job after the upgrade: id %d, %v", id, err)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "cluster.json.before-raft")); err != nil {
		t.Errorf("the old configuration was not set aside: %v", err)
	}
	if err := n.d.Stop(); err != nil {
		t.Fatal(err)
	}
	n.start(t)
	if strings.Contains(n.d.Logs(), "upgrading") {
		t.Errorf("upgraded twice:\n%s", n.d.Logs())
	}
	submitAndFinish(t, n.client(t), 1)
}

// TestUpgradeThreeNodes: the three nodes of a cluster of the release
// before the Raft log start in any order: the old master starts the log
// with its queue and adds the others, which start from its snapshot and
// vote once they hold it; every queue is the same, the next id follows,
// and a failover keeps every job.
func TestUpgradeThreeNodes(t *testing.T) {
	var nodes []*cnode
	for i, addr := range []string{"127.0.0.11:18211", "127.0.0.12:18212", "127.0.0.13:18213"} {
		name := "node" + string(rune('1'+i))
		nodes = append(nodes, &cnode{name: name, addr: addr, dir: copyTree(t, "testdata/release-before-raft/n"+string(rune('1'+i)))})
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	// A node that is not the old master first: it waits to be added.
	n3.start(t)
	n1.start(t)
	n2.start(t)
	waitMaster(t, n1)
	waitVoters(t, n1, "node1", "node2", "node3")
	waitInSync(t, n1)
	sameFiles(t, n1, n2, n3)
	// The release before held Ganeti's ten candidates, which nothing
	// could change: in the log the pool (the voters) is Raft's five.
	if p := clusterInfo(t, n1).Pool; p != 5 {
		t.Errorf("candidate_pool_size after the upgrade: %d, want 5", p)
	}
	c1 := n1.client(t)
	ctx := context.Background()
	id, err := c1.SubmitJob(ctx, delay(time.Millisecond))
	if err != nil || id != 3 {
		t.Fatalf("the first job after the upgrade: id %d, %v", id, err)
	}
	if st, err := c1.WatchJob(ctx, id, func(client.LogEntry) error { return nil }); err != nil || st != client.StatusSuccess {
		t.Fatalf("job %d: %v %v", id, st, err)
	}
	n1.d.Kill()
	m := waitMaster(t, n2, n3)
	cm := m.client(t)
	for _, id := range []int64{1, 2, 3} {
		if j, err := cm.Job(ctx, id); err != nil || j.Status != client.StatusSuccess {
			t.Fatalf("job %d on %s after the failover: %+v %v", id, m.name, j, err)
		}
	}
}
