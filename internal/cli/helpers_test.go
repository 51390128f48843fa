package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/query"
	"github.com/jobq-dev/jobq/luxi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testNow is the time jobq puts into the reason trail in tests.
var testNow = time.Unix(0, 1795758421569201152)

// result is what one jobq invocation printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// runEnv runs jobq with args and environment variables env.
func runEnv(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(ctx, args, Env{
		Stdout:   &out,
		Stderr:   &errb,
		Getenv:   func(k string) string { return env[k] },
		Location: time.UTC,
		Now:      func() time.Time { return testNow },
	})
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// run runs jobq against the socket sock.
func run(t *testing.T, sock string, args ...string) result {
	t.Helper()
	return runEnv(t, context.Background(), nil, append([]string{"--socket", sock}, args...)...)
}

func checkResult(t *testing.T, got, want result) {
	t.Helper()
	if diff := cmp.Diff(want.stdout, got.stdout); diff != "" {
		t.Errorf("stdout mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.stderr, got.stderr); diff != "" {
		t.Errorf("stderr mismatch (-want +got):\n%s", diff)
	}
	if got.code != want.code {
		t.Errorf("exit code %d, want %d", got.code, want.code)
	}
}

// shortTempDir is a temporary directory with a short path (Unix socket
// paths are limited to about 100 bytes, too short for t.TempDir with long
// test names).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fake is an in-process LUXI server answering from scripted replies and a
// small job store.
type fake struct {
	t    *testing.T
	path string

	mu      sync.Mutex
	calls   []string                     // "Method <compact args>"
	scripts map[string][]json.RawMessage // replies per method, in order
	errs    map[string]error             // a failure reply per method
	jobs    map[int64]map[string]any     // job fields for QueryJobs, Query
	hooks   map[string]func(ctx context.Context, args []json.RawMessage) (any, error)
}

// startFake starts a fake server on a socket at dir/socket/jobq-query.
func startFake(t *testing.T) *fake {
	t.Helper()
	return startFakeAt(t, filepath.Join(shortTempDir(t), "socket", "jobq-query"))
}

func startFakeAt(t *testing.T, path string) *fake {
	t.Helper()
	f := &fake{
		t: t, path: path,
		scripts: map[string][]json.RawMessage{},
		errs:    map[string]error{},
		jobs:    map[int64]map[string]any{},
		hooks:   map[string]func(context.Context, []json.RawMessage) (any, error){},
	}
	l, err := luxi.ListenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	srv := &luxi.Server{
		Handler: luxi.HandlerFunc(f.serve),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-served
	})
	return f
}

// script queues replies (JSON texts) for method, answered in order.
func (f *fake) script(method string, replies ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range replies {
		f.scripts[method] = append(f.scripts[method], json.RawMessage(r))
	}
}

// fail makes every call of method fail with err.
func (f *fake) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

// hook makes method answer with fn.
func (f *fake) hook(method string, fn func(ctx context.Context, args []json.RawMessage) (any, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks[method] = fn
}

// addJobs adds jobs given as a JSON object of field name to value.
func (f *fake) addJobs(jobs ...string) {
	f.t.Helper()
	for _, j := range jobs {
		var m map[string]any
		if err := decodeJSON([]byte(j), &m); err != nil {
			f.t.Fatalf("bad job %s: %v", j, err)
		}
		id, err := m["id"].(json.Number).Int64()
		if err != nil {
			f.t.Fatalf("bad job id in %s", j)
		}
		if _, ok := m["archived"]; !ok {
			m["archived"] = false
		}
		f.mu.Lock()
		f.jobs[id] = m
		f.mu.Unlock()
	}
}

// addTestJobs adds jobs from testdata/jobs.json.
func (f *fake) addTestJobs(ids ...string) {
	f.t.Helper()
	all := testJobs(f.t)
	for _, id := range ids {
		j, ok := all[id]
		if !ok {
			f.t.Fatalf("no job %s in testdata/jobs.json", id)
		}
		f.addJobs(string(j))
	}
}

// setJob changes fields of a stored job.
func (f *fake) setJob(id int64, fields map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range fields {
		f.jobs[id][k] = v
	}
}

func testJobs(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "jobs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	return all
}

// getCalls returns the calls received so far.
func (f *fake) getCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fake) checkCalls(t *testing.T, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, f.getCalls()); diff != "" {
		t.Errorf("LUXI calls mismatch (-want +got):\n%s", diff)
	}
}

