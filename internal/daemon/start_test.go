package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/member"
)

// runUntilReady runs a node with o until it is ready, then stops it, and
// returns Run's error (nil: it became ready and stopped cleanly).
func runUntilReady(t *testing.T, o Options) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Ready = cancel
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = time.Second
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run neither became ready nor failed within a minute")
		return nil
	}
}

// taken returns an address something listens on, for the test's length.
func taken(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// written lists what a start wrote that outlives a failed start: the
// certificate, its key, the cluster configuration.
func written(dir string) []string {
	var out []string
	cert, key := ClusterCertPaths(dir)
	for _, p := range []string{cert, key, configPath(dir)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			out = append(out, p)
		}
	}
	return out
}

// selfAddress is the address the data directory's configuration records
// for node.
func selfAddress(t *testing.T, dir, node string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(settingsDir(dir), member.ClusterSetting+".json"))
	var cfg *cluster.Config
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil || cfg == nil {
		t.Fatalf("the agreed cluster configuration: %v %v", cfg, err)
	}
	n, ok := cfg.Node(node)
	if !ok {
		t.Fatalf("node %s is not in %s", node, cfg)
	}
	return n.Address
}

// TestFailedStartWritesNothing: every listener a start needs is opened
// before the certificate and the cluster configuration are written, so a
// start that cannot listen leaves neither behind (issue 19: the
// certificate and a configuration with an empty address were written
// before the RAPI bind failed).
func TestFailedStartWritesNothing(t *testing.T) {
	busy := taken(t)
	sock := filepath.Join(t.TempDir(), "nodir", "x", "luxi.sock")
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"rapi", Options{RPCAddr: "127.0.0.1:0", RAPIAddr: busy}, "cannot listen for RAPI on " + busy},
		{"rpc", Options{RPCAddr: busy, RAPIAddr: "127.0.0.1:0"}, "cannot listen for node RPC on " + busy},
		{"metrics", Options{RPCAddr: "127.0.0.1:0", RAPIAddr: "127.0.0.1:0", MetricsAddr: busy}, "cannot listen for metrics on " + busy},
		{"luxi-socket", Options{RPCAddr: "off", RAPIAddr: "off", LUXISockets: []string{sock + strings.Repeat("x", 120)}}, "cannot listen on " + sock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := tc.o
			o.DataDir, o.NodeName = dir, "node1"
			err := runUntilReady(t, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error with %q", err, tc.want)
			}
			if w := written(dir); len(w) > 0 {
				t.Errorf("a failed start wrote %v", w)
			}
			if _, err := os.Stat(SocketPath(dir)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed start left its socket: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "queue")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed start left the queue directory it made: %v", err)
			}
			// The same directory then starts with addresses that work.
			o.RPCAddr, o.RAPIAddr, o.MetricsAddr, o.LUXISockets = "127.0.0.1:0", "127.0.0.1:0", "", nil
			if err := runUntilReady(t, o); err != nil {
				t.Fatalf("a good start after the failed one: %v", err)
			}
			if a := selfAddress(t, dir, "node1"); !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":0") {
				t.Errorf("the node's address is %q", a)
			}
		})
	}
}

// TestFailedStartRemovesItsDataDir: a start that made its data directory
// and then cannot listen removes it again; one that found a queue there
// keeps it, job files and all.
func TestFailedStartRemovesItsDataDir(t *testing.T) {
	busy := taken(t)
	dir := filepath.Join(t.TempDir(), "new", "data")
	err := runUntilReady(t, Options{DataDir: dir, NodeName: "node1", RPCAddr: busy, RAPIAddr: "off"})
	if err == nil || !strings.Contains(err.Error(), "cannot listen for node RPC") {
		t.Fatalf("Run: %v, want the node RPC address refused", err)
	}
	if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed start left the directories it made for its data directory: %v", err)
	}
	// A queue that was there stays.
	old := t.TempDir()
	if err := runUntilReady(t, Options{DataDir: old, NodeName: "node1", RPCAddr: "127.0.0.1:0", RAPIAddr: "off"}); err != nil {
		t.Fatal(err)
	}
	if err := runUntilReady(t, Options{DataDir: old, NodeName: "node1", RPCAddr: busy, RAPIAddr: "off"}); err == nil {
		t.Fatal("a start on a taken address succeeded")
	}
	if _, err := os.Stat(filepath.Join(old, "queue", "version")); err != nil {
		t.Errorf("a failed start removed a queue it found: %v", err)
	}
}

// TestAddressRepaired: a one-node cluster started without node RPC
// records no address; the next start with node RPC records the one it
// listens on (issue 19: the empty address stayed after good starts).
func TestAddressRepaired(t *testing.T) {
	dir := t.TempDir()
	o := Options{DataDir: dir, NodeName: "node1", RPCAddr: "off", RAPIAddr: RAPIOff}
	if err := runUntilReady(t, o); err != nil {
		t.Fatal(err)
	}
	if a := selfAddress(t, dir, "node1"); a != "" {
		t.Fatalf("--rpc-addr off recorded %q", a)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	o.RPCAddr = addr
	if err := runUntilReady(t, o); err != nil {
		t.Fatal(err)
	}
	if a := selfAddress(t, dir, "node1"); a != addr {
		t.Errorf("after a start on %s the address is %q", addr, a)
	}
	// A start on a taken address fails and keeps the address.
	o.RPCAddr = taken(t)
	if err := runUntilReady(t, o); err == nil || !strings.Contains(err.Error(), "--rpc-addr off") {
		t.Errorf("a start on a taken node RPC address: %v", err)
	}
	if a := selfAddress(t, dir, "node1"); a != addr {
		t.Errorf("after a failed start the address is %q, want %s", a, addr)
	}
}
