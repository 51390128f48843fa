package consensus

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/testcert"
)

// The tests run every node in this process, each with its own node RPC
// server on 127.0.0.1 and its own directory, over real mutual-TLS streams.
// A node is "killed" by shutting its engine and server down and "started"
// again from the same directory and port. A partition closes the streams
// between two nodes and refuses new ones.

// testTiming is faster than the defaults but slow enough for two loaded
// cores under the race detector; the tests never rely on timing, only on
// what the nodes report.
var testTiming = Timing{Tick: 40 * time.Millisecond, HeartbeatTicks: 1, ElectionTicks: 10}

// waitLimit bounds every wait: a regression fails in seconds with a
// message rather than hanging.
const waitLimit = 30 * time.Second

// idQueue is a state machine that hands out job ids, as the queue does:
// each "submit" entry gets the next id, decided from the log alone.
type idQueue struct {
	mu     sync.Mutex
	jobs   map[int]string // id -> payload
	last   int
	notify func()
}

type qEntry struct {
	Op      string `json:"op"`
	Payload string `json:"payload"`
}

func (q *idQueue) Apply(e Entry) any {
	var ent qEntry
	if err := json.Unmarshal(e.Data, &ent); err != nil {
		return fmt.Errorf("bad entry: %w", err)
	}
	q.mu.Lock()
	var res any
	switch ent.Op {
	case "submit":
		q.last++
		q.jobs[q.last] = ent.Payload
		res = q.last
	}
	q.mu.Unlock()
	q.notify()
	return res
}

type qSnap struct {
	Jobs map[int]string `json:"jobs"`
	Last int            `json:"last"`
}

func (q *idQueue) Snapshot() ([]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return json.Marshal(qSnap{Jobs: q.jobs, Last: q.last})
}

func (q *idQueue) Restore(data []byte) error {
	var s qSnap
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	q.mu.Lock()
	q.jobs, q.last = s.Jobs, s.Last
	if q.jobs == nil {
		q.jobs = map[int]string{}
	}
	q.mu.Unlock()
	q.notify()
	return nil
}

func (q *idQueue) dump() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := make([]int, 0, len(q.jobs))
	for id := range q.jobs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%d=%s ", id, q.jobs[id])
	}
	return b.String()
}

func (q *idQueue) job(id int) (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.jobs[id]
	return p, ok
}

// testCluster is a set of nodes sharing a certificate and a network.
type testCluster struct {
	t      testing.TB
	cert   tls.Certificate
	timing Timing

	mu      sync.Mutex
	nodes   map[string]*testNode
	cut     map[[2]string]bool // ordered pair of names -> no traffic
	conns   map[[2]string][]net.Conn
	changed chan struct{} // closed at any apply or leadership change anywhere
}

type testNode struct {
	name string
	dir  string
	addr string
	srv  *noderpc.Server
	cli  *noderpc.Client
	node *Node
	fsm  *idQueue
	logs *strings.Builder
}

func newTestCluster(t testing.TB) *testCluster {
	c := &testCluster{
		t: t, cert: testcert.New(t, "jobq cluster"), timing: testTiming,
		nodes: map[string]*testNode{}, cut: map[[2]string]bool{},
		conns: map[[2]string][]net.Conn{}, changed: make(chan struct{}),
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("CONSENSUS_TEST_LOGS") != "" {
			for _, name := range sortedKeys(c.nodes) {
				t.Logf("log of %s:\n%s", name, c.nodes[name].logs.String())
			}
		}
		for _, n := range c.nodes {
			c.kill(n.name)
		}
	})
	return c
}

func (c *testCluster) poke() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *testCluster) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// waitUntil waits until cond holds, re-checking at every change in the
// cluster, and fails the test with what after waitLimit.
func (c *testCluster) waitUntil(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		ch := c.changes()
		var leaderChs []<-chan struct{}
		c.mu.Lock()
		for _, n := range c.nodes {
			if n.node != nil {
				leaderChs = append(leaderChs, n.node.Changed())
			}
		}
		c.mu.Unlock()
		if cond() {
			return
		}
		// Changes inside the engine that it does not report (a commit index
		// moving) are seen at the next heartbeat at the latest.
		tick := time.NewTimer(testTiming.Tick)
		anyLeader := make(chan struct{})
		stop := make(chan struct{})
		for _, lc := range leaderChs {
			go func() {
				select {
				case <-lc:
					select {
					case anyLeader <- struct{}{}:
					case <-stop:
					}
				case <-stop:
				}
			}()
		}
		select {
		case <-ch:
		case <-anyLeader:
		case <-tick.C:
		case <-deadline.C:
			close(stop)
			c.t.Fatalf("waited %v for %s; nodes: %s", waitLimit, what, c.describe())
		}
		close(stop)
		tick.Stop()
	}
}

func (c *testCluster) describe() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, name := range sortedKeys(c.nodes) {
		n := c.nodes[name]
		if n.node == nil {
			parts = append(parts, name+": down")
			continue
		}
		l := n.node.Leader()
		parts = append(parts, fmt.Sprintf("%s: %s term %d leader %q applied %d jobs [%s]", name, n.node.State(), n.node.Term(), l, n.node.AppliedIndex(), n.fsm.dump()))
	}
	return strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// start starts (or restarts) the node name from its directory.
func (c *testCluster) start(name string) *testNode { return c.open(name, false) }

