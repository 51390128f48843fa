package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, s *Set) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestCountersMove(t *testing.T) {
	depth := map[string]int{"queued": 3, "success": 7}
	s := New(func() map[string]int { return depth }, func() int { return 2 })
	s.JobsSubmitted(5)
	s.JobFinished("success")
	s.JobFinished("error")
	s.OpcodeDone("OP_TEST_DELAY", 20*time.Millisecond)
	s.Committed(12, 3*time.Millisecond)
	s.LockWaited(time.Second)
	s.Waiter(1)
	s.Waiter(1)
	s.Waiter(-1)
	out := scrape(t, s)
	for _, want := range []string{
		"jobq_jobs_submitted_total 5",
		`jobq_jobs_finished_total{status="success"} 1`,
		`jobq_jobs_finished_total{status="error"} 1`,
		`jobq_opcode_duration_seconds_count{op_id="OP_TEST_DELAY"} 1`,
		"jobq_store_batch_changes_sum 12",
		"jobq_store_commit_seconds_count 1",
		"jobq_lock_wait_seconds_count 1",
		"jobq_waitforjobchange_waiters 1",
		`jobq_jobs{status="queued"} 3`,
		`jobq_jobs{status="success"} 7`,
		`jobq_jobs{status="running"} 0`,
		"jobq_running_jobs 2",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestNilSetRecordsNothing(t *testing.T) {
	var s *Set
	s.JobsSubmitted(1)
	s.JobFinished("success")
	s.OpcodeDone("x", time.Second)
	s.Committed(1, time.Second)
	s.LockWaited(time.Second)
	s.Waiter(1)
}

func TestClusterMetrics(t *testing.T) {
	s := New(func() map[string]int { return nil }, func() int { return 0 })
	if out := scrape(t, s); strings.Contains(out, "jobq_master") {
		t.Fatalf("cluster metrics before EnableCluster:\n%s", out)
	}
	s.EnableCluster(func() ClusterState {
		return ClusterState{Master: true, Epoch: 3, LeaderChanges: 2, Replicas: []Replica{
			{Node: "node2", InSync: true},
			{Node: "node3", Behind: 4},
		}}
	})
	out := scrape(t, s)
	for _, want := range []string{
		"jobq_master 1",
		"jobq_cluster_epoch 3",
		"jobq_leader_changes_total 2",
		`jobq_replica_in_sync{node="node2"} 1`,
		`jobq_replica_in_sync{node="node3"} 0`,
		`jobq_replica_behind_entries{node="node3"} 4`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	var nilSet *Set
	nilSet.EnableCluster(nil)
}
