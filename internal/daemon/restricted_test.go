package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	cg := testbin.Cgroups(t, "jobq-daemon-restricted-test")
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
	pid := testbin.ReadPid(t, pidFile)
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
	testbin.Gone(t, pid, "the setsid child, after the fence's stop")
}
