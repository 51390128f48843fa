package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/opcodes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait of these tests, so that a regression fails
// with a message saying what did not happen instead of hanging until the
// test binary's timeout.
const waitTimeout = 60 * time.Second

// await receives from ch within waitTimeout, failing with what it waited
// for otherwise.
func await[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("waited %s for %s", waitTimeout, what)
	}
}

// gate is a test opcode that blocks until released, so tests can hold a
// job in "running" without sleeping.
type gates struct {
	mu      sync.Mutex
	started map[string]chan struct{}
	release map[string]chan struct{}
}

func newGates() *gates {
	return &gates{started: map[string]chan struct{}{}, release: map[string]chan struct{}{}}
}

func (g *gates) get(name string) (chan struct{}, chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started[name] == nil {
		g.started[name] = make(chan struct{})
		g.release[name] = make(chan struct{})
	}
	return g.started[name], g.release[name]
}

type gateOp struct {
	g    *gates
	Name string `json:"name"`
}

func (p *gateOp) Validate() error { return nil }
func (p *gateOp) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	started, release := p.g.get(p.Name)
	env.Log("gate " + p.Name + " reached")
	close(started)
	select {
	case <-release:
		return "released", nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type harness struct {
	t   *testing.T
	dir string
	q   *Queue
	g   *gates
}

func newHarness(t *testing.T, dir string, maxRunning int) *harness {
	t.Helper()
	return newHarnessConfig(t, dir, Config{MaxRunning: maxRunning})
}

func newHarnessConfig(t *testing.T, dir string, cfg Config) *harness {
	t.Helper()
	g := newGates()
	reg := opcodes.Builtin()
	if err := reg.Register(opcodes.Definition{ID: "OP_TEST_GATE", New: func() opcodes.Params { return &gateOp{g: g} }, SummaryField: "name"}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Registry, cfg.NodeName = st, reg, "node1"
	q, err := Open(cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, q: q, g: g}
	t.Cleanup(func() { h.close() })
	return h
}

func (h *harness) close() {
	if h.q == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // interrupt anything still running
	h.q.Shutdown(ctx)
	h.q = nil
}

func op(s string) json.RawMessage { return json.RawMessage(s) }

func gate(name string) json.RawMessage {
	return op(fmt.Sprintf(`{"OP_ID":"OP_TEST_GATE","name":%q}`, name))
}

func (h *harness) submit(ops ...json.RawMessage) int64 {
	h.t.Helper()
	res, err := h.q.Submit([][]json.RawMessage{ops}, false)
	if err != nil || res[0].Err != nil {
		h.t.Fatalf("submit: %v %v", err, res)
	}
	return res[0].ID
}

// waitFinal waits (on the queue's own notifications) until the job is final.
func (h *harness) waitFinal(id int64) job.Status {
	h.t.Helper()
	var prev json.RawMessage
	deadline := time.Now().Add(waitTimeout)
	for {
		r, err := h.q.WaitForJobChange(context.Background(), id, []string{"status"}, prev, -1, time.Until(deadline))
		if err != nil || r == nil {
			h.t.Fatalf("wait %d: %v %v", id, r, err)
		}
		var v []job.Status
		json.Unmarshal(r.Values, &v)
		if v[0].Final() {
			return v[0]
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %d is still %s after %s, waited for it to end", id, v[0], waitTimeout)
		}
		prev = r.Values
	}
}

func (h *harness) waitStatus(id int64, want job.Status) {
	h.t.Helper()
	var prev json.RawMessage
	deadline := time.Now().Add(waitTimeout)
	for {
		r, err := h.q.WaitForJobChange(context.Background(), id, []string{"status"}, prev, -1, time.Until(deadline))
		if err != nil || r == nil {
			h.t.Fatalf("wait %d: %v %v", id, r, err)
		}
		var v []job.Status
		json.Unmarshal(r.Values, &v)
		if v[0] == want {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %d is still %s after %s, waited for %s", id, v[0], waitTimeout, want)
		}
		if v[0].Final() {
			h.t.Fatalf("job %d is %s, waited for %s", id, v[0], want)
		}
		prev = r.Values
	}
}

func (h *harness) fields(id int64, fields ...string) []any {
	h.t.Helper()
	rows, err := h.q.QueryJobs([]int64{id}, fields)
	if err != nil {
		h.t.Fatal(err)
	}
	var v []any
	if err := json.Unmarshal(rows[0], &v); err != nil {
		h.t.Fatalf("job %d: %s", id, rows[0])
	}
	return v
}

func (h *harness) fileJob(id int64) *job.Job {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, store.JobFileName(id)))
	if err != nil {
		h.t.Fatal(err)
	}
	j, err := job.Decode(b)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func TestTestDelayRunsToSuccess(t *testing.T) {
	h := newHarness(t, t.TempDir(), 0)
	id := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"repeat":2}`))
	if id != 1 {
		t.Fatalf("first job id = %d, want 1", id)
	}
	if st := h.waitFinal(id); st != job.StatusSuccess {
		t.Fatalf("status %s", st)
	}
	j := h.fileJob(id)
	if j.CalcStatus() != job.StatusSuccess || j.EndTimestamp == nil || len(j.Ops[0].Log) != 2 {
		t.Fatalf("file: %+v", j)
	}
	if got := string(j.Ops[0].Log[1].Message); got != `" - INFO: Test delay iteration 1/1"` {
		t.Fatalf("log message %s", got)
	}
	v := h.fields(id, "summary", "opresult")
	if fmt.Sprint(v) != "[[TEST_DELAY(1.0e-3)] [<nil>]]" {
		t.Fatalf("fields %v", v)
	}
	serial, _ := os.ReadFile(filepath.Join(h.dir, "serial"))
	if string(serial) != "1\n" {
		t.Fatalf("serial file %q", serial)
	}
}

func TestBadOpcodesFailWithPrereqError(t *testing.T) {
	h := newHarness(t, t.TempDir(), 0)
	cases := []struct{ in, want string }{
		{`{"OP_ID":"OP_TEST_DELAY","duration":0}`, `[["OpPrereqError",["Duration must be greater than zero"]]]`},
		{`{"OP_ID":"OP_NO_SUCH"}`, `[["OpPrereqError",["Unknown opcode OP_NO_SUCH","wrong_input"]]]`},
		{`{"OP_ID":"OP_TEST_DELAY","duration":"x"}`, `[["OpPrereqError",["Parameter 'OP_TEST_DELAY.duration' has the wrong type: expected float64, got a JSON string","wrong_input"]]]`},
		{`{"OP_ID":"OP_TEST_DELAY"}`, `[["OpPrereqError",["Parameter 'OP_TEST_DELAY.duration' is missing","wrong_input"]]]`},
		{`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_nodes":["other"]}`, `[["OpPrereqError",["Node 'other' not known","unknown_entity"]]]`},
	}
	for _, c := range cases {
		id := h.submit(op(c.in))
		if st := h.waitFinal(id); st != job.StatusError {
			t.Errorf("%s: status %s", c.in, st)
		}
		rows, _ := h.q.QueryJobs([]int64{id}, []string{"opresult"})
		if got := string(rows[0]); got != "["+c.want+"]" {
			t.Errorf("%s: result %s, want %s", c.in, got, c.want)
		}
		if j := h.fileJob(id); j.Ops[0].ExecTimestamp != nil {
			t.Errorf("%s: a rejected opcode has an exec timestamp", c.in)
		}
	}
}

