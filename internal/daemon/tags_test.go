package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobq-dev/jobq/internal/ganetiref"
	"github.com/jobq-dev/jobq/luxi"
)

// luxiOf dials the rapiNode's LUXI socket.
func luxiOf(t *testing.T, n *rapiNode) *node {
	t.Helper()
	c, err := luxi.Dial(SocketPath(n.dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &node{t: t, dir: n.dir, sock: SocketPath(n.dir), c: c}
}

// opresult is the job's opresult as fmt prints it.
func (n *node) opresult(id int64) string {
	n.t.Helper()
	var rows [][]any
	n.call(&rows, "QueryJobs", []int64{id}, []string{"opresult"})
	return fmt.Sprint(rows[0][0])
}

// Ganeti's tag opcodes, LUXI QueryTags and the RAPI tag resources change
// and read the cluster's and the nodes' tags; refusals are Ganeti's.
func TestTags(t *testing.T) {
	r := startRAPINode(t, "", 2, rapiUsers)
	n := luxiOf(t, r)
	const self = "node1.jobq.test"
	tagsOf := func(kind, name string) []string {
		t.Helper()
		var out []string
		n.call(&out, "QueryTags", kind, name)
		return out
	}
	if got := tagsOf("cluster", ""); len(got) != 0 {
		t.Fatalf("a new cluster has tags %v", got)
	}
	// What gnt-cluster add-tags submits.
	id := n.submit(`{"OP_ID": "OP_TAGS_SET", "kind": "cluster", "name": null, "tags": ["b", "a", "rack:1"], "dry_run": false}`)
	n.waitStatus(id, "success")
	if got, want := tagsOf("cluster", ""), []string{"a", "b", "rack:1"}; !cmp.Equal(got, want) {
		t.Errorf("cluster tags %v, want %v", got, want)
	}
	id = n.submit(`{"OP_ID": "OP_TAGS_SET", "kind": "node", "name": "` + self + `", "tags": ["a", "n"]}`)
	n.waitStatus(id, "success")
	if got, want := tagsOf("node", self), []string{"a", "n"}; !cmp.Equal(got, want) {
		t.Errorf("node tags %v, want %v", got, want)
	}
	for _, c := range []struct{ op, want string }{
		{`{"OP_ID": "OP_TAGS_SET", "kind": "cluster", "tags": ["ok", "not ok"]}`, `[[TagError [Tag contains invalid characters]]]`},
		{`{"OP_ID": "OP_TAGS_SET", "kind": "cluster", "tags": ["` + strings.Repeat("x", 129) + `"]}`, `[[TagError [Tag too long (>128 characters)]]]`},
		{`{"OP_ID": "OP_TAGS_DEL", "kind": "cluster", "tags": ["a", "zz", "c"]}`, `[[OpPrereqError [Tag(s) 'c', 'zz' not found unknown_entity]]]`},
		{`{"OP_ID": "OP_TAGS_SET", "kind": "node", "name": "nosuch", "tags": ["x"]}`, `[[OpPrereqError [Node 'nosuch' not known unknown_entity]]]`},
		{`{"OP_ID": "OP_TAGS_SET", "kind": "instance", "name": "i1", "tags": ["x"]}`, `[[OpPrereqError [jobq has no instance objects: only the cluster and its nodes have tags wrong_input]]]`},
		{`{"OP_ID": "OP_TAGS_SEARCH", "pattern": "("}`, "[[OpPrereqError [Invalid search pattern '(': error parsing regexp: missing closing ): `(` wrong_input]]]"},
	} {
		id := n.submit(c.op)
		n.waitStatus(id, "error")
		if got := n.opresult(id); got != c.want {
			t.Errorf("%s: opresult %s, want %s", c.op, got, c.want)
		}
	}
	if got, want := tagsOf("cluster", ""), []string{"a", "b", "rack:1"}; !cmp.Equal(got, want) {
		t.Errorf("refused changes changed the tags: %v", got)
	}
	// gnt-cluster search-tags and OP_TAGS_GET.
	id = n.submit(`{"OP_ID": "OP_TAGS_SEARCH", "pattern": "^(a|n)$"}`, `{"OP_ID": "OP_TAGS_GET", "kind": "node", "name": "`+self+`"}`)
	n.waitStatus(id, "success")
	if got, want := n.opresult(id), `[[[/cluster a] [/nodes/node1.jobq.test a] [/nodes/node1.jobq.test n]] [a n]]`; got != want {
		t.Errorf("search, get: %s, want %s", got, want)
	}
	if _, err := n.c.Call(t.Context(), "QueryTags", "node", "nosuch"); err == nil || !strings.Contains(err.Error(), "Node 'nosuch' not known") {
		t.Errorf("QueryTags of an unknown node: %v", err)
	}

	// RAPI: reads in Python's JSON; changes are jobs (write users).
	if rep := r.do("GET", "/2/tags", "", "", ""); rep.code != 200 || rep.body != `["a", "b", "rack:1"]`+"\n" {
		t.Errorf("GET /2/tags: %d %q", rep.code, rep.body)
	}
	if rep := r.do("GET", "/2/nodes/"+self+"/tags", "", "", ""); rep.code != 200 || rep.body != `["a", "n"]`+"\n" {
		t.Errorf("GET node tags: %d %q", rep.code, rep.body)
	}
	// rapi-put-tags-dryrun.txt: the answer is the job id alone.
	rep := r.do("PUT", "/2/tags?tag=rapibench&dry-run=1", "admin", "adminpw", "")
	if rep.code != 200 || !regexp.MustCompile(`^\d+\n$`).MatchString(rep.body) || rep.header.Get("Content-Type") != "application/json" {
		t.Fatalf("PUT /2/tags dry-run: %d %q %v", rep.code, rep.body, rep.header)
	}
	var dry int64
	_ = json.Unmarshal([]byte(rep.body), &dry)
	n.waitStatus(dry, "success")
	if got := tagsOf("cluster", ""); len(got) != 3 {
		t.Errorf("a dry run changed the tags: %v", got)
	}
	rep = r.do("PUT", "/2/nodes/"+self+"/tags?tag=x1&tag=x2&reason=why", "admin", "adminpw", "")
	var put int64
	if rep.code != 200 || json.Unmarshal([]byte(rep.body), &put) != nil {
		t.Fatalf("PUT node tags: %d %q", rep.code, rep.body)
	}
	n.waitStatus(put, "success")
	if got, want := tagsOf("node", self), []string{"a", "n", "x1", "x2"}; !cmp.Equal(got, want) {
		t.Errorf("node tags after PUT %v, want %v", got, want)
	}
	var ops [][][]map[string]any
	n.call(&ops, "QueryJobs", []int64{put}, []string{"ops"})
	if op := ops[0][0][0]; op["OP_ID"] != "OP_TAGS_SET" || op["kind"] != "node" || op["name"] != self || fmt.Sprint(op["reason"]) == "" ||
		!strings.Contains(fmt.Sprint(op["reason"]), "gnt:user why") || !strings.Contains(fmt.Sprint(op["reason"]), "gnt:library:rlib2:nodes_name_tags") {
		t.Errorf("the job of PUT node tags: %v", op)
	}
	rep = r.do("DELETE", "/2/nodes/"+self+"/tags?tag=x1&tag=x2", "admin", "adminpw", "")
	var del int64
	if rep.code != 200 || json.Unmarshal([]byte(rep.body), &del) != nil {
		t.Fatalf("DELETE node tags: %d %q", rep.code, rep.body)
	}
	n.waitStatus(del, "success")
	for _, c := range []struct {
		method, path, user, pass string
		code                     int
		msg                      string
	}{
		{"PUT", "/2/tags", "admin", "adminpw", 400, "Please specify tag(s) to add using the the 'tag' parameter"},
		{"DELETE", "/2/tags", "admin", "adminpw", 400, "Please specify tag(s) to delete using the the 'tag' parameter"},
		{"PUT", "/2/tags?tag=x", "", "", 401, "Unauthorized"},
		{"PUT", "/2/tags?tag=x", "reader", "readerpw", 403, "Forbidden"},
		{"PUT", "/2/tags?tag=x&dry-run=yes", "admin", "adminpw", 400, "Invalid value for the 'dry-run' parameter"},
		{"GET", "/2/nodes/nosuch/tags", "", "", 400, "Node 'nosuch' not known"},
		{"GET", "/2/nodes//tags", "", "", 404, "Not Found"},
		{"POST", "/2/tags", "admin", "adminpw", 501, "Method POST is unsupported for path /2/tags"},
	} {
		rep := r.do(c.method, c.path, c.user, c.pass, "")
		// Ganeti's RAPI escapes its messages as HTML.
		if rep.code != c.code || !strings.Contains(rep.body, strings.ReplaceAll(c.msg, "'", "&#x27;")) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, rep.code, rep.body, c.code, c.msg)
		}
	}

	// Tags are the cluster-wide setting "tags", agreed through the log.
	b, err := os.ReadFile(filepath.Join(r.dir, "cluster", "settings", "tags.json"))
	if err != nil {
		matches, _ := filepath.Glob(filepath.Join(r.dir, "*", "*", "tags.json"))
		if len(matches) == 0 {
			t.Fatalf("no tags.json in the settings: %v", err)
		}
		b, _ = os.ReadFile(matches[0])
	}
	if !bytes.Contains(b, []byte(`"cluster":["a","b","rack:1"]`)) {
		t.Errorf("stored tags: %s", b)
	}
}

