package ganeti_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

// TestGanetiClusterModify runs Ganeti's own "gnt-cluster modify
// --max-running-jobs" against jobqd (started with one worker): the value
// applies at once, two --no-locks delays then run side by side and a
// third waits; a parameter jobq does not have is refused, naming it.
func TestGanetiClusterModify(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test bind-mounts jobqd's socket directory over /var/run/ganeti/socket in a private mount namespace")
	}
	if _, err := os.Stat("/usr/sbin/gnt-cluster"); err != nil {
		t.Skipf("Ganeti's clients are not installed (apt-get install -y --no-install-recommends ganeti-3.0): %v", err)
	}
	for _, d := range []string{"/var/run/ganeti/socket", "/var/lib/ganeti"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sockDir := startJobqdWith(t, buildJobqd(t), serialSeed, 1)
	sock := filepath.Join(sockDir, "ganeti-query")
	s := &scenario{t: t, sockDir: sockDir, ids: map[string]string{}}
	if got := s.gnt("gnt-cluster", "modify", "--max-running-jobs=2"); got != "$ gnt-cluster modify --max-running-jobs=2\n[rc=0]\n" {
		t.Fatalf("gnt-cluster modify printed\n%s", got)
	}
	var ids []int64
	for range 3 {
		out := s.gnt("gnt-debug", "delay", "--submit", "--no-locks", "3")
		_, rest, _ := strings.Cut(out, "JobID: ")
		id, err := strconv.ParseInt(strings.TrimSpace(strings.Split(rest, "\n")[0]), 10, 64)
		if err != nil {
			t.Fatalf("gnt-debug delay printed\n%s", out)
		}
		ids = append(ids, id)
	}
	waitForStatus(t, sock, ids[0], "running")
	waitForStatus(t, sock, ids[1], "running")
	if st := jobStatus(t, sock, ids[2]); st != "queued" {
		t.Errorf("third job with max_running_jobs 2: %s", st)
	}
	if got := s.gnt("gnt-cluster", "modify", "--candidate-pool-size=3"); got != "$ gnt-cluster modify --candidate-pool-size=3\n[rc=0]\n" {
		t.Errorf("gnt-cluster modify --candidate-pool-size printed\n%s", got)
	}
	got := s.gnt("gnt-cluster", "modify", "--mac-prefix=aa:00:00")
	if !strings.Contains(got, "jobq changes only max_running_jobs, max_tracked_jobs and candidate_pool_size of the cluster; leave out [mac_prefix]") || !strings.HasSuffix(got, "[rc=1]\n") {
		t.Errorf("gnt-cluster modify --mac-prefix printed\n%s", got)
	}
	waitForStatus(t, sock, ids[2], "running")
}

func jobStatus(t *testing.T, sock string, id int64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := luxi.DialContext(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.Call(ctx, "QueryJobs", []int64{id}, []string{"status"})
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	if err := json.Unmarshal(raw, &rows); err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("QueryJobs answered %s", raw)
	}
	return rows[0][0]
}
