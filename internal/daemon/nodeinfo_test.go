package daemon

import (
	"testing"
)

// TestReplicationText: the dashboard's words for each state of a node's
// copy of the log.
func TestReplicationText(t *testing.T) {
	for _, tc := range []struct {
		r    replicationInfo
		want string
	}{
		{replicationInfo{State: "self"}, "holds the queue (master)"},
		{replicationInfo{State: "in sync"}, "in sync"},
		{replicationInfo{State: "behind", Behind: 3}, "behind by 3 log entries"},
		{replicationInfo{State: "catching up"}, "catching up: receiving the log, votes once it holds it (if the cluster wants it to)"},
		{replicationInfo{State: "not a member"}, "not in the log's group yet"},
		{replicationInfo{State: "unknown"}, "unknown"},
	} {
		if got := tc.r.text(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}
