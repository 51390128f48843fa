package member

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/testbin"
	"github.com/jobq-dev/jobq/internal/testcert"
)

// cut drops every packet between the address of a and those of others
// (testbin.Partition), until heal or the end of the test.
func cut(t *testing.T, a *tnode, others ...*tnode) (heal func()) {
	t.Helper()
	host := func(n *tnode) string { h, _, _ := strings.Cut(n.addr, ":"); return h }
	var hosts []string
	for _, o := range others {
		hosts = append(hosts, host(o))
	}
	return testbin.Partition(t, host(a), hosts...)
}

// A master cut off from the others by the network (iptables) stops
// running the queue within about an election timeout and acknowledges
// nothing more; the two others elect a master that has every job; after
// healing, the old master follows and the three queue directories are
// identical byte for byte.
func TestPartitionedMaster(t *testing.T) {
	cert := testcert.New(t, "jobq cluster")
	names := []string{"a", "b", "c"}
	nodes := map[string]*tnode{}
	for _, name := range names {
		nodes[name] = &tnode{name: name, dir: t.TempDir()}
		t.Cleanup(func() { nodes[name].stop() })
	}
	nodes["a"].start(t, cert, true, nodes)
	waitFor(t, "a runs the queue", func() bool { return nodes["a"].m.Queue() != nil })
	cfg := cluster.NewConfig("a", nodes["a"].addr)
	for _, name := range names[1:] {
		cfg.Nodes = append(cfg.Nodes, cluster.Node{Name: name, Candidate: true, Online: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := nodes["a"].m.SetCluster(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, name := range names[1:] {
		nodes[name].start(t, cert, false, nodes)
		if err := nodes["a"].m.AddNode(ctx, name, nodes[name].addr); err != nil {
			t.Fatal(err)
		}
	}
	a := nodes["a"]
	waitFor(t, "three voters", func() bool { return voters(a) == "a,b,c" })
	submit := func(n *tnode) (int64, error) { return submitOp(n, `{"OP_ID":"OP_TEST_DELAY","duration":0.001}`) }
	for range 10 {
		if _, err := submit(a); err != nil {
			t.Fatal(err)
		}
	}
	long, err := submitOp(a, `{"OP_ID":"OP_TEST_DELAY","duration":3600}`)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the long job runs", func() bool {
		rows, err := a.m.Queue().QueryJobs([]int64{long}, []string{"status"})
		return err == nil && string(rows[0]) == `["running"]`
	})
	q := a.m.Queue()
	heal := cut(t, a, nodes["b"], nodes["c"])
	cutAt := time.Now()
	// A submission to the cut-off master is not acknowledged.
	if _, err := submit(a); err == nil {
		t.Fatal("the cut-off master acknowledged a submission")
	}
	// It stops at once, its running opcode interrupted (the shutdown
	// timeout of a minute is for a node that stops while it leads).
	waitFor(t, "the cut-off master stops its queue", func() bool { return a.m.Queue() == nil && a.m.stopped() })
	stepped := time.Since(cutAt)
	if res, err := q.Submit([][]json.RawMessage{{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)}}, false); err == nil && res[0].Err == nil {
		t.Fatalf("the old master's queue acknowledged job %d after stepping down", res[0].ID)
	}
	var next *tnode
	waitFor(t, "b or c runs the queue", func() bool {
		for _, name := range []string{"b", "c"} {
			if nodes[name].m.Queue() != nil {
				next = nodes[name]
				return true
			}
		}
		return false
	})
	for range 5 {
		if _, err := submit(next); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := next.m.Queue().QueryJobs([]int64{long}, []string{"status", "opresult"})
	if err != nil || !strings.Contains(string(rows[0]), "Unclean master shutdown") {
		t.Fatalf("the job that ran on the cut-off master, on the new one: %s %v", rows[0], err)
	}
	heal()
	waitFor(t, "a follows "+next.name+" and the queues are identical", func() bool {
		return a.m.Node().Leader() == next.name && sameDirs(t, a, nodes["b"], nodes["c"]) == ""
	})
	if d := sameDirs(t, a, nodes["b"], nodes["c"]); d != "" {
		t.Fatal(d)
	}
	t.Logf("the cut-off master stopped its queue %v after the cut (election timeout %v)", stepped.Round(time.Millisecond), 10*40*time.Millisecond)
}

// sameDirs compares the queue directories byte for byte ("" if equal).
func sameDirs(t *testing.T, ns ...*tnode) string {
	t.Helper()
	read := func(dir string) map[string]string {
		files := map[string]string{}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() == "lock" || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			files[rel] = string(b)
			return nil
		})
		return files
	}
	ref := read(filepath.Join(ns[0].dir, "queue"))
	for _, n := range ns[1:] {
		got := read(filepath.Join(n.dir, "queue"))
		if len(got) != len(ref) {
			return fmt.Sprintf("%s has %d files, %s %d", n.name, len(got), ns[0].name, len(ref))
		}
		for f, data := range ref {
			if got[f] != data {
				return fmt.Sprintf("%s differs between %s and %s", f, ns[0].name, n.name)
			}
		}
	}
	return ""
}

func submitOp(n *tnode, op string) (int64, error) {
	q := n.m.Queue()
	if q == nil {
		return 0, fmt.Errorf("%s runs no queue", n.name)
	}
	res, err := q.Submit([][]json.RawMessage{{json.RawMessage(op)}}, false)
	if err != nil {
		return 0, err
	}
	return res[0].ID, res[0].Err
}