func TestSecondOpcodeFailsAfterFirst(t *testing.T) {
	h := newHarness(t, t.TempDir(), 0)
	id := h.submit(op(`{"OP_ID":"OP_TEST_JQUEUE","fail":true,"log_messages":["a","b"]}`), op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	h.waitFinal(id)
	v := h.fields(id, "opstatus", "opresult")
	if got := fmt.Sprint(v); got != "[[error error] [[OpExecError [Opcode failure was requested]] [OpExecError [Preceding opcode failed]]]]" {
		t.Fatal(got)
	}
}

func TestPriorityOrder(t *testing.T) {
	h := newHarness(t, t.TempDir(), 1)
	blocker := h.submit(gate("block"))
	started, release := h.g.get("block")
	await(t, started, "started")
	low := h.submit(op(`{"OP_ID":"OP_TEST_GATE","name":"low","priority":10}`))
	normal := h.submit(gate("normal"))
	high := h.submit(op(`{"OP_ID":"OP_TEST_GATE","name":"high","priority":-10}`))
	// Raise "low" above everything.
	if ok, msg, _ := h.q.ChangeJobPriority(low, -20); !ok {
		t.Fatal(msg)
	}
	var order []string
	close(release)
	for _, name := range []string{"low", "high", "normal"} {
		s, r := h.g.get(name)
		await(t, s, "s")
		order = append(order, name)
		close(r)
	}
	for _, id := range []int64{blocker, low, normal, high} {
		h.waitFinal(id)
	}
	if strings.Join(order, ",") != "low,high,normal" {
		t.Fatalf("order %v", order)
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, t.TempDir(), 1)
	running := h.submit(gate("r"))
	started, release := h.g.get("r")
	await(t, started, "started")
	queued := h.submit(gate("q"))
	ok, msg, _ := h.q.CancelJob(queued, false)
	if !ok || msg != fmt.Sprintf("Dequeued job %d", queued) {
		t.Fatalf("cancel queued: %v %q", ok, msg)
	}
	if j := h.fileJob(queued); j.CalcStatus() != job.StatusCanceled || j.EndTimestamp == nil {
		t.Fatalf("canceled job on disk: %s", j.CalcStatus())
	}
	ok, msg, _ = h.q.CancelJob(running, false)
	if ok || msg != "Job no longer waiting, can't cancel (informed it anyway)" {
		t.Fatalf("cancel running: %v %q", ok, msg)
	}
	ok, msg, _ = h.q.CancelJob(999, false)
	if ok || msg != "Job 999 not found in queue" {
		t.Fatalf("cancel unknown: %v %q", ok, msg)
	}
	close(release)
	if st := h.waitFinal(running); st != job.StatusSuccess {
		t.Fatal(st)
	}
	ok, msg, _ = h.q.CancelJob(running, false)
	if ok || !strings.Contains(msg, "no longer waiting") {
		t.Fatalf("cancel final: %v %q", ok, msg)
	}
}

func TestKill(t *testing.T) {
	h := newHarness(t, t.TempDir(), 0)
	id := h.submit(gate("k"), gate("after"))
	started, _ := h.g.get("k")
	await(t, started, "started")
	ok, _, _ := h.q.CancelJob(id, true)
	if !ok {
		t.Fatal("kill refused")
	}
	if st := h.waitFinal(id); st != job.StatusCanceled {
		t.Fatal(st)
	}
	v := h.fields(id, "opstatus", "opresult")
	if got := fmt.Sprint(v); got != "[[canceled canceled] [[OpExecError [Job killed by request]] <nil>]]" {
		t.Fatal(got)
	}
}

func TestDependencies(t *testing.T) {
	h := newHarness(t, t.TempDir(), 2)
	first := h.submit(gate("dep"))
	started, release := h.g.get("dep")
	await(t, started, "started")
	res, err := h.q.Submit([][]json.RawMessage{
		{op(fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[%d,["success"]]]}`, first))},
		{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[-1,[]]]}`)},
		{op(fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[%d,["error"]]]}`, first))},
		{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[12345,[]]]}`)},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	ok, wrong, missing := res[0].ID, res[2].ID, res[3].ID
	rel := res[1].ID
	h.waitStatus(ok, job.StatusWaiting)
	if st := h.waitFinal(missing); st != job.StatusError {
		t.Fatalf("missing dependency: %s", st)
	}
	// The relative dependency was resolved to the previous job's id.
	in := h.fields(rel, "ops")[0].([]any)[0].(map[string]any)["depends"]
	if fmt.Sprint(in) != fmt.Sprintf("[[%d []]]", ok) {
		t.Fatalf("relative dependency stored as %v", in)
	}
	close(release)
	if st := h.waitFinal(ok); st != job.StatusSuccess {
		t.Fatal(st)
	}
	if st := h.waitFinal(rel); st != job.StatusSuccess {
		t.Fatal(st)
	}
	if st := h.waitFinal(wrong); st != job.StatusError {
		t.Fatal(st)
	}
	// A dependency on a canceled job that did not want "canceled" cancels.
	started2, _ := h.g.get("blk")
	blk := h.submit(gate("blk"))
	<-started2
	never := h.submit(op(fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[%d,[]]]}`, blk)))
	dependent := h.submit(op(fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[%d,["success"]]]}`, never)))
	h.waitStatus(never, job.StatusWaiting)
	h.waitStatus(dependent, job.StatusWaiting)
	if ok, msg, _ := h.q.CancelJob(never, false); !ok {
		t.Fatal(msg)
	}
	if st := h.waitFinal(dependent); st != job.StatusCanceled {
		t.Fatalf("dependent of canceled job: %s", st)
	}
	h.q.CancelJob(blk, true)
	h.waitFinal(blk)
}

