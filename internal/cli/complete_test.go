package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/luxi"
)

// complete runs "jobq __complete args..." (what the bash and zsh scripts
// run) and returns the offered words (descriptions cut off) and the
// directive line.
func complete(t *testing.T, sock string, args ...string) (words []string, directive string) {
	t.Helper()
	r := run(t, sock, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %q: %+v", args, r)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.HasPrefix(l, ":") {
			directive = l
			continue
		}
		w, _, _ := strings.Cut(l, "\t")
		words = append(words, w)
	}
	return words, directive
}

func TestCompletion(t *testing.T) {
	f := startFake(t)
	f.addTestJobs("6040", "6046", "6049", "6050", "5028")
	f.setJob(6046, map[string]any{"status": "running"})

	// Job IDs, newest first, those given already left out; with a
	// description.
	if w, d := complete(t, f.path, "cancel", ""); strings.Join(w, " ") != "6050 6049 6046 6040 5028" || !strings.Contains(d, ":") {
		t.Errorf("cancel: %q %s", w, d)
	}
	if w, _ := complete(t, f.path, "info", "6040", "60"); strings.Join(w, " ") != "6050 6049 6046" {
		t.Errorf("info 6040 60: %q", w)
	}
	r := run(t, f.path, "__complete", "watch", "604")
	if !strings.Contains(r.stdout, "6046\trunning TEST_DELAY(0.3)\n") {
		t.Errorf("watch's descriptions:\n%s", r.stdout)
	}
	if w, _ := complete(t, f.path, "wait", "6040", ""); len(w) != 0 {
		t.Errorf("wait takes one ID, offered %q", w)
	}

	// Node names: an argument, a flag, a comma-separated flag.
	f.script("JobqNodeList", testNodeList(testNode1, testNode2, testNode3), testNodeList(testNode1, testNode2, testNode3), testNodeList(testNode1, testNode2, testNode3))
	if w, _ := complete(t, f.path, "node", "modify", "node"); strings.Join(w, " ") != "node1 node2 node3" {
		t.Errorf("node modify: %q", w)
	}
	if w, _ := complete(t, f.path, "debug", "delay", "--on-nodes", "node2"); strings.Join(w, " ") != "node2" {
		t.Errorf("debug delay --on-nodes: %q", w)
	}
	if w, _ := complete(t, f.path, "command", "x", "--nodes", "node1,"); strings.Join(w, " ") != "node1,node2 node1,node3" {
		t.Errorf("command --nodes node1,: %q", w)
	}

	// Fields, no jobqd needed.
	if w, _ := complete(t, f.path, "list", "-o", "id,opst"); strings.Join(w, " ") != "id,opstart id,opstatus" {
		t.Errorf("list -o id,opst: %q", w)
	}
	if w, _ := complete(t, f.path, "list", "-o", "+not"); strings.Join(w, " ") != "+not_before" {
		t.Errorf("list -o +not: %q", w)
	}
	if w, _ := complete(t, f.path, "list", "-o", "opt"); strings.Join(w, " ") != "optimeout" {
		t.Errorf("list -o opt: %q", w)
	}

	// No jobqd: nothing offered, and no file names either.
	w, d := complete(t, filepath.Join(t.TempDir(), "none"), "info", "")
	if len(w) != 0 || d != ":5" {
		t.Errorf("without jobqd: %q %s", w, d)
	}
}

