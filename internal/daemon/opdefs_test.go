package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/declared"
)

// A declared opcode through LUXI and RAPI: jobq opcode's calls, a job
// submitted with POST /2/jobs that runs the program with the defaults
// recorded, a mistyped one refused with 400 naming the parameter, and a
// definition with errors refused naming each field.
func TestDeclaredOpcodeLUXIAndRAPI(t *testing.T) {
	n := startRAPINode(t, "", 1, rapiUsers)
	echo, err := filepath.EvalSymlinks("/bin/echo")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := client.Dial(ctx, SocketPath(n.dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	def := fmt.Sprintf(`id = "OP_ECHO"
summary = "Echo words"
[[param]]
name = "word"
type = "string"
required = true
pattern = "^[a-z]+$"
[[param]]
name = "times"
type = "integer"
default = 2
min = 1
max = 3
[program]
path = %q
args = ["{word}", "x{times}"]
`, echo)
	var added struct{ ID, Version string }
	if err := c.Call(ctx, &added, "JobqOpcodeAdd", def, "add"); err != nil || added.ID != "OP_ECHO" || len(added.Version) != 16 {
		t.Fatalf("add: %+v %v", added, err)
	}
	if err := c.Call(ctx, nil, "JobqOpcodeAdd", def, "add"); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("second add: %v", err)
	}
	bad := "id = \"OP_BAD\"\nsummary = \"\"\n[program]\npath = \"rel\"\n"
	if err := c.Call(ctx, nil, "JobqOpcodeAdd", bad, "add"); err == nil || !strings.Contains(err.Error(), "summary: is required") || !strings.Contains(err.Error(), "program.path: must be an absolute") {
		t.Fatalf("bad definition: %v", err)
	}
	if err := c.Call(ctx, nil, "JobqOpcodeAdd", strings.Replace(def, "OP_ECHO", "OP_TEST_DELAY", 1), "add"); err == nil || !strings.Contains(err.Error(), "jobq itself provides") {
		t.Fatalf("builtin OP_ID: %v", err)
	}

	id := n.submit(`[{"OP_ID": "OP_ECHO", "word": "hello"}]`)
	if st := n.waitStatus(id, func(s string) bool { return s == "success" || s == "error" }); st != "success" {
		t.Fatalf("job %d: %s", id, st)
	}
	r := n.do("GET", fmt.Sprintf("/2/jobs/%d", id), "admin", "adminpw", "")
	var info struct {
		Ops    []map[string]any `json:"ops"`
		OpLog  [][][]any        `json:"oplog"`
		Result []any            `json:"opresult"`
	}
	if err := json.Unmarshal([]byte(r.body), &info); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if info.Ops[0]["times"] != 2.0 || info.Ops[0]["opcode_version"] != added.Version || len(info.OpLog[0]) != 1 || info.OpLog[0][0][3] != "hello x2" {
		t.Fatalf("job %d: %s", id, r.body)
	}

	r = n.do("POST", "/2/jobs", "admin", "adminpw", `{"ops": [{"OP_ID": "OP_ECHO", "word": "hello", "times": 7}]}`)
	if r.code != 400 || !strings.Contains(r.body, "parameter &#x27;times&#x27; must be an integer from 1 to 3, got 7") {
		t.Fatalf("mistyped: %d %s", r.code, r.body)
	}
	var list []map[string]any
	if err := c.Call(ctx, &list, "JobqOpcodeList"); err != nil || len(list) != 1 || list[0]["id"] != "OP_ECHO" {
		t.Fatalf("list: %v %v", list, err)
	}
	if err := c.Call(ctx, nil, "JobqOpcodeRemove", "OP_ECHO"); err != nil {
		t.Fatal(err)
	}
	r = n.do("POST", "/2/jobs", "admin", "adminpw", `{"ops": [{"OP_ID": "OP_ECHO", "word": "hello"}]}`)
	if r.code != 400 || !strings.Contains(r.body, "unknown opcode OP_ECHO") {
		t.Fatalf("removed: %d %s", r.code, r.body)
	}
}

func TestQueueHolds(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"job-3", "archive/0/job-5", "archive/1/job-10007"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	holds := queueHolds(dir)
	for id, want := range map[int64]bool{3: true, 5: true, 10007: true, 4: false, 7: false, 10005: false} {
		if got := holds(id); got != want {
			t.Errorf("holds(%d) = %v, want %v", id, got, want)
		}
	}
}

// TestOutputSweptAtStart: a node removes before it is ready the output kept for
// a job its queue does not hold once it is older than the grace, and keeps
// a younger one.
func TestOutputSweptAtStart(t *testing.T) {
	var oldDir, youngDir string
	startNode(t, 1, func(dir string) {
		oldDir = filepath.Join(declared.OutputDir(dir), "job-41")
		youngDir = filepath.Join(declared.OutputDir(dir), "job-42")
		for _, d := range []string{oldDir, youngDir} {
			if err := os.MkdirAll(d, 0o750); err != nil {
				t.Fatal(err)
			}
		}
		past := time.Now().Add(-declared.OutputGrace - time.Minute)
		if err := os.Chtimes(oldDir, past, past); err != nil {
			t.Fatal(err)
		}
	})
	// The first sweep is done before the node is ready.
	if _, err := os.Stat(oldDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s is still there after the start: %v", oldDir, err)
	}
	if _, err := os.Stat(youngDir); err != nil {
		t.Fatalf("the younger output went: %v", err)
	}
}
