package opcodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/locking"
)

// fakeNodes is a cluster of named nodes for opcodes that reach nodes.
type fakeNodes struct {
	known map[string]bool
	// outputs: what RunCommand answers per node; a node missing here
	// cannot be reached.
	outputs map[string]string
	failing map[string]bool // RunCommand: the command fails there
	// delayErr: what Delay returns per node.
	delayErr map[string]error
	// barrier, when set, holds every call until it has been called this
	// many times: the calls must be in parallel (else the test hangs).
	barrier int

	mu      sync.Mutex
	calls   []string
	arrived int
	all     chan struct{}
}

func newFakeNodes(names ...string) *fakeNodes {
	f := &fakeNodes{known: map[string]bool{}, outputs: map[string]string{}, failing: map[string]bool{},
		delayErr: map[string]error{}, all: make(chan struct{})}
	for _, n := range names {
		f.known[n] = true
	}
	return f
}

func (f *fakeNodes) Known(name string) bool { return f.known[name] }

func (f *fakeNodes) arrive(ctx context.Context, call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.arrived++
	if f.arrived == f.barrier {
		close(f.all)
	}
	f.mu.Unlock()
	if f.barrier == 0 {
		return ctx.Err()
	}
	select {
	case <-f.all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeNodes) RunCommand(ctx context.Context, node, command string) (bool, string, error) {
	if err := f.arrive(ctx, "run "+node+" "+command); err != nil {
		return false, "", err
	}
	out, ok := f.outputs[node]
	if !ok {
		return false, "", errors.New("connection refused")
	}
	return !f.failing[node], out, nil
}

func (f *fakeNodes) Delay(ctx context.Context, node string, d time.Duration) error {
	if err := f.arrive(ctx, fmt.Sprintf("delay %s %v", node, d)); err != nil {
		return err
	}
	return f.delayErr[node]
}

func (f *fakeNodes) sortedCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := slices.Clone(f.calls)
	slices.Sort(c)
	return c
}

// clusterEnv is an Env on node1 of a cluster.
type clusterEnv struct {
	env
	nodes *fakeNodes
}

func (e *clusterEnv) Nodes() Nodes { return e.nodes }

// withRestricted is Builtin with OP_RESTRICTED_COMMAND, registered here
// if Builtin does not have it.
func withRestricted(t *testing.T) *Registry {
	t.Helper()
	r := Builtin()
	if !slices.Contains(r.IDs(), "OP_RESTRICTED_COMMAND") {
		if err := r.Register(restrictedCommandDef); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func prepare(t *testing.T, r *Registry, in string) Params {
	t.Helper()
	p, err := r.Prepare(json.RawMessage(in))
	if err != nil {
		t.Fatalf("%s: %v", in, err)
	}
	return p
}

func TestRestrictedCommandRejects(t *testing.T) {
	r := withRestricted(t)
	for in, want := range map[string]string{
		`{"OP_ID":"OP_RESTRICTED_COMMAND","nodes":["n1"]}`:                                   "Parameter 'OP_RESTRICTED_COMMAND.command' is missing",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"c"}`:                                    "Parameter 'OP_RESTRICTED_COMMAND.nodes' is missing",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"c","nodes":[]}`:                         "Parameter 'OP_RESTRICTED_COMMAND.nodes' must name at least one node",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"c","nodes":["n1",""]}`:                  "Parameter 'OP_RESTRICTED_COMMAND.nodes' must not contain an empty node name",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"c","nodes":"n1"}`:                       "Parameter 'OP_RESTRICTED_COMMAND.nodes' has the wrong type: expected []string, got a JSON string",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":1,"nodes":["n1"]}`:                       "Parameter 'OP_RESTRICTED_COMMAND.command' has the wrong type: expected string, got a JSON number",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"","nodes":["n1"]}`:                      "Restricted command '' is not allowed: the name is empty",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"../x","nodes":["n1"]}`:                  "Restricted command '../x' is not allowed: it must be a bare command name, not a path",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"a b","nodes":["n1"]}`:                   "Restricted command 'a b' is not allowed: the name may only contain letters, digits, '-', '_' and '.'",
		`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"c","nodes":["n1"],"use_locking":"yes"}`: "Parameter 'OP_RESTRICTED_COMMAND.use_locking' has the wrong type: expected bool, got a JSON string",
	} {
		e := prepareErr(t, r, in)
		if e.Class != "OpPrereqError" || e.Error() != want {
			t.Errorf("%s: %s %q, want OpPrereqError %q", in, e.Class, e.Error(), want)
		}
	}
	// A node that is not in the cluster.
	p := prepare(t, r, `{"OP_ID":"OP_RESTRICTED_COMMAND","command":"c","nodes":["node1","node9"]}`)
	err := p.(Preparer).Prepare(&clusterEnv{nodes: newFakeNodes("node1", "node2")})
	if e, ok := err.(*Error); !ok || e.Class != "OpPrereqError" || e.Error() != "Node 'node9' not known" || len(e.Args) != 2 || e.Args[1] != "unknown_entity" {
		t.Fatalf("unknown node: %#v", err)
	}
	p = prepare(t, r, `{"OP_ID":"OP_RESTRICTED_COMMAND","command":"c","nodes":["node2","node1"]}`)
	if err := p.(Preparer).Prepare(&clusterEnv{nodes: newFakeNodes("node1", "node2")}); err != nil {
		t.Fatal(err)
	}
}

