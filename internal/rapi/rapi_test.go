package rapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/opcodes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// holdOp is OP_TEST_HOLD: it logs "holding", then blocks until its
// environment's release channel is closed.
type holdOp struct{ release <-chan struct{} }

func (p *holdOp) Validate() error { return nil }
func (p *holdOp) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	env.Log("holding")
	select {
	case <-p.release:
		return "released", nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// env is a queue on a temporary directory with a RAPI server in front of
// it, called without the network (ServeHTTP).
type env struct {
	t       *testing.T
	q       *queue.Queue
	s       *Server
	users   string
	release chan struct{}
	once    sync.Once
}

const usersFile = `# test users
admin  adminpw   write,admin
writer writerpw  write,administrator,Admin
reader readerpw
	hauser {HA1}0ddab11e0420a74bfccf3daef5dd5f69 read,write
ro {cleartext}ropw read
`

// usersFile's users: admin (write, admin), writer (write, and options
// that look like admin), reader (no rights), ro (read) and
// hauser, whose {HA1} hash is alice's (see TestCheckPassword), so no
// password works for hauser.
func newEnv(t *testing.T, maxRunning int, tweak func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "queue"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, users: filepath.Join(dir, "users"), release: make(chan struct{})}
	reg := opcodes.Builtin()
	if err := reg.Register(opcodes.Definition{ID: "OP_TEST_HOLD",
		New: func() opcodes.Params { return &holdOp{release: e.release} }}); err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(queue.Config{Store: st, Registry: reg, MaxRunning: maxRunning, NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	t.Cleanup(func() {
		e.releaseAll()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Shutdown(ctx); err != nil {
			t.Errorf("queue shutdown: %v", err)
		}
	})
	writeFile(t, e.users, usersFile)
	cfg := Config{Queue: q, UsersFile: e.users, WaitTimeout: 10 * time.Second,
		Cluster: func() ClusterInfo { return ClusterInfo{Name: "c1", Master: "node1", MaxRunningJobs: maxRunning} }}
	if tweak != nil {
		tweak(&cfg)
	}
	e.s = New(cfg)
	t.Cleanup(func() { e.s.Shutdown(context.Background()) })
	return e
}

func (e *env) releaseAll() { e.once.Do(func() { close(e.release) }) }

// writeFile replaces a file by renaming a new one over it, as editors and
// configuration tools do.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type reply struct {
	code int
	hdr  http.Header
	body string
}

// do sends a request; user "" sends no credentials. A body is sent as
// application/json unless ctype says otherwise.
func (e *env) do(method, path, user, pass, body string, ctype ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, "https://rapi.test"+path, rd)
	if body != "" {
		ct := "application/json"
		if len(ctype) > 0 {
			ct = ctype[0]
		}
		r.Header.Set("Content-Type", ct)
	}
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	return reply{code: w.Code, hdr: w.Header(), body: w.Body.String()}
}

func (e *env) submit(ops string) int64 {
	e.t.Helper()
	r := e.do("POST", "/2/jobs", "admin", "adminpw", `{"ops": `+ops+`}`)
	if r.code != 200 {
		e.t.Fatalf("submit %s: %d %s", ops, r.code, r.body)
	}
	var id int64
	if err := json.Unmarshal([]byte(r.body), &id); err != nil {
		e.t.Fatalf("submit answer %q: %v", r.body, err)
	}
	return id
}

// waitFor waits (through the queue, no polling) until job id's status is
// want.
func (e *env) waitFor(id int64, want string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prev := json.RawMessage(nil)
	for {
		res, err := e.q.WaitForJobChange(ctx, id, []string{"status"}, prev, 1<<40, 10*time.Second)
		if err != nil || res == nil {
			e.t.Fatalf("waiting for job %d to be %s: %v", id, want, err)
		}
		if string(res.Values) == `["`+want+`"]` {
			return
		}
		prev = res.Values
	}
}

// waitLogged waits (through the queue) until job id has a log entry.
func (e *env) waitLogged(id int64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		res, err := e.q.WaitForJobChange(ctx, id, []string{"id"}, json.RawMessage(fmt.Sprintf("[%d]", id)), 0, 10*time.Second)
		if err != nil || res == nil {
			e.t.Fatalf("waiting for job %d to log: %v", id, err)
		}
		if len(res.Logs) > 0 {
			return
		}
	}
}

