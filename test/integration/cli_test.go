package integration

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// jobq runs the real jobq binary against the node (not JOBQ_SOCKET's
// socket) and returns stdout, stderr and the exit code.
func (n *node) jobq(args ...string) (string, string, int) {
	n.t.Helper()
	r := testbin.Options{Env: []string{"JOBQ_SOCKET="}}.Jobq(n.t, append([]string{"--data-dir", n.Dir}, args...)...)
	return r.Stdout, r.Stderr, r.Code
}

func (n *node) mustJobq(args ...string) string {
	n.t.Helper()
	out, errOut, code := n.jobq(args...)
	if code != 0 {
		n.t.Fatalf("jobq %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out + errOut
}

var jobIDRe = regexp.MustCompile(`JobID: (\d+)`)

// TestCLITour runs the README's tour with the real binaries.
func TestCLITour(t *testing.T) {
	n := startNode(t, t.TempDir(), "--max-running-jobs", "1")

	out := n.mustJobq("debug", "delay", "--submit", "--repeat", "3", "0.01")
	m := jobIDRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("debug delay --submit printed %q", out)
	}
	id := m[1]
	watch := n.mustJobq("watch", id)
	if !strings.HasPrefix(watch, "Output from job "+id+" follows\n") || strings.Count(watch, "Test delay iteration") != 3 {
		t.Fatalf("watch printed:\n%s", watch)
	}
	if out := n.mustJobq("list", "--no-headers", "-o", "id,status,summary"); !strings.Contains(out, id+" success TEST_DELAY(1.0e-2)") {
		t.Fatalf("list:\n%s", out)
	}
	info := n.mustJobq("info", id)
	for _, want := range []string{"- Job ID: " + id, "  Status: success", "Content: [3, message,  - INFO: Test delay iteration 2/2]"} {
		if !strings.Contains(info, want) {
			t.Fatalf("info lacks %q:\n%s", want, info)
		}
	}
	n.mustJobq("debug", "delay", "0.01") // synchronous

	// A failing job: wait exits 1 with Ganeti's message.
	m = jobIDRe.FindStringSubmatch(n.mustJobq("debug", "delay", "--submit", "0"))
	_, errOut, code := n.jobq("wait", m[1])
	if code != 1 || errOut != "Job "+m[1]+" failed: Failure: prerequisites not met for this operation:\nDuration must be greater than zero\n" {
		t.Fatalf("wait on a failed job: exit %d, %q", code, errOut)
	}

	// Cancel: the long job runs (one worker), the next one is queued.
	long := jobIDRe.FindStringSubmatch(n.mustJobq("debug", "delay", "--submit", "60"))[1]
	queued := jobIDRe.FindStringSubmatch(n.mustJobq("debug", "delay", "--submit", "0.01"))[1]
	c := n.client()
	var lid int64
	json.Unmarshal([]byte(long), &lid)
	waitFor(t, c, lid, func(s job.Status) bool { return s == job.StatusRunning })
	if out := n.mustJobq("cancel", queued); out != "Dequeued job "+queued+"\n" {
		t.Fatalf("cancel queued: %q", out)
	}
	if out, errOut, code := n.jobq("cancel", long); code != 1 || !strings.Contains(out+errOut, "no longer waiting") {
		t.Fatalf("cancel running: %d %q %q", code, out, errOut)
	}
	n.mustJobq("cancel", "--kill", long)
	if _, errOut, code := n.jobq("wait", queued); code != 1 || !strings.Contains(errOut, "Job was canceled") {
		t.Fatalf("wait on a canceled job: exit %d, %q", code, errOut)
	}
	if out := n.mustJobq("list", "--no-headers", "-o", "id,status", long, queued); out != long+" canceled\n"+queued+" canceled\n" {
		t.Fatalf("after cancel:\n%q", out)
	}

	// Archive and autoarchive.
	n.mustJobq("archive", id)
	if info := n.mustJobq("info", id); !strings.Contains(info, "- Job ID: "+id) {
		t.Fatalf("archived job not shown:\n%s", info)
	}
	if out := n.mustJobq("list", "--archived", "--no-headers", "-o", "id,status", id); out != id+" success Y\n" {
		t.Fatalf("list --archived: %q", out)
	}
	if _, errOut, code := n.jobq("archive", "999999"); code != 1 || errOut != "Failed to archive job with ID '999999': there is no such job in the queue or its archive\n" {
		t.Fatalf("archive unknown: %d %q", code, errOut)
	}
	if out := n.mustJobq("autoarchive", "all"); !regexp.MustCompile(`^Archived [1-9]\d* jobs, 0 unchecked left\n$`).MatchString(out) {
		t.Fatalf("autoarchive all: %q", out)
	}
	if out := n.mustJobq("list", "--no-headers"); out != "" {
		t.Fatalf("jobs left after autoarchive all:\n%s", out)
	}

	// Drain.
	n.mustJobq("queue", "drain")
	if out := n.mustJobq("queue", "info"); !strings.HasPrefix(out, "The drain flag is set\nAuto-archive: jobs finished more than 6h ago, every 5m\n") {
		t.Fatalf("queue info: %q", out)
	}
	if _, errOut, code := n.jobq("debug", "delay", "--submit", "1"); code != 1 || !strings.Contains(errOut, "The queue is drained: new jobs are refused; run 'jobq queue undrain'") {
		t.Fatalf("submit while drained: %d %q", code, errOut)
	}
	n.mustJobq("queue", "undrain")
	if out := n.mustJobq("queue", "info"); !strings.HasPrefix(out, "The drain flag is unset\nAuto-archive: ") {
		t.Fatalf("queue info: %q", out)
	}

	// A dry run checks and runs nothing: a delay of 1e9 seconds returns
	// (it would sleep for 31 years), and one that cannot run still fails.
	if out := n.mustJobq("debug", "delay", "--dry-run", "1e9"); !strings.Contains(out, "dry-run mode requested, not actually executing the operation") {
		t.Fatalf("debug delay --dry-run 1e9: %q", out)
	}
	if _, errOut, code := n.jobq("debug", "delay", "--dry-run", "0"); code != 1 || !strings.Contains(errOut, "Duration must be greater than zero") {
		t.Fatalf("debug delay --dry-run 0: %d %q", code, errOut)
	}
	// Durations in every form; not found is an error.
	n.mustJobq("debug", "delay", "10ms")
	for _, args := range [][]string{{"info", "999999"}, {"list", "999999"}, {"watch", "999999"}, {"wait", "999999"}} {
		if _, errOut, code := n.jobq(args...); code != 1 || !strings.Contains(errOut, "Job 999999 not found") {
			t.Errorf("jobq %v: exit %d, stderr %q", args, code, errOut)
		}
	}

	// Errors a user can cause: one sentence, non-zero exit.
	for _, args := range [][]string{{"info", "x"}, {"autoarchive", "soon"}, {"change-priority", "--priority", "urgent", "1"}, {"nosuchcommand"}} {
		_, errOut, code := n.jobq(args...)
		if code == 0 || errOut == "" || strings.Contains(errOut, "goroutine") {
			t.Errorf("jobq %v: exit %d, stderr %q", args, code, errOut)
		}
	}
	r := testbin.Jobq(t, "--socket", filepath.Join(t.TempDir(), "none"), "list")
	if out2 := r.Stdout + r.Stderr; r.Code == 0 || !strings.Contains(out2, "Cannot connect to jobqd") {
		t.Fatalf("no daemon: exit %d %s", r.Code, out2)
	}
}
