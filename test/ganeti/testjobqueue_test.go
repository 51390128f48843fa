package ganeti_test

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestGanetiTestJobqueue runs Ganeti's own "gnt-debug test-jobqueue"
// against jobqd (qa_cluster.py's TestJobqueue): submissions with priorities
// outside -10/0/10 refused as whole calls, a relative dependency in a
// single job refused, five dependent jobs run in order, and OP_TEST_JQUEUE
// jobs whose notifications (the job waiting, then running) the client
// checks over their sockets, with the TESTMSG= messages in order.
func TestGanetiTestJobqueue(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test bind-mounts jobqd's socket directory over /var/run/ganeti/socket in a private mount namespace")
	}
	if _, err := os.Stat("/usr/sbin/gnt-debug"); err != nil {
		t.Skipf("Ganeti's clients are not installed (apt-get install -y --no-install-recommends ganeti-3.0): %v", err)
	}
	if err := os.MkdirAll("/var/run/ganeti/socket", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/var/lib/ganeti", 0o755); err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, sockDir: startJobqd(t, buildJobqd(t)), ids: map[string]string{}}
	start := time.Now()
	out := s.gnt("gnt-debug", "test-jobqueue")
	t.Logf("gnt-debug test-jobqueue took %v", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"Job submission tests were successful\n", "Job dependency tests were successful\n",
		"Testing partial job failure\n", "Job queue test successful\n[rc=0]\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("gnt-debug test-jobqueue against jobqd: output lacks %q:\n%s", want, out)
		}
	}
}