func (c *testCluster) open(name string, bootstrap bool) *testNode {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[name]
	if n == nil {
		n = &testNode{name: name, dir: c.t.TempDir()}
		c.nodes[name] = n
	}
	c.mu.Unlock()
	if n.node != nil {
		c.t.Fatalf("%s is already running", name)
	}
	addr := n.addr
	if addr == "" {
		addr = testcert.LoopbackAddr()
	}
	l := testcert.Listen(c.t, addr)
	var err error
	c.mu.Lock()
	n.addr = l.Addr().String()
	c.mu.Unlock()
	n.logs = &strings.Builder{}
	level := slog.LevelInfo
	if os.Getenv("CONSENSUS_TEST_LOGS") == "debug" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: n.logs}, &slog.HandlerOptions{Level: level}))
	n.srv = noderpc.NewServer(c.cert, nil, logger)
	stream := n.srv.StreamListener(StreamName)
	go n.srv.Serve(l)
	n.cli = noderpc.NewClient(c.cert)
	if n.fsm == nil {
		n.fsm = &idQueue{jobs: map[int]string{}, notify: c.poke}
	} else {
		// A restart starts from nothing in memory: the engine restores
		// the last snapshot and replays the log.
		n.fsm = &idQueue{jobs: map[int]string{}, notify: c.poke}
	}
	self := name
	node, err := Open(Config{
		Dir: n.dir, Name: name, Addr: n.addr, Timing: c.timing, Bootstrap: bootstrap,
		Listener: stream,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return c.dial(ctx, self, addr)
		},
		FSM: n.fsm,
		Log: logger,
	})
	if err != nil {
		c.t.Fatalf("open %s: %v", name, err)
	}
	node.OnLeaderChange(func(LeaderChange) { c.poke() })
	c.mu.Lock()
	n.node = node
	c.mu.Unlock()
	return n
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// dial opens a stream from node from to addr unless they are cut apart.
func (c *testCluster) dial(ctx context.Context, from, addr string) (net.Conn, error) {
	c.mu.Lock()
	to := ""
	for _, n := range c.nodes {
		if n.addr == addr {
			to = n.name
		}
	}
	n := c.nodes[from]
	pair := [2]string{from, to}
	blocked := c.cut[pair]
	cli := n.cli
	c.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("cannot reach node at %s: partitioned", addr)
	}
	conn, err := cli.DialStream(ctx, addr, StreamName)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns[pair] = append(c.conns[pair], conn)
	c.mu.Unlock()
	return conn, nil
}

// partition cuts every node of group from every other node.
func (c *testCluster) partition(group ...string) {
	c.mu.Lock()
	in := map[string]bool{}
	for _, g := range group {
		in[g] = true
	}
	var toClose []net.Conn
	for a := range c.nodes {
		for b := range c.nodes {
			if a != b && in[a] != in[b] {
				c.cut[[2]string{a, b}] = true
				toClose = append(toClose, c.conns[[2]string{a, b}]...)
				delete(c.conns, [2]string{a, b})
			}
		}
	}
	c.mu.Unlock()
	for _, conn := range toClose {
		conn.Close()
	}
}

func (c *testCluster) heal() {
	c.mu.Lock()
	c.cut = map[[2]string]bool{}
	c.mu.Unlock()
}

// kill stops a node as abruptly as an in-process node can stop: no
// leadership transfer, connections dropped.
func (c *testCluster) kill(name string) {
	c.mu.Lock()
	n := c.nodes[name]
	c.mu.Unlock()
	if n == nil || n.node == nil {
		return
	}
	n.srv.Shutdown(context.Background())
	if err := n.node.Close(); err != nil {
		c.t.Logf("close %s: %v", name, err)
	}
	n.cli.Close()
	c.mu.Lock()
	for pair, cs := range c.conns {
		if pair[0] == name || pair[1] == name {
			for _, conn := range cs {
				conn.Close()
			}
			delete(c.conns, pair)
		}
	}
	n.node = nil
	c.mu.Unlock()
}

func (c *testCluster) node(name string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[name]; n != nil {
		return n.node
	}
	return nil
}

// leader is the running node that says it is the leader and whose view
// every running node in its partition shares, or "".
func (c *testCluster) leader(among ...string) string {
	found := ""
	for _, name := range among {
		n := c.node(name)
		if n == nil {
			continue
		}
		if n.IsLeader() {
			if found != "" {
				return "" // two claim it (one is stale): not settled yet
			}
			found = name
		}
	}
	return found
}

func (c *testCluster) waitLeader(among ...string) string {
	c.t.Helper()
	var l string
	c.waitUntil("a leader among "+strings.Join(among, ","), func() bool {
		l = c.leader(among...)
		return l != ""
	})
	return l
}

// submit proposes a job on node name and returns its id.
func (c *testCluster) submit(name, payload string) (int, error) {
	n := c.node(name)
	if n == nil {
		return 0, fmt.Errorf("%s is down", name)
	}
	data, _ := json.Marshal(qEntry{Op: "submit", Payload: payload})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := n.Apply(ctx, data)
	if err != nil {
		return 0, err
	}
	id, ok := res.(int)
	if !ok {
		return 0, fmt.Errorf("apply answered %v", res)
	}
	return id, nil
}

// submitOnLeader submits on whichever node leads among names, following
// leader changes, until one acknowledges.
func (c *testCluster) submitOnLeader(payload string, among ...string) int {
	c.t.Helper()
	var id int
	c.waitUntil("an acknowledged submission of "+payload, func() bool {
		l := c.leader(among...)
		if l == "" {
			return false
		}
		var err error
		id, err = c.submit(l, payload)
		if errors.Is(err, ErrOutcomeUnknown) {
			c.t.Fatalf("submission of %s on %s: %v (the test cannot tell whether to retry)", payload, l, err)
		}
		return err == nil
	})
	return id
}

// members is name:voter|learner of a node's configuration, sorted.
func members(t *testing.T, n *Node) string {
	t.Helper()
	var parts []string
	for _, m := range n.Members() {
		kind := "learner"
		if m.Voter {
			kind = "voter"
		}
		parts = append(parts, m.Name+":"+kind)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
