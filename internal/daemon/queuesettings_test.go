package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/settings"
)

// gntClusterModify is the opcode gnt-cluster modify --max-running-jobs=5
// submits (Ganeti 3.0.2's client against jobqd).
const gntClusterModify = `{"OP_ID": "OP_CLUSTER_SET_PARAMS", "beparams": {}, "comment": null, "data_collector_interval": {}, "debug_level": 0, "depends": null, "disk_state": {}, "diskparams": {}, "dry_run": false, "enabled_data_collectors": {}, "force": false, "hv_state": {}, "hvparams": {}, "ipolicy": {}, "max_running_jobs": 5, "nicparams": {}, "priority": 0, "reason": [["gnt:client:gnt-cluster", "modify", 1796677820434263552]]}`

func TestUnsupportedClusterParams(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{gntClusterModify, nil},
		{`{"OP_ID": "OP_CLUSTER_SET_PARAMS", "max_tracked_jobs": 30, "vg_name": null, "candidate_pool_size": 10, "hvparams": {"kvm": {}}, "tags": [], "mac_prefix": ""}`, []string{"hvparams"}},
		{`{"OP_ID": "OP_CLUSTER_SET_PARAMS", "drbd_helper": "x", "uid_pool": [[1, 2]], "force": true}`, []string{"drbd_helper", "uid_pool"}},
	} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.in), &m); err != nil {
			t.Fatal(err)
		}
		if got := unsupportedClusterParams(m); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.in, got, tc.want)
		}
	}
}

// OP_CLUSTER_SET_PARAMS as gnt-cluster modify sends it changes
// max_running_jobs at once; other parameters are refused naming them.
func TestClusterSetParamsMaxRunning(t *testing.T) {
	n := startNode(t, 1, nil)
	id := n.submit(gntClusterModify)
	n.waitStatus(id, "success")
	var rows [][]any
	n.call(&rows, "QueryJobs", []int64{id}, []string{"oplog"})
	if got := fmt.Sprint(rows[0][0]); got != "[[]]" {
		t.Fatalf("oplog %s (gnt-cluster modify would print it)", got)
	}
	// Five gates run at once now (the node started with one worker).
	var ids []int64
	for i := range 5 {
		ids = append(ids, n.gateJob(fmt.Sprintf("g%d", i)))
	}
	for i := range 5 {
		n.waitGate(fmt.Sprintf("g%d", i))
	}
	n.gates.openAll()
	for _, g := range ids {
		n.waitStatus(g, "success")
	}
	bad := n.submit(`{"OP_ID": "OP_CLUSTER_SET_PARAMS", "max_running_jobs": 2, "mac_prefix": "aa:00:00"}`)
	n.waitStatus(bad, "error")
	n.call(&rows, "QueryJobs", []int64{bad}, []string{"opresult"})
	want := `[[OpPrereqError [jobq changes only max_running_jobs, max_tracked_jobs and candidate_pool_size of the cluster; leave out [mac_prefix] (gnt-cluster modify and jobq cluster modify take --max-running-jobs, --max-tracked-jobs and --candidate-pool-size; jobq's own idempotency_window is the only other parameter) wrong_input]]]`
	if got := fmt.Sprint(rows[0][0]); got != want {
		t.Errorf("opresult %s,\nwant %s", got, want)
	}
	zero := n.submit(`{"OP_ID": "OP_CLUSTER_SET_PARAMS", "max_running_jobs": 0}`)
	n.waitStatus(zero, "error")
	n.call(&rows, "QueryJobs", []int64{zero}, []string{"opresult"})
	if got := fmt.Sprint(rows[0][0]); got != `[[OpPrereqError [max_running_jobs must be between 1 and 1048576, got 0 wrong_input]]]` {
		t.Errorf("opresult %s", got)
	}
}

