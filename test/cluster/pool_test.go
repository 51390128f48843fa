package cluster

import (
	"encoding/json"
	"testing"
)

// info is what "jobq cluster info --json" says of the pool.
type info struct {
	Pool int `json:"candidate_pool_size"`
}

func clusterInfo(t *testing.T, n *cnode) info {
	t.Helper()
	r := n.jobq(t, "cluster", "info", "--json")
	var i info
	if err := json.Unmarshal([]byte(r.Stdout), &i); r.Code != 0 || err != nil {
		t.Fatalf("cluster info --json: %v %+v", err, r)
	}
	return i
}

// TestCandidatePoolSize: "jobq cluster modify --candidate-pool-size"
// (Ganeti's candidate_pool_size) says how many master candidates vote;
// the master moves the group to it, and the new size holds on the next
// master.
func TestCandidatePoolSize(t *testing.T) {
	nodes := startCluster(t, 3)
	n1 := nodes[0]
	waitVoters(t, n1, "node1", "node2", "node3")
	if p := clusterInfo(t, n1).Pool; p != 5 {
		t.Fatalf("a new cluster's pool: %d, want 5", p)
	}
	if r := n1.jobq(t, "cluster", "modify", "--candidate-pool-size", "1"); r.Code != 0 {
		t.Fatalf("modify: %+v", r)
	}
	waitVoters(t, n1, "node1")
	if r := n1.jobq(t, "cluster", "modify", "--candidate-pool-size", "10"); r.Code == 0 ||
		r.Stderr != "Failure: prerequisites not met for this operation:\nerror type: wrong_input, error details:\ncandidate_pool_size must be between 1 and 9 (every candidate votes: 3 or 5 suits most clusters), got 10\n" {
		t.Fatalf("modify to 10: %+v", r)
	}
	if r := n1.jobq(t, "cluster", "modify", "--candidate-pool-size", "3"); r.Code != 0 {
		t.Fatalf("modify: %+v", r)
	}
	waitVoters(t, n1, "node1", "node2", "node3")
	// The pool is the cluster's: after a master-failover the new master
	// keeps it.
	makeMaster(t, nodes[1], nodes...)
	if p := clusterInfo(t, nodes[1]).Pool; p != 3 {
		t.Fatalf("pool on the new master: %d, want 3", p)
	}
	waitVoters(t, nodes[1], "node1", "node2", "node3")
}
