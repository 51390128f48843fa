package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/testbin"
)

// TestBenchCommand runs jobq-bench's workloads, small, against a real
// jobqd and checks that its report says what happened: every job
// successful, every watcher answered, the disk's limit and the watchers'
// floor measured in the same run.
func TestBenchCommand(t *testing.T) {
	n := startNode(t, t.TempDir())
	r := testbin.Options{}.Run(t, "jobq-bench", "--socket", n.Socket(), "--jobs", "60", "--clients", "3",
		"--batch", "7", "--latency-samples", "5", "--watchers", "40", "--disk-time", "200ms")
	if r.Code != 0 {
		t.Fatalf("jobq-bench: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	var rep map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rep); err != nil {
		t.Fatalf("first line is not JSON: %v\n%s", err, r.Stdout)
	}
	for key, want := range map[string]float64{"jobs": 60, "clients": 3, "batch": 7, "not_success": 0, "watchers": 40} {
		if got, _ := rep[key].(float64); got != want {
			t.Errorf("%s = %v, want %v", key, rep[key], want)
		}
	}
	for _, key := range []string{"jobs_per_s", "disk_replaces_per_s", "disk_limit_jobs_per_s", "fraction_of_disk_limit",
		"latency_p50_ms", "latency_p99_ms", "watch_p50_ms", "watch_p99_ms", "watch_floor_p50_ms", "watch_floor_p99_ms"} {
		if v, ok := rep[key].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", key, rep[key])
		}
	}
	human := strings.Join(lines[1:], "\n")
	for _, want := range []string{"throughput: 60 jobs", "of the disk's limit", "latency: one job at a time",
		"watchers: 40 concurrent WaitForJobChange", "watchers' floor: the same 40 connections"} {
		if !strings.Contains(human, want) {
			t.Errorf("summary lacks %q:\n%s", want, human)
		}
	}
	// Every job it submitted ended, none is left running.
	if out := n.mustJobq("list", "--no-headers", "-o", "status"); strings.Contains(out, "running") || strings.Contains(out, "queued") {
		t.Errorf("jobs left unfinished:\n%s", out)
	}
}

// TestBenchCommandRefusals: usage errors exit 2 with one sentence.
func TestBenchCommandRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--socket", ""}, "give the node's socket"},
		{[]string{"--socket", "/nonexistent/sock", "--workloads", "speed"}, `unknown workload "speed"`},
	} {
		r := testbin.Options{Env: []string{"JOBQ_SOCKET="}}.Run(t, "jobq-bench", tc.args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("jobq-bench %v: exit %d, stderr %q; want exit 2 and %q", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
	r := testbin.Options{}.Run(t, "jobq-bench", "--socket", "/nonexistent/sock", "--workloads", "latency")
	if r.Code != 1 || !strings.Contains(r.Stderr, "jobq-bench:") {
		t.Errorf("unreachable socket: exit %d, stderr %q", r.Code, r.Stderr)
	}
}
