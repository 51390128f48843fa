package declared

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/execute"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/opdef"
	"github.com/jobq-dev/jobq/opcodes"
)

const def1 = `
id = "OP_T"
summary = "test"
idempotent = true
[[param]]
name = "nodes"
type = "list"
required = true
[[param]]
name = "n"
type = "integer"
default = 2
[run]
on = "param"
param = "nodes"
order = "serial"
[program]
path = "/bin/true"
args = ["{n}"]
[[lock]]
level = "node"
param = "nodes"
mode = "exclusive"
[retry]
attempts = 3
backoff = "1ms"
`

func catalog(t *testing.T, defs ...string) (*Catalog, *opcodes.Registry) {
	t.Helper()
	doc, _ := ParseDoc(nil)
	for _, s := range defs {
		d, err := opdef.Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		mode := ModeAdd
		if _, ok := doc.Current[d.ID]; ok {
			mode = ModeReplace
		}
		if doc, err = doc.Put(d, mode, opcodes.Builtin().Has, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCatalog()
	if err := c.Load(doc.JSON()); err != nil {
		t.Fatal(err)
	}
	reg := opcodes.Builtin()
	reg.SetDeclared(c.Lookup)
	return c, reg
}

func TestDocPutRemove(t *testing.T) {
	doc, _ := ParseDoc(nil)
	d, _ := opdef.Parse([]byte(def1))
	doc, err := doc.Put(d, ModeAdd, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doc.Put(d, ModeAdd, nil, time.Now()); err == nil || !strings.Contains(err.Error(), "exists already; use 'jobq opcode replace'") {
		t.Fatal(err)
	}
	d2, _ := opdef.Parse([]byte(strings.Replace(def1, "OP_T", "OP_U", 1)))
	if _, err := doc.Put(d2, ModeReplace, nil, time.Now()); err == nil || !strings.Contains(err.Error(), "no opcode OP_U to replace") {
		t.Fatal(err)
	}
	d3, _ := opdef.Parse([]byte(strings.Replace(def1, "OP_T", "OP_TEST_DELAY", 1)))
	if _, err := doc.Put(d3, ModeAdd, opcodes.Builtin().Has, time.Now()); err == nil || !strings.Contains(err.Error(), "jobq itself provides") {
		t.Fatal(err)
	}
	old := doc.Current["OP_T"]
	d4, _ := opdef.Parse([]byte(strings.Replace(def1, `backoff = "1ms"`, `backoff = "2ms"`, 1)))
	doc, err = doc.Put(d4, ModeReplace, nil, time.Now())
	if err != nil || doc.Current["OP_T"] == old || doc.Versions[old] == nil {
		t.Fatalf("replace: %v %v", err, doc)
	}
	doc, err = doc.Remove("OP_T")
	if err != nil || len(doc.Current) != 0 || len(doc.Versions) != 2 {
		t.Fatalf("remove: %v %+v", err, doc)
	}
	if _, err := doc.Remove("OP_T"); err == nil || !strings.Contains(err.Error(), "there is no opcode OP_T") {
		t.Fatal(err)
	}
}

// TestAdmitPinsVersion: a submission is completed with defaults and the
// version; after a replace, the queued input still runs the old version.
func TestAdmitPinsVersion(t *testing.T) {
	c, reg := catalog(t, def1)
	in := json.RawMessage(`{"OP_ID":"OP_T","nodes":["a"]}`)
	adm, err := reg.Admit([]json.RawMessage{in})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(adm[0], &m)
	v1 := c.Doc().Current["OP_T"]
	if m["n"] != 2.0 || m[opdef.VersionParam] != v1 {
		t.Fatalf("admitted %s", adm[0])
	}
	_, err = reg.Admit([]json.RawMessage{json.RawMessage(`{"OP_ID":"OP_T","nodes":"a"}`)})
	if err == nil || !strings.Contains(err.Error(), "parameter 'nodes' must be a list of strings, got a string") {
		t.Fatal(err)
	}
	// Replace: n's default becomes 5 and the program another.
	doc := c.Doc()
	d2, _ := opdef.Parse([]byte(strings.Replace(strings.Replace(def1, "default = 2", "default = 5", 1), "/bin/true", "/bin/false", 1)))
	doc, _ = doc.Put(d2, ModeReplace, nil, time.Now())
	c.Load(doc.JSON())
	p, err := reg.Prepare(adm[0])
	if err != nil {
		t.Fatal(err)
	}
	op := p.(*Op)
	if op.version != v1 || op.def.Program.Path != "/bin/true" || op.vals["n"] != 2.0 {
		t.Fatalf("queued job runs %s %s %v", op.version, op.def.Program.Path, op.vals)
	}
	// Removed: new submissions refused, the queued one still prepares.
	doc, _ = doc.Remove("OP_T")
	c.Load(doc.JSON())
	if _, err := reg.Admit([]json.RawMessage{in}); err == nil || !strings.Contains(err.Error(), "unknown opcode OP_T") {
		t.Fatal(err)
	}
	if _, err := reg.Prepare(adm[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Prepare(json.RawMessage(`{"OP_ID":"OP_T","nodes":["a"],"opcode_version":"ffff"}`)); err == nil || !strings.Contains(err.Error(), "version ffff of OP_T is not known") {
		t.Fatal(err)
	}
}

// fakeEnv logs into a slice; its Nodes run programs through a script.
type fakeEnv struct {
	mu    sync.Mutex
	log   []string
	nodes *fakeNodes
}

func (e *fakeEnv) JobID() int64     { return 7 }
func (e *fakeEnv) NodeName() string { return "m" }
func (e *fakeEnv) Log(msg string) {
	e.mu.Lock()
	e.log = append(e.log, msg)
	e.mu.Unlock()
}
func (e *fakeEnv) Nodes() opcodes.Nodes { return e.nodes }

type fakeNodes struct {
	mu    sync.Mutex
	calls []string
	run   func(node string, attempt int, line func(string, string)) *execute.Result
}

func (f *fakeNodes) Known(n string) bool { return n != "ghost" }
func (f *fakeNodes) RunCommand(context.Context, string, string) (bool, string, error) {
	return false, "", nil
}
func (f *fakeNodes) Delay(context.Context, string, time.Duration) error { return nil }
func (f *fakeNodes) RunProgram(ctx context.Context, node string, req *noderpc.ExecRequest, line func(stream, text string)) (*execute.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("%s#%d %v", node, req.Attempt, req.Args))
	f.mu.Unlock()
	return f.run(node, req.Attempt, line), nil
}

func prepare(t *testing.T, reg *opcodes.Registry, in string) *Op {
	t.Helper()
	adm, err := reg.Admit([]json.RawMessage{json.RawMessage(in)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := reg.Prepare(adm[0])
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Op)
}

// TestRetriesSerialStop: node b fails twice then succeeds (each attempt
// logged); node c always fails, so d is not run (serial, stop at the
// first failure).
func TestRetriesSerialStop(t *testing.T) {
	_, reg := catalog(t, def1)
	op := prepare(t, reg, `{"OP_ID":"OP_T","nodes":["a","b","c","d"]}`)
	env := &fakeEnv{nodes: &fakeNodes{run: func(node string, attempt int, line func(string, string)) *execute.Result {
		line(execute.Stdout, "on "+node)
		switch {
		case node == "b" && attempt < 3, node == "c":
			return &execute.Result{ExitCode: 1, StderrTail: []string{"boom"}}
		}
		return &execute.Result{Result: json.RawMessage(`{"ok":1}`)}
	}}}
	if err := op.Prepare(env); err != nil {
		t.Fatal(err)
	}
	_, err := op.Exec(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "OP_T on node c exited with status 1; last lines of stderr: boom") {
		t.Fatalf("exec: %v", err)
	}
	want := []string{"a#1 [2]", "b#1 [2]", "b#2 [2]", "b#3 [2]", "c#1 [2]", "c#2 [2]", "c#3 [2]"}
	if strings.Join(env.nodes.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("calls %v", env.nodes.calls)
	}
	log := strings.Join(env.log, "\n")
	for _, w := range []string{" - INFO: Attempt 2 of 3 of OP_T on node b", "Attempt 1 of 3 failed: OP_T on node b exited with status 1", "b: on b", "Stopped at the first failure: 1 node(s) not run"} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
	// A node that is not the cluster's fails Prepare.
	op = prepare(t, reg, `{"OP_ID":"OP_T","nodes":["a","ghost"]}`)
	if err := op.Prepare(env); err == nil || !strings.Contains(err.Error(), "Node 'ghost' not known") {
		t.Fatal(err)
	}
}

// TestBoundedLog: 10,000 lines: the first HeadLines and the last
// TailLines are logged, with the count of the others.
func TestBoundedLog(t *testing.T) {
	_, reg := catalog(t, def1)
	op := prepare(t, reg, `{"OP_ID":"OP_T","nodes":["a"]}`)
	env := &fakeEnv{nodes: &fakeNodes{run: func(node string, attempt int, line func(string, string)) *execute.Result {
		for i := range 10000 {
			line(execute.Stdout, fmt.Sprint(i))
		}
		return &execute.Result{OutputFile: "/d/output/job-7/op0-attempt1.log"}
	}}}
	res, err := op.Exec(context.Background(), env)
	if err != nil || string(res.(json.RawMessage)) != "null" {
		t.Fatal(res, err)
	}
	env.log = env.log[1:] // "Attempt 1 of 3"
	if len(env.log) != HeadLines+1+TailLines || env.log[HeadLines-1] != fmt.Sprint(HeadLines-1) || env.log[len(env.log)-1] != "9999" {
		t.Fatalf("%d entries: %q ... %q", len(env.log), env.log[:3], env.log[len(env.log)-3:])
	}
	if want := fmt.Sprintf(" - INFO: %d lines omitted; the whole output is kept in a:/d/output/job-7/op0-attempt1.log", 10000-HeadLines-TailLines); env.log[HeadLines] != want {
		t.Fatalf("%q, want %q", env.log[HeadLines], want)
	}
}

// TestRunLocal: a real program through RunLocal on the master (no
// Executor): output file, result, env.
func TestRunLocal(t *testing.T) {
	dir := t.TempDir()
	sh, err := filepath.EvalSymlinks("/bin/sh") // a symbolic link is refused
	if err != nil {
		t.Fatal(err)
	}
	req := &noderpc.ExecRequest{JobID: 3, OpIndex: 1, Attempt: 1, Path: sh,
		Args: []string{"-c", `echo "job $JOBQ_JOB_ID"; echo '[1]' >&3`}, Env: []string{"JOBQ_JOB_ID=3"}}
	var got []string
	res, err := RunLocal(context.Background(), req, OutputDir(dir), execute.Cgroups{}, func(s, l string) { got = append(got, l) })
	if err != nil || !res.Success() || string(res.Result) != "[1]" || len(got) != 1 || got[0] != "job 3" {
		t.Fatalf("%v %+v %q", err, res, got)
	}
	b, err := os.ReadFile(filepath.Join(dir, "output", "job-3", "op1-attempt1.log"))
	if err != nil || string(b) != "stdout: job 3\n" || res.OutputFile == "" {
		t.Fatalf("output file %q %v", b, err)
	}
	req.Path = "/nonexistent"
	if _, err := RunLocal(context.Background(), req, "", execute.Cgroups{}, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
}

// TestReadOutput: the files of a job in name order, the end of them
// when they are larger than the limit; nothing for a job without any.
func TestReadOutput(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "job-5"), 0o750)
	os.WriteFile(filepath.Join(dir, "job-5", "op0-attempt1.log"), []byte("stdout: 0123456789\n"), 0o640)
	os.WriteFile(filepath.Join(dir, "job-5", "op1-attempt1.log"), []byte("stdout: abcdef\n"), 0o640)
	files, err := ReadOutput(dir, 5, 25)
	if err != nil || len(files) != 2 || string(files[0].Data) != "stdout: 0123456789\n" || files[0].Truncated != 0 ||
		string(files[1].Data) != "bcdef\n" || files[1].Truncated != 9 {
		t.Fatalf("%v %+v", err, files)
	}
	if files, err := ReadOutput(dir, 6, 25); err != nil || files != nil {
		t.Fatalf("no output: %v %v", files, err)
	}
}
