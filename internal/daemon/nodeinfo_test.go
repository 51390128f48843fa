package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
)

// TestReplicationText: the dashboard's words for each replication state.
func TestReplicationText(t *testing.T) {
	since := float64(time.Date(2026, 11, 27, 10, 1, 2, 0, time.Local).Unix())
	for _, tc := range []struct {
		r    replicationInfo
		want string
	}{
		{replicationInfo{State: "self"}, "holds the queue (master)"},
		{replicationInfo{State: "in sync"}, "in sync"},
		{replicationInfo{State: "behind", Behind: 3}, "behind by 3 updates"},
		{replicationInfo{State: "unreachable", UnreachableSince: &since, LastError: "connection refused"}, "unreachable since 2026-11-27 10:01:02 (connection refused)"},
		{replicationInfo{State: "unreachable"}, "unreachable"},
		{replicationInfo{State: "resyncing"}, "resyncing"},
		{replicationInfo{State: "not a replica"}, "not a master candidate: holds no copy"},
		{replicationInfo{State: "catching up"}, "catching up: receiving the queue, counts in majorities once in sync"},
		{replicationInfo{State: "unknown"}, "unknown"},
	} {
		if got := tc.r.text(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}

// TestFailoverRefusedWhileCatchingUp: a node still catching up may not
// take part in a vote to become master (it may lack jobs); the refusal
// says what to do instead. It is decided before any node is asked.
func TestFailoverRefusedWhileCatchingUp(t *testing.T) {
	cfg := cluster.NewConfig("node1", "10.0.0.1:1811")
	cfg, err := cfg.AddNode("node2", "10.0.0.2:1811")
	if err != nil {
		t.Fatal(err)
	}
	n := &nodeRT{self: "node2", cfg: cfg}
	_, err = n.masterFailover(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "node node2 is still catching up with the queue") ||
		!strings.Contains(err.Error(), "--no-voting --yes-do-it") {
		t.Fatalf("failover on a node catching up: %v", err)
	}
}
