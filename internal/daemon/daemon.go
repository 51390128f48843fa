// Package daemon wires a jobqd node together: the data directory, the
// cluster configuration, the queue store and engine, and the LUXI socket.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/durable"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/member"
	"github.com/jobq-dev/jobq/internal/metrics"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/paths"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/luxi"
	"github.com/jobq-dev/jobq/opcodes"
)

// Options are jobqd's settings.
type Options struct {
	DataDir string
	// MadeDataDir is the outermost directory of DataDir that the caller
	// created for this start (what MakeDataDir answered; "" for none): a
	// start that cannot listen removes it again.
	MadeDataDir string
	NodeName    string
	RPCAddr     string
	RAPIAddr    string // RAPI over HTTPS, HOST:PORT (port 0: any); "" or "off": none (rapi.go)
	// RAPIRequireAuth makes every RAPI request authenticate, reads
	// included (rapi.Config.RequireAuth).
	RAPIRequireAuth bool
	LUXISockets     []string // extra LUXI socket paths
	// MetricsAddr serves Prometheus metrics over plain HTTP without
	// authentication at HOST:PORT/metrics; "" or "off": not served (they
	// stay available on RAPI to its users).
	MetricsAddr     string
	MaxRunning      int
	ShutdownTimeout time.Duration
	// Join, with Token, joins the cluster whose node RPC listens at
	// HOST:PORT when the data directory holds no cluster yet.
	Join, Token string
	Registry    *opcodes.Registry
	Logger      *slog.Logger
	// Ready, when set, is called once the LUXI socket accepts connections.
	Ready func()
	// RAPIReady, when set, is called with RAPI's address once it accepts
	// connections (before Ready); it is not called when RAPI is off.
	RAPIReady func(addr net.Addr)
	// SocketGroup, when not empty, is the group given the LUXI sockets
	// (and DataDir, DataDir/socket) so that its members may use them
	// (socketgroup.go).
	SocketGroup string
	// AdminGroup, when not empty, names the group (or gid) whose members
	// may make administrative LUXI calls besides root and the user jobqd
	// runs as (authz.go); a group that does not exist fails the start.
	AdminGroup string
	// IdempotencyWindow is how long idempotency keys are kept unless the
	// cluster's queue settings say (OP_CLUSTER_SET_PARAMS
	// idempotency_window); 0: idem.DefaultWindow.
	IdempotencyWindow time.Duration
	// JobLimits bound each submitted job (zero fields: job's defaults);
	// MaxLogEntries is the most log entries a job keeps (0: the queue's
	// default).
	JobLimits     job.Limits
	MaxLogEntries int
	// LUXIMaxConns, LUXIIdleTimeout, LUXIMessageTimeout are the LUXI
	// server's (luxi.Server: 0 means its default); RAPIMaxConns is
	// RAPI's and RPCMaxConns node RPC's connection cap per listener (0:
	// a quarter of the descriptor limit).
	LUXIMaxConns       int
	LUXIIdleTimeout    time.Duration
	LUXIMessageTimeout time.Duration
	RAPIMaxConns       int
	RPCMaxConns        int
}

// The default addresses of node RPC and RAPI. They do not collide with
// Ganeti's daemons (noded 1811, rapi 5080, confd 1814, mond 1815, metad
// 80), so that jobqd runs beside Ganeti.
const (
	DefaultRPCAddr  = ":1821"
	DefaultRAPIAddr = ":5180"
)

// SocketPath is the node's LUXI socket inside a data directory.
func SocketPath(dataDir string) string { return paths.SocketPath(dataDir) }

// DefaultDataDir is /var/lib/jobq for root, else $XDG_STATE_HOME/jobq
// (~/.local/state/jobq when XDG_STATE_HOME is unset).
func DefaultDataDir() string { return paths.DefaultDataDir() }

func writeDurable(path string, data []byte) error {
	return writeDurableMode(path, data, 0o640)
}

// MakeDataDir creates the data directory dir (and its parents) if it does
// not exist, saying what to do when it cannot; made is the outermost
// directory it created ("" when dir was there), for a start that fails
// to remove again.
func MakeDataDir(dir string) (made string, err error) {
	made = firstMissing(dir)
	if err := durable.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("cannot create the data directory %s: %v; create it (or fix its parent's permissions), or choose another with --data-dir DIR", dir, unwrapPathError(err))
	}
	return made, nil
}

