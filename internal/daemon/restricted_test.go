package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/execute"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/restricted"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// TestFenceStopKillsRestrictedCommand: a restricted command a master of
// term 3 ordered here, whose child left its process group (setsid), is
// killed with that child when the node learns of term 4 (the node RPC
// Command handler: fenced, contained in jobqd's cgroup); the master of
// term 3 gets the stale-epoch refusal.
func TestFenceStopKillsRestrictedCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		testbin.Missing(t, "containing restricted commands in a cgroup needs root")
	}
	cg, err := execute.FindCgroups("jobq-daemon-restricted-test")
	if err != nil {
		testbin.Missing(t, "no usable cgroup v2: %v", err)
	}
	t.Cleanup(func() {
		cg.KillLeftovers()
		cg.Close()
	})
	data := t.TempDir()
	dir := restricted.Dir(data)
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := "#!/bin/sh\nsetsid sh -c 'echo $$ > " + pidFile + ".tmp; mv " + pidFile + ".tmp " + pidFile + "; exec sleep 1000' &\nsleep 1000\n"
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "escape"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, "escape"), 0o755)
	n := &nodeRT{o: Options{DataDir: data}, log: slog.New(slog.DiscardHandler), cgroups: cg}
	done := make(chan error, 1)
	go func() {
		_, err := rpcHandler{n}.Command(context.Background(), &noderpc.CommandRequest{Command: "escape", Epoch: 3})
		done <- err
	}()
	var pid int
	for deadline := time.Now().Add(20 * time.Second); pid == 0; {
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command's child did not write its pid within 20s")
		}
		time.Sleep(5 * time.Millisecond) // polls a file the command writes, bounded above
	}
	if n.fence.Observe(4) != 1 {
		t.Fatal("the fence did not stop the restricted command")
	}
	select {
	case err := <-done:
		var ne *noderpc.Error
		if !errors.As(err, &ne) || ne.Code != noderpc.CodeStaleEpoch {
			t.Fatalf("Command of the deposed master = %v, want a stale-epoch refusal", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stopped command did not end within 30s")
	}
	// Killed with SIGKILL, it is gone within microseconds; 10s is the
	// deadline.
	for deadline := time.Now().Add(10 * time.Second); alivePid(pid); {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the setsid child %d survived the fence's stop by 10s", pid)
		}
		time.Sleep(5 * time.Millisecond) // bounded by the deadline above
	}
}

// alivePid says whether pid runs (a zombie does not).
func alivePid(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}