func (f *fake) serve(ctx context.Context, req *luxi.Request) (any, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, req.Args); err != nil {
		return nil, err
	}
	var args []json.RawMessage
	if err := json.Unmarshal(req.Args, &args); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.calls = append(f.calls, req.Method+" "+compact.String())
	hook := f.hooks[req.Method]
	if err := f.errs[req.Method]; err != nil {
		f.mu.Unlock()
		return nil, err
	}
	if s := f.scripts[req.Method]; len(s) > 0 {
		f.scripts[req.Method] = s[1:]
		f.mu.Unlock()
		return s[0], nil
	}
	f.mu.Unlock()
	if hook != nil {
		return hook(ctx, args)
	}
	switch req.Method {
	case "QueryJobs":
		return f.queryJobs(args)
	case "Query":
		return f.query(args)
	case "QueryFields":
		var names []string
		if err := json.Unmarshal(args[1], &names); err != nil {
			return nil, err
		}
		return query.BuildFieldsResult(query.FieldsForQueryFields(names)), nil
	}
	return nil, luxi.NewError("GenericError", "unexpected call of "+req.Method+" "+compact.String())
}

func (f *fake) queryJobs(args []json.RawMessage) (any, error) {
	var ids []int64
	var fields []string
	if err := json.Unmarshal(args[0], &ids); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(args[1], &fields); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rows := make([]any, len(ids))
	for i, id := range ids {
		j, ok := f.jobs[id]
		if !ok {
			continue
		}
		row := make([]any, len(fields))
		for k, fld := range fields {
			row[k] = j[fld]
		}
		rows[i] = row
	}
	return rows, nil
}

// query answers Query(["job", fields, filter]) as luxid does.
func (f *fake) query(args []json.RawMessage) (any, error) {
	var fields []string
	if err := json.Unmarshal(args[1], &fields); err != nil {
		return nil, err
	}
	flt, err := query.ParseFilter(args[2])
	if err != nil {
		return nil, err
	}
	defs := query.LookupJobFields(fields)
	f.mu.Lock()
	defer f.mu.Unlock()
	ids, byID := flt.RequestedIDs()
	if !byID {
		for id, j := range f.jobs {
			if j["archived"] == true && !query.WantArchived(fields) {
				continue
			}
			ok, err := flt.Match(func(field string) (any, bool) {
				v, ok := j[field]
				return v, ok
			})
			if err != nil {
				return nil, err
			}
			if ok {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	}
	rows := make([][]any, len(ids))
	for i, id := range ids {
		j, ok := f.jobs[id]
		rows[i] = query.MakeRow(defs, func(field string) (any, bool) {
			if field == "id" {
				return id, true
			}
			v, has := j[field]
			return v, ok && has
		})
	}
	return query.BuildQueryResult(defs, rows), nil
}

// reference is one capture of testdata/ganeti: a gnt-* command line, what
// it printed and its exit code.
type reference struct {
	args   []string // the jobq equivalent of the command line
	output string   // without the "... [N lines omitted ...]" marker
	code   int
}

var refCommands = []struct{ ganeti, jobq string }{
	{"gnt-job ", ""},
	{"gnt-debug ", "debug "},
	{"gnt-cluster queue ", "queue "},
}

func loadReference(t *testing.T, name string) reference {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ganeti-reference", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "$ ") || !strings.HasPrefix(lines[len(lines)-2], "[rc=") {
		t.Fatalf("%s: unexpected capture layout", name)
	}
	var ref reference
	cmdline := strings.TrimSpace(strings.TrimPrefix(lines[0], "$ "))
	translated := false
	for _, c := range refCommands {
		if rest, ok := strings.CutPrefix(cmdline, c.ganeti); ok {
			ref.args = strings.Fields(c.jobq + rest)
			translated = true
			break
		}
	}
	if !translated {
		t.Fatalf("%s: cannot translate %q", name, cmdline)
	}
	var out strings.Builder
	for _, l := range lines[1 : len(lines)-2] {
		if !strings.HasPrefix(l, "... [") {
			out.WriteString(l)
		}
	}
	ref.output = out.String()
	rc := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[len(lines)-2]), "[rc="), "]")
	if ref.code, err = strconv.Atoi(rc); err != nil {
		t.Fatalf("%s: bad exit code line %q", name, lines[len(lines)-2])
	}
	return ref
}
