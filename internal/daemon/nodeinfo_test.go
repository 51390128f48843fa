package daemon

import (
	"testing"
	"time"
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
		{replicationInfo{State: "unknown"}, "unknown"},
	} {
		if got := tc.r.text(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}
