package daemon

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/fence"
	"github.com/jobq-dev/jobq/internal/metrics"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/replica"
	"github.com/jobq-dev/jobq/internal/restricted"
	"github.com/jobq-dev/jobq/internal/settings"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/luxi"
	"github.com/jobq-dev/jobq/opcodes"
)

// nodeRT is one jobqd: it always holds the queue directory (a replica of
// the master's), serves the node RPC and the LUXI socket, and runs the
// queue, its replication and RAPI while it is the master.
type nodeRT struct {
	o       Options
	log     *slog.Logger
	self    string
	keys    *noderpc.Keyring // the cluster certificate presented and those accepted
	st      *store.Store
	app     *replica.Applier
	client  *noderpc.Client
	metrics *metrics.Set
	// settings are the cluster-wide settings (filters, queue settings,
	// opcode definitions, schedules): agreed through the log in a
	// cluster.
	settings settings.Store
	hkOnce   sync.Once // the housekeeping's settings watched (housekeeping.go)

	changeMu sync.Mutex  // held while the master changes the configuration
	cryptoMu sync.Mutex  // held during a phase of a certificate renewal
	fence    fence.Fence // the executions masters ordered here, by epoch

	mu       sync.Mutex
	cfg      *cluster.Config
	master   *masterState        // nil: not (yet) running as master
	rep      *replica.Replicator // from the start of promote to the end of demote
	promoErr string              // why the master is not running (no quorum, ...)
	syncCh   chan struct{}
	kickCh   chan struct{}
	tokens   map[string]time.Time // hex SHA-256 of a join token's secret -> expiry
	// rapiListener is RAPI's listener opened at the start (listen), for
	// the first promote; nil once taken.
	rapiListener net.Listener
}

// takeRAPIListener returns the RAPI listener opened at the start, once.
func (n *nodeRT) takeRAPIListener() net.Listener {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.rapiListener
	n.rapiListener = nil
	return l
}

type masterState struct {
	q    *queue.Queue
	rep  *replica.Replicator
	rapi *rapiService
}

func (n *nodeRT) config() *cluster.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg
}

// queue is the running queue, nil when this node is not the master.
func (n *nodeRT) queue() *queue.Queue {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.master == nil {
		return nil
	}
	return n.master.q
}

func (n *nodeRT) kick() {
	select {
	case n.kickCh <- struct{}{}:
	default:
	}
}

// notifySync wakes everything waiting for a replication change.
func (n *nodeRT) notifySync() {
	n.mu.Lock()
	close(n.syncCh)
	n.syncCh = make(chan struct{})
	n.mu.Unlock()
}

func (n *nodeRT) syncChanged() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.syncCh
}

// notMaster is the answer to job calls on a node that is not the master.
func (n *nodeRT) notMaster() error {
	cfg := n.config()
	n.mu.Lock()
	why := n.promoErr
	n.mu.Unlock()
	if cfg.Master == n.self {
		if why == "" {
			why = "it is starting"
		}
		return luxi.NewError("OpPrereqError", fmt.Sprintf("This node is the master but does not accept jobs yet: %s", why), "wrong_state")
	}
	return luxi.NewError("OpPrereqError", fmt.Sprintf("This is not the master node, please connect to node %s", cfg.Master), "wrong_state")
}

func configPath(dataDir string) string { return filepath.Join(dataDir, "cluster.json") }

// loadConfig reads the data directory's cluster configuration (nil when
// there is none).
func loadConfig(dataDir string) (*cluster.Config, error) {
	p := configPath(dataDir)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the cluster configuration: %w", err)
	}
	var c cluster.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("cluster configuration %s is not valid JSON: %v", p, err)
	}
	// Written by an older jobqd: no serial, no pool size yet.
	if c.Serial == 0 {
		c.Serial = 1
	}
	if c.CandidatePoolSize == 0 {
		c.CandidatePoolSize = cluster.DefaultCandidatePoolSize
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster configuration %s: %v", p, err)
	}
	return &c, nil
}

func saveConfig(dataDir string, c *cluster.Config) error {
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := writeDurable(configPath(dataDir), append(b, '\n')); err != nil {
		return fmt.Errorf("cannot store the cluster configuration: %w", err)
	}
	return nil
}

