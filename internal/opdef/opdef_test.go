package opdef

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/google/go-cmp/cmp"

	"github.com/jobq-dev/jobq/locking"
)

// TestDefinitions: testdata/definitions.txt holds definition files, good
// and bad; each bad one lists every error, named by its field.
func TestDefinitions(t *testing.T) {
	datadriven.RunTest(t, "testdata/definitions.txt", func(t *testing.T, d *datadriven.TestData) string {
		switch d.Cmd {
		case "parse":
			def, err := Parse([]byte(d.Input))
			if err != nil {
				return "error:\n" + err.Error() + "\n"
			}
			b, _ := json.Marshal(def)
			return "ok " + def.ID + "\n" + string(b) + "\n"
		}
		t.Fatalf("unknown command %s", d.Cmd)
		return ""
	})
}

const backup = `
id = "OP_BACKUP_DIR"
summary = "Archive a directory to a node"
idempotent = true

[[param]]
name = "dir"
type = "string"
required = true
pattern = "^/"
doc = "directory to archive"

[[param]]
name = "node"
type = "string"
required = true

[[param]]
name = "level"
type = "integer"
default = 6
min = 1
max = 9

[[param]]
name = "nodes"
type = "list"
default = []

[[param]]
name = "mode"
type = "enum"
values = ["full", "incremental"]
default = "full"

[[param]]
name = "verify"
type = "boolean"
default = false

[run]
on = "param"
param = "node"

[program]
path = "/usr/local/lib/backup"
args = ["--dir={dir}", "-{level}", "{nodes}", "--mode", "{mode}"]
timeout = "5m"

[[lock]]
level = "cluster"
mode = "shared"

[[lock]]
level = "node"
param = "node"
mode = "exclusive"

[retry]
attempts = 3
backoff = "1s"
`

func mustParse(t *testing.T, s string) *Def {
	t.Helper()
	d, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fields(t *testing.T, s string) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCheck(t *testing.T) {
	d := mustParse(t, backup)
	for _, tc := range []struct {
		in   string
		want string // error substring; "" for success
	}{
		{`{"OP_ID":"OP_BACKUP_DIR","dir":"/srv","node":"n1"}`, ""},
		{`{"OP_ID":"OP_BACKUP_DIR","dir":"/srv","node":"n1","priority":0,"comment":"x","opcode_version":"ab"}`, ""},
		{`{"dir":"/srv"}`, "parameter 'node' is missing: a string"},
		{`{"dir":"srv","node":"n1"}`, `parameter 'dir' must match ^/, got "srv"`},
		{`{"dir":5,"node":"n1"}`, "parameter 'dir' must be a string matching ^/, got a number"},
		{`{"dir":"/a","node":"n1","level":0}`, "parameter 'level' must be an integer from 1 to 9, got 0"},
		{`{"dir":"/a","node":"n1","level":10}`, "parameter 'level' must be an integer from 1 to 9, got 10"},
		{`{"dir":"/a","node":"n1","level":2.5}`, "parameter 'level' must be an integer from 1 to 9, got 2.5"},
		{`{"dir":"/a","node":"n1","level":"3"}`, "parameter 'level' must be an integer from 1 to 9, got a string"},
		{`{"dir":"/a","node":"n1","mode":"partial"}`, `parameter 'mode' must be one of full, incremental, got "partial"`},
		{`{"dir":"/a","node":"n1","verify":"yes"}`, "parameter 'verify' must be a boolean (true or false), got a string"},
		{`{"dir":"/a","node":"n1","nodes":["a",1]}`, "parameter 'nodes' must be a list of strings, item 1 is a number"},
		{`{"dir":"/a","node":"n1","size":1}`, `"size" is not a parameter of OP_BACKUP_DIR (it takes dir, node, level, nodes, mode, verify)`},
		{`{"dir":null,"node":"n1"}`, "parameter 'dir' is missing"},
	} {
		v, err := Check(d, fields(t, tc.in))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v (%v), want %q", tc.in, err, v, tc.want)
		}
	}
	// Every error at once.
	_, err := Check(d, fields(t, `{"dir":1,"level":99}`))
	for _, w := range []string{"'dir'", "'level'", "'node' is missing"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("all errors: %v lacks %s", err, w)
		}
	}
}