// captureBody returns the body of a Ganeti RAPI capture (the part after
// the first blank line), optionally the n-th exchange's.
func captureBody(t *testing.T, name string, n int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ganeti-reference", name))
	if err != nil {
		t.Fatal(err)
	}
	exchanges := strings.Split(string(b), "\n$ ")
	if n >= len(exchanges) {
		t.Fatalf("%s has %d exchanges", name, len(exchanges))
	}
	_, body, ok := strings.Cut(exchanges[n], "\r\n\r\n")
	if !ok {
		t.Fatalf("%s: no body", name)
	}
	line, _, _ := strings.Cut(body, "\n")
	return line + "\n"
}

// keyOrder returns the member names of a JSON object, in order.
func keyOrder(t *testing.T, obj string) []string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(obj))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %.100s", obj)
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestPyJSONMatchesPython(t *testing.T) {
	// What Ganeti's serializer (simplejson.dumps) writes for the same value.
	v := new(object).Add("a", []any{1, 2.5, "é\u2028😀\x7f\x01\t", nil, 1e-3, 1e-5, json.Number("1e16"),
		json.Number("123456789012345678"), true, map[string]any{}, []any{}}).
		Add("b", map[string]any{"x": "<&>"})
	got, err := pyJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a": [1, 2.5, "\u00e9\u2028\ud83d\ude00\u007f\u0001\t", null, 0.001, 1e-05, 1e+16, 123456789012345678, true, {}, []], "b": {"x": "<&>"}}` + "\n"
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Raw job JSON keeps its number literals' values.
	got, _ = pyJSON(json.RawMessage(`{"duration":0.001,"ts":[1795757831,120290],"n":1795757827938150144}`))
	if want := `{"duration": 0.001, "ts": [1795757831, 120290], "n": 1795757827938150144}` + "\n"; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestErrorBodiesMatchGaneti(t *testing.T) {
	if got, want := string(errCode(http.StatusUnauthorized).body()), captureBody(t, "rapi-no-auth-put.txt", 0); got != want {
		t.Errorf("401 body:\n got %q\nwant %q", got, want)
	}
	if got, want := string(errorf(500, "Can't load job file").body()), captureBody(t, "rapi-wait-job.txt", 1); got != want {
		t.Errorf("500 body:\n got %q\nwant %q", got, want)
	}
}

func TestParseUsers(t *testing.T) {
	users := ParseUsers("# comment\n\n  a  pw1  write \nb pw2\nshort\nc pw3 write, read,x\n  # indented comment\nb pw4 read\n")
	want := map[string]*User{
		"a": {Name: "a", Password: "pw1", Options: []string{"write"}},
		"b": {Name: "b", Password: "pw4", Options: []string{"read"}},
		"c": {Name: "c", Password: "pw3", Options: []string{"write", "read", "x"}},
	}
	if !reflect.DeepEqual(users, want) {
		for k, u := range users {
			t.Logf("%s: %+v", k, *u)
		}
		t.Fatalf("parsed %d users, want %v", len(users), want)
	}
	if !users["c"].Has(AccessWrite) || users["b"].Has(AccessWrite) {
		t.Error("Has")
	}
}

func TestCheckPassword(t *testing.T) {
	// md5("alice:Ganeti Remote API:wonderland"), computed with Python.
	const ha1 = "0ddab11e0420a74bfccf3daef5dd5f69"
	for _, c := range []struct {
		user, pw, expected string
		ok                 bool
	}{
		{"u", "secret", "secret", true},
		{"u", "secret", "secreT", false},
		{"u", "secret", "{CLEARTEXT}secret", true},
		{"u", "secret", "{cleartext}secret", true},
		{"u", "{x}", "{CLEARTEXT}{x}", true},
		{"alice", "wonderland", "{HA1}" + ha1, true},
		{"alice", "wonderland", "{ha1}" + strings.ToUpper(ha1), true},
		{"alice", "wonderlanD", "{HA1}" + ha1, false},
		{"bob", "wonderland", "{HA1}" + ha1, false}, // the user name is part of it
		{"u", "secret", "{SHA}secret", false},
		{"u", "x", "{}x", false},
		{"u", "", "{", false},
	} {
		if got := CheckPassword(c.user, c.pw, c.expected); got != c.ok {
			t.Errorf("CheckPassword(%q, %q, %q) = %v", c.user, c.pw, c.expected, got)
		}
	}
	if HA1("alice", "wonderland") != "{HA1}"+ha1 {
		t.Errorf("HA1 = %s", HA1("alice", "wonderland"))
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, 1, nil)
	writeFile(t, e.users, usersFile+"alice "+HA1("alice", "wonderland")+" write\n")
	e.submit(`[{"OP_ID": "OP_TEST_JQUEUE"}]`) // job 1
	ops := `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`
	wait := `{"fields": ["status"], "previous_job_info": null, "previous_log_serial": null}`
	unauthorized := captureBody(t, "rapi-no-auth-put.txt", 0)
	forbidden := `{"code": 403, "message": "Forbidden", "explain": "Request forbidden -- authorization will not help"}` + "\n"
	for _, c := range []struct {
		name               string
		method, path, body string
		user, pass         string
		code               int
		body401or403       string
	}{
		{"anonymous read", "GET", "/2/jobs", "", "", "", 200, ""},
		{"anonymous version", "GET", "/version", "", "", "", 200, ""},
		{"anonymous submit", "POST", "/2/jobs", ops, "", "", 401, unauthorized},
		{"anonymous cancel", "DELETE", "/2/jobs/1", "", "", "", 401, unauthorized},
		{"anonymous wait", "GET", "/2/jobs/1/wait", wait, "", "", 401, unauthorized},
		{"wrong password on a read", "GET", "/2/jobs", "", "admin", "nope", 401, unauthorized},
		{"wrong password", "POST", "/2/jobs", ops, "admin", "nope", 401, unauthorized},
		{"unknown user", "POST", "/2/jobs", ops, "mallory", "adminpw", 401, unauthorized},
		{"read-only user submitting", "POST", "/2/jobs", ops, "reader", "readerpw", 403, forbidden},
		{"read user submitting", "POST", "/2/jobs", ops, "ro", "ropw", 403, forbidden},
		{"read-only user cancelling", "DELETE", "/2/jobs/1", "", "ro", "ropw", 403, forbidden},
		{"read-only user waiting", "GET", "/2/jobs/1/wait", wait, "reader", "readerpw", 403, forbidden},
		{"read-only user reading", "GET", "/2/jobs/1", "", "reader", "readerpw", 200, ""},
		{"write user", "POST", "/2/jobs", ops, "admin", "adminpw", 200, ""},
		{"HA1 password", "POST", "/2/jobs", ops, "alice", "wonderland", 200, ""},
		{"HA1 wrong password", "POST", "/2/jobs", ops, "alice", "wonderlanD", 401, unauthorized},
		{"HA1 other user's hash", "POST", "/2/jobs", ops, "hauser", "wonderland", 401, unauthorized},
	} {
		r := e.do(c.method, c.path, c.user, c.pass, c.body)
		if r.code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, r.code, r.body, c.code)
			continue
		}
		if c.body401or403 != "" && r.body != c.body401or403 {
			t.Errorf("%s: body %q, want %q", c.name, r.body, c.body401or403)
		}
		wantAuth := ""
		if c.code == 401 {
			wantAuth = `Basic realm="Ganeti Remote API"`
		}
		if got := r.hdr.Get("WWW-Authenticate"); got != wantAuth {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, got, wantAuth)
		}
	}

	// Malformed Authorization headers.
	for hdr, code := range map[string]int{
		"Basic":                   400,
		"Digest username=\"x\"":   401,
		"Basic !!!":               401,
		"Basic " + b64("nocolon"): 401,
		"Bearer abc":              401,
	} {
		r := httptest.NewRequest("POST", "/2/jobs", strings.NewReader(ops))
		r.Header.Set("Authorization", hdr)
		w := httptest.NewRecorder()
		e.s.ServeHTTP(w, r)
		if w.Code != code {
			t.Errorf("Authorization %q: %d %s, want %d", hdr, w.Code, w.Body, code)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRequireAuth(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.RequireAuth = true })
	if r := e.do("GET", "/2/jobs", "", "", ""); r.code != 401 {
		t.Errorf("anonymous read with RequireAuth: %d", r.code)
	}
	if r := e.do("GET", "/2/jobs", "reader", "readerpw", ""); r.code != 200 {
		t.Errorf("user read with RequireAuth: %d %s", r.code, r.body)
	}
}