// setConfig stores and adopts a newer configuration and lets the role
// loop follow it.
func (n *nodeRT) setConfig(c *cluster.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !c.Newer(n.cfg) {
		return nil
	}
	if err := saveConfig(n.o.DataDir, c); err != nil {
		return err
	}
	old := n.cfg
	n.cfg = c
	if n.rep != nil {
		// Running as master or waiting for a majority to start: the
		// majority follows the configuration (a node marked offline).
		n.rep.SetConfig(c)
	}
	if n.master != nil {
		_ = n.master.q.DeclareNodes(c.NodeNames()...)
	}
	// Whoever waits for the replicas (verify-queue --wait, the catch-up
	// loop) looks again: a node may count now.
	close(n.syncCh)
	n.syncCh = make(chan struct{})
	if old == nil || old.Master != c.Master || old.Epoch != c.Epoch {
		n.log.Info("cluster configuration changed", "master", c.Master, "epoch", c.Epoch, "serial", c.Serial)
	}
	n.kick()
	return nil
}

// clusterMetrics is the cluster state for the metrics.
func (n *nodeRT) clusterMetrics() metrics.ClusterState {
	st := metrics.ClusterState{Epoch: n.config().Epoch}
	n.mu.Lock()
	m := n.master
	n.mu.Unlock()
	if m == nil {
		return st
	}
	st.Master = true
	for _, p := range m.rep.Peers() {
		st.Replicas = append(st.Replicas, metrics.Replica{Node: p.Name, InSync: p.InSync, Reachable: p.UnreachableSince.IsZero(), Behind: p.Behind})
	}
	return st
}

// pushConfig sends the configuration to every other node, in parallel,
// and returns the failures by node.
func (n *nodeRT) pushConfig(ctx context.Context, c *cluster.Config) map[string]error {
	var mu sync.Mutex
	fails := map[string]error{}
	var wg sync.WaitGroup
	for _, nd := range c.Nodes {
		if nd.Name == n.self || !nd.Online {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := n.client.Config(cctx, nd.Address, &noderpc.ConfigRequest{Config: c})
			if err != nil {
				mu.Lock()
				fails[nd.Name] = err
				mu.Unlock()
				n.log.Warn("cannot send the cluster configuration to a node", "node", nd.Name, "err", err)
			}
		})
	}
	wg.Wait()
	return fails
}

// wantMaster: the configuration names this node and it has not voted for
// a newer epoch since.
func (n *nodeRT) wantMaster() bool {
	c := n.config()
	return c.Master == n.self && n.app.Voter().Epoch <= c.Epoch
}

// roleLoop runs the master's services while this node should be master
// and stops them when it should not, until ctx ends.
func (n *nodeRT) roleLoop(ctx context.Context) {
	for {
		want := n.wantMaster()
		n.mu.Lock()
		running := n.master != nil
		n.mu.Unlock()
		var retry <-chan time.Time
		switch {
		case want && !running:
			if err := n.promote(ctx); err != nil && ctx.Err() == nil && n.wantMaster() {
				n.log.Error("cannot run as master; trying again in 5s", "err", err)
				t := time.NewTimer(5 * time.Second)
				retry = t.C
			}
		case !want && running:
			n.demote()
		}
		select {
		case <-ctx.Done():
			n.demote()
			return
		case <-n.kickCh:
		case <-retry:
		}
	}
}