// QueryClusterInfo answers every member Ganeti 3.0.2's luxid answers, in
// its order (luxi-filters-socat-v.txt), with jobq's facts.
func TestQueryClusterInfo(t *testing.T) {
	r := startRAPINode(t, "", 3, rapiUsers)
	n := luxiOf(t, r)
	id := n.submit(`{"OP_ID": "OP_TAGS_SET", "kind": "cluster", "tags": ["t1"]}`)
	n.waitStatus(id, "success")
	ctx := t.Context()
	raw, err := n.c.Call(ctx, "QueryClusterInfo")
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(ganetiref.Dir(t), "filters", "luxi-filters-socat-v.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var ref []byte
	for _, line := range bytes.Split(text, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(`{"success":true,"result":{"software_version"`)) {
			ref = bytes.TrimSuffix(line, []byte("."))
		}
	}
	if ref == nil {
		t.Fatal("no QueryClusterInfo answer in luxi-filters-socat-v.txt")
	}
	var refReply struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(ref, &refReply); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(topKeys(t, refReply.Result), topKeys(t, raw)); diff != "" {
		t.Errorf("QueryClusterInfo's members differ from Ganeti's (-Ganeti +jobqd):\n%s", diff)
	}
	var got, want map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(refReply.Result, &want); err != nil {
		t.Fatal(err)
	}
	// Each member has the JSON type Ganeti's has (Ganeti's clients index
	// and iterate them).
	for k, v := range want {
		if a, b := fmt.Sprintf("%T", v), fmt.Sprintf("%T", got[k]); a != b {
			t.Errorf("QueryClusterInfo's %s is a %s, Ganeti's a %s", k, b, a)
		}
	}
	uuid, _ := got["uuid"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(uuid) {
		t.Errorf("uuid %v", got["uuid"])
	}
	ctime, _ := got["ctime"].(float64)
	mtime, _ := got["mtime"].(float64)
	if ctime <= 0 || mtime < ctime {
		t.Errorf("ctime %v, mtime %v", got["ctime"], got["mtime"])
	}
	for k, want := range map[string]any{"name": "node1.jobq.test", "master": "node1.jobq.test", "max_running_jobs": 3.0,
		"max_tracked_jobs": 25.0, "protocol_version": 3000000.0} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if fmt.Sprint(got["tags"]) != "[t1]" {
		t.Errorf("tags %v", got["tags"])
	}
	// The same facts in jobq cluster info's call and RAPI's /2/info.
	var jq map[string]any
	n.call(&jq, "JobqClusterInfo")
	for _, k := range []string{"uuid", "ctime", "max_running_jobs", "max_tracked_jobs", "tags", "candidate_pool_size"} {
		if fmt.Sprint(jq[k]) != fmt.Sprint(got[k]) {
			t.Errorf("JobqClusterInfo %s = %v, QueryClusterInfo %v", k, jq[k], got[k])
		}
	}
	rep := r.do("GET", "/2/info", "", "", "")
	var info map[string]any
	if rep.code != 200 || json.Unmarshal([]byte(rep.body), &info) != nil || info["uuid"] != uuid || info["master"] != "node1.jobq.test" {
		t.Errorf("GET /2/info: %d %s", rep.code, rep.body)
	}
	// gnt-node info's call.
	var rows [][]any
	n.call(&rows, "QueryNodes", []string{}, []string{"name", "master", "master_candidate", "offline", "tags", "pinst_list"}, false)
	if got := fmt.Sprint(rows); got != "[[node1.jobq.test true true false [] []]]" {
		t.Errorf("QueryNodes: %s", got)
	}
	if _, err := n.c.Call(ctx, "QueryNodes", []string{}, []string{"name", "mfree"}, false); err == nil || !strings.Contains(err.Error(), "Unknown output fields selected: mfree") {
		t.Errorf("QueryNodes with mfree: %v", err)
	}
}

// topKeys are the member names of a JSON object, in order.
func topKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// RAPI's /2/query/RES and /2/query/RES/fields answer LUXI's Query and
// QueryFields, for read or write users; PUT takes a filter.
func TestRAPIQuery(t *testing.T) {
	r := startRAPINode(t, "", 2, rapiUsers)
	n := luxiOf(t, r)
	a := n.submit(`{"OP_ID": "OP_TEST_DELAY", "duration": 0, "on_master": true}`)
	b := n.submit(`{"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "on_master": true}`)
	n.waitStatus(a, "error")
	n.waitStatus(b, "success")
	rep := r.do("GET", "/2/query/job?fields=id,%20status", "reader", "readerpw", "")
	want := fmt.Sprintf(`{"fields": [{"name": "id", "title": "ID", "kind": "number", "doc": "Job ID"}, {"name": "status", "title": "Status", "kind": "text", "doc": "Job status"}], "data": [[[0, %d], [0, "error"]], [[0, %d], [0, "success"]]]}`+"\n", a, b)
	if rep.code != 200 || rep.body != want {
		t.Errorf("GET /2/query/job:\n%d %s\nwant\n%s", rep.code, rep.body, want)
	}
	rep = r.do("PUT", "/2/query/job", "admin", "adminpw", `{"fields": ["id"], "filter": ["==", "status", "success"]}`)
	if want := fmt.Sprintf(`"data": [[[0, %d]]]}`, b); rep.code != 200 || !strings.HasSuffix(rep.body, want+"\n") {
		t.Errorf("PUT /2/query/job with a filter: %d %s", rep.code, rep.body)
	}
	rep = r.do("PUT", "/2/query/job?fields=id", "admin", "adminpw", `{"qfilter": [">=", "id", 0]}`)
	if rep.code != 200 || !strings.Contains(rep.body, fmt.Sprintf("[[0, %d]], [[0, %d]]", a, b)) {
		t.Errorf("PUT /2/query/job?fields= with a qfilter: %d %s", rep.code, rep.body)
	}
	rep = r.do("GET", "/2/query/job/fields?fields=id,bogus", "", "", "")
	if rep.code != 200 || !strings.Contains(rep.body, `{"name": "bogus", "title": "bogus", "kind": "unknown", "doc": "Unknown field 'bogus'"}`) {
		t.Errorf("GET /2/query/job/fields: %d %s", rep.code, rep.body)
	}
	for _, c := range []struct {
		method, path, user, pass, body string
		code                           int
		msg                            string
	}{
		{"GET", "/2/query/job?fields=id", "", "", "", 401, "Unauthorized"},
		{"GET", "/2/query/job", "reader", "readerpw", "", 400, "Missing &#x27;fields&#x27; query argument"},
		{"PUT", "/2/query/job", "admin", "adminpw", `{}`, 400, "Missing &#x27;fields&#x27; query argument"},
		{"PUT", "/2/query/job", "admin", "adminpw", `{"fields": ["id"], "filter": ["==", "nosuch", 1]}`, 400, "Can&#x27;t find field named &#x27;nosuch&#x27;"},
		{"PUT", "/2/query/job", "admin", "adminpw", `[]`, 400, "Body contents: Type is &#x27;list&#x27;, but &#x27;dict&#x27; is expected"},
		{"GET", "/2/query/instance?fields=name", "reader", "readerpw", "", 400, "instance"},
		{"GET", "/2/query/lock?fields=name", "reader", "readerpw", "", 200, `"data": [`},
		{"PUT", "/2/query/lock", "reader", "readerpw", `{"fields": ["name"], "filter": ["=~", "name", ".*"]}`, 200, `"data": [`},
	} {
		rep := r.do(c.method, c.path, c.user, c.pass, c.body)
		if rep.code != c.code || !strings.Contains(rep.body, c.msg) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", c.method, c.path, c.body, rep.code, rep.body, c.code, c.msg)
		}
	}
}