func TestUsersFileChangesArePickedUp(t *testing.T) {
	e := newEnv(t, 1, nil)
	ops := `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`
	if r := e.do("POST", "/2/jobs", "admin", "adminpw", ops); r.code != 200 {
		t.Fatalf("before: %d %s", r.code, r.body)
	}
	writeFile(t, e.users, "admin newpw write\nreader readerpw write\n")
	if r := e.do("POST", "/2/jobs", "admin", "adminpw", ops); r.code != 401 {
		t.Errorf("old password after the change: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/2/jobs", "admin", "newpw", ops); r.code != 200 {
		t.Errorf("new password: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/2/jobs", "reader", "readerpw", ops); r.code != 200 {
		t.Errorf("reader given write: %d %s", r.code, r.body)
	}
	// Rewritten in place (same inode).
	if err := os.WriteFile(e.users, []byte("admin third write\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.do("POST", "/2/jobs", "admin", "third", ops); r.code != 200 {
		t.Errorf("after an in-place rewrite: %d %s", r.code, r.body)
	}
	if err := os.Remove(e.users); err != nil {
		t.Fatal(err)
	}
	if r := e.do("POST", "/2/jobs", "admin", "third", ops); r.code != 401 {
		t.Errorf("after the file was removed: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/2/jobs", "", "", ""); r.code != 200 {
		t.Errorf("anonymous read without a users file: %d %s", r.code, r.body)
	}
}

func TestJobResources(t *testing.T) {
	e := newEnv(t, 1, nil)
	id := e.submit(`[{"OP_ID": "OP_TEST_JQUEUE", "log_messages": ["one", "two"]}]`)
	e.waitFor(id, "success")

	// GET /2/jobs/N: Ganeti's fields in Ganeti's order.
	r := e.do("GET", fmt.Sprintf("/2/jobs/%d", id), "", "", "")
	if r.code != 200 || r.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET job: %d %v %s", r.code, r.hdr, r.body)
	}
	if got, want := keyOrder(t, r.body), keyOrder(t, captureBody(t, "rapi-get-job.txt", 0)); !reflect.DeepEqual(got, want) {
		t.Errorf("job keys %v, Ganeti's %v", got, want)
	}
	if !strings.HasPrefix(r.body, fmt.Sprintf(`{"id": %d, "ops": [{`, id)) || !strings.HasSuffix(r.body, "}\n") {
		t.Errorf("job not in Python's JSON style: %s", r.body)
	}
	var j map[string]any
	json.Unmarshal([]byte(r.body), &j)
	if j["status"] != "success" || fmt.Sprint(j["opresult"]) != "[true]" || len(j["oplog"].([]any)[0].([]any)) != 2 {
		t.Errorf("job: %s", r.body)
	}

	// GET /2/jobs?bulk=1 and GET /2/jobs.
	id2 := e.submit(`[{"OP_ID": "OP_TEST_JQUEUE"}]`)
	e.waitFor(id2, "success")
	r = e.do("GET", "/2/jobs?bulk=1", "", "", "")
	var bulk []json.RawMessage
	if err := json.Unmarshal([]byte(r.body), &bulk); err != nil || len(bulk) != 2 {
		t.Fatalf("bulk: %s", r.body)
	}
	var capBulk []json.RawMessage
	json.Unmarshal([]byte(captureBody(t, "rapi-get-jobs-bulk.txt", 0)), &capBulk)
	if got, want := keyOrder(t, string(bulk[0])), keyOrder(t, string(capBulk[0])); !reflect.DeepEqual(got, want) {
		t.Errorf("bulk keys %v, Ganeti's %v", got, want)
	}
	r = e.do("GET", "/2/jobs", "", "", "")
	if want := fmt.Sprintf(`[{"id": %d, "uri": "/2/jobs/%d"}, {"id": %d, "uri": "/2/jobs/%d"}]`+"\n", id, id, id2, id2); r.body != want {
		t.Errorf("jobs: %q, want %q", r.body, want)
	}
	if r := e.do("GET", "/2/jobs?bulk=x", "", "", ""); r.code != 400 || !strings.Contains(r.body, "Invalid value for the &#x27;bulk&#x27; parameter") {
		t.Errorf("bulk=x: %d %s", r.code, r.body)
	}

	// Cancel a finished job: Ganeti's [false, message].
	r = e.do("DELETE", fmt.Sprintf("/2/jobs/%d", id), "admin", "adminpw", "")
	if want := fmt.Sprintf(`[false, "Job %d is no longer waiting in the queue"]`+"\n", id); r.code != 200 || r.body != want {
		t.Errorf("cancel finished: %d %q, want %q", r.code, r.body, want)
	}
	// An archived job is still known: Ganeti's answer, as captured.
	if ok, err := e.q.ArchiveJob(id); !ok || err != nil {
		t.Fatal(ok, err)
	}
	r = e.do("DELETE", fmt.Sprintf("/2/jobs/%d", id), "admin", "adminpw", "")
	if want := fmt.Sprintf(`[false, "Job %d not found in queue"]`+"\n", id); r.code != 200 || r.body != want {
		t.Errorf("cancel archived: %d %q, want %q", r.code, r.body, want)
	}
	if r := e.do("GET", fmt.Sprintf("/2/jobs/%d", id), "", "", ""); r.code != 200 {
		t.Errorf("archived job: %d %s", r.code, r.body)
	}

	// Unknown job: 404 everywhere.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/2/jobs/999", ""},
		{"DELETE", "/2/jobs/999", ""},
		{"GET", "/2/jobs/999/wait", `{"fields": ["status"]}`},
	} {
		r := e.do(c.method, c.path, "admin", "adminpw", c.body)
		if r.code != 404 || !strings.Contains(r.body, `"code": 404`) || !strings.Contains(r.body, "Job 999 not found") {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
}

func TestSmallResources(t *testing.T) {
	e := newEnv(t, 7, nil)
	for path, want := range map[string]string{
		"/version":     "2\n",
		"/2/features":  `["jobs-submit"]` + "\n",
		"/":            "null\n",
		"/2":           "null\n",
		"/2/info":      `"name": "c1", "master": "node1", "max_running_jobs": 7}` + "\n",
		"/2/jobs/x":    `{"code": 404, "message": "Not Found", "explain": "Nothing matches the given URI"}` + "\n",
		"/2/jobs/":     `"code": 404`,
		"/2/nodes":     `"code": 404`,
		"/2/jobs/1/xx": `"code": 404`,
	} {
		r := e.do("GET", path, "", "", "")
		if !strings.HasSuffix(r.body, want) && !strings.Contains(r.body, want) {
			t.Errorf("GET %s: %d %q, want %q", path, r.code, r.body, want)
		}
	}
	r := e.do("GET", "/2/info", "", "", "")
	if got := keyOrder(t, r.body); !reflect.DeepEqual(got, []string{"software_version", "protocol_version", "architecture", "name", "master", "max_running_jobs"}) {
		t.Errorf("info keys %v", got)
	}
	r = e.do("PUT", "/2/jobs?x=1", "admin", "adminpw", "")
	if want := `{"code": 501, "message": "Method PUT is unsupported for path /2/jobs?x=1", "explain": "Server does not support this operation"}` + "\n"; r.code != 501 || r.body != want {
		t.Errorf("PUT: %d %q", r.code, r.body)
	}
}

func TestWait(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.WaitTimeout = 50 * time.Millisecond })
	hold := e.submit(`[{"OP_ID": "OP_TEST_HOLD"}]`)
	e.waitLogged(hold) // running, "holding" logged
	path := fmt.Sprintf("/2/jobs/%d/wait", hold)

	// First call: everything at once, in Ganeti's shape.
	r := e.do("GET", path, "admin", "adminpw", `{"fields": ["status"], "previous_job_info": null, "previous_log_serial": null}`)
	var ans struct {
		JobInfo    []string `json:"job_info"`
		LogEntries [][]any  `json:"log_entries"`
	}
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil || r.code != 200 {
		t.Fatalf("wait: %d %s", r.code, r.body)
	}
	if got := keyOrder(t, r.body); !reflect.DeepEqual(got, keyOrder(t, captureBody(t, "rapi-wait-job.txt", 0))) {
		t.Errorf("wait keys %v", got)
	}
	if len(ans.JobInfo) != 1 || ans.JobInfo[0] != "running" || len(ans.LogEntries) != 1 || ans.LogEntries[0][3] != "holding" {
		t.Fatalf("wait: %s", r.body)
	}
	// Nothing changes within the window: null.
	r = e.do("GET", path, "admin", "adminpw", `{"fields": ["status"], "previous_job_info": ["running"], "previous_log_serial": 1}`)
	if r.code != 200 || r.body != "null\n" {
		t.Errorf("unchanged: %d %q, want null", r.code, r.body)
	}
	// A changed field or newer log entries answer at once.
	r = e.do("GET", path, "admin", "adminpw", `{"fields": ["status"], "previous_job_info": ["queued"], "previous_log_serial": 1}`)
	if r.code != 200 || r.body != `{"job_info": ["running"], "log_entries": []}`+"\n" {
		t.Errorf("changed: %d %q", r.code, r.body)
	}
	r = e.do("GET", path, "admin", "adminpw", `{"fields": ["status"], "previous_job_info": ["running"], "previous_log_serial": 0}`)
	if r.code != 200 || !strings.Contains(r.body, `"message", "holding"]]}`) {
		t.Errorf("new log entry: %d %q", r.code, r.body)
	}
	// A final job that did not change is answered as it is, not null.
	e.releaseAll()
	e.waitFor(hold, "success")
	r = e.do("GET", path, "admin", "adminpw", `{"fields": ["status"], "previous_job_info": ["success"], "previous_log_serial": 1}`)
	if r.code != 200 || r.body != `{"job_info": ["success"], "log_entries": []}`+"\n" {
		t.Errorf("final unchanged: %d %q", r.code, r.body)
	}
}

func TestMalformedRequests(t *testing.T) {
	e := newEnv(t, 1, nil)
	id := e.submit(`[{"OP_ID": "OP_TEST_JQUEUE"}]`)
	wait := fmt.Sprintf("/2/jobs/%d/wait", id)
	for _, c := range []struct {
		method, path, body, ctype string
		code                      int
		msg                       string
	}{
		{"POST", "/2/jobs", `{"ops": [`, "", 400, "Unable to parse JSON data: unexpected EOF"},
		{"POST", "/2/jobs", `{"ops": []} {}`, "", 400, "Unable to parse JSON data: more than one JSON value"},
		{"POST", "/2/jobs", `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`, "text/plain", 415, "Unsupported Media Type"},
		{"POST", "/2/jobs", `[{"OP_ID": "OP_TEST_JQUEUE"}]`, "", 400, "Body contents: Type is &#x27;list&#x27;, but &#x27;dict&#x27; is expected"},
		{"POST", "/2/jobs", `{}`, "", 400, "Required parameter &#x27;ops&#x27; is missing"},
		{"POST", "/2/jobs", ``, "", 400, "Required parameter &#x27;ops&#x27; is missing"},
		{"POST", "/2/jobs", `{"ops": {"OP_ID": "OP_TEST_JQUEUE"}}`, "", 400, "&#x27;ops&#x27; parameter: Type is &#x27;dict&#x27;, but &#x27;list&#x27; is expected"},
		{"POST", "/2/jobs", `{"ops": []}`, "", 400, "A job needs at least one opcode"},
		{"POST", "/2/jobs", `{"ops": [1]}`, "", 400, "Opcode 0: Type is &#x27;int&#x27;, but &#x27;dict&#x27; is expected"},
		{"POST", "/2/jobs", `{"ops": [{"duration": 1}]}`, "", 400, "Opcode 0 has no OP_ID"},
		{"POST", "/2/jobs", `{"ops": [{"OP_ID": "OP_TEST_JQUEUE", "reason": "x"}]}`, "", 400, "Opcode 0: the &#x27;reason&#x27; parameter should be a list"},
		{"POST", "/2/jobs", `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}], "op": 1}`, "", 400, "Unknown parameter &#x27;op&#x27;"},
		{"GET", wait, `{}`, "", 400, "Required parameter &#x27;fields&#x27; is missing"},
		{"GET", wait, `{"fields": "status"}`, "", 400, "The &#x27;fields&#x27; parameter should be a list"},
		{"GET", wait, `{"fields": ["nosuchfield"]}`, "", 400, "Unknown output fields selected: nosuchfield"},
		{"GET", wait, `{"fields": ["status"], "previous_job_info": "x"}`, "", 400, "The &#x27;previous_job_info&#x27; parameter should be a list"},
		{"GET", wait, `{"fields": ["status"], "previous_log_serial": 1.5}`, "", 400, "The &#x27;previous_log_serial&#x27; parameter should be a number"},
		{"GET", wait, `{"fields": ["status"], "previous_log_serial": "1"}`, "", 400, "The &#x27;previous_log_serial&#x27; parameter should be a number"},
	} {
		var ct []string
		if c.ctype != "" {
			ct = []string{c.ctype}
		}
		r := e.do(c.method, c.path, "admin", "adminpw", c.body, ct...)
		if r.code != c.code || !strings.Contains(r.body, `"message": "`+c.msg) {
			t.Errorf("%s %s %s: %d %s, want %d %q", c.method, c.path, c.body, r.code, r.body, c.code, c.msg)
		}
	}
}

func TestSubmit(t *testing.T) {
	e := newEnv(t, 1, nil)
	r := e.do("POST", "/2/jobs?reason=maintenance", "admin", "adminpw",
		`{"ops": [{"OP_ID": "OP_TEST_JQUEUE", "reason": [["gnt:client:x", "mine", 1]]}, {"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]}`)
	if r.code != 200 || r.body != "1\n" {
		t.Fatalf("submit: %d %q", r.code, r.body)
	}
	e.waitFor(1, "success")
	rows, err := e.q.QueryJobs([]int64{1}, []string{"ops"})
	if err != nil {
		t.Fatal(err)
	}
	var ops [][]struct {
		Reason [][]any `json:"reason"`
	}
	json.Unmarshal(rows[0], &ops)
	var sources [][]string
	for _, op := range ops[0] {
		var s []string
		for _, r := range op.Reason {
			s = append(s, fmt.Sprint(r[0], ":", r[1]))
		}
		sources = append(sources, s)
	}
	want := [][]string{
		{"gnt:client:x:mine", "gnt:user:maintenance", "gnt:library:rlib2:jobs:", "jobq:rapi:admin", "gnt:opcode:test_jqueue:job=1;index=0"},
		{"gnt:user:maintenance", "gnt:library:rlib2:jobs:", "jobq:rapi:admin", "gnt:opcode:test_delay:job=1;index=1"},
	}
	if !reflect.DeepEqual(sources, want) {
		t.Errorf("reason trails %v, want %v", sources, want)
	}

	// A drained queue: Ganeti's 503.
	if err := e.q.SetDrainFlag(true); err != nil {
		t.Fatal(err)
	}
	r = e.do("POST", "/2/jobs", "admin", "adminpw", `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`)
	if r.code != 503 || !strings.Contains(r.body, `"message": "Job queue is drained, cannot submit"`) {
		t.Errorf("drained: %d %s", r.code, r.body)
	}
	// An unknown opcode is still a job (that fails), as over LUXI.
	e.q.SetDrainFlag(false)
	if id := e.submit(`[{"OP_ID": "OP_NO_SUCH_THING"}]`); id != 2 {
		t.Errorf("id %d", id)
	}
	e.waitFor(2, "error")
}

type observed struct {
	mu   sync.Mutex
	reqs []RequestInfo
}

func (o *observed) ObserveRequest(r RequestInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r.Duration = 0
	o.reqs = append(o.reqs, r)
}

func TestObserverAndExtraResources(t *testing.T) {
	obs := &observed{}
	e := newEnv(t, 1, func(c *Config) { c.Observer = obs })
	e.s.Handle("/metrics", []string{AccessRead, AccessWrite}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "jobq_up 1")
	}))
	e.do("GET", "/2/jobs/5", "", "", "")
	e.do("POST", "/2/jobs", "ro", "ropw", `{"ops": []}`)
	if r := e.do("GET", "/metrics", "", "", ""); r.code != 401 {
		t.Errorf("anonymous /metrics: %d", r.code)
	}
	if r := e.do("GET", "/metrics", "reader", "readerpw", ""); r.code != 403 {
		t.Errorf("/metrics without rights: %d", r.code)
	}
	if r := e.do("GET", "/metrics", "ro", "ropw", ""); r.code != 200 || r.body != "jobq_up 1\n" {
		t.Errorf("/metrics: %d %q", r.code, r.body)
	}
	e.do("GET", "/nothing", "", "", "")
	want := []RequestInfo{
		{Method: "GET", Route: "/2/jobs/[job_id]", Status: 404},
		{Method: "POST", Route: "/2/jobs", User: "ro", Status: 403},
		{Method: "GET", Route: "/metrics", Status: 401},
		{Method: "GET", Route: "/metrics", User: "reader", Status: 403},
		{Method: "GET", Route: "/metrics", User: "ro", Status: 200},
		{Method: "GET", Route: "", Status: 404},
	}
	if !reflect.DeepEqual(obs.reqs, want) {
		t.Errorf("observed %+v\nwant %+v", obs.reqs, want)
	}
}