// A queue that opens (a new master) takes max_running_jobs from the
// cluster-wide settings rather than jobqd's --max-running-jobs.
func TestMaxRunningLoadedFromSettings(t *testing.T) {
	n := startNode(t, 1, func(dir string) {
		st, err := settings.OpenLocal(filepath.Join(dir, "cluster", "settings"))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Set(context.Background(), "queue", []byte(`{"max_running_jobs":3}`)); err != nil {
			t.Fatal(err)
		}
	})
	for i := range 3 {
		n.gateJob(fmt.Sprintf("g%d", i))
	}
	for i := range 3 {
		n.waitGate(fmt.Sprintf("g%d", i))
	}
}

// OP_CLUSTER_SET_PARAMS with candidate_pool_size (gnt-cluster modify
// --candidate-pool-size) changes how many candidates vote, through the
// cluster's configuration; sizes out of range are refused naming the
// range.
func TestClusterSetParamsCandidatePool(t *testing.T) {
	n := startNode(t, 1, nil)
	pool := func() int64 {
		var info struct {
			Pool int64 `json:"candidate_pool_size"`
		}
		n.call(&info, "JobqClusterInfo")
		return info.Pool
	}
	if got := pool(); got != 5 {
		t.Fatalf("a new cluster's pool: %d, want 5", got)
	}
	id := n.submit(`{"OP_ID": "OP_CLUSTER_SET_PARAMS", "candidate_pool_size": 3, "max_running_jobs": null}`)
	n.waitStatus(id, "success")
	if got := pool(); got != 3 {
		t.Fatalf("pool after the change: %d, want 3", got)
	}
	var rows [][]any
	for _, size := range []int{0, 10, -1} {
		bad := n.submit(fmt.Sprintf(`{"OP_ID": "OP_CLUSTER_SET_PARAMS", "candidate_pool_size": %d}`, size))
		n.waitStatus(bad, "error")
		n.call(&rows, "QueryJobs", []int64{bad}, []string{"opresult"})
		want := fmt.Sprintf(`[[OpPrereqError [candidate_pool_size must be between 1 and 9 (every candidate votes: 3 or 5 suits most clusters), got %d wrong_input]]]`, size)
		if got := fmt.Sprint(rows[0][0]); got != want {
			t.Errorf("size %d: opresult %s,\nwant %s", size, got, want)
		}
	}
	if got := pool(); got != 3 {
		t.Fatalf("pool after refused changes: %d, want 3", got)
	}
}

// OP_CLUSTER_SET_PARAMS idempotency_window (jobq's) is taken, within
// bounds; keys work over LUXI's options object.
func TestClusterSetParamsIdempotencyWindow(t *testing.T) {
	n := startNode(t, 1, nil)
	key := map[string]any{"idempotency_key": "k"}
	op := []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.01}`)}
	var first, again int64
	n.call(&first, "SubmitJob", op, key)
	n.waitStatus(first, "success")
	n.call(&again, "SubmitJob", op, key)
	if again != first {
		t.Fatalf("retry: job %d, want %d", again, first)
	}
	bad := n.submit(`{"OP_ID": "OP_CLUSTER_SET_PARAMS", "idempotency_window": 59}`)
	n.waitStatus(bad, "error")
	var rows [][]any
	n.call(&rows, "QueryJobs", []int64{bad}, []string{"opresult"})
	if got := fmt.Sprint(rows[0][0]); got != `[[OpPrereqError [idempotency_window must be between 60 and 2592000 seconds (30 days), got 59 wrong_input]]]` {
		t.Fatalf("opresult %s", got)
	}
	set := n.submit(`{"OP_ID": "OP_CLUSTER_SET_PARAMS", "idempotency_window": 60}`)
	n.waitStatus(set, "success")
	// Another submission with the key is refused, naming the new window
	// (handed to the running queue by the setting's watch).
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := n.c.Call(ctx, "SubmitManyJobs", [][]json.RawMessage{op, op}, key)
	if err == nil || !strings.Contains(err.Error(), `idempotency key "k" was used`) || !strings.Contains(err.Error(), "kept for 1m;") {
		t.Fatalf("SubmitManyJobs with a used key: %v", err)
	}
}
