package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/job"
)

// Two OP_TEST_DELAY jobs on the same node serialize on its lock; the
// waiting one is shown by jobq locks and can be canceled.
func TestLocksSerializeAndCancel(t *testing.T) {
	n := startNode(t, t.TempDir())
	c := n.client()
	holder := submit(t, c, map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 60, "on_nodes": []string{"node1"}, "no_locks": false})
	waitFor(t, c, holder, func(s job.Status) bool { return s == job.StatusRunning })
	second := submit(t, c, map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "on_nodes": []string{"node1"}, "no_locks": false})
	third := submit(t, c, map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "on_nodes": []string{"node1"}, "no_locks": false})
	waitFor(t, c, second, func(s job.Status) bool { return s == job.StatusWaiting })
	waitFor(t, c, third, func(s job.Status) bool { return s == job.StatusWaiting })

	locks := n.mustJobq("locks", "--no-headers", "--separator", "|")
	want := fmt.Sprintf("node/node1|exclusive|job/%d|exclusive:job/%d,job/%d\n", holder, second, third)
	if !strings.Contains(locks, want) {
		t.Fatalf("jobq locks:\n%s\nwant a line %q", locks, want)
	}
	if out := n.mustJobq("list", "--no-headers", "-o", "id,status", fmt.Sprint(second)); out != fmt.Sprintf("%d waiting\n", second) {
		t.Fatalf("list: %q", out)
	}

	// Cancel the second while it waits: it ends canceled, never having run.
	if out := n.mustJobq("cancel", fmt.Sprint(second)); out != fmt.Sprintf("Job %d will be canceled\n", second) {
		t.Fatalf("cancel: %q", out)
	}
	if st := waitFor(t, c, second, final); st != job.StatusCanceled {
		t.Fatalf("canceled waiter ended %s", st)
	}
	if j := readJobFile(t, n.Dir, second); j.Ops[0].ExecTimestamp != nil {
		t.Fatal("the canceled job executed")
	}
	locks = n.mustJobq("locks", "--no-headers", "--separator", "|")
	if want := fmt.Sprintf("node/node1|exclusive|job/%d|exclusive:job/%d\n", holder, third); !strings.Contains(locks, want) {
		t.Fatalf("after the cancel:\n%s", locks)
	}

	// Kill the holder: the third gets the lock and runs.
	n.mustJobq("cancel", "--kill", fmt.Sprint(holder))
	if st := waitFor(t, c, third, final); st != job.StatusSuccess {
		t.Fatalf("third ended %s", st)
	}
	locks = n.mustJobq("locks", "--no-headers", "--separator", "|")
	for _, l := range strings.Split(strings.TrimSpace(locks), "\n") {
		if f := strings.Split(l, "|"); len(f) != 4 || f[1] != "-" || f[2] != "-" || f[3] != "-" {
			t.Fatalf("a lock is still held or awaited: %q", l)
		}
	}
}
