package member

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/replica"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/internal/testcert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type tnode struct {
	name, dir, addr string
	srv             *noderpc.Server
	cli             *noderpc.Client
	st              *store.Store
	m               *Member
}

func (n *tnode) start(t *testing.T, cert tls.Certificate, bootstrap bool, nodes map[string]*tnode) {
	t.Helper()
	addr := n.addr
	if addr == "" {
		addr = testcert.LoopbackAddr()
	}
	var l net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port of a node just stopped
	}
	if err != nil {
		t.Fatal(err)
	}
	n.addr = l.Addr().String()
	n.srv = noderpc.NewServer(cert, nil, nil)
	stream := n.srv.StreamListener(consensus.StreamName)
	go n.srv.Serve(l)
	n.cli = noderpc.NewClient(cert)
	if n.st, err = store.Open(filepath.Join(n.dir, "queue"), nil); err != nil {
		t.Fatal(err)
	}
	cli := n.cli
	self := n.name
	n.m, err = Start(Config{
		Dir: filepath.Join(n.dir, "cluster"), Name: n.name, Addr: n.addr, Store: n.st,
		Bootstrap: bootstrap, Timing: consensus.Timing{Tick: 40 * time.Millisecond}, Pool: 3,
		Listener: stream,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return cli.DialStream(ctx, addr, consensus.StreamName)
		},
		Fetch: func(ctx context.Context, names []string) ([]noderpc.Change, error) {
			for _, o := range nodes {
				if o.name != self && o.m != nil && o.m.Node().IsLeader() {
					return replica.ReadFiles(filepath.Join(o.dir, "queue"), names)
				}
			}
			return nil, fmt.Errorf("no master")
		},
		OpenQueue: func(st *store.Store) (*queue.Queue, error) {
			return queue.Open(queue.Config{Store: st, KeepStore: true, NodeName: self})
		},
		ShutdownTimeout: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (n *tnode) stop() {
	if n.m != nil {
		n.m.Close()
		n.m = nil
	}
	if n.srv != nil {
		n.srv.Shutdown(context.Background())
		n.srv = nil
	}
	if n.cli != nil {
		n.cli.Close()
		n.cli = nil
	}
	if n.st != nil {
		n.st.Close()
		n.st = nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func voters(n *tnode) string {
	var out []string
	for _, mb := range n.m.Node().Members() {
		if mb.Voter {
			out = append(out, mb.Name)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// A cluster grows from one node: the others join as learners and the
// master makes them voters once they have caught up, up to the pool; the
// master runs the queue; when it dies another node runs the same queue;
// when it comes back it follows.
func TestGrowFailOverReturn(t *testing.T) {
	cert := testcert.New(t, "jobq cluster")
	names := []string{"a", "b", "c", "d"}
	nodes := map[string]*tnode{}
	for _, name := range names {
		nodes[name] = &tnode{name: name, dir: t.TempDir()}
		t.Cleanup(nodes[name].stop)
	}
	a := nodes["a"]
	a.start(t, cert, true, nodes)
	waitFor(t, "a runs the queue", func() bool { return a.m.Queue() != nil })
	cfg := cluster.NewConfig("a", a.addr)
	for _, name := range names[1:] {
		cfg.Nodes = append(cfg.Nodes, cluster.Node{Name: name, Candidate: true, Online: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.m.SetCluster(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, name := range names[1:] {
		nodes[name].start(t, cert, false, nodes)
		if err := a.m.AddNode(ctx, name, nodes[name].addr); err != nil {
			t.Fatal(err)
		}
	}
	// A pool of 3: a, b, c vote; d, a candidate beyond the pool, listens.
	waitFor(t, "a, b and c vote, d does not", func() bool { return voters(a) == "a,b,c" })
	for i := range 10 {
		res, err := a.m.Queue().Submit([][]json.RawMessage{{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)}}, false)
		if err != nil || res[0].Err != nil || res[0].ID != int64(i+1) {
			t.Fatalf("submit %d: %+v %v", i, res, err)
		}
	}
	for _, name := range []string{"b", "c", "d"} {
		if nodes[name].m.Queue() != nil {
			t.Fatalf("%s runs a queue while a leads", name)
		}
	}
	a.stop()
	var next *tnode
	waitFor(t, "another node runs the queue", func() bool {
		for _, name := range []string{"b", "c"} {
			if nodes[name].m.Queue() != nil {
				next = nodes[name]
				return true
			}
		}
		return false
	})
	rows, err := next.m.Queue().QueryJobs([]int64{10}, []string{"id"})
	if err != nil || string(rows[0]) != "[10]" {
		t.Fatalf("job 10 on the new master %s: %s %v", next.name, rows[0], err)
	}
	res, err := next.m.Queue().Submit([][]json.RawMessage{{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)}}, false)
	if err != nil || res[0].ID != 11 {
		t.Fatalf("the next job on %s: %+v %v", next.name, res, err)
	}
	// d never votes, so it cannot lead: only b or c can.
	if nodes["d"].m.Queue() != nil {
		t.Fatal("the learner d runs the queue")
	}
	a.start(t, cert, false, nodes)
	waitFor(t, "a follows and has job 11", func() bool {
		_, err := os.Stat(filepath.Join(a.dir, "queue", "job-11"))
		return err == nil && a.m.Node().Leader() == next.name
	})
	if a.m.Queue() != nil {
		t.Fatal("the old master runs a queue beside the new one")
	}
}
