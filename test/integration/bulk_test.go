package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/job"
)

// Two plain "jobq debug delay" jobs take the master's node lock one after
// the other even with free workers (issue 17 item 8); the second waits, so
// "jobq cancel --waiting --force" cancels it; "jobq info" without IDs
// shows every job and "jobq list -F" filters (item 9).
func TestPlainDelaysQueueAndBulkCancel(t *testing.T) {
	n := startNode(t, t.TempDir(), "--max-running-jobs", "4")
	c := n.client()
	submit := func(secs string) int64 {
		t.Helper()
		m := jobIDRe.FindStringSubmatch(n.mustJobq("debug", "delay", "--submit", secs))
		if m == nil {
			t.Fatal("debug delay --submit printed no job ID")
		}
		id, _ := strconv.ParseInt(m[1], 10, 64)
		return id
	}
	long := submit("60")
	waitFor(t, c, long, func(s job.Status) bool { return s == job.StatusRunning })
	second := submit("0.01")
	waitFor(t, c, second, func(s job.Status) bool { return s == job.StatusWaiting })
	if out := n.mustJobq("list", "--no-headers", "-o", "id,status", "--running"); out != strconv.FormatInt(long, 10)+" running\n" {
		t.Fatalf("running jobs with a delay waiting for the master's lock:\n%s", out)
	}
	if out := n.mustJobq("cancel", "--waiting", "--force"); out != "Job "+strconv.FormatInt(second, 10)+" will be canceled\n" {
		t.Fatalf("cancel --waiting --force: %q", out)
	}
	if st := waitFor(t, c, second, func(s job.Status) bool { return s.Final() }); st != job.StatusCanceled {
		t.Fatalf("the waiting delay ended %s", st)
	}
	info := n.mustJobq("info")
	for _, want := range []string{"- Job ID: " + strconv.FormatInt(long, 10) + "\n  Status: running",
		"- Job ID: " + strconv.FormatInt(second, 10) + "\n  Status: canceled"} {
		if !strings.Contains(info, want) {
			t.Fatalf("info without IDs lacks %q:\n%s", want, info)
		}
	}
	// list -F: Ganeti's query language, evaluated by jobqd.
	if out := n.mustJobq("list", "--no-headers", "-o", "id", "-F", `status == "canceled" or (status == "running" and "TEST_DELAY(60.0)" in summary)`); out != fmt.Sprintf("%d\n%d\n", long, second) {
		t.Fatalf("list -F:\n%s", out)
	}
	if _, errOut, code := n.jobq("cancel", "--queued", "--force"); code != 1 || errOut != "No jobs with the requested status have been found\n" {
		t.Fatalf("cancel --queued --force with no queued job: exit %d, %q", code, errOut)
	}
	n.mustJobq("cancel", "--kill", strconv.FormatInt(long, 10))
	waitFor(t, c, long, func(s job.Status) bool { return s.Final() })
}
