package replica

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/store"
)

// testNode is one node's data directory: its queue store and applier.
type testNode struct {
	name, addr string
	dataDir    string
	qdir       string
	st         *store.Store
	app        *Applier

	mu     sync.Mutex
	epochs []epochEvent // onEpoch calls
}

type epochEvent struct {
	epoch int64
	who   string
	voter cluster.Voter // the voter record on disk when told
}

// durableWrite writes a file by a temporary file and a rename, as the
// daemon's writeDurable does (without its syncs: the tests do not crash
// the machine).
func durableWrite(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// newNode makes a data directory DIR with DIR/queue (the store) and
// DIR/cluster, and an applier over it. files are put in the queue
// directory before the store opens.
func newNode(t *testing.T, name string, files map[string]string, opts ...store.Option) *testNode {
	t.Helper()
	n := &testNode{name: name, addr: name + ":1811", dataDir: t.TempDir()}
	n.qdir = filepath.Join(n.dataDir, "queue")
	if err := os.MkdirAll(filepath.Join(n.dataDir, "cluster"), 0o750); err != nil {
		t.Fatal(err)
	}
	writeTree(t, n.qdir, files)
	n.open(t, opts...)
	return n
}

// open opens the store and an applier over it.
func (n *testNode) open(t *testing.T, opts ...store.Option) {
	t.Helper()
	st, err := store.Open(n.qdir, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n.st = st
	n.app, err = NewApplier(n.dataDir, st, durableWrite, n.onEpoch)
	if err != nil {
		t.Fatal(err)
	}
}

func (n *testNode) onEpoch(epoch int64, who string) {
	v, _ := LoadVoter(n.dataDir)
	n.mu.Lock()
	n.epochs = append(n.epochs, epochEvent{epoch, who, v})
	n.mu.Unlock()
}

func (n *testNode) epochEvents() []epochEvent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.epochs)
}

// write writes a queue file through the store and waits for it.
func (n *testNode) write(name, content string) error {
	return n.st.Write(name, []byte(content)).Wait()
}

// files are the node's queue files (relative name -> content), the lock
// and temporary files left out.
func (n *testNode) files(t *testing.T) map[string]string {
	t.Helper()
	return readTree(t, n.qdir)
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() == "lock" || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameFiles fails the test unless both nodes' queues are equal byte for
// byte.
func sameFiles(t *testing.T, want, got *testNode) {
	t.Helper()
	w, g := want.files(t), got.files(t)
	var diffs []string
	for name, c := range w {
		gc, ok := g[name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: missing on %s", name, got.name))
		case gc != c:
			diffs = append(diffs, fmt.Sprintf("%s: %q on %s, %q on %s", name, c, want.name, gc, got.name))
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only on %s", name, got.name))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Fatalf("the queues of %s and %s differ:\n%s", want.name, got.name, strings.Join(diffs, "\n"))
	}
}

// applyHook decides the fate of one Apply call to a node: deliver it
// (err nil), fail it before delivery (deliver false: the node never sees
// it), or deliver it and lose the reply (deliver true, err set). It may
// block, and must then give up when ctx ends.
type applyHook func(ctx context.Context, req *noderpc.ApplyRequest) (deliver bool, err error)

// stateHook may fail (or block) a State call before it reaches the node.
type stateHook func(ctx context.Context) error

// delivered is one Apply request that reached a node, with its outcome.
type delivered struct {
	req noderpc.ApplyRequest
	pos cluster.Position // the reply's position
	err error            // the node's answer, if an error
}

func (d delivered) String() string {
	kind := "batch"
	switch {
	case d.req.ResyncStart && d.req.ResyncEnd:
		kind = "resync"
	case d.req.ResyncStart:
		kind = "resync-start"
	case d.req.ResyncEnd:
		kind = "resync-end"
	case d.req.Resync:
		kind = "resync-chunk"
	}
	s := fmt.Sprintf("%s %d/%d-%d (%d changes)", kind, d.req.Epoch, d.req.FirstSeq, d.req.LastSeq, len(d.req.Changes))
	if d.err != nil {
		s += " -> " + d.err.Error()
	} else {
		s += " -> " + d.pos.String()
	}
	return s
}

// fakeNet is a replica.Caller that routes calls to the appliers of
// testNodes in this process, through JSON as on the wire, with hooks to
// fail, block or drop them.
type fakeNet struct {
	mu    sync.Mutex
	nodes map[string]*testNode // by address
	apply map[string]applyHook
	state map[string]stateHook
	log   map[string][]delivered // by address
	ev    *events                // told of every delivery
}

func newFakeNet(ev *events, nodes ...*testNode) *fakeNet {
	f := &fakeNet{nodes: map[string]*testNode{}, apply: map[string]applyHook{}, state: map[string]stateHook{},
		log: map[string][]delivered{}, ev: ev}
	for _, n := range nodes {
		f.nodes[n.addr] = n
	}
	return f
}

// add routes addr to n (nil: nothing answers there).
func (f *fakeNet) add(addr string, n *testNode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n == nil {
		delete(f.nodes, addr)
		return
	}
	f.nodes[addr] = n
}

func (f *fakeNet) setApply(n *testNode, h applyHook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.apply, n.addr)
		return
	}
	f.apply[n.addr] = h
}

