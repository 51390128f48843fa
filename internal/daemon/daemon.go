// Package daemon wires a jobqd node together: the data directory, the
// cluster configuration, the queue store and engine, and the LUXI socket.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/jobq-dev/jobq/internal/metrics"
	"github.com/jobq-dev/jobq/internal/paths"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/luxi"
	"github.com/jobq-dev/jobq/opcodes"
)

// Options are jobqd's settings.
type Options struct {
	DataDir     string
	NodeName    string
	RPCAddr     string
	RAPIAddr    string   // RAPI over HTTPS, HOST:PORT (port 0: any); "" or "off": none (rapi.go)
	LUXISockets []string // extra LUXI socket paths
	// MetricsAddr serves Prometheus metrics over plain HTTP without
	// authentication at HOST:PORT/metrics; "" or "off": not served (they
	// stay available on RAPI to its users).
	MetricsAddr     string
	MaxRunning      int
	ShutdownTimeout time.Duration
	Registry        *opcodes.Registry
	Logger          *slog.Logger
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

// ClusterConfig is the node's view of its cluster. A data directory
// without one gets a one-node cluster with this node as master.
type ClusterConfig struct {
	Name   string `json:"cluster_name"`
	Master string `json:"master"`
	Epoch  int64  `json:"epoch"`
	Nodes  []Node `json:"nodes"`
}

// Node is one cluster member.
type Node struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Candidate bool   `json:"master_candidate"`
	Online    bool   `json:"online"`
}

func loadOrCreateCluster(dir, node, rpcAddr string, log *slog.Logger) (*ClusterConfig, error) {
	p := filepath.Join(dir, "cluster.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		c := &ClusterConfig{Name: node, Master: node, Epoch: 1,
			Nodes: []Node{{Name: node, Address: rpcAddr, Candidate: true, Online: true}}}
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := writeDurable(p, append(b, '\n')); err != nil {
			return nil, fmt.Errorf("cannot create the cluster configuration: %w", err)
		}
		log.Info("created a one-node cluster", "cluster", c.Name, "master", node, "config", p)
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the cluster configuration: %w", err)
	}
	var c ClusterConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("cluster configuration %s is not valid JSON: %v", p, err)
	}
	return &c, nil
}

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
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return fmt.Errorf("cannot create data directory: %w", err)
	}
	cluster, err := loadOrCreateCluster(o.DataDir, o.NodeName, o.RPCAddr, log)
	if err != nil {
		return err
	}
	if cluster.Master != o.NodeName {
		return fmt.Errorf("this node is %q but the cluster's master is %q; run jobqd with --node-name %s or use that node", o.NodeName, cluster.Master, cluster.Master)
	}
	st, err := store.Open(filepath.Join(o.DataDir, "queue"), log)
	if err != nil {
		return err
	}
	var q *queue.Queue
	m := metrics.New(func() map[string]int {
		out := map[string]int{}
		for st, n := range q.Counts() {
			out[string(st)] = n
		}
		return out
	}, func() int { return q.Running() })
	st.OnCommit(m.Committed)
	q, err = queue.Open(queue.Config{Store: st, Registry: o.Registry, MaxRunning: o.MaxRunning,
		NodeName: o.NodeName, Logger: log, Metrics: m})
	if err != nil {
		st.Close()
		return err
	}
	// Loading decoded every job file: give that garbage back to the system.
	debug.FreeOSMemory()
	srv := &luxi.Server{Handler: &luxiHandler{q: q, cluster: cluster}, Logger: log}
	paths := append([]string{SocketPath(o.DataDir)}, o.LUXISockets...)
	var listeners []net.Listener
	for _, p := range paths {
		l, err := luxi.ListenUnix(p, 0o660)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			q.Shutdown(context.Background())
			return fmt.Errorf("cannot listen on %s: %w", p, err)
		}
		listeners = append(listeners, l)
	}
	if err := applySocketGroup(o.SocketGroup, o.DataDir, paths, log); err != nil {
		for _, l := range listeners {
			l.Close()
		}
		q.Shutdown(context.Background())
		return err
	}
	// RAPI and the cluster certificate (rapi.go, certs.go).
	rapiSvc, err := startRAPI(o, q, cluster, m, log)
	var metricsSrv *http.Server
	if err == nil {
		metricsSrv, err = serveMetrics(o.MetricsAddr, m, log)
	}
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		rapiSvc.stop(context.Background())
		q.Shutdown(context.Background())
		return err
	}
	serveErr := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { serveErr <- srv.Serve(l) }()
	}
	log.Info("jobqd ready", "node", o.NodeName, "data_dir", o.DataDir, "sockets", paths)
	if o.Ready != nil {
		o.Ready()
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: no new jobs; waiting for running opcodes", "timeout", o.ShutdownTimeout)
	case err := <-serveErr:
		runErr = fmt.Errorf("LUXI server failed: %w", err)
	case err := <-rapiSvc.failures():
		runErr = fmt.Errorf("RAPI server failed: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := q.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	_ = srv.Shutdown(lctx)
	rapiSvc.stop(lctx)
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(lctx)
	}
	for _, p := range paths {
		os.Remove(p)
	}
	log.Info("jobqd stopped")
	return runErr
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