// promote starts replication, waits for a majority of the voters to hold
// the queue, then opens the queue and RAPI.
func (n *nodeRT) promote(ctx context.Context) error {
	cfg := n.config()
	if _, err := n.app.Observe(cfg.Epoch, n.self); err != nil {
		return err
	}
	start := int64(0)
	if pos := n.app.Position(); pos.Epoch == cfg.Epoch {
		// A batch may have reached peers but not our disk before a crash:
		// skip a number so that no number means two things.
		start = pos.Seq + 1
	}
	rep := replica.New(replica.Options{Self: n.self, Epoch: cfg.Epoch, StartSeq: start, QueueDir: n.st.Dir(),
		Client: n.client, Logger: n.log, OnChange: n.notifySync, Metrics: n.metrics,
		OnStale: func(epoch int64) {
			n.log.Warn("a node knows a newer epoch: this node is no longer the master", "epoch", epoch)
			_, _ = n.app.Observe(epoch, "")
			go n.learnConfig()
			n.kick()
		},
		BeforeResync: func(ctx context.Context, name, addr string) error {
			_, err := n.client.Config(ctx, addr, &noderpc.ConfigRequest{Config: n.config()})
			return err
		}}, cfg)
	n.st.SetReplicator(rep)
	n.mu.Lock()
	n.rep = rep
	n.mu.Unlock()
	fail := func(err error) error {
		n.st.SetReplicator(nil)
		rep.Stop()
		n.mu.Lock()
		n.rep = nil
		n.promoErr = err.Error()
		n.mu.Unlock()
		return err
	}
	for {
		ch := n.syncChanged()
		in, quorum := rep.InSync()
		if in >= quorum {
			break
		}
		n.mu.Lock()
		n.promoErr = fmt.Sprintf("only %d of the %d master candidates a majority needs hold the queue (mark lost nodes offline with 'jobq node modify NAME --offline yes')", in, quorum)
		n.mu.Unlock()
		n.log.Info("waiting for a majority of the master candidates", "in_sync", in, "quorum", quorum)
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-n.kickCh:
			// The configuration changed (a node marked offline changes
			// the majority) or a newer epoch appeared.
			if !n.wantMaster() {
				return fail(errors.New("no longer the master"))
			}
		case <-ch:
		}
	}
	rapiL := n.takeRAPIListener()
	q, err := queue.Open(queue.Config{Store: n.st, KeepStore: true, Registry: n.o.Registry, MaxRunning: n.o.MaxRunning,
		NodeName: n.self, NodeNames: cfg.NodeNames(), Logger: n.log, Metrics: n.metrics,
		Nodes: n, RestrictedDir: restrictedDir(n.o.DataDir)})
	if err != nil {
		if rapiL != nil {
			rapiL.Close()
		}
		return fail(err)
	}
	rs, err := startRAPI(n.o, rapiL, n.keys, q, n.config, n.replicationText, n.metrics, n.log)
	if err != nil {
		_ = q.Shutdown(context.Background())
		return fail(err)
	}
	n.mu.Lock()
	n.master = &masterState{q: q, rep: rep, rapi: rs}
	n.promoErr = ""
	n.mu.Unlock()
	n.startHousekeeping(q)
	n.log.Info("running as master", "epoch", cfg.Epoch, "nodes", len(cfg.Nodes), "quorum", cfg.Quorum())
	n.notifySync()
	return nil
}

