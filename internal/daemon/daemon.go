// Package daemon wires a jobqd node together: the data directory, the
// cluster configuration, the queue store and engine, and the LUXI socket.
package daemon

import (
	"context"
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
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/metrics"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/paths"
	"github.com/jobq-dev/jobq/internal/replica"
	"github.com/jobq-dev/jobq/internal/settings"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/luxi"
	"github.com/jobq-dev/jobq/opcodes"
)

// Options are jobqd's settings.
type Options struct {
	DataDir  string
	NodeName string
	RPCAddr  string
	RAPIAddr string // RAPI over HTTPS, HOST:PORT (port 0: any); "" or "off": none (rapi.go)
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
// not exist, saying what to do when it cannot.
func MakeDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("cannot create the data directory %s: %v; create it (or fix its parent's permissions), or choose another with --data-dir DIR", dir, unwrapPathError(err))
	}
	return nil
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
	if err := MakeDataDir(o.DataDir); err != nil {
		return err
	}
	cfg, err := loadConfig(o.DataDir)
	if err != nil {
		return err
	}
	// The one-node cluster a first start made (e.g. the package's
	// service) and no job yet: joining replaces it.
	replace := cfg != nil && o.Join != "" && freshOneNode(o.DataDir, cfg, o.NodeName)
	if cfg != nil && o.Join != "" && !replace {
		log.Warn("--join is ignored: this data directory belongs to a cluster already", "cluster", cfg.Name, "master", cfg.Master)
	}
	if replace {
		cfg = nil
	}
	// The queue store first: it takes the queue's lock, so that a second
	// jobqd on this data directory stops here, saying so.
	st, err := store.Open(filepath.Join(o.DataDir, "queue"), log)
	if err != nil {
		return err
	}
	// Everything that can fail for want of an address or a path is
	// checked before anything is written (the certificate, the cluster
	// configuration): the listeners are opened first, so that a start
	// that fails leaves neither behind.
	ls, err := listen(o, cfg, log)
	if err != nil {
		st.Close()
		return err
	}
	if replace {
		log.Info("joining replaces this node's fresh one-node cluster (it holds no jobs)")
		for _, f := range []string{replica.VoterFile(o.DataDir), replica.PositionFile(o.DataDir)} {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				ls.close()
				st.Close()
				return fmt.Errorf("cannot reset %s to join: %w", f, err)
			}
		}
	}
	rpcListener := ls.rpc
	if _, port, _ := net.SplitHostPort(o.RPCAddr); rpcListener != nil && port == "0" {
		o.RPCAddr = rpcListener.Addr().String()
	}
	closeListener := ls.close
	if cfg == nil && o.Join != "" {
		if cfg, err = joinCluster(ctx, o, o.Join, o.Token, log); err != nil {
			closeListener()
			st.Close()
			return err
		}
	}
	if cfg != nil && !slices.Contains(cfg.NodeNames(), o.NodeName) {
		closeListener()
		st.Close()
		return fmt.Errorf("this node is %q but the cluster's nodes are %v; run jobqd with the --node-name it joined with", o.NodeName, cfg.NodeNames())
	}
	if cfg != nil && len(cfg.Nodes) > 1 && rpcListener == nil {
		closeListener()
		st.Close()
		return fmt.Errorf("this node belongs to a cluster of %d nodes, which reach each other over node RPC; give --rpc-addr HOST:PORT instead of %q", len(cfg.Nodes), o.RPCAddr)
	}
	if err := finishInterruptedSwitch(o.DataDir); err != nil {
		closeListener()
		st.Close()
		return fmt.Errorf("cannot finish the cluster certificate renewal cut short: %w", err)
	}
	cert, err := LoadOrCreateClusterCert(o.DataDir, o.NodeName, log)
	if err != nil {
		closeListener()
		st.Close()
		return err
	}
	keys, err := loadKeyring(o.DataDir, cert)
	if err != nil {
		closeListener()
		st.Close()
		return err
	}
	addr := o.RPCAddr
	if rpcListener == nil {
		addr = ""
	}
	switch {
	case cfg == nil:
		cfg = cluster.NewConfig(o.NodeName, addr)
		if err := saveConfig(o.DataDir, cfg); err != nil {
			closeListener()
			st.Close()
			return fmt.Errorf("cannot create the cluster configuration: %w", err)
		}
		log.Info("created a one-node cluster", "cluster", cfg.Name, "master", o.NodeName, "config", configPath(o.DataDir))
	case len(cfg.Nodes) == 1 && cfg.Master == o.NodeName && cfg.Nodes[0].Address != addr:
		// A one-node cluster: no other node relies on its address, which
		// follows --rpc-addr (an address saved empty by a start without
		// node RPC is repaired by the next start with it).
		nc, err := cfg.SetAddress(o.NodeName, addr)
		if err == nil {
			err = saveConfig(o.DataDir, nc)
		}
		if err != nil {
			closeListener()
			st.Close()
			return fmt.Errorf("cannot record this node's address: %w", err)
		}
		log.Info("this node's address changed", "from", cfg.Nodes[0].Address, "to", addr)
		cfg = nc
	}
	n := &nodeRT{o: o, log: log, self: o.NodeName, keys: keys, st: st, cfg: cfg,
		syncCh: make(chan struct{}), kickCh: make(chan struct{}, 1), tokens: map[string]time.Time{},
		rapiListener: ls.rapi}
	ls.rapi = nil // promote serves on it
	closeListener = func() {
		ls.close()
		if l := n.takeRAPIListener(); l != nil {
			l.Close()
		}
	}
	if n.settings, err = settings.OpenLocal(filepath.Join(o.DataDir, "cluster", "settings")); err != nil {
		closeListener()
		st.Close()
		return err
	}
	n.watchFilters()
	n.watchQueueSettings()
	if n.o.Registry == nil {
		n.o.Registry = opcodes.Builtin()
	}
	if err := n.registerClusterSetParams(n.o.Registry); err != nil {
		log.Warn("OP_CLUSTER_SET_PARAMS is not jobq's: the queue settings cannot change at run time", "err", err)
	}
	n.app, err = replica.NewApplier(o.DataDir, st, writeDurable, func(epoch int64, _ string) {
		if stopped := n.fence.Observe(epoch); stopped > 0 {
			log.Warn("a newer epoch exists: stopped the executions older masters ordered here", "epoch", epoch, "stopped", stopped)
		}
		n.kick()
	})
	if err != nil {
		closeListener()
		st.Close()
		return err
	}
	n.fence.Observe(max(n.app.Voter().Epoch, cfg.Epoch))
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
	n.metrics.EnableCluster(n.clusterMetrics)
	var rpcSrv *noderpc.Server
	rpcErr := make(chan error, 1)
	if rpcListener != nil {
		var source net.IP
		if host, _, err := net.SplitHostPort(o.RPCAddr); err == nil {
			source = net.ParseIP(host)
		}
		n.client = noderpc.NewClientKeyring(keys, source)
		rpcSrv = noderpc.NewServerKeyring(keys, rpcHandler{n}, log)
		go func() {
			if err := rpcSrv.Serve(rpcListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				rpcErr <- err
			}
		}()
		log.Info("node RPC listening", "addr", rpcListener.Addr().String())
	}
	stopRPC := func() {
		if rpcSrv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = rpcSrv.Shutdown(sctx)
			cancel()
		}
		if n.client != nil {
			n.client.Close()
		}
	}

	// The role loop runs the queue (and RAPI) while this node is master.
	if cfg.Master == o.NodeName && len(cfg.Voters()) <= 1 {
		// A one-node cluster: the queue opens before the socket is ready,
		// as it always has (a failure to open it is fatal).
		if err := n.promote(ctx); err != nil {
			closeListener()
			stopRPC()
			st.Close()
			return err
		}
		// Loading decoded every job file: give that garbage back.
		debug.FreeOSMemory()
	}
	if l := n.takeRAPIListener(); l != nil {
		// Opened for a master that turned out not to run at once.
		l.Close()
	}
	roleCtx, roleCancel := context.WithCancel(context.Background())
	roleDone := make(chan struct{})
	go func() {
		defer close(roleDone)
		var wg sync.WaitGroup
		wg.Go(func() { n.catchUpLoop(roleCtx) })
		n.roleLoop(roleCtx)
		wg.Wait()
	}()
	if cfg.Master != o.NodeName && n.client != nil {
		// A node that was down may have missed configuration changes
		// (regular nodes get no resync that would bring them).
		go n.learnConfig()
	}

	srv := &luxi.Server{Handler: &luxiHandler{n: n}, Logger: log}
	paths := ls.paths
	listeners := ls.luxi
	metricsSrv := serveMetrics(ls.metrics, n.metrics, log)
	serveErr := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { serveErr <- srv.Serve(l) }()
	}
	log.Info("jobqd ready", "node", o.NodeName, "role", cfg.Role(o.NodeName), "data_dir", o.DataDir, "sockets", paths)
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
	roleCancel()
	<-roleDone
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	_ = srv.Shutdown(lctx)
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(lctx)
	}
	stopRPC()
	if err := st.Close(); err != nil {
		log.Warn("closing the queue store", "err", err)
	}
	for _, p := range paths {
		os.Remove(p)
	}
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
// sockets, metrics, and RAPI when this node runs as master at once: a
// fresh data directory, or a one-node cluster), so that a start that
// cannot have them fails before it writes anything. o.RPCAddr with port
// 0 becomes the address listened on.
func listen(o Options, cfg *cluster.Config, log *slog.Logger) (*startListeners, error) {
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
	masterNow := (cfg == nil && o.Join == "") || (cfg != nil && cfg.Master == o.NodeName && len(cfg.Voters()) <= 1)
	if masterNow && !off(o.RAPIAddr) {
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

// freshOneNode reports whether cfg is a one-node cluster of this node whose
// queue never held a job: no job files, no archive, serial 0 or absent.
func freshOneNode(dataDir string, cfg *cluster.Config, self string) bool {
	if len(cfg.Nodes) != 1 || cfg.Master != self {
		return false
	}
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
