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
	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/declared"
	"github.com/jobq-dev/jobq/internal/durable"
	"github.com/jobq-dev/jobq/internal/execute"
	"github.com/jobq-dev/jobq/internal/fence"
	"github.com/jobq-dev/jobq/internal/member"
	"github.com/jobq-dev/jobq/internal/metrics"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/queuelog"
	"github.com/jobq-dev/jobq/internal/restricted"
	"github.com/jobq-dev/jobq/internal/settings"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/luxi"
	"github.com/jobq-dev/jobq/opcodes"
)

// nodeRT is one jobqd: a member of the cluster's Raft group (package
// member) whose state machine is the queue directory and the cluster-wide
// settings. Every node holds the queue as the log makes it; the node the
// group elects leader is the master: it runs the queue and RAPI.
type nodeRT struct {
	o       Options
	log     *slog.Logger
	self    string
	addr    string // this node's node RPC address ("local" without node RPC)
	keys    *noderpc.Keyring
	st      *store.Store
	client  *noderpc.Client
	srv     *noderpc.Server
	metrics *metrics.Set
	auth    *authz    // who may make administrative calls (authz.go)
	hkOnce  sync.Once // the housekeeping's settings watched (housekeeping.go)

	changeMu sync.Mutex        // one membership or configuration change at a time
	filterMu sync.Mutex        // held while the master changes the job filters
	cryptoMu sync.Mutex        // held during a phase of a certificate renewal
	fence    fence.Fence       // the executions masters ordered here, by term
	opdefs   *declared.Catalog // the declared opcodes (opdefs.go)
	cgroups  execute.Cgroups   // where declared opcodes' programs and restricted commands are contained ("": process groups)

	// settings are the cluster-wide settings (filters, queue settings,
	// opcode definitions, schedules), agreed through the log: the current
	// member's, with watchers that outlive a member (a forced new
	// cluster).
	settings *clusterSettings

	mu     sync.Mutex
	mem    *member.Member
	group  string               // the Raft group's name (group file)
	boot   *cluster.Config      // agreed at the first leadership when no configuration is
	known  *cluster.Config      // the configuration before the log's (join reply, cluster.json)
	master *masterState         // nil: not running as master
	tokens map[string]time.Time // hex SHA-256 of a join token's secret -> expiry
	// rapiListener is RAPI's listener opened at the start (listen), for
	// the first leadership; nil once taken.
	rapiListener net.Listener
	opened       chan struct{} // closed and replaced at each attempt to open the queue
	openErr      error         // the last attempt's failure

	// Job calls handed to the master (forward.go): the client to it, the
	// server of the calls other nodes hand this one and its listener.
	fwd    forwarder
	fwdSrv *luxi.Server
	fwdL   net.Listener
	// front owns RAPI's listener, relaying to the master while this node
	// is not (rapifront.go); nil: RAPI is off.
	front *rapiFront
}

func (n *nodeRT) member() *member.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mem
}

func (n *nodeRT) raft() *consensus.Node { return n.member().Node() }

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
	term int64
	rapi *rapiService
}