func (f *fakeNet) setState(n *testNode, h stateHook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.state, n.addr)
		return
	}
	f.state[n.addr] = h
}

// delivered lists the Apply requests that reached n.
func (f *fakeNet) delivered(n *testNode) []delivered {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log[n.addr])
}

var errUnreachable = errors.New("connection refused")

// roundTrip copies v through JSON as the node RPC would.
func roundTrip[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}

// wireError is an error as the client gets it back: a *noderpc.Error.
func wireError(err error) error {
	var e *noderpc.Error
	if errors.As(err, &e) {
		return roundTrip(e)
	}
	return &noderpc.Error{Code: noderpc.CodeInternal, Message: err.Error()}
}

func (f *fakeNet) Apply(ctx context.Context, addr string, req *noderpc.ApplyRequest) (*noderpc.ApplyReply, error) {
	f.mu.Lock()
	n, h := f.nodes[addr], f.apply[addr]
	f.mu.Unlock()
	if n == nil {
		return nil, fmt.Errorf("apply to %s: %w", addr, errUnreachable)
	}
	deliver, herr := true, error(nil)
	if h != nil {
		deliver, herr = h(ctx, req)
	}
	if !deliver {
		return nil, herr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The server checks the names before the handler sees them.
	for _, c := range req.Changes {
		if err := noderpc.ValidQueueName(c.Name); err != nil {
			return nil, &noderpc.Error{Code: noderpc.CodeBadRequest, Message: err.Error()}
		}
		if c.Dst != "" {
			if err := noderpc.ValidQueueName(c.Dst); err != nil {
				return nil, &noderpc.Error{Code: noderpc.CodeBadRequest, Message: err.Error()}
			}
		}
	}
	in := roundTrip(req)
	rep, err := n.app.Apply(in)
	d := delivered{req: *in, err: err}
	if err != nil {
		err = wireError(err)
		rep = nil
	} else {
		rep = roundTrip(rep)
		d.pos = rep.Position
	}
	f.mu.Lock()
	f.log[addr] = append(f.log[addr], d)
	f.mu.Unlock()
	f.ev.notify()
	if herr != nil {
		return nil, herr // delivered, but the answer is lost
	}
	return rep, err
}

func (f *fakeNet) State(ctx context.Context, addr string, req *noderpc.StateRequest) (*noderpc.StateReply, error) {
	f.mu.Lock()
	n, h := f.nodes[addr], f.state[addr]
	f.mu.Unlock()
	if n == nil {
		return nil, fmt.Errorf("state of %s: %w", addr, errUnreachable)
	}
	if h != nil {
		if err := h(ctx); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req = roundTrip(req)
	live, arch, err := Scan(n.qdir, req.Archive, req.HashArchive)
	if err != nil {
		return nil, wireError(err)
	}
	rep := &noderpc.StateReply{Node: n.name, Position: n.app.Position(), Voter: n.app.Voter(), Files: live, Archive: arch}
	f.ev.notify()
	return roundTrip(rep), nil
}

// gate blocks the calls a hook picks until released: every blocked call
// is announced on reached.
type gate struct {
	reached chan *noderpc.ApplyRequest
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{reached: make(chan *noderpc.ApplyRequest, 100), open: make(chan struct{})}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// wait blocks the call until the gate opens or the caller gives up.
func (g *gate) wait(ctx context.Context, req *noderpc.ApplyRequest) error {
	g.reached <- req
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hold returns a hook that blocks the Apply calls for which pick is true
// until g is released, and delivers every call.
func (g *gate) hold(pick func(req *noderpc.ApplyRequest) bool) applyHook {
	return func(ctx context.Context, req *noderpc.ApplyRequest) (bool, error) {
		if pick(req) {
			if err := g.wait(ctx, req); err != nil {
				return false, err
			}
		}
		return true, nil
	}
}

// holdState returns a State hook that blocks every call until g opens.
func (g *gate) holdState() stateHook {
	return func(ctx context.Context) error { return g.wait(ctx, nil) }
}

func isResync(req *noderpc.ApplyRequest) bool { return req.Resync }
func isBatch(req *noderpc.ApplyRequest) bool  { return !req.Resync }

// failWith is a hook failing every call with err before delivery.
func failWith(err error) applyHook {
	return func(context.Context, *noderpc.ApplyRequest) (bool, error) { return false, err }
}

// events is a broadcast of "something changed": the replicator's
// OnChange and every delivery of the fake network.
type events struct {
	mu     sync.Mutex
	ch     chan struct{}
	onFail func(t *testing.T) // tells what it knows when a wait fails
}

func newEvents() *events { return &events{ch: make(chan struct{})} }

func (e *events) notify() {
	e.mu.Lock()
	close(e.ch)
	e.ch = make(chan struct{})
	e.mu.Unlock()
}

// waitFor waits until cond holds, checking it at every event. It fails
// the test only if the test's deadline comes first (a hang, not a timing
// assertion).
func (e *events) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	guard := time.Minute
	if d, ok := t.Deadline(); ok {
		guard = max(time.Until(d)-5*time.Second, time.Second)
	}
	timer := time.NewTimer(guard)
	defer timer.Stop()
	for {
		e.mu.Lock()
		ch := e.ch
		e.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			if e.onFail != nil {
				e.onFail(t)
			}
			t.Fatalf("never happened: %s", what)
		}
	}
}

// receive waits for a value on ch, like waitFor.
func receive[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	guard := time.Minute
	if d, ok := t.Deadline(); ok {
		guard = max(time.Until(d)-5*time.Second, time.Second)
	}
	timer := time.NewTimer(guard)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("never happened: %s", what)
	}
	panic("unreachable")
}

// testCluster is a master with a replicator over its store and peers
// reached through a fakeNet.
type testCluster struct {
	t      *testing.T
	ev     *events
	net    *fakeNet
	master *testNode
	peers  map[string]*testNode
	cfg    *cluster.Config
	r      *Replicator

	mu    sync.Mutex
	stale []int64 // OnStale calls
}

type clusterOpts struct {
	epoch    int64
	startSeq int64
	// no replicator is started when noStart is set (call start).
	noStart bool
	// hooks installed before the replicator starts
	apply map[string]applyHook
	state map[string]stateHook
}

// newCluster makes a cluster of master "m" and the given peers, all
// voters, epoch 1 (unless set).
func newCluster(t *testing.T, master *testNode, peers []*testNode, o clusterOpts) *testCluster {
	t.Helper()
	if o.epoch == 0 {
		o.epoch = 1
	}
	ev := newEvents()
	c := &testCluster{t: t, ev: ev, master: master, peers: map[string]*testNode{}}
	c.net = newFakeNet(ev, append([]*testNode{master}, peers...)...)
	ev.onFail = func(t *testing.T) {
		if c.r != nil {
			t.Logf("seq %d, peers %+v", c.r.Seq(), c.r.Peers())
		}
		for _, p := range peers {
			t.Logf("requests to %s:\n%s", p.name, logString(c.net.delivered(p)))
		}
	}
	cfg := cluster.NewConfig(master.name, master.addr)
	cfg.Epoch = o.epoch
	for _, p := range peers {
		c.peers[p.name] = p
		var err error
		if cfg, err = cfg.AddNode(p.name, p.addr); err != nil {
			t.Fatal(err)
		}
		if cfg, err = cfg.Synced(p.name); err != nil {
			t.Fatal(err)
		}
	}
	c.cfg = cfg
	for name, h := range o.apply {
		c.net.setApply(c.peers[name], h)
	}
	for name, h := range o.state {
		c.net.setState(c.peers[name], h)
	}
	// The master's applier knows its own epoch, as promote does.
	if _, err := master.app.Observe(o.epoch, master.name); err != nil {
		t.Fatal(err)
	}
	if !o.noStart {
		c.start(o.startSeq)
	}
	return c
}

func (c *testCluster) start(startSeq int64) {
	c.r = New(Options{Self: c.master.name, Epoch: c.cfg.Epoch, StartSeq: startSeq, QueueDir: c.master.qdir,
		Client: c.net, CallTimeout: time.Minute, OnChange: c.ev.notify,
		OnStale: func(epoch int64) {
			c.mu.Lock()
			c.stale = append(c.stale, epoch)
			c.mu.Unlock()
			c.ev.notify()
		}}, c.cfg)
	c.master.st.SetReplicator(c.r)
	c.t.Cleanup(c.stop)
}

func (c *testCluster) stop() {
	c.master.st.SetReplicator(nil)
	c.r.Stop()
}

func (c *testCluster) staleCalls() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.stale)
}