func TestDefaultsArgvEnvLocks(t *testing.T) {
	d := mustParse(t, backup)
	v, err := Check(d, fields(t, `{"dir":"/srv/a b","node":"n2","nodes":["x","y"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Values{"dir": "/srv/a b", "node": "n2", "level": 6.0, "nodes": []any{"x", "y"}, "mode": "full", "verify": false}, v); diff != "" {
		t.Fatal(diff)
	}
	if diff := cmp.Diff([]string{"--dir=/srv/a b", "-6", "x", "y", "--mode", "full"}, Argv(d, v)); diff != "" {
		t.Fatal(diff)
	}
	env := Env(d, v, 42, 1, "n2", 2)
	for _, w := range []string{"JOBQ_JOB_ID=42", "JOBQ_OPCODE_INDEX=1", "JOBQ_NODE=n2", "JOBQ_ATTEMPT=2", "JOBQ_PARAM_DIR=/srv/a b", "JOBQ_PARAM_NODES=x,y", "JOBQ_PARAM_LEVEL=6"} {
		found := false
		for _, e := range env {
			found = found || e == w
		}
		if !found {
			t.Errorf("env %q lacks %s", env, w)
		}
	}
	if diff := cmp.Diff([]string{"n2"}, Targets(d, v, "m")); diff != "" {
		t.Fatal(diff)
	}
	want := []locking.Request{
		{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: locking.Shared},
		{Level: locking.LevelNode, Names: []string{"n2"}, Mode: locking.Exclusive},
	}
	if diff := cmp.Diff(want, Locks(d, v, "m")); diff != "" {
		t.Fatal(diff)
	}
	if d.Attempts() != 3 || d.Backoff().Seconds() != 1 || d.Timeout().Minutes() != 5 {
		t.Fatalf("attempts %d backoff %s timeout %s", d.Attempts(), d.Backoff(), d.Timeout())
	}
}

func TestVersionChangesWithContent(t *testing.T) {
	a := mustParse(t, backup)
	b := mustParse(t, strings.Replace(backup, `timeout = "5m"`, `timeout = "6m"`, 1))
	if a.Version() == b.Version() || a.Version() != mustParse(t, backup).Version() || len(a.Version()) != 16 {
		t.Fatalf("versions %s %s", a.Version(), b.Version())
	}
}

func TestParseArg(t *testing.T) {
	d := mustParse(t, backup)
	for _, tc := range []struct {
		arg  string
		want any
		err  string
	}{
		{"dir=/x=y", "/x=y", ""},
		{"level=3", 3.0, ""},
		{"level=three", nil, `parameter 'level' must be an integer from 1 to 9, got "three"`},
		{"verify=yes", true, ""},
		{"verify=maybe", nil, "must be true or false"},
		{"nodes=a,b", []any{"a", "b"}, ""},
		{"nodes=", []any{}, ""},
		{"size=3", nil, `"size" is not a parameter of OP_BACKUP_DIR`},
		{"noequals", nil, "is not key=value"},
	} {
		_, v, err := ParseArg(d, tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || !cmp.Equal(v, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.arg, v, err, tc.want)
		}
	}
}

func TestLocksMaster(t *testing.T) {
	d := mustParse(t, `
id = "OP_X"
summary = "x"
[program]
path = "/bin/true"
[[lock]]
level = "node"
mode = "shared"
`)
	got := Locks(d, Values{}, "master1")
	want := []locking.Request{{Level: locking.LevelNode, Names: []string{"master1"}, Mode: locking.Shared}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatal(diff)
	}
	if diff := cmp.Diff([]string{"master1"}, Targets(d, Values{}, "master1")); diff != "" {
		t.Fatal(diff)
	}
	if d.Attempts() != 1 || d.Timeout().Hours() != 1 {
		t.Fatal(d.Attempts(), d.Timeout())
	}
}

// TestExamples: the definitions in examples/opcodes parse, and each
// names an example program that exists.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/opcodes/*.toml")
	if len(files) < 3 {
		t.Fatalf("examples/opcodes has %d definitions", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Parse(b)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := os.Stat(filepath.Join("../../examples/opcodes/bin", filepath.Base(d.Program.Path))); err != nil {
			t.Errorf("%s: its program: %v", f, err)
		}
	}
}
