package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/jobq-dev/jobq/internal/restricted"
	"github.com/jobq-dev/jobq/opcodes"
)

// localNodes is opcodes.Nodes for a queue without a cluster: only this
// node (name) exists, and its restricted commands are in dir
// (Config.RestrictedDir; empty: the node has none).
type localNodes struct {
	name string
	dir  string
}

var _ opcodes.Nodes = localNodes{}

// Known implements opcodes.Nodes.
func (l localNodes) Known(name string) bool { return name == l.name }

// RunCommand implements opcodes.Nodes: it runs the command here with
// package restricted's defaults.
func (l localNodes) RunCommand(ctx context.Context, node, command string) (bool, string, error) {
	if err := l.reach(node); err != nil {
		return false, "", err
	}
	ok, out := restricted.Run(ctx, l.dir, command, restricted.Options{})
	return ok, out, nil
}

// Delay implements opcodes.Nodes: it sleeps here.
func (l localNodes) Delay(ctx context.Context, node string, d time.Duration) error {
	if err := l.reach(node); err != nil {
		return err
	}
	return opcodes.Sleep(ctx, d)
}

func (l localNodes) reach(node string) error {
	if node != l.name {
		return fmt.Errorf("node '%s' cannot be reached: this queue has no cluster and its only node is '%s'", node, l.name)
	}
	return nil
}