func TestCompletionFilterUUIDs(t *testing.T) {
	f := startFake(t)
	rows := `{"fields":[{"name":"uuid","title":"UUID","kind":"other","doc":"Filter ID"},{"name":"action","title":"Action","kind":"other","doc":"Filter action"},{"name":"priority","title":"Priority","kind":"other","doc":"Filter priority"}],` +
		`"data":[[[0,"2828f17b-e475-435d-bd95-3e8a7d97210d"],[0,"PAUSE"],[0,5]],[[0,"da500483-e40c-48fa-990d-9ce0250e908d"],[0,["RATE_LIMIT",2]],[0,0]]]}`
	f.script("Query", rows, rows, rows)
	r := run(t, f.path, "__complete", "filter", "delete", "")
	if !strings.Contains(r.stdout, "2828f17b-e475-435d-bd95-3e8a7d97210d\tPAUSE, priority 5\n") ||
		!strings.Contains(r.stdout, "da500483-e40c-48fa-990d-9ce0250e908d\t['RATE_LIMIT', 2], priority 0\n") {
		t.Errorf("filter delete:\n%s", r.stdout)
	}
	if w, _ := complete(t, f.path, "filter", "info", "2828f17b-e475-435d-bd95-3e8a7d97210d", ""); strings.Join(w, " ") != "da500483-e40c-48fa-990d-9ce0250e908d" {
		t.Errorf("filter info UUID: %q", w)
	}
	if w, _ := complete(t, f.path, "filter", "replace", "da"); strings.Join(w, " ") != "da500483-e40c-48fa-990d-9ce0250e908d" {
		t.Errorf("filter replace da: %q", w)
	}
	if w, _ := complete(t, f.path, "filter", "replace", "da500483-e40c-48fa-990d-9ce0250e908d", ""); len(w) != 0 {
		t.Errorf("filter replace takes one uuid, offered %q", w)
	}
	f.checkCalls(t, `Query ["filter",["uuid","action","priority"],null]`, `Query ["filter",["uuid","action","priority"],null]`, `Query ["filter",["uuid","action","priority"],null]`)
}

