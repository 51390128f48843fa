package opcodes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/restricted"
	"github.com/jobq-dev/jobq/locking"
)

// TestDelay is OP_TEST_DELAY: sleep on the master and/or on the listed
// nodes, logging each iteration when repeated.
type TestDelay struct {
	Duration      float64  `json:"duration"`
	OnMaster      bool     `json:"on_master"`
	OnNodes       []string `json:"on_nodes"`
	Repeat        int      `json:"repeat"`
	Interruptible bool     `json:"interruptible"`
	NoLocks       bool     `json:"no_locks"`
}

var testDelayDef = Definition{
	ID:           "OP_TEST_DELAY",
	New:          func() Params { return &TestDelay{OnMaster: true, NoLocks: true} },
	SummaryField: "duration",
	Required:     []string{"duration"},
}

// Validate implements Params.
func (p *TestDelay) Validate() error {
	if !(p.Duration > 0) {
		return PrereqError("", "Duration must be greater than zero")
	}
	if p.Repeat < 0 {
		return PrereqError("wrong_input", "Repeat count must be zero or positive")
	}
	if p.Repeat > MaxTestDelayRepeat {
		return PrereqError("wrong_input", "Repeat count %d is over the limit of %d (each iteration logs a message); submit several jobs instead", p.Repeat, MaxTestDelayRepeat)
	}
	return nil
}

// MaxTestDelayRepeat is the largest repeat OP_TEST_DELAY accepts: every
// iteration logs a message, and every message rewrites the job file.
const MaxTestDelayRepeat = 1000

// Prepare implements Preparer: every listed node must be a node of the
// cluster.
func (p *TestDelay) Prepare(env Env) error {
	return checkNodes(env, p.OnNodes)
}

// Locks implements Locker: unless no_locks is set, the cluster lock shared
// and, exclusively, the nodes it sleeps on: the listed ones and, with
// on_master, the master (the node the queue runs on), as Ganeti's
// LUTestDelay. So two plain "gnt-debug delay" jobs (on_master, no_locks
// false) run one after the other.
func (p *TestDelay) Locks(env Env) []locking.Request {
	if p.NoLocks {
		return nil
	}
	reqs := []locking.Request{{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: locking.Shared}}
	nodes := unique(p.OnNodes)
	if p.OnMaster {
		if m := env.NodeName(); m != "" && !slices.Contains(nodes, m) {
			nodes = append(nodes, m)
		}
	}
	if len(nodes) > 0 {
		reqs = append(reqs, locking.Request{Level: locking.LevelNode, Names: nodes, Mode: locking.Exclusive})
	}
	return reqs
}

// Exec implements Params: as Ganeti's LUTestDelay, each iteration sleeps
// on the master (on_master), then on all the listed nodes in parallel.
func (p *TestDelay) Exec(ctx context.Context, env Env) (any, error) {
	d := time.Duration(p.Duration * float64(time.Second))
	nodes := nodesOf(env)
	delay := func() error {
		if p.OnMaster {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if len(p.OnNodes) == 0 {
			return nil
		}
		names := unique(p.OnNodes)
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, n := range names {
			wg.Go(func() { errs[i] = nodes.Delay(ctx, n, d) })
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, err := range errs {
			if err != nil {
				return ExecError("Failure during rpc call to node %s: %v", names[i], err)
			}
		}
		return nil
	}
	if p.Repeat == 0 {
		return nil, delay()
	}
	for i := range p.Repeat {
		LogInfo(env, "Test delay iteration %d/%d", i, p.Repeat-1)
		if err := delay(); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// RestrictedCommand is OP_RESTRICTED_COMMAND: run the restricted command
// Command (a bare name from each node's restricted-commands directory,
// see internal/restricted) on every listed node. Its result is one
// [success, output] pair per listed node, in their order; a node that
// could not be asked gives [false, "Command 'C' on node 'N' failed: ..."].
type RestrictedCommand struct {
	Command string   `json:"command"`
	Nodes   []string `json:"nodes"`
	// UseLocking takes the nodes' locks exclusively instead of shared.
	UseLocking bool `json:"use_locking"`
}

var restrictedCommandDef = Definition{
	ID:       "OP_RESTRICTED_COMMAND",
	New:      func() Params { return &RestrictedCommand{} },
	Required: []string{"command", "nodes"},
}

// Validate implements Params.
func (p *RestrictedCommand) Validate() error {
	if len(p.Nodes) == 0 {
		return PrereqError("wrong_input", "Parameter 'OP_RESTRICTED_COMMAND.nodes' must name at least one node")
	}
	for _, n := range p.Nodes {
		if n == "" {
			return PrereqError("wrong_input", "Parameter 'OP_RESTRICTED_COMMAND.nodes' must not contain an empty node name")
		}
	}
	if err := restricted.CheckName(p.Command); err != nil {
		return PrereqError("wrong_input", "%s", err.Error())
	}
	return nil
}

// Prepare implements Preparer: every listed node must be a node of the
// cluster.
func (p *RestrictedCommand) Prepare(env Env) error {
	return checkNodes(env, p.Nodes)
}

// Locks implements Locker: as Ganeti's LURestrictedCommand, the listed
// nodes' locks (not the cluster lock), shared unless use_locking asks for
// them exclusively.
func (p *RestrictedCommand) Locks(env Env) []locking.Request {
	mode := locking.Shared
	if p.UseLocking {
		mode = locking.Exclusive
	}
	return []locking.Request{{Level: locking.LevelNode, Names: p.Nodes, Mode: mode}}
}

// Exec implements Params: the command runs on all the nodes in parallel
// (once on a node listed twice).
func (p *RestrictedCommand) Exec(ctx context.Context, env Env) (any, error) {
	nodes := nodesOf(env)
	names := unique(p.Nodes)
	results := make(map[string][]any, len(names))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, n := range names {
		wg.Go(func() {
			ok, out, err := nodes.RunCommand(ctx, n, p.Command)
			if err != nil {
				ok, out = false, fmt.Sprintf("Command '%s' on node '%s' failed: %v", p.Command, n, err)
			}
			mu.Lock()
			results[n] = []any{ok, out}
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := make([][]any, len(p.Nodes))
	for i, n := range p.Nodes {
		res[i] = results[n]
	}
	return res, nil
}

// checkNodes refuses names that are not nodes of the cluster, as Ganeti's
// GetWantedNodes.
func checkNodes(env Env, names []string) error {
	nodes := nodesOf(env)
	for _, n := range names {
		if !nodes.Known(n) {
			return PrereqError("unknown_entity", "Node '%s' not known", n)
		}
	}
	return nil
}

// unique returns names without repetitions, in their first order.
func unique(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// nodesOf returns env's Nodes, or, for an Env that has none, a view of
// the cluster with only env's own node, where sleeping works and
// restricted commands cannot be run.
func nodesOf(env Env) Nodes {
	if n := env.Nodes(); n != nil {
		return n
	}
	return selfOnly(env.NodeName())
}

// selfOnly is the cluster of one node seen by an Env without Nodes.
type selfOnly string

func (s selfOnly) Known(name string) bool { return name == string(s) }

func (s selfOnly) RunCommand(ctx context.Context, node, command string) (bool, string, error) {
	return false, "", errors.New("this queue cannot run restricted commands")
}

func (s selfOnly) Delay(ctx context.Context, node string, d time.Duration) error {
	if node != string(s) {
		return fmt.Errorf("node '%s' cannot be reached", node)
	}
	return Sleep(ctx, d)
}

// Sleep waits d or until ctx is done (its error then).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