func (c *testCluster) peer(name string) (PeerState, bool) {
	for _, p := range c.r.Peers() {
		if p.Name == name {
			return p, true
		}
	}
	return PeerState{}, false
}

// waitCaughtUp waits until the named peers are in sync and have
// acknowledged every batch begun.
func (c *testCluster) waitCaughtUp(names ...string) {
	c.t.Helper()
	c.ev.waitFor(c.t, strings.Join(names, ", ")+" caught up", func() bool {
		seq := c.r.Seq()
		for _, n := range names {
			p, ok := c.peer(n)
			if !ok || !p.InSync || p.Position != (cluster.Position{Epoch: c.cfg.Epoch, Seq: seq}) {
				return false
			}
		}
		return true
	})
}

// resyncs counts the resyncs completed on n (answered ResyncEnd).
func (c *testCluster) resyncs(n *testNode) int {
	k := 0
	for _, d := range c.net.delivered(n) {
		if d.req.ResyncEnd && d.err == nil {
			k++
		}
	}
	return k
}

// checkOrder fails unless the normal batches n applied after its last
// resync follow each other without a gap.
func checkOrder(t *testing.T, log []delivered) {
	t.Helper()
	var last *cluster.Position
	for _, d := range log {
		if d.err != nil {
			last = nil
			continue
		}
		if d.req.Resync {
			if d.req.ResyncEnd {
				p := d.pos
				last = &p
			} else {
				last = nil
			}
			continue
		}
		if last == nil || d.req.FirstSeq != last.Seq+1 || d.req.Epoch != last.Epoch {
			t.Fatalf("batch %v does not follow %v; log:\n%s", d, last, logString(log))
		}
		p := d.pos
		last = &p
	}
}

func logString(log []delivered) string {
	var b bytes.Buffer
	for _, d := range log {
		fmt.Fprintln(&b, d)
	}
	return b.String()
}
