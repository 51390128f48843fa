package member

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/queuelog"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/internal/testcert"
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
	l := testcert.Listen(t, addr)
	var err error
	n.addr = l.Addr().String()
	n.srv = noderpc.NewServer(cert, nil, nil)
	stream := n.srv.StreamListener(consensus.StreamName)
	go n.srv.Serve(l)
	host, _, _ := net.SplitHostPort(n.addr)
	// Calls leave from the node's own address, so that a partition by
	// address cuts both ways.
	n.cli = noderpc.NewClientFrom(cert, net.ParseIP(host))
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
					return queuelog.ReadFiles(filepath.Join(o.dir, "queue"), names)
				}
			}
			return nil, fmt.Errorf("no master")
		},
		OpenQueue: func(st *store.Store) (*queue.Queue, error) {
			return queue.Open(queue.Config{Store: st, KeepStore: true, NodeName: self})
		},
		// Long: a node that loses the leadership must not wait for it.
		ShutdownTimeout: time.Minute,
		Log:             slog.New(slog.NewTextHandler(&logSink{t: t, name: self}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// logSink writes a node's log to the test's log when MEMBER_TEST_LOGS is
// set.
type logSink struct {
	t    *testing.T
	name string
}

func (l *logSink) Write(p []byte) (int, error) {
	if os.Getenv("MEMBER_TEST_LOGS") != "" {
		l.t.Logf("%s: %s", l.name, strings.TrimSpace(string(p)))
	}
	return len(p), nil
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

// Membership churn under submissions: nodes are killed and restarted,
// marked offline and online (demoted and promoted), removed and joined
// again with an empty directory, while four clients submit to whoever
// runs the queue. Every acknowledged job is on the last master with its
// contents and no id is handed out twice.
func TestMembershipChurnLosesNothing(t *testing.T) {
	cert := testcert.New(t, "jobq cluster")
	names := []string{"a", "b", "c", "d", "e"}
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
	waitFor(t, "three voters", func() bool { return voters(nodes["a"]) == "a,b,c" })

	var mu sync.Mutex
	acked := map[int64]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	master := func() *tnode {
		mu.Lock()
		defer mu.Unlock()
		for _, name := range names {
			if n := nodes[name]; n.m != nil && n.m.Queue() != nil {
				return n
			}
		}
		return nil
	}
	for c := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := master()
				if m == nil {
					time.Sleep(10 * time.Millisecond) // between masters: a client retries
					continue
				}
				q := m.m.Queue()
				if q == nil {
					// The master opens its queue: a client retries
					// (without spinning, which would starve the
					// election on a loaded machine).
					time.Sleep(10 * time.Millisecond)
					continue
				}
				comment := fmt.Sprintf("c%d-%d", c, i)
				res, err := q.Submit([][]json.RawMessage{{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"comment":"` + comment + `"}`)}}, false)
				if err != nil || res[0].Err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mu.Lock()
				if prev, dup := acked[res[0].ID]; dup {
					t.Errorf("id %d handed out twice (%s, %s)", res[0].ID, prev, comment)
				}
				acked[res[0].ID] = comment
				mu.Unlock()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	progress := func(what string) {
		mu.Lock()
		base := len(acked)
		mu.Unlock()
		start := time.Now()
		waitFor(t, what+": 10 more acknowledged", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= base+10
		})
		t.Logf("%s: 10 more acknowledged after %v", what, time.Since(start).Round(time.Millisecond))
	}
	setOnline := func(name string, online bool) {
		waitFor(t, fmt.Sprintf("%s marked online=%v", name, online), func() bool {
			m := master()
			if m == nil {
				return false
			}
			c, err := m.m.Cluster()
			if err != nil || c == nil {
				return false
			}
			c = c.Clone()
			for i := range c.Nodes {
				if c.Nodes[i].Name == name {
					c.Nodes[i].Online = online
				}
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			return m.m.SetCluster(cctx, c) == nil
		})
	}
	down := func(n *tnode) {
		mu.Lock()
		m := n.m
		n.m = nil
		mu.Unlock()
		if m != nil {
			m.Close()
		}
		n.stop()
	}
	up := func(n *tnode) {
		mu.Lock()
		defer mu.Unlock()
		n.start(t, cert, false, nodes)
	}
	progress("start")
	// A voter dies and comes back.
	down(nodes["b"])
	progress("b down")
	up(nodes["b"])
	// The master dies; another takes over; it comes back.
	old := master()
	down(old)
	progress("master " + old.name + " down")
	up(old)
	// A voter is marked offline (demoted, d or e promoted), then online.
	setOnline("c", false)
	waitFor(t, "c no longer votes", func() bool { m := master(); return m != nil && !strings.Contains(voters(m), "c") })
	progress("c offline")
	setOnline("c", true)
	progress("c online")
	// A learner is removed and joins again with an empty directory.
	victim := ""
	waitFor(t, "a learner to remove", func() bool {
		m := master()
		if m == nil {
			return false
		}
		for _, mb := range m.m.Node().Members() {
			if !mb.Voter {
				victim = mb.Name
				return true
			}
		}
		return false
	})
	waitFor(t, "remove "+victim, func() bool {
		m := master()
		if m == nil {
			return false
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		return m.m.RemoveNode(cctx, victim) == nil
	})
	down(nodes[victim])
	nodes[victim].dir = t.TempDir()
	nodes[victim].addr = ""
	progress(victim + " removed")
	up(nodes[victim])
	waitFor(t, victim+" added again", func() bool {
		m := master()
		if m == nil {
			return false
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		return m.m.AddNode(cctx, victim, nodes[victim].addr) == nil
	})
	progress(victim + " back")
	// The pool of three voters is full again (the victim may have been
	// promoted between its choice and its removal: another takes its
	// place), so that the master's death leaves a majority.
	waitFor(t, "three voters", func() bool {
		m := master()
		return m != nil && len(strings.Split(voters(m), ",")) == 3
	})
	// The master dies once more.
	old = master()
	down(old)
	progress("master " + old.name + " down again")

	m := master()
	mu.Lock()
	got := map[int64]string{}
	for id, c := range acked {
		got[id] = c
	}
	mu.Unlock()
	for id, comment := range got {
		rows, err := m.m.Queue().QueryJobs([]int64{id}, []string{"ops"})
		if err != nil || !strings.Contains(string(rows[0]), `"`+comment+`"`) {
			t.Fatalf("acknowledged job %d (%s) on the last master %s: %s %v", id, comment, m.name, rows[0], err)
		}
	}
	t.Logf("%d jobs acknowledged through the churn, all on the last master %s (voters %s)", len(got), m.name, voters(m))
}
