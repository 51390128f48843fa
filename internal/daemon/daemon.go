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

// SocketPath is the node's LUXI socket inside a data directory.
func SocketPath(dataDir string) string { return paths.SocketPath(dataDir) }

// DefaultDataDir is /var/lib/jobq for root, else $XDG_STATE_HOME/jobq
// (~/.local/state/jobq when XDG_STATE_HOME is unset).
func DefaultDataDir() string { return paths.DefaultDataDir() }

func writeDurable(path string, data []byte) error {
	return writeDurableMode(path, data, 0o640)
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
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return fmt.Errorf("cannot create data directory: %w", err)
	}
	cfg, err := loadConfig(o.DataDir)
	if err != nil {
		return err
	}
	if cfg != nil && o.Join != "" {
		if freshOneNode(o.DataDir, cfg, o.NodeName) {
			// The one-node cluster a first start made (e.g. the package's
			// service) and no job yet: joining replaces it.
			log.Info("joining replaces this node's fresh one-node cluster (it holds no jobs)", "cluster", cfg.Name)
			for _, f := range []string{replica.VoterFile(o.DataDir), replica.PositionFile(o.DataDir)} {
				if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("cannot reset %s to join: %w", f, err)
				}
			}
			cfg = nil
		} else {
			log.Warn("--join is ignored: this data directory belongs to a cluster already", "cluster", cfg.Name, "master", cfg.Master)
		}
	}
	// Node RPC: every node of a cluster serves it; a one-node cluster
	// that cannot listen goes on without it (nothing can join it then).
	var rpcListener net.Listener
	if o.RPCAddr != "" && o.RPCAddr != "off" {
		l, lerr := net.Listen("tcp", o.RPCAddr)
		switch {
		case lerr != nil && o.Join == "" && (cfg == nil || len(cfg.Nodes) == 1):
			log.Warn("node RPC is off: no node can join this one until it can listen (choose --rpc-addr HOST:PORT)", "addr", o.RPCAddr, "err", lerr)
		case lerr != nil:
			return fmt.Errorf("cannot listen for node RPC on %s: %w (choose another address with --rpc-addr HOST:PORT)", o.RPCAddr, lerr)
		default:
			rpcListener = l
			if _, port, _ := net.SplitHostPort(o.RPCAddr); port == "0" {
				o.RPCAddr = l.Addr().String()
			}
		}
	}
	closeListener := func() {
		if rpcListener != nil {
			rpcListener.Close()
		}
	}
	if cfg == nil && o.Join != "" {
		if cfg, err = joinCluster(ctx, o, o.Join, o.Token, log); err != nil {
			closeListener()
			return err
		}
	}
	if cfg != nil && !slices.Contains(cfg.NodeNames(), o.NodeName) {
		closeListener()
		return fmt.Errorf("this node is %q but the cluster's nodes are %v; run jobqd with the --node-name it joined with", o.NodeName, cfg.NodeNames())
	}
	if cfg != nil && cfg.Master == o.NodeName && len(cfg.Replicas()) > 1 && rpcListener == nil {
		return errors.New("this node is the master of a cluster but serves no node RPC; give --rpc-addr HOST:PORT")
	}
	if err := finishInterruptedSwitch(o.DataDir); err != nil {
		closeListener()
		return fmt.Errorf("cannot finish the cluster certificate renewal cut short: %w", err)
	}
	cert, err := LoadOrCreateClusterCert(o.DataDir, o.NodeName, log)
	if err != nil {
		closeListener()
		return err
	}
	keys, err := loadKeyring(o.DataDir, cert)
	if err != nil {
		closeListener()
		return err
	}
	st, err := store.Open(filepath.Join(o.DataDir, "queue"), log)
	if err != nil {
		closeListener()
		return err
	}
	if cfg == nil {
		addr := o.RPCAddr
		if rpcListener == nil {
			addr = ""
		}
		cfg = cluster.NewConfig(o.NodeName, addr)
		if err := saveConfig(o.DataDir, cfg); err != nil {
			closeListener()
			st.Close()
			return fmt.Errorf("cannot create the cluster configuration: %w", err)
		}
		log.Info("created a one-node cluster", "cluster", cfg.Name, "master", o.NodeName, "config", configPath(o.DataDir))
	}
	n := &nodeRT{o: o, log: log, self: o.NodeName, keys: keys, st: st, cfg: cfg,
		syncCh: make(chan struct{}), kickCh: make(chan struct{}, 1), tokens: map[string]time.Time{}}
	n.app, err = replica.NewApplier(o.DataDir, st, writeDurable, func(int64, string) { n.kick() })
	if err != nil {
		closeListener()
		st.Close()
		return err
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
			stopRPC()
			st.Close()
			return err
		}
		// Loading decoded every job file: give that garbage back.
		debug.FreeOSMemory()
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
	paths := append([]string{SocketPath(o.DataDir)}, o.LUXISockets...)
	var listeners []net.Listener
	cleanup := func() {
		for _, l := range listeners {
			l.Close()
		}
		roleCancel()
		<-roleDone
		stopRPC()
		st.Close()
	}
	for _, p := range paths {
		l, err := luxi.ListenUnix(p, 0o660)
		if err != nil {
			cleanup()
			return fmt.Errorf("cannot listen on %s: %w", p, err)
		}
		listeners = append(listeners, l)
	}
	if err := applySocketGroup(o.SocketGroup, o.DataDir, paths, log); err != nil {
		cleanup()
		return err
	}
	metricsSrv, err := serveMetrics(o.MetricsAddr, n.metrics, log)
	if err != nil {
		cleanup()
		return err
	}
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

// serveMetrics serves /metrics over plain HTTP on addr ("" or "off": no).
func serveMetrics(addr string, m *metrics.Set, log *slog.Logger) (*http.Server, error) {
	if addr == "" || addr == "off" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for metrics on %s: %w (choose another address with --metrics-addr HOST:PORT, or leave it off)", addr, err)
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
	return srv, nil
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
