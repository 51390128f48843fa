package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/jobq-dev/jobq/internal/metrics"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/rapi"
	"github.com/jobq-dev/jobq/internal/web"
)

// RAPIOff is the RAPIAddr that serves no RAPI (so does "").
const RAPIOff = "off"

// RAPIUsersFile is where a data directory keeps the RAPI users (Ganeti's
// format, see package rapi).
func RAPIUsersFile(dataDir string) string {
	return filepath.Join(dataDir, "rapi", "users")
}

// rapiService is the master's RAPI listener. A nil *rapiService (RAPI
// off) does nothing.
type rapiService struct {
	srv    *rapi.Server
	failed chan error    // Serve's error, if it fails before stop
	exited chan struct{} // closed when Serve has returned
}

// startRAPI serves RAPI over HTTPS on o.RAPIAddr unless that is "" or
// "off", presenting the keyring's cluster certificate (a renewed one from
// the next connection on). It serves on l when l is not nil (opened by
// listenRAPI at the start).
func startRAPI(o Options, l net.Listener, keys *noderpc.Keyring, q *queue.Queue, filters rapi.Filters, luxiCall rapi.LUXI, clusterCfg func() *cluster.Config, replication func() map[string]string, m *metrics.Set, log *slog.Logger, opcodesView func() []web.Opcode) (*rapiService, error) {
	var err error
	if o.RAPIAddr == "" || o.RAPIAddr == RAPIOff {
		log.Info("RAPI is off")
		if l != nil {
			l.Close()
		}
		return nil, nil
	}
	users := RAPIUsersFile(o.DataDir)
	if err := os.MkdirAll(filepath.Dir(users), 0o750); err != nil {
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("cannot create the RAPI directory: %w", err)
	}
	srv := rapi.New(rapi.Config{
		Queue:     q,
		Filters:   filters,
		LUXI:      luxiCall,
		UsersFile: users,
		Cluster: func() rapi.ClusterInfo {
			c := clusterCfg()
			return rapi.ClusterInfo{Name: c.Name, Master: c.Master, MaxRunningJobs: q.MaxRunning()}
		},
		RequireAuth: o.RAPIRequireAuth,
		MaxConns:    o.RAPIMaxConns,
		Logger:      log,
	})
	// Metrics for RAPI's read users (unauthenticated: --metrics-addr).
	srv.Handle("/metrics", []string{rapi.AccessRead, rapi.AccessWrite}, m.Handler())
	// The web dashboard under /ui/, for the same users (package web).
	srv.HandlePrefix(web.Prefix, web.New(web.Config{Queue: q, Users: srv, Guard: srv.Guard(), Logger: log, Cluster: func() web.Cluster {
		cfg := clusterCfg()
		c := web.Cluster{Name: cfg.Name, Master: cfg.Master, MaxRunningJobs: q.MaxRunning()}
		repl := replication()
		for _, n := range cfg.Nodes {
			c.Nodes = append(c.Nodes, web.Node{Name: n.Name, Address: n.Address, Candidate: n.Candidate, Online: n.Online, Replication: repl[n.Name]})
		}
		return c
	}, Opcodes: opcodesView}))
	if l == nil {
		if l, err = listenRAPI(o.RAPIAddr); err != nil {
			return nil, err
		}
	}
	rs := &rapiService{srv: srv, failed: make(chan error, 1), exited: make(chan struct{})}
	go func() {
		defer close(rs.exited)
		err := srv.Serve(l, &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return keys.Certificate(), nil
		}})
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			rs.failed <- err
		}
	}()
	log.Info("RAPI listening", "addr", l.Addr().String(), "users_file", users)
	if o.RAPIReady != nil {
		o.RAPIReady(l.Addr())
	}
	return rs, nil
}

// listenRAPI opens RAPI's listener on addr.
func listenRAPI(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for RAPI on %s: %w (choose another address with --rapi-addr HOST:PORT, or turn RAPI off with --rapi-addr off)", addr, err)
	}
	return l, nil
}

// failures delivers an error if RAPI stops serving on its own.
func (rs *rapiService) failures() <-chan error {
	if rs == nil {
		return nil
	}
	return rs.failed
}

// stop ends RAPI: requests waiting on jobs are cut short, others get until
// ctx is done.
func (rs *rapiService) stop(ctx context.Context) {
	if rs == nil {
		return
	}
	_ = rs.srv.Shutdown(ctx)
	<-rs.exited
}