// firstMissing is the outermost directory of path that does not exist
// yet ("" when path exists): what creating path makes.
func firstMissing(path string) string {
	top := ""
	for p := filepath.Clean(path); ; {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			return top
		}
		top = p
		parent := filepath.Dir(p)
		if parent == p {
			return top
		}
		p = parent
	}
}

// unwrapPathError is the reason of a *fs.PathError without the operation
// and path, which the message names already ("not a directory").
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// Run starts the node and serves until ctx is cancelled (SIGTERM), then
// stops cleanly: no new jobs, running opcodes get ShutdownTimeout to
// finish.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir()
	}
	if o.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("cannot find the host name; pass --node-name: %w", err)
		}
		o.NodeName = h
	}
	if err := cluster.ValidNodeName(o.NodeName); err != nil {
		return fmt.Errorf("--node-name: %w", err)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	auth, err := newAuthz(o.AdminGroup)
	if err != nil {
		return err
	}
	// What this start makes and a failure to listen undoes: the data
	// directory, or the queue's in it (a failed start leaves nothing).
	madeDir, err := MakeDataDir(o.DataDir)
	if err != nil {
		return err
	}
	if madeDir == "" {
		madeDir = o.MadeDataDir
	}
	// A data directory of a release before the Raft log has
	// DIR/cluster.json and no log: it is upgraded below.
	old, err := loadConfig(o.DataDir)
	if err != nil {
		return err
	}
	hasLog := consensus.HasState(raftDir(o.DataDir))
	// The one-node cluster a first start made (e.g. the package's
	// service) and no job yet: joining replaces it.
	if o.Join != "" && (hasLog || old != nil) {
		if freshOneNode(o.DataDir, o.NodeName) {
			log.Info("joining replaces this node's fresh one-node cluster (it holds no jobs)")
			for _, p := range []string{raftDir(o.DataDir), settingsDir(o.DataDir), groupFile(o.DataDir), configPath(o.DataDir), snapshotPending(o.DataDir)} {
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("cannot reset %s to join: %w", p, err)
				}
			}
			hasLog, old = false, nil
		} else {
			log.Warn("--join is ignored: this data directory belongs to a cluster already")
			o.Join = ""
		}
	}
	// The queue store first: it takes the queue's lock, so that a second
	// jobqd on this data directory stops here, saying so.
	queueDir := filepath.Join(o.DataDir, "queue")
	_, statErr := os.Stat(queueDir)
	newQueueDir := errors.Is(statErr, fs.ErrNotExist)
	st, err := store.Open(queueDir, log)
	if err != nil {
		return err
	}
	// Everything that can fail for want of an address or a path is
	// checked before anything is written (the certificate, the log):
	// the listeners are opened first, so that a start that fails leaves
	// neither behind.
	ls, err := listen(o, o.Join == "", log)
	if err != nil {
		st.Close()
		switch {
		case madeDir != "":
			_ = os.RemoveAll(madeDir)
		case newQueueDir:
			_ = os.RemoveAll(queueDir)
		}
		return err
	}
	rpcListener := ls.rpc
	if _, port, _ := net.SplitHostPort(o.RPCAddr); rpcListener != nil && port == "0" {
		o.RPCAddr = rpcListener.Addr().String()
	}
	addr := o.RPCAddr
	if rpcListener == nil {
		addr = "local"
	}
	n := &nodeRT{o: o, log: log, self: o.NodeName, addr: addr, st: st, auth: auth,
		tokens: map[string]time.Time{}, rapiListener: ls.rapi, opened: make(chan struct{})}
	n.settings = &clusterSettings{n: n}
	n.watchFilters()
	n.watchQueueSettings()
	if n.o.Registry == nil {
		n.o.Registry = opcodes.Builtin()
	}
	if err := n.registerClusterSetParams(n.o.Registry); err != nil {
		log.Warn("OP_CLUSTER_SET_PARAMS is not jobq's: the queue settings cannot change at run time", "err", err)
	}
	if err := n.registerTags(n.o.Registry); err != nil {
		log.Warn("the OP_TAGS_* opcodes are not jobq's: tags cannot change", "err", err)
	}
	n.initDeclared()
	ls.rapi = nil // the first leadership serves on it
	closeListener := func() {
		ls.close()
		if l := n.takeRAPIListener(); l != nil {
			l.Close()
		}
		n.stopRAPIFront()
	}
	fail := func(err error) error {
		closeListener()
		st.Close()
		return err
	}
	// How this start finds its place in a group: its log, a join, an
	// upgrade of a cluster from before the log, or a new cluster.
	var group string
	bootstrap := false
	switch {
	case hasLog:
		if group, err = readGroup(o.DataDir); err != nil {
			return fail(fmt.Errorf("this node's log has no group file (%s): %w; restore it from another node of the cluster", groupFile(o.DataDir), err))
		}
	case o.Join != "":
		r, err := joinCluster(ctx, o, o.Join, o.Token, log)
		if err != nil {
			return fail(err)
		}
		group, n.known = r.Group, r.Config
	case old != nil:
		if !slices.Contains(old.NodeNames(), o.NodeName) {
			return fail(fmt.Errorf("this node is %q but the cluster's nodes are %v; run jobqd with the --node-name it joined with", o.NodeName, old.NodeNames()))
		}
		group, n.known = upgradeGroup(old), old
		if old.Master == o.NodeName {
			// The master of a cluster from before the log: its queue
			// is the cluster's; the other nodes are added to the group
			// as they were in the configuration, and start from a
			// snapshot of it.
			bootstrap, n.boot = true, old
			if old.CandidatePoolSize == cluster.OldDefaultCandidatePoolSize || old.CandidatePoolSize <= 0 {
				// No release before the log could change the pool: it is
				// the old default, ten candidates. In the log every
				// candidate votes, and the pool is Raft's default.
				n.boot = old.Clone()
				n.boot.CandidatePoolSize = cluster.DefaultCandidatePoolSize
			}
			log.Info("upgrading the cluster to the Raft log: this node (the master) starts it with its queue", "cluster", old.Name, "nodes", len(old.Nodes), "candidate_pool_size", n.boot.CandidatePoolSize)
		} else {
			log.Info("upgrading to the Raft log: this node waits until the master adds it", "master", old.Master)
		}
	default:
		group, bootstrap = newGroup(), true
	}
	if !hasLog && n.known != nil && len(n.known.Nodes) > 1 && rpcListener == nil {
		return fail(fmt.Errorf("this node belongs to a cluster of %d nodes, which reach each other over node RPC; give --rpc-addr HOST:PORT instead of %q", len(n.known.Nodes), o.RPCAddr))
	}
	if err := finishInterruptedSwitch(o.DataDir); err != nil {
		return fail(fmt.Errorf("cannot finish the cluster certificate renewal cut short: %w", err))
	}
	cert, err := LoadOrCreateClusterCert(o.DataDir, o.NodeName, log)
	if err != nil {
		return fail(err)
	}
	keys, err := loadKeyring(o.DataDir, cert)
	if err != nil {
		return fail(err)
	}
	n.keys = keys
	if !hasLog {
		if err := writeDurable(groupFile(o.DataDir), []byte(group+"\n")); err != nil {
			return fail(fmt.Errorf("cannot record the cluster's group: %w", err))
		}
		if bootstrap && !freshQueue(o.DataDir) {
			// Its files are in no entry of the new log.
			if err := durable.Create(snapshotPending(o.DataDir), 0o640); err != nil {
				return fail(err)
			}
		}
	}
	n.metrics = metrics.New(func() map[string]int {
		out := map[string]int{}
		if q := n.queue(); q != nil {
			for st, n := range q.Counts() {
				out[string(st)] = n
			}
		}
		return out
	}, func() int {
		if q := n.queue(); q != nil {
			return q.Running()
		}
		return 0
	})
	st.OnCommit(n.metrics.Committed)
	rpcErr := make(chan error, 1)
	if rpcListener != nil {
		var source net.IP
		if host, _, err := net.SplitHostPort(o.RPCAddr); err == nil {
			source = net.ParseIP(host)
		}
		n.client = noderpc.NewClientKeyring(keys, source)
		n.srv = noderpc.NewServerKeyring(keys, rpcHandler{n}, log)
		n.srv.SetMaxConns(o.RPCMaxConns)
		go func() {
			if err := n.srv.Serve(rpcListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				rpcErr <- err
			}
		}()
		log.Info("node RPC listening", "addr", rpcListener.Addr().String())
	}
	stopRPC := func() {
		if n.srv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = n.srv.Shutdown(sctx)
			cancel()
		}
		if n.client != nil {
			n.client.Close()
		}
	}
	// Whether this node is the only one, read before the member starts:
	// while it applies its log again its settings go back in time.
	single := n.single()
	// RAPI's listener serves for the node's life: the master's RAPI, or
	// relayed to the master (rapifront.go).
	n.startRAPIFront()
	if err := n.startMember(group, bootstrap); err != nil {
		stopRPC()
		return fail(fmt.Errorf("cannot start this node's member of the cluster: %w", err))
	}
	if old != nil && !hasLog {
		// The log holds the configuration from now on.
		if err := durable.Rename(configPath(o.DataDir), configPath(o.DataDir)+".before-raft"); err != nil {
			log.Warn("cannot set the configuration of the release before aside", "err", err)
		}
	}
	n.metrics.EnableCluster(n.clusterMetrics)
	if single {
		// One node: the queue opens before the socket is ready, as it
		// always has (a failure to open it is fatal).
		if err := n.waitQueue(ctx); err != nil {
			n.member().Close()
			stopRPC()
			return fail(err)
		}
		// Loading decoded every job file: give that garbage back.
		debug.FreeOSMemory()
	} else if l := n.takeRAPIListener(); l != nil {
		// Opened at the start, but whether this node leads is for the
		// cluster to say: the leadership opens its own.
		l.Close()
	}

	srv := &luxi.Server{Handler: &luxiHandler{n: n}, Logger: log, MaxConns: o.LUXIMaxConns,
		IdleTimeout: o.LUXIIdleTimeout, MessageTimeout: o.LUXIMessageTimeout}
	paths := ls.paths
	listeners := ls.luxi
	metricsSrv := serveMetrics(ls.metrics, n.metrics, log)
	serveErr := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { serveErr <- srv.Serve(l) }()
	}
	n.sweepOutputs()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		n.sweepOutputsEvery(sweepCtx)
	}()
	log.Info("jobqd ready", "node", o.NodeName, "role", n.config().Role(o.NodeName), "data_dir", o.DataDir, "sockets", paths)
	if o.Ready != nil {
		o.Ready()
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: no new jobs; waiting for running opcodes", "timeout", o.ShutdownTimeout)
	case err := <-serveErr:
		runErr = fmt.Errorf("LUXI server failed: %w", err)
	case err := <-n.rapiFailures():
		runErr = fmt.Errorf("RAPI server failed: %w", err)
	case err := <-rpcErr:
		runErr = fmt.Errorf("node RPC server failed: %w", err)
	}
	if err := n.member().Close(); err != nil {
		log.Warn("stopping the cluster member", "err", err)
	}
	if l := n.takeRAPIListener(); l != nil {
		l.Close()
	}
	n.stopRAPIFront()
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	_ = srv.Shutdown(lctx)
	n.stopForwarded(lctx)
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(lctx)
	}
	stopRPC()
	stopSweep()
	<-sweepDone
	if err := st.Close(); err != nil {
		log.Warn("closing the queue store", "err", err)
	}
	for _, p := range paths {
		os.Remove(p)
	}
	n.cgroups.Close()
	log.Info("jobqd stopped")
	return runErr
}