// config is the agreed cluster configuration (before the first one is
// applied here: what the join or the start knew).
func (n *nodeRT) config() *cluster.Config {
	if m := n.member(); m != nil {
		if c, err := m.Cluster(); err == nil && c != nil {
			return c
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.known != nil {
		return n.known
	}
	if n.boot != nil {
		return n.boot
	}
	return cluster.NewConfig(n.self, n.cfgAddr())
}

// cfgAddr is this node's address as the configuration records it: ""
// without node RPC.
func (n *nodeRT) cfgAddr() string {
	if n.addr == "local" {
		return ""
	}
	return n.addr
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

// leader is the master as this node knows it ("" when none is elected).
func (n *nodeRT) leader() string {
	if m := n.member(); m != nil {
		return m.Node().Leader()
	}
	return ""
}

// notMaster is the answer to the calls only the master serves (cluster
// changes) on a node that does not run the queue, and to job calls that
// found no master to take them (forward.go).
func (n *nodeRT) notMaster() error {
	switch l := n.leader(); {
	case l == n.self:
		return luxi.NoMasterError(luxi.MasterStartingPrefix + ": it is starting")
	case l != "":
		return luxi.NewError("OpPrereqError", fmt.Sprintf("This is not the master node, please connect to node %s", l), "wrong_state")
	}
	return luxi.NoMasterError(luxi.NoMasterPrefix + ": this node does not reach a majority of the voters; see 'jobq node list' and bring voters back (or, when they are lost for good, 'jobq cluster master-failover --no-voting --yes-do-it')")
}

func configPath(dataDir string) string { return filepath.Join(dataDir, "cluster.json") }

// loadConfig reads the data directory's cluster configuration as a
// release before the Raft log wrote it (nil when there is none).
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

// Files of the cluster directory.
func raftDir(dataDir string) string     { return filepath.Join(dataDir, "cluster", "raft") }
func groupFile(dataDir string) string   { return filepath.Join(dataDir, "cluster", "group") }
func settingsDir(dataDir string) string { return filepath.Join(dataDir, "cluster", "settings") }

// snapshotPending marks a log bootstrapped over a queue that existed
// before it: its first leader takes a snapshot that drops the log, so
// that nodes added later get those files.
func snapshotPending(dataDir string) string {
	return filepath.Join(dataDir, "cluster", "snapshot-pending")
}

func readGroup(dataDir string) (string, error) {
	b, err := os.ReadFile(groupFile(dataDir))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func newGroup() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// upgradeGroup is the group of a cluster made before the Raft log: the
// same on every node of it, from the cluster's name.
func upgradeGroup(c *cluster.Config) string {
	sum := sha256.Sum256([]byte("jobq-upgrade:" + c.Name))
	return hex.EncodeToString(sum[:8])
}

// streamName is the noderpc stream of group's Raft messages.
func streamName(group string) string { return consensus.StreamName + "-" + group }

// startMember starts this node's member of group (bootstrap: a new group
// of this node alone, when the directory holds no state).
func (n *nodeRT) startMember(group string, bootstrap bool) error {
	var l net.Listener
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return nil, errors.New("this node serves no node RPC (--rpc-addr off)")
	}
	if n.srv != nil {
		l = n.srv.StreamListener(streamName(group))
		client := n.client
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return client.DialStream(ctx, addr, streamName(group))
		}
	} else {
		l = newIdleListener()
	}
	m, err := member.Start(member.Config{
		Dir: filepath.Join(n.o.DataDir, "cluster"), Name: n.self, Addr: n.addr, Store: n.st,
		Bootstrap: bootstrap, Listener: l, Dial: dial,
		Fetch:           n.fetchFromMaster,
		OpenQueue:       n.openQueue,
		StopQueue:       n.stopQueue,
		ShutdownTimeout: n.o.ShutdownTimeout,
		Log:             n.log,
	})
	if err != nil {
		l.Close()
		return err
	}
	m.Node().OnLeaderChange(func(lc consensus.LeaderChange) {
		if lc.Leader == "" {
			return
		}
		// A master of this term exists: executions that older masters
		// ordered here stop.
		if stopped := n.fence.Observe(int64(lc.Term)); stopped > 0 {
			n.log.Warn("a newer master exists: stopped the executions older masters ordered here", "term", lc.Term, "stopped", stopped)
		}
		if !lc.Self {
			n.log.Info("cluster configuration changed", "master", lc.Leader, "epoch", lc.Term)
		}
	})
	m.Watch(n.settings.changed)
	m.Watch(func(key string, value []byte) {
		if key != member.ClusterSetting {
			return
		}
		if q := n.queue(); q != nil {
			var c cluster.Config
			if json.Unmarshal(value, &c) == nil {
				_ = q.DeclareNodes(c.NodeNames()...)
			}
		}
	})
	n.mu.Lock()
	n.mem, n.group = m, group
	n.mu.Unlock()
	n.serveForwarded(group)
	n.serveRAPIStreams(group)
	return nil
}

// fetchFromMaster reads queue files from the master (a snapshot being
// restored here).
//
// A node that starts from a snapshot knows no member before it is
// restored: it asks the master the configuration names (the join's). A
// master that does not answer is asked again for up to a minute (the
// engine stops if the restore fails).
func (n *nodeRT) fetchFromMaster(ctx context.Context, names []string) ([]noderpc.Change, error) {
	if n.client == nil {
		return nil, errors.New("this node serves no node RPC (--rpc-addr off)")
	}
	deadline := time.Now().Add(time.Minute)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		var addrs []string
		if m := n.member(); m != nil {
			if a := m.Node().LeaderAddr(); a != "" {
				addrs = append(addrs, a)
			}
		}
		c := n.config()
		if nd, ok := c.Node(c.Master); ok && nd.Address != "" && c.Master != n.self {
			addrs = append(addrs, nd.Address)
		}
		err := errors.New("no master to fetch the queue from")
		for _, addr := range addrs {
			var r *noderpc.FetchReply
			if r, err = n.client.Fetch(ctx, addr, &noderpc.FetchRequest{Names: names}); err == nil {
				return r.Files, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		n.log.Warn("cannot fetch the queue files of a snapshot from the master; trying again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// openQueue is what this node does when it starts leading (member calls
// it after every entry of earlier terms is applied): agree the
// configuration that names it master, then open the queue and RAPI.
func (n *nodeRT) openQueue(st *store.Store) (*queue.Queue, error) {
	q, err := n.openQueue1(st)
	n.mu.Lock()
	n.openErr = err
	close(n.opened)
	n.opened = make(chan struct{})
	n.mu.Unlock()
	if err != nil {
		n.log.Error("cannot run as master", "err", err)
	}
	return q, err
}

func (n *nodeRT) openQueue1(st *store.Store) (*queue.Queue, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := n.member()
	if m == nil {
		// Elected before startMember recorded the member: the member
		// tries again at its next tick.
		return nil, errors.New("this node's member is starting")
	}
	rn := m.Node()
	term := int64(rn.Term())
	start := time.Now()
	n.changeMu.Lock()
	c, err := n.takeOffice(ctx, m, term)
	n.changeMu.Unlock()
	office := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("cannot record this node as master: %w", err)
	}
	if _, err := os.Stat(snapshotPending(n.o.DataDir)); err == nil {
		if err := rn.SnapshotAll(ctx); err != nil {
			return nil, fmt.Errorf("cannot take the first snapshot of the queue: %w", err)
		}
		if err := durable.Remove(snapshotPending(n.o.DataDir)); err != nil {
			return nil, err
		}
		n.log.Info("took the first snapshot of the queue: nodes added from now on start from it")
	}
	n.ensureMembers(ctx, c)
	n.fence.Observe(term)
	n.mu.Lock()
	front := n.front
	n.mu.Unlock()
	var rapiL net.Listener
	if front != nil {
		rapiL = front.serveLocal()
	} else {
		rapiL = n.takeRAPIListener()
	}
	if rapiL == nil && !off(n.o.RAPIAddr) {
		if rapiL, err = listenRAPI(n.o.RAPIAddr); err != nil {
			return nil, err
		}
	}
	_, filters := n.loadFilters()
	n.loadDeclared()
	loadStart := time.Now()
	q, err := queue.Open(queue.Config{Store: st, KeepStore: true, Registry: n.o.Registry, MaxRunning: n.maxRunning(), Filters: filters,
		IdempotencyWindow: n.idempotencyWindow(), Limits: n.o.JobLimits, MaxLogEntries: n.o.MaxLogEntries,
		NodeName: n.self, NodeNames: c.NodeNames(), Logger: n.log, Metrics: n.metrics,
		Nodes: n, RestrictedDir: restrictedDir(n.o.DataDir)})
	load := time.Since(loadStart)
	if err != nil {
		if rapiL != nil {
			rapiL.Close()
		}
		return nil, err
	}
	rs, err := startRAPI(n.o, rapiL, n.keys, q, rapiFilters{n: n, q: q}, n.rapiLUXI, n.config, n.replicationText, n.metrics, n.log, n.webOpcodes)
	if err != nil {
		_ = q.Shutdown(context.Background())
		return nil, err
	}
	n.mu.Lock()
	n.master = &masterState{q: q, term: term, rapi: rs}
	n.mu.Unlock()
	// A change of the filters while the queue opened was not handed to it.
	_, filters = n.loadFilters()
	q.SetFilters(filters)
	q.SetMaxRunning(n.maxRunning())
	n.startHousekeeping(q)
	n.ensureIdentity(ctx)
	// How long the parts took (after the member's barrier): agreeing the
	// configuration that names it master, loading the queue.
	n.log.Info("running as master", "epoch", term, "nodes", len(c.Nodes),
		"office", office.Round(time.Microsecond), "load", load.Round(time.Microsecond), "took", time.Since(start).Round(time.Microsecond))
	return q, nil
}

// takeOffice agrees the configuration naming this node master of term:
// the first one when the log has none (a new cluster, an upgrade, a
// forced one), this node's address repaired in a one-node cluster.
func (n *nodeRT) takeOffice(ctx context.Context, m *member.Member, term int64) (*cluster.Config, error) {
	c, err := m.Cluster()
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	boot := n.boot
	n.mu.Unlock()
	switch {
	case boot != nil:
		// The first configuration of a new group (an upgrade, a forced
		// new cluster): it replaces what the settings held.
		serial := boot.Serial
		if c != nil {
			serial = max(serial, c.Serial)
		}
		c = boot.Clone()
		c.Serial = serial + 1
	case c == nil:
		c = cluster.NewConfig(n.self, n.cfgAddr())
	default:
		c = c.Clone()
		c.Serial++
	}
	c.Master, c.Epoch = n.self, term
	for i := range c.Nodes {
		if nd := &c.Nodes[i]; nd.Name == n.self && len(c.Nodes) == 1 && nd.Address != n.cfgAddr() {
			// A one-node cluster: its address follows --rpc-addr.
			n.log.Info("this node's address changed", "from", nd.Address, "to", n.cfgAddr())
			nd.Address = n.cfgAddr()
			if err := m.Node().SetAddr(ctx, n.self, n.addr); err != nil {
				return nil, err
			}
		}
	}
	if err := m.SetCluster(ctx, c); err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.boot == boot {
		n.boot = nil
	}
	n.mu.Unlock()
	return c, nil
}

// ensureMembers adds every node of the configuration that is not a member
// of the group (the nodes of a cluster upgraded from before the log; a
// join cut short between its two steps).
func (n *nodeRT) ensureMembers(ctx context.Context, c *cluster.Config) {
	m := n.member()
	have := map[string]bool{}
	for _, mb := range m.Node().Members() {
		have[mb.Name] = true
	}
	for _, nd := range c.Nodes {
		if have[nd.Name] || nd.Address == "" {
			continue
		}
		if err := m.AddNode(ctx, nd.Name, nd.Address); err != nil {
			n.log.Warn("cannot add a node of the configuration to the group", "node", nd.Name, "err", err)
			continue
		}
		n.log.Info("added a node of the configuration to the group; it catches up from the log", "node", nd.Name, "address", nd.Address)
		n.snapshotFor(ctx, nd.Name)
	}
}

// snapshotFor takes a snapshot after the node name was added: a node
// refuses a snapshot that does not name it as a member, so one taken
// before it joined cannot start it when the log before it is dropped.
func (n *nodeRT) snapshotFor(ctx context.Context, name string) {
	if err := n.raft().Snapshot(ctx); err != nil {
		n.log.Warn("cannot take a snapshot for a new node; it waits for the next one", "node", name, "err", err)
	}
}

// stopQueue is called before the queue is shut down (this node stops
// leading, or stops): RAPI goes first.
func (n *nodeRT) stopQueue(q *queue.Queue) {
	n.mu.Lock()
	ms := n.master
	if ms != nil && ms.q == q {
		n.master = nil
	}
	n.mu.Unlock()
	if ms != nil && ms.rapi != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ms.rapi.stop(ctx)
		cancel()
	}
}

// clusterMetrics is the cluster state for the metrics.
func (n *nodeRT) clusterMetrics() metrics.ClusterState {
	rn := n.raft()
	st := metrics.ClusterState{Epoch: int64(rn.Term()), LeaderChanges: rn.LeaderChanges()}
	if n.queue() == nil {
		return st
	}
	st.Master = true
	commit := rn.CommitIndex()
	for _, mb := range rn.Members() {
		if mb.Name == n.self {
			continue
		}
		match := rn.Match(mb.Name)
		behind := int64(0)
		if match < commit {
			behind = int64(commit - match)
		}
		st.Replicas = append(st.Replicas, metrics.Replica{Node: mb.Name, InSync: behind == 0, Behind: behind})
	}
	return st
}

func restrictedDir(dataDir string) string { return restricted.Dir(dataDir) }

// --- node RPC (noderpc.Handler) ---

type rpcHandler struct{ n *nodeRT }

func (h rpcHandler) State(ctx context.Context, req *noderpc.StateRequest) (*noderpc.StateReply, error) {
	n := h.n
	if err := n.st.Flush(); err != nil {
		return nil, err
	}
	live, arch, err := queuelog.Scan(n.st.Dir(), req.Archive, req.HashArchive)
	if err != nil {
		return nil, err
	}
	return &noderpc.StateReply{Node: n.self, Master: n.queue() != nil, Files: live, Archive: arch, Config: n.config()}, nil
}

func (h rpcHandler) Fetch(ctx context.Context, req *noderpc.FetchRequest) (*noderpc.FetchReply, error) {
	if err := h.n.st.Flush(); err != nil {
		return nil, err
	}
	files, err := queuelog.ReadFiles(h.n.st.Dir(), req.Names)
	if err != nil {
		return nil, err
	}
	return &noderpc.FetchReply{Files: files}, nil
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
	ok, out := h.n.runRestricted(fctx, restrictedDir(h.n.o.DataDir), req.Command)
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

// staleOrder refuses an order (what) from a master of a term older than
// this node has seen a master of; nil if the order may be carried out.
func (n *nodeRT) staleOrder(master string, epoch int64, what string) error {
	if newest := n.fence.Newest(); epoch < newest {
		return &noderpc.Error{Code: noderpc.CodeStaleEpoch, Epoch: newest,
			Message: fmt.Sprintf("refused %s of epoch %d: this node has seen epoch %d", what, epoch, newest)}
	}
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

// term is the term this node runs the queue in (0 when it does not).
func (n *nodeRT) term() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.master == nil {
		return 0
	}
	return n.master.term
}

func (n *nodeRT) RunCommand(ctx context.Context, name, command string) (bool, string, error) {
	req := &noderpc.CommandRequest{Command: command, Epoch: n.term()}
	if name == n.self {
		r, err := rpcHandler{n}.Command(ctx, req)
		if err != nil {
			return false, "", err
		}
		return r.Success, r.Output, nil
	}
	addr, err := n.nodeAddr(name)
	if err != nil {
		return false, "", err
	}
	r, err := n.client.Command(ctx, addr, req)
	if err != nil {
		return false, "", err
	}
	return r.Success, r.Output, nil
}

func (n *nodeRT) Delay(ctx context.Context, name string, d time.Duration) error {
	req := &noderpc.DelayRequest{Seconds: d.Seconds(), Epoch: n.term()}
	if name == n.self {
		return rpcHandler{n}.Delay(ctx, req)
	}
	addr, err := n.nodeAddr(name)
	if err != nil {
		return err
	}
	return n.client.Delay(ctx, addr, req)
}

// fenced starts an execution ordered by the master of epoch (its term):
// refused if this node knows a newer master, stopped if it learns of one
// while it runs, and begun only once the executions of older masters have
// ended (package fence).
func (n *nodeRT) fenced(ctx context.Context, epoch int64, what string) (context.Context, func(), error) {
	fctx, end, err := n.fence.Begin(ctx, epoch)
	var stopping *fence.StoppingError
	if errors.As(err, &stopping) {
		// Executions an older master ordered here are still ending: the
		// new master's work waits for them, not alongside them.
		n.log.Warn("an execution waited for those of an older master to end, in vain", "what", what, "err", err)
		return nil, nil, &noderpc.Error{Code: noderpc.CodeInternal, Message: err.Error()}
	}
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

// join is the master's side of a node joining: the node enters the
// configuration and the group (as a learner: the master promotes it once
// it holds the log, if the cluster wants it to vote).
func (n *nodeRT) join(ctx context.Context, req *noderpc.JoinRequest) (*noderpc.JoinReply, error) {
	refuse := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		n.log.Warn("refused a node joining", "node", req.Node, "address", req.Address, "reason", msg)
		return &noderpc.Error{Code: noderpc.CodeRefused, Message: msg}
	}
	if n.queue() == nil {
		master := n.leader()
		if master == "" {
			master = "no master is elected now"
		}
		return nil, refuse("this node is not the master; join through the master (%s)", master)
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
	m := n.member()
	cfg := n.config()
	nc, err := cfg.AddNode(req.Node, req.Address)
	if err != nil {
		return nil, refuse("%v", err)
	}
	for _, mb := range m.Node().Members() {
		if mb.Name != req.Node && consensus.ID(mb.Name) == consensus.ID(req.Node) {
			return nil, refuse("the name %s collides with node %s's in the cluster's log; choose another --node-name", req.Node, mb.Name)
		}
	}
	for i := range nc.Nodes {
		if nd := &nc.Nodes[i]; nd.Name == n.self && req.Via != "" && strings.HasPrefix(nd.Address, ":") {
			// Listening on every interface: the new node reached this
			// one at Via, which the others will use too.
			nd.Address = req.Via
			if err := m.Node().SetAddr(ctx, n.self, req.Via); err != nil {
				return nil, err
			}
		}
	}
	if err := m.SetCluster(ctx, nc); err != nil {
		return nil, err
	}
	if err := m.AddNode(ctx, req.Node, req.Address); err != nil {
		return nil, err
	}
	n.snapshotFor(ctx, req.Node)
	certPEM, err := os.ReadFile(filepath.Join(n.o.DataDir, "cluster", clusterCertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(n.o.DataDir, "cluster", clusterKeyFile))
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	group := n.group
	n.mu.Unlock()
	n.log.Info("a node joined", "node", req.Node, "address", req.Address)
	return &noderpc.JoinReply{Config: nc, CertPEM: certPEM, KeyPEM: keyPEM, Group: group}, nil
}

// joinCluster is the new node's side: ask the node at addr to let us in,
// store the certificate and the group it gives; the configuration comes
// with the log.
func joinCluster(ctx context.Context, o Options, addr, token string, log *slog.Logger) (*noderpc.JoinReply, error) {
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
	if r.Group == "" {
		return nil, fmt.Errorf("the node at %s runs a jobqd without the Raft log; upgrade it first", addr)
	}
	certFile, keyFile := ClusterCertPaths(o.DataDir)
	if err := durable.MkdirAll(filepath.Dir(certFile), 0o750); err != nil {
		return nil, err
	}
	if err := writeDurableMode(keyFile, r.KeyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("cannot store the cluster key: %w", err)
	}
	if err := writeDurableMode(certFile, r.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("cannot store the cluster certificate: %w", err)
	}
	if err := writeDurable(groupFile(o.DataDir), []byte(r.Group+"\n")); err != nil {
		return nil, err
	}
	log.Info("joined the cluster", "cluster", r.Config.Name, "master", r.Config.Master, "via", addr)
	return r, nil
}

// sortedNodes is the configuration's nodes by name.
func sortedNodes(c *cluster.Config) []cluster.Node {
	out := slices.Clone(c.Nodes)
	slices.SortFunc(out, func(a, b cluster.Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// idleListener is the Raft stream listener of a node without node RPC:
// nothing ever connects.
type idleListener struct {
	once sync.Once
	done chan struct{}
}

func newIdleListener() *idleListener { return &idleListener{done: make(chan struct{})} }

func (l *idleListener) Accept() (net.Conn, error) {
	<-l.done
	return nil, net.ErrClosed
}

func (l *idleListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *idleListener) Addr() net.Addr { return idleAddr{} }

type idleAddr struct{}

func (idleAddr) Network() string { return "none" }
func (idleAddr) String() string  { return "none" }

// clusterSettings is settings.Store over the node's current member.
type clusterSettings struct {
	n        *nodeRT
	mu       sync.Mutex
	watchers []func(key string, value []byte)
}

var _ settings.Store = (*clusterSettings)(nil)

func (s *clusterSettings) Get(key string) []byte {
	if m := s.n.member(); m != nil {
		return m.Get(key)
	}
	return nil
}

func (s *clusterSettings) Set(ctx context.Context, key string, value []byte) error {
	m := s.n.member()
	if m == nil || s.n.queue() == nil {
		return s.n.notMaster()
	}
	return m.Set(ctx, key, value)
}

func (s *clusterSettings) Watch(fn func(key string, value []byte)) {
	s.mu.Lock()
	s.watchers = append(append([]func(string, []byte){}, s.watchers...), fn)
	s.mu.Unlock()
}

// changed passes a setting applied by the member to the watchers.
func (s *clusterSettings) changed(key string, value []byte) {
	s.mu.Lock()
	ws := s.watchers
	s.mu.Unlock()
	for _, fn := range ws {
		fn(key, value)
	}
}