// catchUpLoop runs while the node runs: whenever this node is the master
// (or waits for a majority to become it), it clears the catching-up mark
// of each replica the replicator has brought in sync, so that the node
// counts in majorities from then on. A node that holds nothing yet thus
// never makes the cluster wait for it.
func (n *nodeRT) catchUpLoop(ctx context.Context) {
	for {
		ch := n.syncChanged()
		n.markCaughtUp(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

func (n *nodeRT) markCaughtUp(ctx context.Context) {
	n.mu.Lock()
	rep, cfg := n.rep, n.cfg
	n.mu.Unlock()
	if rep == nil || cfg.Master != n.self {
		return
	}
	for _, p := range rep.Peers() {
		if nd, ok := cfg.Node(p.Name); !ok || !nd.Syncing || !p.InSync {
			continue
		}
		_, err := n.changeConfig(ctx, func(c *cluster.Config) (*cluster.Config, error) { return c.Synced(p.Name) })
		if err != nil {
			n.log.Debug("cannot mark a node caught up", "node", p.Name, "err", err)
			continue
		}
		n.log.Info("a node caught up with the queue and counts in majorities now", "node", p.Name)
	}
}

// demote stops the master's services: RAPI, the queue (running opcodes
// get a moment, then are interrupted: the next master ends them in
// error) and replication.
func (n *nodeRT) demote() {
	n.mu.Lock()
	m := n.master
	n.master = nil
	n.mu.Unlock()
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.o.ShutdownTimeout)
	defer cancel()
	m.rapi.stop(ctx)
	if err := m.q.Shutdown(ctx); err != nil {
		n.log.Warn("stopping the queue", "err", err)
	}
	n.st.SetReplicator(nil)
	m.rep.Stop()
	n.mu.Lock()
	n.rep = nil
	n.mu.Unlock()
	if err := n.app.ReloadPosition(); err != nil {
		n.log.Warn("cannot read the replication position", "err", err)
	}
	n.log.Info("stopped running as master")
	n.notifySync()
}

// learnConfig asks the other nodes for their configuration and adopts
// the newest (an old master that comes back finds the new one so).
func (n *nodeRT) learnConfig() {
	cfg := n.config()
	for _, nd := range cfg.Nodes {
		if nd.Name == n.self {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := n.client.State(ctx, nd.Address, &noderpc.StateRequest{})
		cancel()
		if err != nil || st.Config == nil || st.Config.Validate() != nil {
			continue
		}
		if st.Config.Newer(n.config()) {
			if err := n.setConfig(st.Config); err != nil {
				n.log.Warn("cannot adopt a newer configuration", "from", nd.Name, "err", err)
			}
		}
	}
}

func restrictedDir(dataDir string) string { return restricted.Dir(dataDir) }

// --- node RPC (noderpc.Handler) ---

type rpcHandler struct{ n *nodeRT }

func (h rpcHandler) Apply(ctx context.Context, req *noderpc.ApplyRequest) (*noderpc.ApplyReply, error) {
	n := h.n
	n.mu.Lock()
	m := n.master
	n.mu.Unlock()
	if m != nil && req.Master != n.self {
		if req.Epoch <= n.config().Epoch {
			return nil, &noderpc.Error{Code: noderpc.CodeStaleEpoch, Epoch: n.app.Voter().Epoch,
				Message: fmt.Sprintf("refused a write from %s of epoch %d: this node is the master of epoch %d", req.Master, req.Epoch, n.config().Epoch)}
		}
		// A master of a newer epoch exists: stop first, so that nothing we
		// write goes on replicating.
		if _, err := n.app.Observe(req.Epoch, req.Master); err != nil {
			return nil, err
		}
		n.demote()
		go n.learnConfig()
	}
	return n.app.Apply(req)
}

func (h rpcHandler) State(ctx context.Context, req *noderpc.StateRequest) (*noderpc.StateReply, error) {
	n := h.n
	live, arch, err := replica.Scan(n.st.Dir(), req.Archive, req.HashArchive)
	if err != nil {
		return nil, err
	}
	return &noderpc.StateReply{Node: n.self, Position: n.app.Position(), Voter: n.app.Voter(),
		Master: n.queue() != nil, Files: live, Archive: arch, Config: n.config()}, nil
}

func (h rpcHandler) Fetch(ctx context.Context, req *noderpc.FetchRequest) (*noderpc.FetchReply, error) {
	files, err := replica.ReadFiles(h.n.st.Dir(), req.Names)
	if err != nil {
		return nil, err
	}
	return &noderpc.FetchReply{Files: files}, nil
}

func (h rpcHandler) Vote(ctx context.Context, req *noderpc.VoteRequest) (*cluster.Ballot, error) {
	n := h.n
	cfg := n.config()
	if _, ok := cfg.Node(req.Candidate); !ok {
		return nil, &noderpc.Error{Code: noderpc.CodeRefused, Message: fmt.Sprintf("%s is not a node of this cluster", req.Candidate)}
	}
	n.mu.Lock()
	rep := n.rep
	n.mu.Unlock()
	if rep != nil && req.Epoch > n.app.Voter().Epoch {
		// This node is master and is about to vote for a newer epoch's
		// candidate: from now on nothing it writes may be acknowledged,
		// and the ballot's position must cover all that was.
		rep.Fence()
		n.log.Warn("voting for a newer epoch: this node stops acknowledging as master", "epoch", req.Epoch, "candidate", req.Candidate)
	}
	b, err := n.app.Vote(n.self, req)
	if err != nil {
		return nil, err
	}
	if b.Granted {
		n.log.Info("voted", "epoch", req.Epoch, "for", req.Candidate)
	}
	return b, nil
}

func (h rpcHandler) Config(ctx context.Context, req *noderpc.ConfigRequest) (*noderpc.ConfigReply, error) {
	n := h.n
	c := req.Config
	if c == nil {
		return nil, &noderpc.Error{Code: noderpc.CodeBadRequest, Message: "no configuration in the request"}
	}
	if err := c.Validate(); err != nil {
		return nil, &noderpc.Error{Code: noderpc.CodeBadRequest, Message: err.Error()}
	}
	if v := n.app.Voter(); c.Epoch < v.Epoch {
		return nil, &noderpc.Error{Code: noderpc.CodeStaleEpoch, Epoch: v.Epoch,
			Message: fmt.Sprintf("refused the configuration of epoch %d: this node has seen epoch %d", c.Epoch, v.Epoch)}
	}
	if c.Newer(n.config()) {
		// The configuration of an epoch names the master that won it.
		if err := n.app.Follow(c.Epoch, c.Master); err != nil {
			return nil, err
		}
		if err := n.setConfig(c); err != nil {
			return nil, err
		}
	}
	return &noderpc.ConfigReply{Config: n.config()}, nil
}

func (h rpcHandler) Join(ctx context.Context, req *noderpc.JoinRequest) (*noderpc.JoinReply, error) {
	return h.n.join(ctx, req)
}

func (h rpcHandler) Command(ctx context.Context, req *noderpc.CommandRequest) (*noderpc.CommandReply, error) {
	fctx, end, err := h.n.fenced(ctx, req.Epoch, "restricted command "+req.Command)
	if err != nil {
		return nil, err
	}
	defer end()
	ok, out := runRestricted(fctx, restrictedDir(h.n.o.DataDir), req.Command)
	if err := stoppedByFence(fctx, nil); err != nil {
		h.n.log.Warn("stopped a restricted command of a deposed master", "command", req.Command, "epoch", req.Epoch)
		return nil, err
	}
	return &noderpc.CommandReply{Success: ok, Output: out}, nil
}

func (h rpcHandler) Delay(ctx context.Context, req *noderpc.DelayRequest) error {
	if !(req.Seconds > 0) || req.Seconds > 7*24*3600 {
		return &noderpc.Error{Code: noderpc.CodeBadRequest, Message: fmt.Sprintf("delay of %g seconds is out of range", req.Seconds)}
	}
	fctx, end, err := h.n.fenced(ctx, req.Epoch, "delay")
	if err != nil {
		return err
	}
	defer end()
	return stoppedByFence(fctx, opcodes.Sleep(fctx, time.Duration(req.Seconds*float64(time.Second))))
}

// staleOrder refuses an order (what, e.g. "to purge the queue for X")
// from a master of an epoch older than this node has seen; nil if the
// order may be carried out.
func (n *nodeRT) staleOrder(master string, epoch int64, what string) error {
	v := n.app.Voter()
	if v.AcceptWrite(epoch, master) {
		return nil
	}
	return &noderpc.Error{Code: noderpc.CodeStaleEpoch, Epoch: v.Epoch,
		Message: fmt.Sprintf("refused %s of epoch %d: this node has seen epoch %d", what, epoch, v.Epoch)}
}

func (h rpcHandler) Purge(ctx context.Context, req *noderpc.PurgeRequest) error {
	n := h.n
	if err := n.staleOrder(req.Master, req.Epoch, "to purge the queue for "+req.Master); err != nil {
		return err
	}
	cfg := n.config()
	if cfg.Master == n.self || n.queue() != nil {
		return &noderpc.Error{Code: noderpc.CodeRefused, Message: "refused to purge the queue: this node is the master"}
	}
	for _, nd := range cfg.Replicas() {
		if nd.Name == n.self {
			return &noderpc.Error{Code: noderpc.CodeRefused, Message: "refused to purge the queue: this node is a master candidate, its queue is a replica"}
		}
	}
	live, arch, err := replica.Scan(n.st.Dir(), true, false)
	if err != nil {
		return err
	}
	var tickets []store.Ticket
	for _, f := range append(live, arch...) {
		if f.Name == "version" {
			continue
		}
		tickets = append(tickets, n.st.Remove(f.Name))
	}
	if err := waitAll(tickets); err != nil {
		return err
	}
	// No longer a replica: it claims nothing.
	if err := n.app.SetPosition(cluster.Position{}); err != nil {
		return err
	}
	n.log.Info("purged the queue: this node is no longer a master candidate", "files", len(tickets), "master", req.Master)
	return nil
}

// --- opcodes.Nodes for the queue ---

func (n *nodeRT) Known(name string) bool {
	_, ok := n.config().Node(name)
	return ok
}

func (n *nodeRT) nodeAddr(name string) (string, error) {
	nd, ok := n.config().Node(name)
	if !ok {
		return "", fmt.Errorf("node %s is not in the cluster", name)
	}
	if !nd.Online {
		return "", fmt.Errorf("node %s is offline", name)
	}
	return nd.Address, nil
}

func (n *nodeRT) RunCommand(ctx context.Context, name, command string) (bool, string, error) {
	epoch := n.config().Epoch
	if name == n.self {
		r, err := rpcHandler{n}.Command(ctx, &noderpc.CommandRequest{Command: command, Epoch: epoch})
		if err != nil {
			return false, "", err
		}
		return r.Success, r.Output, nil
	}
	addr, err := n.nodeAddr(name)
	if err != nil {
		return false, "", err
	}
	r, err := n.client.Command(ctx, addr, &noderpc.CommandRequest{Command: command, Epoch: epoch})
	if err != nil {
		return false, "", err
	}
	return r.Success, r.Output, nil
}

func (n *nodeRT) Delay(ctx context.Context, name string, d time.Duration) error {
	req := &noderpc.DelayRequest{Seconds: d.Seconds(), Epoch: n.config().Epoch}
	if name == n.self {
		return rpcHandler{n}.Delay(ctx, req)
	}
	addr, err := n.nodeAddr(name)
	if err != nil {
		return err
	}
	return n.client.Delay(ctx, addr, req)
}

// fenced starts an execution ordered by the master of epoch: refused if
// this node knows a newer epoch, stopped if it learns of one while it
// runs (package fence).
func (n *nodeRT) fenced(ctx context.Context, epoch int64, what string) (context.Context, func(), error) {
	fctx, end, err := n.fence.Begin(ctx, epoch)
	if err != nil {
		n.log.Warn("refused an execution ordered by a deposed master", "what", what, "err", err)
		return nil, nil, &noderpc.Error{Code: noderpc.CodeStaleEpoch, Epoch: n.fence.Newest(), Message: err.Error()}
	}
	return fctx, end, nil
}

// stoppedByFence turns the end of an execution the fence stopped into
// the stale-epoch refusal the deposed master gets.
func stoppedByFence(ctx context.Context, err error) error {
	var se *fence.StaleError
	if errors.As(context.Cause(ctx), &se) {
		return &noderpc.Error{Code: noderpc.CodeStaleEpoch, Epoch: se.Newest, Message: "stopped: " + se.Error()}
	}
	return err
}

// --- joining ---

const tokenPrefix = "jq1"

// newJoinToken makes a one-time token valid for ttl: "jq1.SECRET.FP",
// where FP is the cluster certificate's fingerprint, which the new node
// pins when it connects.
func (n *nodeRT) newJoinToken(ttl time.Duration) (string, time.Time, error) {
	if n.queue() == nil {
		return "", time.Time{}, n.notMaster()
	}
	if n.client == nil {
		return "", time.Time{}, errors.New("this node serves no node RPC (--rpc-addr), so no node can join it")
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return "", time.Time{}, err
	}
	s := hex.EncodeToString(secret)
	sum := sha256.Sum256([]byte(s))
	exp := time.Now().Add(ttl)
	n.mu.Lock()
	for k, e := range n.tokens {
		if time.Now().After(e) {
			delete(n.tokens, k)
		}
	}
	n.tokens[hex.EncodeToString(sum[:])] = exp
	n.mu.Unlock()
	return tokenPrefix + "." + s + "." + noderpc.Fingerprint(n.keys.Leaf()), exp, nil
}

func parseToken(tok string) (secret, fp string, err error) {
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix || len(parts[1]) != 48 || len(parts[2]) != 64 {
		return "", "", errors.New("the join token is malformed; get a new one with 'jobq cluster join-token' on the master")
	}
	return parts[1], parts[2], nil
}

// join is the master's side of a node joining.
func (n *nodeRT) join(ctx context.Context, req *noderpc.JoinRequest) (*noderpc.JoinReply, error) {
	refuse := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		n.log.Warn("refused a node joining", "node", req.Node, "address", req.Address, "reason", msg)
		return &noderpc.Error{Code: noderpc.CodeRefused, Message: msg}
	}
	if n.queue() == nil {
		return nil, refuse("this node is not the master; join through the master, %s", n.config().Master)
	}
	secret, _, err := parseToken(req.Token)
	if err != nil {
		return nil, refuse("%v", err)
	}
	sum := sha256.Sum256([]byte(secret))
	key := hex.EncodeToString(sum[:])
	n.mu.Lock()
	exp, ok := n.tokens[key]
	if ok {
		delete(n.tokens, key) // one use, even if the join fails below
	}
	n.mu.Unlock()
	if !ok {
		return nil, refuse("the join token is unknown or was used already; get a new one with 'jobq cluster join-token'")
	}
	if time.Now().After(exp) {
		return nil, refuse("the join token expired at %s; get a new one with 'jobq cluster join-token'", exp.Format(time.RFC3339))
	}
	if _, port, err := net.SplitHostPort(req.Address); err != nil || port == "0" {
		return nil, refuse("the new node's address %q is not HOST:PORT", req.Address)
	}
	n.changeMu.Lock()
	defer n.changeMu.Unlock()
	cfg := n.config()
	nc, err := cfg.AddNode(req.Node, req.Address)
	if err != nil {
		return nil, refuse("%v", err)
	}
	if self, _ := nc.Node(n.self); req.Via != "" && strings.HasPrefix(self.Address, ":") {
		for i := range nc.Nodes {
			if nc.Nodes[i].Name == n.self {
				nc.Nodes[i].Address = req.Via
			}
		}
	}
	if err := n.setConfig(nc); err != nil {
		return nil, err
	}
	go n.pushConfig(context.Background(), nc)
	certPEM, err := os.ReadFile(filepath.Join(n.o.DataDir, "cluster", clusterCertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(n.o.DataDir, "cluster", clusterKeyFile))
	if err != nil {
		return nil, err
	}
	n.log.Info("a node joined", "node", req.Node, "address", req.Address)
	return &noderpc.JoinReply{Config: nc, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// joinCluster is the new node's side: ask the node at addr to let us in,
// store the certificate and the configuration it gives.
func joinCluster(ctx context.Context, o Options, addr, token string, log *slog.Logger) (*cluster.Config, error) {
	if token == "" {
		return nil, errors.New("--join needs --token (or --token-file FILE, or $JOBQ_JOIN_TOKEN); get one with 'jobq cluster join-token' on the master")
	}
	_, fp, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	if host, _, err := net.SplitHostPort(o.RPCAddr); err != nil || host == "" || o.RPCAddr == "" {
		return nil, fmt.Errorf("--rpc-addr %q must name the address other nodes reach this node at (HOST:PORT) to join a cluster", o.RPCAddr)
	}
	c := noderpc.NewJoinClient(fp)
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := c.Join(cctx, addr, &noderpc.JoinRequest{Token: token, Node: o.NodeName, Address: o.RPCAddr, Via: addr})
	if err != nil {
		return nil, fmt.Errorf("cannot join the cluster at %s: %w", addr, err)
	}
	if r.Config == nil || r.Config.Validate() != nil {
		return nil, fmt.Errorf("the node at %s sent no valid cluster configuration", addr)
	}
	if _, ok := r.Config.Node(o.NodeName); !ok {
		return nil, fmt.Errorf("the node at %s did not add this node to the cluster", addr)
	}
	certFile, keyFile := ClusterCertPaths(o.DataDir)
	if err := os.MkdirAll(filepath.Dir(certFile), 0o750); err != nil {
		return nil, err
	}
	if err := writeDurableMode(keyFile, r.KeyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("cannot store the cluster key: %w", err)
	}
	if err := writeDurableMode(certFile, r.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("cannot store the cluster certificate: %w", err)
	}
	if err := saveConfig(o.DataDir, r.Config); err != nil {
		return nil, err
	}
	log.Info("joined the cluster", "cluster", r.Config.Name, "master", r.Config.Master, "via", addr)
	return r.Config, nil
}

// sortedNodes is the configuration's nodes by name.
func sortedNodes(c *cluster.Config) []cluster.Node {
	out := slices.Clone(c.Nodes)
	slices.SortFunc(out, func(a, b cluster.Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}