func TestRestrictedCommandSummaryAndLocks(t *testing.T) {
	r := withRestricted(t)
	in := `{"OP_ID":"OP_RESTRICTED_COMMAND","command":"uptime","nodes":["n2","n1"]}`
	if got := r.Summary(json.RawMessage(in)); got != "RESTRICTED_COMMAND" {
		t.Errorf("summary %q", got)
	}
	e := &clusterEnv{nodes: newFakeNodes("n1", "n2")}
	got := prepare(t, r, in).(Locker).Locks(e)
	want := []locking.Request{{Level: locking.LevelNode, Names: []string{"n2", "n1"}, Mode: locking.Shared}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("locks %v, want %v", got, want)
	}
	in = `{"OP_ID":"OP_RESTRICTED_COMMAND","command":"uptime","nodes":["n1"],"use_locking":true}`
	got = prepare(t, r, in).(Locker).Locks(e)
	want = []locking.Request{{Level: locking.LevelNode, Names: []string{"n1"}, Mode: locking.Exclusive}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("locks with use_locking %v, want %v", got, want)
	}
}

// The command runs once per node, on all of them at once; the result has
// one pair per listed node in their order.
func TestRestrictedCommandExec(t *testing.T) {
	r := withRestricted(t)
	nodes := newFakeNodes("n1", "n2", "n3", "n4")
	nodes.outputs["n1"] = "up 1 day\n"
	nodes.outputs["n2"] = "up 2 days\n"
	nodes.outputs["n4"] = "boom\n[exited with status 1]"
	nodes.failing["n4"] = true
	nodes.barrier = 4 // n1, n2, n3, n4: in parallel
	e := &clusterEnv{nodes: nodes}
	p := prepare(t, r, `{"OP_ID":"OP_RESTRICTED_COMMAND","command":"uptime","nodes":["n2","n1","n3","n2","n4"]}`)
	res, err := p.Exec(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	want := `[[true,"up 2 days\n"],[true,"up 1 day\n"],` +
		`[false,"Command 'uptime' on node 'n3' failed: connection refused"],[true,"up 2 days\n"],` +
		`[false,"boom\n[exited with status 1]"]]`
	if string(b) != want {
		t.Errorf("result\n%s\nwant\n%s", b, want)
	}
	if got := strings.Join(nodes.sortedCalls(), ","); got != "run n1 uptime,run n2 uptime,run n3 uptime,run n4 uptime" {
		t.Errorf("calls %s", got)
	}

	// Killed while the nodes run it: the opcode ends with the context's
	// error.
	nodes = newFakeNodes("n1", "n2")
	nodes.barrier = 100 // never reached: the calls wait for the context
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := p.Exec(ctx, &clusterEnv{nodes: nodes})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// Without a cluster (an Env with no Nodes), restricted commands cannot be
// reached and only the node itself is known.
func TestRestrictedCommandWithoutNodes(t *testing.T) {
	r := withRestricted(t)
	p := prepare(t, r, `{"OP_ID":"OP_RESTRICTED_COMMAND","command":"c","nodes":["node1"]}`)
	e := &env{}
	if err := p.(Preparer).Prepare(e); err != nil {
		t.Fatal(err)
	}
	res, err := p.Exec(context.Background(), e)
	if b, _ := json.Marshal(res); err != nil || string(b) != `[[false,"Command 'c' on node 'node1' failed: this queue cannot run restricted commands"]]` {
		t.Fatalf("%s %v", b, err)
	}
}

func TestTestDelayOnNodes(t *testing.T) {
	r := Builtin()
	nodes := newFakeNodes("node1", "n2", "n3")
	e := &clusterEnv{nodes: nodes}
	p := prepare(t, r, `{"OP_ID":"OP_TEST_DELAY","duration":0.001,"on_master":false,"on_nodes":["n2","n3","n2"],"repeat":2}`)
	if err := p.(Preparer).Prepare(e); err != nil {
		t.Fatal(err)
	}
	nodes.barrier = 2 // the first iteration's n2 and n3 run together
	if res, err := p.Exec(context.Background(), e); err != nil || res != nil {
		t.Fatalf("exec: %v %v", res, err)
	}
	if got := strings.Join(nodes.sortedCalls(), ","); got != "delay n2 1ms,delay n2 1ms,delay n3 1ms,delay n3 1ms" {
		t.Errorf("calls %s", got)
	}
	if got := strings.Join(e.logs, "|"); got != " - INFO: Test delay iteration 0/1| - INFO: Test delay iteration 1/1" {
		t.Errorf("logs %s", got)
	}

	// Unknown nodes are refused before anything runs.
	p = prepare(t, r, `{"OP_ID":"OP_TEST_DELAY","duration":1,"on_nodes":["n2","n9"]}`)
	err := p.(Preparer).Prepare(e)
	if e, ok := err.(*Error); !ok || e.Class != "OpPrereqError" || e.Error() != "Node 'n9' not known" {
		t.Fatalf("unknown node: %#v", err)
	}

	// A node that fails fails the opcode, as Ganeti's RPC result.Raise.
	nodes = newFakeNodes("node1", "n2", "n3")
	nodes.delayErr["n3"] = errors.New("connection refused")
	p = prepare(t, r, `{"OP_ID":"OP_TEST_DELAY","duration":0.001,"on_nodes":["n2","n3"]}`)
	_, err = p.Exec(context.Background(), &clusterEnv{nodes: nodes})
	if e := AsError(err); e.Class != "OpExecError" || e.Error() != "Failure during rpc call to node n3: connection refused" {
		t.Fatalf("failing node: %#v", err)
	}
	if got := strings.Join(nodes.sortedCalls(), ","); got != "delay n2 1ms,delay n3 1ms" {
		t.Errorf("calls %s", got)
	}

	// Killed during the nodes' sleep.
	nodes = newFakeNodes("node1", "n2")
	nodes.barrier = 2 // never reached
	ctx, cancel := context.WithCancel(context.Background())
	p = prepare(t, r, `{"OP_ID":"OP_TEST_DELAY","duration":0.001,"on_master":false,"on_nodes":["n2"]}`)
	done := make(chan error)
	go func() {
		_, err := p.Exec(ctx, &clusterEnv{nodes: nodes})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// Without a cluster, on_nodes may name the node itself, and it sleeps
// there (after the master's sleep: twice in all, as before the cluster).
func TestTestDelayOnSelfWithoutNodes(t *testing.T) {
	r := Builtin()
	p := prepare(t, r, `{"OP_ID":"OP_TEST_DELAY","duration":0.001,"on_nodes":["node1"]}`)
	e := &env{}
	if err := p.(Preparer).Prepare(e); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if err := selfOnly("node1").Delay(context.Background(), "node2", 0); err == nil {
		t.Error("selfOnly slept on another node")
	}
}

// OP_TEST_DELAY's locks as Ganeti's LUTestDelay: the nodes it sleeps on,
// the master (env's node, "node1") included with on_master, exclusively,
// under the shared cluster lock; none with no_locks.
func TestTestDelayLocks(t *testing.T) {
	r := Builtin()
	e := &clusterEnv{nodes: newFakeNodes("node1", "n2")}
	bgl := locking.Request{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: locking.Shared}
	node := func(names ...string) locking.Request {
		return locking.Request{Level: locking.LevelNode, Names: names, Mode: locking.Exclusive}
	}
	for in, want := range map[string][]locking.Request{
		// What gnt-debug delay sends.
		`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_master":true,"no_locks":false}`:                           {bgl, node("node1")},
		`{"OP_ID":"OP_TEST_DELAY","duration":1,"no_locks":false}`:                                            {bgl, node("node1")},
		`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_master":true,"on_nodes":["n2","n2"],"no_locks":false}`:    {bgl, node("n2", "node1")},
		`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_master":true,"on_nodes":["node1","n2"],"no_locks":false}`: {bgl, node("node1", "n2")},
		`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_master":false,"on_nodes":["n2"],"no_locks":false}`:        {bgl, node("n2")},
		`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_master":false,"no_locks":false}`:                          {bgl},
		`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_master":true}`:                                            nil,
		`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_master":true,"on_nodes":["n2"],"no_locks":true}`:          nil,
	} {
		got := prepare(t, r, in).(Locker).Locks(e)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: locks %v, want %v", in, got, want)
		}
	}
}
