package opcodes

import (
	"context"
	"github.com/jobq-dev/jobq/locking"
	"time"
)

// TestDelay is OP_TEST_DELAY: sleep on the master (and, once the cluster
// exists, on nodes), logging each iteration when repeated.
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
	return nil
}

// Prepare implements Preparer: nodes other than the master are refused
// until jobq runs as a cluster.
func (p *TestDelay) Prepare(env Env) error {
	for _, n := range p.OnNodes {
		if n != env.NodeName() {
			return PrereqError("unknown_entity", "Node '%s' not known", n)
		}
	}
	return nil
}

// Locks implements Locker: unless no_locks is set, the cluster lock shared
// and the listed nodes exclusively, as Ganeti's LUTestDelay.
func (p *TestDelay) Locks(env Env) []locking.Request {
	if p.NoLocks {
		return nil
	}
	reqs := []locking.Request{{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: locking.Shared}}
	if len(p.OnNodes) > 0 {
		reqs = append(reqs, locking.Request{Level: locking.LevelNode, Names: p.OnNodes, Mode: locking.Exclusive})
	}
	return reqs
}

// Exec implements Params.
func (p *TestDelay) Exec(ctx context.Context, env Env) (any, error) {
	d := time.Duration(p.Duration * float64(time.Second))
	// As Ganeti does: a sleep on the master, then one on all the listed
	// nodes in parallel (here only the master itself can be listed).
	sleeps := 0
	if p.OnMaster {
		sleeps++
	}
	if len(p.OnNodes) > 0 {
		sleeps++
	}
	delay := func() error {
		for range sleeps {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
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

// TestJqueue is OP_TEST_JQUEUE: logs the given messages and fails on
// request; used to test the queue itself.
type TestJqueue struct {
	NotifyWaitlock bool     `json:"notify_waitlock"`
	NotifyExec     bool     `json:"notify_exec"`
	LogMessages    []string `json:"log_messages"`
	Fail           bool     `json:"fail"`
}

var testJqueueDef = Definition{
	ID:  "OP_TEST_JQUEUE",
	New: func() Params { return &TestJqueue{} },
}

// Validate implements Params.
func (p *TestJqueue) Validate() error { return nil }

// Exec implements Params.
func (p *TestJqueue) Exec(ctx context.Context, env Env) (any, error) {
	for _, m := range p.LogMessages {
		env.Log(m)
	}
	if p.Fail {
		return nil, ExecError("Opcode failure was requested")
	}
	return true, ctx.Err()
}