// TestCompletionOpcodes: submit and opcode info/remove offer the declared
// OP_IDs (with their summaries); after submit's OP_ID, the parameters not
// given yet as KEY=, then the values an enum, a boolean or the parameter
// naming the nodes takes; opcode output offers job IDs, add and replace
// *.toml files; JSON opcodes and --file get nothing, nor does anything
// without jobqd.
func TestCompletionOpcodes(t *testing.T) {
	f := startFake(t)
	f.addTestJobs("6040", "6046")
	defs := map[string]string{
		"OP_ARCHIVE_DIR": `{"id":"OP_ARCHIVE_DIR","summary":"Archive a directory","version":"v1","params":[
			{"name":"dir","type":"string","required":true,"doc":"the directory"},
			{"name":"node","type":"string","required":true},
			{"name":"mode","type":"enum","values":["gzip","xz","zstd"]}],
			"run":{"on":"param","param":"node"},"program":{"path":"/bin/true"}}`,
		"OP_DISK_FREE": `{"id":"OP_DISK_FREE","summary":"Check free disk space","version":"v2","params":[
			{"name":"nodes","type":"list","required":true,"doc":"where to look"},
			{"name":"min_free_percent","type":"integer"},
			{"name":"verbose","type":"boolean"}],
			"run":{"on":"param","param":"nodes"},"program":{"path":"/bin/true"}}`,
	}
	f.hook("JobqOpcodeList", func(context.Context, []json.RawMessage) (any, error) {
		return json.RawMessage("[" + defs["OP_ARCHIVE_DIR"] + "," + defs["OP_DISK_FREE"] + "]"), nil
	})
	f.hook("JobqOpcodeInfo", func(_ context.Context, args []json.RawMessage) (any, error) {
		var id string
		_ = json.Unmarshal(args[0], &id)
		if d, ok := defs[id]; ok {
			return json.RawMessage(d), nil
		}
		return nil, luxi.NewError("OpPrereqError", "no declared opcode "+id)
	})
	f.hook("JobqNodeList", func(context.Context, []json.RawMessage) (any, error) {
		return json.RawMessage(testNodeList(testNode1, testNode2, testNode3)), nil
	})
	for _, tc := range []struct {
		args      []string
		want, dir string
	}{
		{[]string{"submit", ""}, "OP_ARCHIVE_DIR OP_DISK_FREE", ":4"},
		{[]string{"submit", "--submit", "--priority", "low", "OP_D"}, "OP_DISK_FREE", ":4"},
		{[]string{"submit", "op_d"}, "", ":4"}, // OP_IDs are upper case
		{[]string{"opcode", "info", ""}, "OP_ARCHIVE_DIR OP_DISK_FREE", ":4"},
		{[]string{"opcode", "remove", "OP_A"}, "OP_ARCHIVE_DIR", ":4"},
		{[]string{"opcode", "info", "OP_ARCHIVE_DIR", ""}, "", ":4"}, // one OP_ID
		{[]string{"submit", "OP_DISK_FREE", ""}, "nodes= min_free_percent= verbose=", ":6"},
		{[]string{"submit", "OP_DISK_FREE", "nodes=node1", "min_free_percent=5", ""}, "verbose=", ":6"},
		{[]string{"submit", "OP_DISK_FREE", "m"}, "min_free_percent=", ":6"},
		{[]string{"submit", "OP_DISK_FREE", "verbose="}, "verbose=true verbose=false", ":4"},
		{[]string{"submit", "OP_DISK_FREE", "nodes="}, "nodes=node1 nodes=node2 nodes=node3", ":6"},
		{[]string{"submit", "OP_DISK_FREE", "nodes=node1,"}, "nodes=node1,node2 nodes=node1,node3", ":6"},
		{[]string{"submit", "OP_DISK_FREE", "min_free_percent="}, "", ":4"}, // any integer
		{[]string{"submit", "OP_ARCHIVE_DIR", "mode=z"}, "mode=zstd", ":4"},
		{[]string{"submit", "OP_ARCHIVE_DIR", "node=node2"}, "node=node2", ":4"},
		{[]string{"submit", "OP_ARCHIVE_DIR", "dir="}, "", ":4"},
		{[]string{"submit", "OP_ARCHIVE_DIR", "size="}, "", ":4"}, // not a parameter
		{[]string{"submit", "OP_NONE", ""}, "", ":5"},             // not declared
		{[]string{"submit", `{"OP_ID": "OP_TEST_DELAY"}`, ""}, "", ":4"},
		{[]string{"submit", "--", ""}, "OP_ARCHIVE_DIR OP_DISK_FREE", ":4"},
		{[]string{"submit", "--file", "job.json", ""}, "", ":4"},
		{[]string{"opcode", "output", ""}, "6046 6040", ":36"},
		{[]string{"opcode", "replace", ""}, "toml", ":8"},
		{[]string{"opcode", "add", "a.toml", ""}, "", ":4"},
	} {
		w, d := complete(t, f.path, tc.args...)
		if strings.Join(w, " ") != tc.want || d != tc.dir {
			t.Errorf("%q: %q %s, want %q %s", tc.args, w, d, tc.want, tc.dir)
		}
	}
	r := run(t, f.path, "__complete", "submit", "OP_DISK_FREE", "nod")
	if !strings.Contains(r.stdout, "nodes=\tlist, required: where to look\n") {
		t.Errorf("a parameter's description:\n%s", r.stdout)
	}
	r = run(t, f.path, "__complete", "submit", "")
	if !strings.Contains(r.stdout, "OP_DISK_FREE\tCheck free disk space\n") {
		t.Errorf("an OP_ID's description:\n%s", r.stdout)
	}

	// No jobqd: nothing offered, and no file names either.
	none := filepath.Join(t.TempDir(), "none")
	for _, args := range [][]string{{"submit", ""}, {"submit", "OP_DISK_FREE", ""}, {"opcode", "info", ""}, {"opcode", "output", ""}} {
		if w, d := complete(t, none, args...); len(w) != 0 || d != ":5" {
			t.Errorf("%q without jobqd: %q %s", args, w, d)
		}
	}
}
