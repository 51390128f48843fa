package queue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Without a cluster only the node itself is known, and its restricted
// commands run here.
func TestLocalNodes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "restricted-commands")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "hello")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	l := localNodes{name: "node1", dir: dir}
	if !l.Known("node1") || l.Known("node2") || l.Known("") {
		t.Error("Known")
	}
	ctx := context.Background()
	if ok, out, err := l.RunCommand(ctx, "node1", "hello"); !ok || out != "hello\n" || err != nil {
		t.Errorf("RunCommand hello: %v %q %v", ok, out, err)
	}
	if ok, out, err := l.RunCommand(ctx, "node1", "../hello"); ok || out == "" || err != nil {
		t.Errorf("RunCommand ../hello: %v %q %v", ok, out, err)
	}
	want := "node 'node2' cannot be reached: this queue has no cluster and its only node is 'node1'"
	if _, _, err := l.RunCommand(ctx, "node2", "hello"); err == nil || err.Error() != want {
		t.Errorf("RunCommand on node2: %v", err)
	}
	if err := l.Delay(ctx, "node2", 0); err == nil || err.Error() != want {
		t.Errorf("Delay on node2: %v", err)
	}
	if err := l.Delay(ctx, "node1", 0); err != nil {
		t.Errorf("Delay: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Delay(cctx, "node1", 1<<62); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Delay: %v", err)
	}
	if ok, out, err := (localNodes{name: "node1"}).RunCommand(ctx, "node1", "hello"); ok || out != "Restricted command 'hello' cannot be run: this node has no restricted-commands directory" || err != nil {
		t.Errorf("RunCommand without a directory: %v %q %v", ok, out, err)
	}
}
