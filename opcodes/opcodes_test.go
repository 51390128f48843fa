package opcodes

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

type env struct {
	mu   sync.Mutex
	logs []string
}

func (e *env) JobID() int64     { return 7 }
func (e *env) NodeName() string { return "node1" }
func (e *env) Nodes() Nodes     { return nil }
func (e *env) Log(m string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logs = append(e.logs, m)
}

func prepareErr(t *testing.T, r *Registry, in string) *Error {
	t.Helper()
	_, err := r.Prepare(json.RawMessage(in))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v is not an *Error", in, err)
	}
	return e
}

func TestPrepareRejects(t *testing.T) {
	r := Builtin()
	for in, want := range map[string]string{
		`[1]`:                        "Opcode is not a JSON object",
		`{}`:                         "Opcode has no OP_ID",
		`{"OP_ID": 5}`:               "Opcode has no OP_ID",
		`{"OP_ID": "OP_NOPE"}`:       "Unknown opcode OP_NOPE",
		`{"OP_ID": "OP_TEST_DELAY"}`: "Parameter 'OP_TEST_DELAY.duration' is missing",
		`{"OP_ID": "OP_TEST_DELAY", "duration": null}`:                "Parameter 'OP_TEST_DELAY.duration' is missing",
		`{"OP_ID": "OP_TEST_DELAY", "duration": -1}`:                  "Duration must be greater than zero",
		`{"OP_ID": "OP_TEST_DELAY", "duration": 1, "repeat": -1}`:     "Repeat count must be zero or positive",
		`{"OP_ID": "OP_TEST_DELAY", "duration": 1, "repeat": 1001}`:   "Repeat count 1001 is over the limit of 1000 (each iteration logs a message); submit several jobs instead",
		`{"OP_ID": "OP_TEST_DELAY", "duration": 1, "priority": 20}`:   "Parameter 'OP_TEST_DELAY.priority' must be between -20 and 19",
		`{"OP_ID": "OP_TEST_DELAY", "duration": 1, "dry_run": "yes"}`: "Parameter 'OP_TEST_DELAY.dry_run' has the wrong type: expected bool, got a JSON string",
		`{"OP_ID": "OP_TEST_DELAY", "duration": 1, "on_nodes": "n1"}`: "Parameter 'OP_TEST_DELAY.on_nodes' has the wrong type: expected []string, got a JSON string",
	} {
		e := prepareErr(t, r, in)
		if e.Class != "OpPrereqError" || e.Error() != want {
			t.Errorf("%s: %s %q, want OpPrereqError %q", in, e.Class, e.Error(), want)
		}
	}
}

func TestTestDelay(t *testing.T) {
	r := Builtin()
	p, err := r.Prepare(json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"repeat":3}`))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{}
	if res, err := p.Exec(context.Background(), e); err != nil || res != nil {
		t.Fatalf("exec: %v %v", res, err)
	}
	if got := strings.Join(e.logs, "|"); got != " - INFO: Test delay iteration 0/2| - INFO: Test delay iteration 1/2| - INFO: Test delay iteration 2/2" {
		t.Fatal(got)
	}
	// A cancelled context interrupts the sleep.
	p, _ = r.Prepare(json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":3600}`))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Exec(ctx, e); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled delay: %v", err)
	}
	// Only the node itself can be named until jobq runs as a cluster.
	p, _ = r.Prepare(json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_nodes":["node2"]}`))
	err = p.(Preparer).Prepare(e)
	if e, ok := err.(*Error); !ok || e.Class != "OpPrereqError" || len(e.Args) != 2 || e.Args[1] != "unknown_entity" {
		t.Fatalf("unknown node: %#v", err)
	}
	p, _ = r.Prepare(json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_nodes":["node1"]}`))
	if err := p.(Preparer).Prepare(e); err != nil {
		t.Fatal(err)
	}
}

func TestTestJqueue(t *testing.T) {
	r := Builtin()
	p, _ := r.Prepare(json.RawMessage(`{"OP_ID":"OP_TEST_JQUEUE","log_messages":["a","b"],"fail":true}`))
	e := &env{}
	_, err := p.Exec(context.Background(), e)
	if AsError(err).Class != "OpExecError" || strings.Join(e.logs, ",") != "a,b" {
		t.Fatalf("%v %v", err, e.logs)
	}
	p, _ = r.Prepare(json.RawMessage(`{"OP_ID":"OP_TEST_JQUEUE"}`))
	if res, err := p.Exec(context.Background(), e); res != true || err != nil {
		t.Fatal(res, err)
	}
}

func TestSummary(t *testing.T) {
	r := Builtin()
	for in, want := range map[string]string{
		`{"OP_ID":"OP_TEST_DELAY","duration":0.01}`: "TEST_DELAY(1.0e-2)",
		`{"OP_ID":"OP_TEST_DELAY","duration":5}`:    "TEST_DELAY(5.0)",
		`{"OP_ID":"OP_TEST_DELAY","duration":0}`:    "TEST_DELAY(0.0)",
		`{"OP_ID":"OP_TEST_DELAY"}`:                 "TEST_DELAY",
		`{"OP_ID":"OP_TEST_JQUEUE"}`:                "TEST_JQUEUE",
		`{"OP_ID":"OP_CLUSTER_VERIFY"}`:             "CLUSTER_VERIFY",
		`{}`:                                        "UNKNOWN",
		`[]`:                                        "INVALID",
	} {
		if got := r.Summary(json.RawMessage(in)); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

func TestRegister(t *testing.T) {
	r := Builtin()
	if err := r.Register(Definition{ID: "OP_TEST_DELAY", New: testDelayDef.New}); err == nil {
		t.Fatal("registered OP_TEST_DELAY twice")
	}
	if err := r.Register(Definition{ID: "TEST", New: testDelayDef.New}); err == nil {
		t.Fatal("registered an ID without OP_")
	}
	if err := r.Register(Definition{ID: "OP_X"}); err == nil {
		t.Fatal("registered without New")
	}
	if got := strings.Join(r.IDs(), ","); got != "OP_RESTRICTED_COMMAND,OP_TEST_DELAY,OP_TEST_JQUEUE" {
		t.Fatal(got)
	}
}
