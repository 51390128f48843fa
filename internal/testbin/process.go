package testbin

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/execute"
)

// Cgroups is a cgroup v2 parent named name for a test's executions,
// emptied and removed when the test ends; without root or a usable cgroup
// v2 the test fails in CI and is skipped elsewhere (Missing).
func Cgroups(t testing.TB, name string) execute.Cgroups {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "containing executions in a cgroup needs root")
	}
	cg, err := execute.FindCgroups(name)
	if err != nil {
		Missing(t, "no usable cgroup v2: %v", err)
	}
	t.Cleanup(func() {
		cg.KillLeftovers()
		cg.Close()
	})
	return cg
}

// ReadPid waits (up to 20s) for the pid a program writes to path, ending
// with a newline.
func ReadPid(t testing.TB, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 0 {
				t.Fatalf("%s holds %q, not a pid", path, b)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written within 20s", path)
		}
		time.Sleep(5 * time.Millisecond) // polls a file the program writes, bounded above
	}
}

// Alive says whether pid runs (a zombie does not).
func Alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// Gone fails the test unless pid has ended within 10s (a process killed
// with SIGKILL disappears in microseconds); it is killed if not.
func Gone(t testing.TB, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for Alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s (pid %d) still runs 10s after it was stopped", what, pid)
		}
		time.Sleep(5 * time.Millisecond) // bounded by the deadline above
	}
}