// rapiFailures delivers an error if the master's RAPI stops on its own.
func (n *nodeRT) rapiFailures() <-chan error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.master == nil {
		return nil
	}
	return n.master.rapi.failures()
}

// serveMetrics serves /metrics over plain HTTP on l (nil: no).
func serveMetrics(l net.Listener, m *metrics.Set, log *slog.Logger) *http.Server {
	if l == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", l.Addr().String())
	return srv
}

// startListeners is what a start opens before it writes anything.
type startListeners struct {
	rpc     net.Listener   // nil: node RPC off
	rapi    net.Listener   // opened only for a master that runs at once
	metrics net.Listener   // nil: off
	luxi    []net.Listener // one per path
	paths   []string       // the LUXI sockets' paths
}

func (ls *startListeners) close() {
	for _, l := range append([]net.Listener{ls.rpc, ls.rapi, ls.metrics}, ls.luxi...) {
		if l != nil {
			l.Close()
		}
	}
	*ls = startListeners{}
}

// off reports whether addr turns a listener off.
func off(addr string) bool { return addr == "" || addr == "off" }

// listen opens every listener this start needs (node RPC, the LUXI
// sockets, metrics, and RAPI unless the node joins: a node that runs as
// master at once must have it), so that a start that cannot have them
// fails before it writes anything. o.RPCAddr with port 0 becomes the
// address listened on.
func listen(o Options, rapi bool, log *slog.Logger) (*startListeners, error) {
	ls := &startListeners{}
	fail := func(err error) (*startListeners, error) {
		ls.close()
		return nil, err
	}
	if !off(o.RPCAddr) {
		l, err := net.Listen("tcp", o.RPCAddr)
		if err != nil {
			return fail(fmt.Errorf("cannot listen for node RPC on %s: %w (choose another address with --rpc-addr HOST:PORT, or --rpc-addr off for a node that no other node will join)", o.RPCAddr, err))
		}
		ls.rpc = l
	}
	if rapi && !off(o.RAPIAddr) {
		l, err := listenRAPI(o.RAPIAddr)
		if err != nil {
			return fail(err)
		}
		ls.rapi = l
	}
	if !off(o.MetricsAddr) {
		l, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			return fail(fmt.Errorf("cannot listen for metrics on %s: %w (choose another address with --metrics-addr HOST:PORT, or leave it off)", o.MetricsAddr, err))
		}
		ls.metrics = l
	}
	ls.paths = append([]string{SocketPath(o.DataDir)}, o.LUXISockets...)
	for _, p := range ls.paths {
		l, err := luxi.ListenUnix(p, 0o660)
		if err != nil {
			return fail(fmt.Errorf("cannot listen on %s: %w", p, err))
		}
		ls.luxi = append(ls.luxi, l)
	}
	if err := applySocketGroup(o.SocketGroup, o.DataDir, ls.paths, log); err != nil {
		return fail(err)
	}
	return ls, nil
}