func TestCancelWaitingOnDependency(t *testing.T) {
	h := newHarness(t, t.TempDir(), 2)
	first := h.submit(gate("w"))
	started, release := h.g.get("w")
	await(t, started, "started")
	dep := h.submit(op(fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[%d,[]]]}`, first)))
	h.waitStatus(dep, job.StatusWaiting)
	ok, msg, _ := h.q.CancelJob(dep, false)
	if !ok || msg != fmt.Sprintf("Job %d will be canceled", dep) {
		t.Fatal(ok, msg)
	}
	if st := h.waitFinal(dep); st != job.StatusCanceled {
		t.Fatal(st)
	}
	close(release)
	h.waitFinal(first)
}

func TestDrainArchiveAutoArchive(t *testing.T) {
	h := newHarness(t, t.TempDir(), 0)
	if err := h.q.SetDrainFlag(true); err != nil {
		t.Fatal(err)
	}
	_, err := h.q.Submit([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)}}, false)
	if err == nil || err.Error() != "GenericError: Queue drained" {
		t.Fatalf("submit while drained: %v", err)
	}
	res, err := h.q.Submit([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)}}, true)
	if err != nil {
		t.Fatal(err)
	}
	a := res[0].ID
	h.q.SetDrainFlag(false)
	b := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	c := h.submit(gate("live"))
	started, release := h.g.get("live")
	await(t, started, "started")
	h.waitFinal(a)
	h.waitFinal(b)
	if ok, _ := h.q.ArchiveJob(c); ok {
		t.Fatal("archived a running job")
	}
	if ok, _ := h.q.ArchiveJob(a); !ok {
		t.Fatal("archive failed")
	}
	if ok, _ := h.q.ArchiveJob(a); ok {
		t.Fatal("archived twice")
	}
	if _, err := os.Stat(filepath.Join(h.dir, "archive", "0", store.JobFileName(a))); err != nil {
		t.Fatal(err)
	}
	// Archived jobs stay queryable.
	if v := h.fields(a, "id", "status", "archived"); fmt.Sprint(v) != fmt.Sprintf("[%d success true]", a) {
		t.Fatal(v)
	}
	n, left, err := h.q.AutoArchiveJobs(-1, 60)
	if n != 1 || left != 0 || err != nil {
		t.Fatalf("autoarchive all: %d %d %v", n, left, err)
	}
	close(release)
	h.waitFinal(c)
	n, _, _ = h.q.AutoArchiveJobs(3600, 60)
	if n != 0 {
		t.Fatalf("autoarchive 1h archived %d fresh jobs", n)
	}
}

func TestRecoveryAfterCrash(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, 1)
	running := h.submit(gate("crash"))
	started, _ := h.g.get("crash")
	await(t, started, "started")
	queued := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	// A "crash": the queue stops without letting the opcode finish.
	h.close()

	h2 := newHarness(t, dir, 1)
	if st := h2.waitFinal(running); st != job.StatusError {
		t.Fatalf("running job after restart: %s", st)
	}
	v := h2.fields(running, "opresult")
	if fmt.Sprint(v) != "[[[OpExecError [Unclean master shutdown]]]]" {
		t.Fatal(v)
	}
	if st := h2.waitFinal(queued); st != job.StatusSuccess {
		t.Fatalf("queued job after restart: %s", st)
	}
	next := h2.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	if next <= queued {
		t.Fatalf("id %d reused after restart (last was %d)", next, queued)
	}
}

func TestWaitForJobChangeTimeoutAndLogs(t *testing.T) {
	h := newHarness(t, t.TempDir(), 0)
	id := h.submit(gate("w"))
	started, release := h.g.get("w")
	await(t, started, "started")
	// Unchanged info: answered at the timeout with the current values.
	r, err := h.q.WaitForJobChange(context.Background(), id, []string{"status"}, op(`["running"]`), 1, 0)
	if err != nil || string(r.Values) != `["running"]` || len(r.Logs) != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	// New log entries wake the waiter at once.
	r, _ = h.q.WaitForJobChange(context.Background(), id, []string{"status"}, op(`["running"]`), -1, waitTimeout)
	if len(r.Logs) != 1 || r.Logs[0].Serial != 1 {
		t.Fatalf("logs %+v", r.Logs)
	}
	b, _ := json.Marshal(r)
	if !strings.HasPrefix(string(b), `[["running"],[[1,[`) {
		t.Fatalf("encoded %s", b)
	}
	// A cancelled context ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.q.WaitForJobChange(ctx, id, []string{"status"}, op(`["running"]`), 1, waitTimeout); err == nil {
		t.Fatal("wait ignored its context")
	}
	// Unknown job: nil result.
	if r, err := h.q.WaitForJobChange(context.Background(), 999, []string{"status"}, nil, -1, waitTimeout); r != nil || err != nil {
		t.Fatal(r, err)
	}
	if _, err := h.q.WaitForJobChange(context.Background(), id, []string{"nosuch"}, nil, -1, waitTimeout); err == nil {
		t.Fatal("unknown field accepted")
	}
	close(release)
	h.waitFinal(id)
}

func TestQueueLockedAndVersion(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(dir, nil); err == nil || !strings.Contains(err.Error(), "held by another jobqd") {
		t.Fatalf("second open: %v", err)
	}
	st.Close()
	os.WriteFile(filepath.Join(dir, "version"), []byte("7\n"), 0o640)
	if _, err := store.Open(dir, nil); err == nil || !strings.Contains(err.Error(), `version "7"`) {
		t.Fatalf("bad version: %v", err)
	}
}

func TestCorruptJobFileIsQuarantined(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, 0)
	id := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	h.waitFinal(id)
	h.close()
	os.WriteFile(filepath.Join(dir, "job-77"), []byte(`{"id": 77, "ops": [`), 0o640)
	h2 := newHarness(t, dir, 0)
	ents, _ := os.ReadDir(filepath.Join(dir, "quarantine"))
	if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "job-77.") {
		t.Fatalf("quarantine: %v", ents)
	}
	// The serial still counts the corrupt job's id.
	if next := h2.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)); next != 78 {
		t.Fatalf("next id %d, want 78", next)
	}
}

// Many watchers of one job, with two field lists (so that the shared
// answer cache is replaced under them), all get the job's end, each in the
// encoding of its own field list.
func TestManyWatchersShareAnswers(t *testing.T) {
	h := newHarness(t, t.TempDir(), 0)
	id := h.submit(gate("m"))
	started, release := h.g.get("m")
	await(t, started, "started")
	const n = 200
	answers := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fields, prev := []string{"status"}, `["running"]`
			if i%2 == 1 {
				fields, prev = []string{"id", "status"}, fmt.Sprintf(`[%d,"running"]`, id)
			}
			r, err := h.q.WaitForJobChange(context.Background(), id, fields, op(prev), 1, waitTimeout)
			if err != nil {
				t.Error(err)
				return
			}
			answers[i], _ = json.Marshal(r)
		}()
	}
	close(release)
	wg.Wait()
	for i, a := range answers {
		want := `[["success"],[]]`
		if i%2 == 1 {
			want = fmt.Sprintf(`[[%d,"success"],[]]`, id)
		}
		if string(a) != want {
			t.Fatalf("watcher %d answered %s, want %s", i, a, want)
		}
	}
}

// A dry run checks the opcode and executes nothing (Ganeti: CheckPrereq
// only): OP_TEST_DELAY does not sleep and takes no locks, a gate is not
// reached, and bad parameters still fail the opcode.
func TestDryRunChecksAndRunsNothing(t *testing.T) {
	h := newHarness(t, t.TempDir(), 0)
	// An hour's delay holds node1's lock while the dry runs come.
	holder := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":3600,"on_nodes":["node1"]}`))
	h.waitStatus(holder, job.StatusRunning)

	id := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":1e9,"on_nodes":["node1"],"dry_run":true}`),
		op(`{"OP_ID":"OP_TEST_GATE","name":"never","dry_run":true}`))
	if st := h.waitFinal(id); st != job.StatusSuccess {
		t.Fatalf("dry run: status %s", st)
	}
	j := h.fileJob(id)
	for i, o := range j.Ops {
		if o.Status != job.StatusSuccess || string(o.Result) != "null" || len(o.Log) != 1 ||
			string(o.Log[0].Message) != `" - INFO: `+opcodes.DryRunMessage+`"` {
			t.Errorf("opcode %d: %+v", i, o)
		}
	}
	started, _ := h.g.get("never")
	select {
	case <-started:
		t.Error("the dry run executed the gate")
	default:
	}

	bad := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0,"dry_run":true}`))
	if st := h.waitFinal(bad); st != job.StatusError {
		t.Fatalf("a bad dry run: status %s", st)
	}
	if got := fmt.Sprint(h.fields(bad, "opresult")); got != "[[[OpPrereqError [Duration must be greater than zero]]]]" {
		t.Errorf("a bad dry run: %s", got)
	}
	unknown := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_nodes":["other"],"dry_run":true}`))
	if st := h.waitFinal(unknown); st != job.StatusError {
		t.Fatalf("a dry run on an unknown node: status %s", st)
	}
	if st := h.fields(holder, "status"); fmt.Sprint(st) != "[running]" {
		t.Errorf("the holder is %v", st)
	}
	// dry_run false, or not a bool, is no dry run.
	for _, in := range []string{`{"dry_run":false}`, `{"dry_run":"yes"}`, `{}`, `[`} {
		if opcodes.DryRun(json.RawMessage(in)) {
			t.Errorf("DryRun(%s) is true", in)
		}
	}
}