func TestShutdownEndsWaiters(t *testing.T) {
	e := newEnv(t, 1, nil)
	hold := e.submit(`[{"OP_ID": "OP_TEST_HOLD"}]`)
	e.waitFor(hold, "running")
	r := httptest.NewRequest("GET", fmt.Sprintf("/2/jobs/%d/wait", hold),
		bytes.NewReader([]byte(`{"fields": ["status"], "previous_job_info": ["running"], "previous_log_serial": 1}`)))
	r.Header.Set("Content-Type", "application/json")
	r.SetBasicAuth("admin", "adminpw")
	// A request context derived from the server's base context, as Serve
	// gives it.
	ctx, cancel := context.WithCancel(e.s.baseCtx)
	defer cancel()
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { e.s.ServeHTTP(w, r.WithContext(ctx)); close(done) }()
	e.s.Shutdown(context.Background())
	<-done
	if w.Code != 503 || !strings.Contains(w.Body.String(), "shutting down") {
		t.Errorf("waiter at shutdown: %d %s", w.Code, w.Body)
	}
}

func TestHandlePrefixAndLookupUser(t *testing.T) {
	obs := &observed{}
	e := newEnv(t, 1, func(c *Config) { c.Observer = obs; c.RequireAuth = true })
	e.s.HandlePrefix("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprint(w, r.URL.Path)
	}))
	// The prefix's handler authenticates on its own: RAPI lets every
	// request through, even with RequireAuth and wrong credentials.
	for _, p := range []string{"/ui", "/ui/", "/ui/jobs/1"} {
		if r := e.do("GET", p, "", "", ""); r.code != http.StatusTeapot || r.body != p {
			t.Errorf("GET %s: %d %q", p, r.code, r.body)
		}
	}
	if r := e.do("POST", "/ui/login", "admin", "wrong", ""); r.code != http.StatusTeapot {
		t.Errorf("POST /ui/login with wrong credentials: %d", r.code)
	}
	if r := e.do("GET", "/uix", "admin", "adminpw", ""); r.code != 404 {
		t.Errorf("GET /uix: %d", r.code)
	}
	if r := e.do("GET", "/2/jobs", "", "", ""); r.code != 401 {
		t.Errorf("RAPI itself still authenticates: %d", r.code)
	}
	if len(obs.reqs) < 1 || obs.reqs[0].Route != "/ui/" || obs.reqs[0].Status != http.StatusTeapot {
		t.Errorf("observed %+v", obs.reqs)
	}

	u := e.s.LookupUser("admin")
	if u == nil || u.Name != "admin" || !u.Has(AccessWrite) || !CheckPassword("admin", "adminpw", u.Password) {
		t.Fatalf("LookupUser(admin) = %+v", u)
	}
	u.Options[0] = "changed" // a copy
	if !e.s.LookupUser("admin").Has(AccessWrite) {
		t.Fatal("LookupUser returned the users file's own entry")
	}
	if e.s.LookupUser("nobody") != nil {
		t.Fatal("LookupUser(nobody) is not nil")
	}
	writeFile(t, e.users, "admin newpw read\n")
	if u := e.s.LookupUser("admin"); u == nil || u.Has(AccessWrite) || !CheckPassword("admin", "newpw", u.Password) {
		t.Fatalf("after the users file changed: %+v", u)
	}
}