// freshOneNode reports whether the data directory holds a one-node
// cluster of this node whose queue never held a job (a first start made
// it, e.g. the package's service): joining may replace it.
func freshOneNode(dataDir, self string) bool {
	var c *cluster.Config
	if b, err := os.ReadFile(filepath.Join(settingsDir(dataDir), member.ClusterSetting+".json")); err == nil {
		c = &cluster.Config{}
		if json.Unmarshal(b, c) != nil {
			return false
		}
	} else if old, err := loadConfig(dataDir); err == nil && old != nil {
		c = old
	}
	if c != nil && (len(c.Nodes) != 1 || c.Nodes[0].Name != self) {
		return false
	}
	return freshQueue(dataDir)
}

// freshQueue reports whether the queue never held a job: no job files,
// no archive, serial 0 or absent.
func freshQueue(dataDir string) bool {
	q := filepath.Join(dataDir, "queue")
	if b, err := os.ReadFile(filepath.Join(q, "serial")); err == nil && strings.TrimSpace(string(b)) != "0" {
		return false
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	ents, err := os.ReadDir(q)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	for _, e := range ents {
		if _, ok := store.ParseJobFileName(e.Name()); ok {
			return false
		}
	}
	arch, err := os.ReadDir(filepath.Join(q, "archive"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return len(arch) == 0
}

// single reports whether this node is the cluster's only node (its
// queue opens before the start is reported ready), from the agreed
// configuration on disk, or what the start knows without one.
func (n *nodeRT) single() bool {
	c := n.config()
	if b, err := os.ReadFile(filepath.Join(settingsDir(n.o.DataDir), member.ClusterSetting+".json")); err == nil {
		var agreed cluster.Config
		if json.Unmarshal(b, &agreed) == nil {
			c = &agreed
		}
	}
	return len(c.Nodes) == 1 && c.Nodes[0].Name == n.self
}

// waitQueue waits until the queue runs here, or its opening failed.
func (n *nodeRT) waitQueue(ctx context.Context) error {
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		ch, err := n.opened, n.openErr
		n.mu.Unlock()
		if n.queue() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errors.New("the queue did not open within 2 minutes; see the log above")
		}
	}
}