// A priority outside Ganeti's submit priorities refuses the whole call,
// before any job is stored; relative dependencies name earlier jobs of the
// call, never jobs before it or jobs the call refused.
func TestSubmitChecksAsGaneti(t *testing.T) {
	h := newHarness(t, t.TempDir(), 2)
	delay := `{"OP_ID":"OP_TEST_DELAY","duration":0.001}`
	for _, prio := range []int{-21, -20, -11, -9, -1, 1, 9, 11, 19, 20} {
		_, err := h.q.Submit([][]json.RawMessage{{op(delay)}, {op(delay), op(fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"priority":%d}`, prio))}}, false)
		want := fmt.Sprintf("Job 1 of the submission: Opcode 1 has invalid priority %d, allowed are 0, 10, -10", prio)
		var qe *Error
		if !errors.As(err, &qe) || qe.Class != "GenericError" || fmt.Sprint(qe.Args) != "["+want+"]" {
			t.Errorf("priority %d: %v, want GenericError %q", prio, err, want)
		}
	}
	if rows, _ := h.q.QueryJobs(nil, []string{"id"}); len(rows) != 0 {
		t.Fatalf("refused calls stored jobs: %s", rows)
	}
	first := h.submit(op(delay))
	res, err := h.q.Submit([][]json.RawMessage{
		{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[-1,[]]]}`)},
		{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"priority":-10}`)},
		{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[-1,[]]]}`)},
		{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[-2,["success"]],[-1,[]]]}`)},
		{},
		{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"depends":[[-1,[]]]}`)},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || res[0].Err.Error() != "Unable to resolve relative job ID -1" {
		t.Errorf("a relative dependency on a job before the call: %+v (the job before is %d)", res[0], first)
	}
	for _, i := range []int{1, 2, 3} {
		if res[i].Err != nil {
			t.Fatalf("job %d of the call refused: %v", i, res[i].Err)
		}
	}
	if res[5].Err == nil || res[5].Err.Error() != "Unable to resolve relative job ID -1" {
		t.Errorf("a relative dependency on a refused job: %+v", res[5])
	}
	for i, want := range map[int]string{
		2: fmt.Sprintf("[[%d []]]", res[1].ID),
		3: fmt.Sprintf("[[%d [success]] [%d []]]", res[1].ID, res[2].ID),
	} {
		if got := fmt.Sprint(h.fields(res[i].ID, "ops")[0].([]any)[0].(map[string]any)["depends"]); got != want {
			t.Errorf("job %d of the call depends on %s, want %s", i, got, want)
		}
	}
	for _, i := range []int{1, 2, 3} {
		if st := h.waitFinal(res[i].ID); st != job.StatusSuccess {
			t.Errorf("job %d of the call: %s", i, st)
		}
	}
	h.waitFinal(first)
}
