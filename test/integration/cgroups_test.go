package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jobq-dev/jobq/internal/execute"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// TestKilledJobqdLeavesNoCgroup: a jobqd killed with SIGKILL leaves the
// cgroup of its executions (the next start on its data directory kills
// what is left there), and the test harness removes it when the test
// ends, so that running the tests leaves none on the machine.
func TestKilledJobqdLeavesNoCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		testbin.Missing(t, "jobqd's cgroups need root")
	}
	dir := filepath.Join(t.TempDir(), "d")
	cg, err := execute.CgroupsDir(execute.CgroupsName(dir))
	if err != nil {
		testbin.Missing(t, "no usable cgroup v2: %v", err)
	}
	t.Run("killed", func(t *testing.T) {
		d := testbin.Start(t, dir, "--rpc-addr", "off", "--rapi-addr", "off")
		if _, err := os.Stat(cg); err != nil {
			t.Fatalf("jobqd runs without its cgroup %s: %v\n%s", cg, err, d.Logs())
		}
		d.Kill()
		if _, err := os.Stat(cg); err != nil {
			t.Fatalf("the cgroup of a killed jobqd is gone before the test's end (%v): the harness would have nothing to remove", err)
		}
	})
	if _, err := os.Stat(cg); err == nil {
		t.Fatalf("the killed jobqd's cgroup %s is left on the machine after its test", cg)
	}
}
