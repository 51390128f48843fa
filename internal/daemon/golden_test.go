package daemon

// Daemon-level golden tests: the real daemon (Run) is started in-process,
// the state each Ganeti capture was taken in is rebuilt, and the captured
// request bytes of Ganeti's Python client (testdata/ganeti-reference/luxi-*.txt,
// read by internal/ganetiref) are sent on a raw connection.
// Our reply is compared with luxid's by shape: same JSON types
// recursively, same object keys, same list lengths, and equal values except
// where a value is an id (checked against the id of our job instead), a
// timestamp (type only) or differs by a documented choice of jobq (checked
// against jobq's documented value, with the reason next to the case).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/jobq-dev/jobq/internal/cluster"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/ganetiref"
	"github.com/jobq-dev/jobq/luxi"
	"github.com/jobq-dev/jobq/opcodes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// callTimeout bounds every single exchange with the daemon, so that a bug
// makes a test fail instead of hang.
const callTimeout = 30 * time.Second

// ---------------------------------------------------------------------------
// Captures (read by ganetiref).

// TestGoldenCapturesUpToDate checks that testdata holds every LUXI capture
// of the shared reference directory, unchanged (skipped where it is
// absent), and that every capture is played by one of the tests below.
func TestGoldenCapturesUpToDate(t *testing.T) {
	captureDir := ganetiref.Dir(t)
	names, err := ganetiref.Names(captureDir, "luxi-*")
	if err != nil || len(names) < 35 {
		t.Fatalf("found %d captures in %s (%v)", len(names), captureDir, err)
	}
	played := map[string]bool{}
	for _, names := range playedCaptures {
		for _, n := range names {
			if played[n] {
				t.Errorf("%s is listed twice in playedCaptures", n)
			}
			played[n] = true
		}
	}
	for _, name := range names {
		if !played[name] {
			t.Errorf("capture %s is not played by any test", name)
		}
		delete(played, name)
	}
	for n := range played {
		t.Errorf("playedCaptures lists %s, which is not in %s", n, captureDir)
	}
}

// playedCaptures lists, per test, the captures it plays; the test checks
// at its end (checkPlayed) that it played each of them,
// TestGoldenCapturesUpToDate that together they are all the captures.
var playedCaptures = map[string][]string{
	"TestGoldenFinishedJob": {
		"luxi-SubmitJob", "luxi-WaitForJobChange", "luxi-WaitForJobChange-finished",
		"luxi-WaitForJobChange-unchanged", "luxi-QueryJobs", "luxi-QueryJobs-all-ids",
		"luxi-Query-job", "luxi-ArchiveJob", "luxi-ArchiveJob-again",
		"luxi-QueryJobs-archived", "luxi-Query-job-archived",
	},
	"TestGoldenPendingJobs": {
		"luxi-SubmitManyJobs", "luxi-SubmitJob-duration0", "luxi-QueryJobs-error",
		"luxi-SubmitJob-depends", "luxi-QueryJobs-pending", "luxi-ChangeJobPriority-queued",
		"luxi-ChangeJobPriority-waiting", "luxi-QueryJobs-after-prio", "luxi-CancelJob-queued",
		"luxi-CancelJob-running", "luxi-WaitForJobChange-nochange", "luxi-CancelJob-waiting",
		"luxi-QueryJobs-after-cancel", "luxi-CancelJob-finished", "luxi-CancelJob-unknown",
	},
	"TestGoldenDrainAndConfig": {
		"luxi-SetQueueDrainFlag-true", "luxi-SubmitJob-drained", "luxi-SetQueueDrainFlag-false",
		"luxi-QueryConfigValues", "luxi-QueryFields-job", "luxi-unknown-method",
	},
	"TestGoldenAutoArchive": {
		"luxi-AutoArchiveJobs-1s", "luxi-AutoArchiveJobs-all",
	},
	"TestGoldenSocatConversation": {"luxi-socat-v"},
}

var (
	playedMu sync.Mutex
	played   = map[string]map[string]bool{} // top-level test -> captures
)

func markPlayed(t *testing.T, name string) {
	top, _, _ := strings.Cut(t.Name(), "/")
	name, _, _ = strings.Cut(name, " ")
	playedMu.Lock()
	defer playedMu.Unlock()
	if played[top] == nil {
		played[top] = map[string]bool{}
	}
	played[top][name] = true
}

// checkPlayed, deferred by each golden test, checks that the test played
// every capture playedCaptures lists for it.
func checkPlayed(t *testing.T) {
	playedMu.Lock()
	defer playedMu.Unlock()
	for _, name := range playedCaptures[t.Name()] {
		if !played[t.Name()][name] {
			t.Errorf("capture %s was not played", name)
		}
	}
}

// ---------------------------------------------------------------------------
// A daemon for one test.

// gates hold jobs in "running": the test opcode OP_TEST_GATE blocks in Exec
// until its gate is released.
type gates struct {
	mu      sync.Mutex
	started map[string]chan struct{}
	release map[string]chan struct{}
}

func newGates() *gates {
	return &gates{started: map[string]chan struct{}{}, release: map[string]chan struct{}{}}
}

func (g *gates) get(name string) (started, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started[name] == nil {
		g.started[name] = make(chan struct{})
		g.release[name] = make(chan struct{})
	}
	return g.started[name], g.release[name]
}

// open releases the gate name (once).
func (g *gates) open(name string) {
	_, r := g.get(name)
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-r:
	default:
		close(r)
	}
}

func (g *gates) openAll() {
	g.mu.Lock()
	var names []string
	for n := range g.release {
		names = append(names, n)
	}
	g.mu.Unlock()
	for _, n := range names {
		g.open(n)
	}
}

// gateOp is OP_TEST_GATE {"name": ...}. Its result is null, as
// OP_TEST_DELAY's, so that results compare with Ganeti's.
type gateOp struct {
	g    *gates
	Name string `json:"name"`
}

func (p *gateOp) Validate() error { return nil }

func (p *gateOp) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	started, release := p.g.get(p.Name)
	close(started)
	select {
	case <-release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// node is a daemon started by Run for one test.
type node struct {
	t     *testing.T
	dir   string
	sock  string
	c     *luxi.Client
	gates *gates
}

// shortTempDir returns a temporary directory whose socket path fits in
// sun_path.
func shortTempDir(t *testing.T) string {
	dir := t.TempDir()
	if len(SocketPath(dir)) < 100 {
		return dir
	}
	dir, err := os.MkdirTemp("", "jq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startNode runs the daemon on a fresh data directory (prepared by
// prepare, if set) with OP_TEST_GATE registered, and stops it when the test
// ends: the gates are opened, ctx is cancelled and Run must return nil.
func startNode(t *testing.T, maxRunning int, prepare func(dir string)) *node {
	t.Helper()
	dir := shortTempDir(t)
	if prepare != nil {
		prepare(dir)
	}
	g := newGates()
	reg := opcodes.Builtin()
	if err := reg.Register(opcodes.Definition{ID: "OP_TEST_GATE",
		New: func() opcodes.Params { return &gateOp{g: g} }, SummaryField: "name"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			DataDir:         dir,
			NodeName:        "node1.ganeti.test",
			MaxRunning:      maxRunning,
			ShutdownTimeout: 5 * time.Second,
			Registry:        reg,
			Logger:          slog.New(slog.DiscardHandler),
			Ready:           func() { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run returned before it was ready: %v", err)
	case <-time.After(callTimeout):
		cancel()
		t.Fatal("daemon not ready")
	}
	n := &node{t: t, dir: dir, sock: SocketPath(dir), gates: g}
	t.Cleanup(func() {
		g.openAll()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(callTimeout):
			t.Errorf("Run did not return after its context was cancelled")
		}
	})
	c, err := luxi.Dial(n.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n.c = c
	return n
}

// call calls method through the Go client and decodes the result into out.
func (n *node) call(out any, method string, args ...any) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := n.c.Call(ctx, method, args...)
	if err != nil {
		n.t.Fatalf("%s: %v", method, err)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			n.t.Fatalf("%s: result %s: %v", method, res, err)
		}
	}
}

// submit submits one job through the Go client and returns its id.
func (n *node) submit(ops ...string) int64 {
	n.t.Helper()
	raw := make([]json.RawMessage, len(ops))
	for i, o := range ops {
		raw[i] = json.RawMessage(o)
	}
	var id int64
	n.call(&id, "SubmitJob", raw)
	return id
}

// gateJob submits a job that runs OP_TEST_GATE name.
func (n *node) gateJob(name string) int64 {
	n.t.Helper()
	return n.submit(fmt.Sprintf(`{"OP_ID":"OP_TEST_GATE","name":%q}`, name))
}

// waitStatus follows the job with WaitForJobChange until its status is
// want; it fails if the job ends in another status.
func (n *node) waitStatus(id int64, want string) {
	n.t.Helper()
	var prev []string
	deadline := time.Now().Add(callTimeout)
	for time.Now().Before(deadline) {
		var res []json.RawMessage
		n.call(&res, "WaitForJobChange", id, []string{"status"}, prev, nil, 5)
		if len(res) != 2 {
			n.t.Fatalf("WaitForJobChange(%d): %d elements", id, len(res))
		}
		var vals []string
		if err := json.Unmarshal(res[0], &vals); err != nil || len(vals) != 1 {
			n.t.Fatalf("WaitForJobChange(%d) values %s", id, res[0])
		}
		switch st := vals[0]; {
		case st == want:
			return
		case st == "success" || st == "error" || st == "canceled":
			n.t.Fatalf("job %d ended %s while waiting for %s", id, st, want)
		}
		prev = vals
	}
	n.t.Fatalf("job %d did not reach %s", id, want)
}

// waitGate waits until the opcode OP_TEST_GATE name executes.
func (n *node) waitGate(name string) {
	n.t.Helper()
	started, _ := n.gates.get(name)
	select {
	case <-started:
	case <-time.After(callTimeout):
		n.t.Fatalf("gate %s not reached", name)
	}
}

// statuses returns the status of each job.
func (n *node) statuses(ids ...int64) []string {
	n.t.Helper()
	var rows [][]any
	n.call(&rows, "QueryJobs", ids, []string{"status"})
	out := make([]string, len(rows))
	for i, r := range rows {
		if r == nil {
			out[i] = "<none>"
		} else {
			out[i] = fmt.Sprint(r[0])
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Raw connections: bytes as Ganeti's Python client sends them.

type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (n *node) dialRaw() *rawConn {
	n.t.Helper()
	nc, err := net.Dial("unix", n.sock)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { nc.Close() })
	return &rawConn{t: n.t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(callTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads one message, terminator included.
func (c *rawConn) recv() []byte {
	c.t.Helper()
	b, err := c.tryRecv()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return b
}

func (c *rawConn) tryRecv() ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(callTimeout))
	return c.br.ReadBytes(0x03)
}

// roundTrip sends a whole message and returns the reply.
func (c *rawConn) roundTrip(b []byte) []byte {
	c.t.Helper()
	c.send(b)
	return c.recv()
}

// pyCall sends {"method": m, "args": args, "version": 3000000} framed as
// the Python client does (json + "\n" + "\x03").
func (c *rawConn) pyCall(method, args string) []byte {
	c.t.Helper()
	return c.roundTrip([]byte(fmt.Sprintf(`{"method": %q, "args": %s, "version": 3000000}`+"\n\x03", method, args)))
}

// ---------------------------------------------------------------------------
// Shape comparison.

// expect says how our reply to one capture is compared with luxid's.
type expect struct {
	// ids are old, new pairs: the job ids of the capture's request and of
	// the equivalent jobs here. Each old text must occur exactly once in
	// the request; nothing else of it is changed.
	ids []string
	// free lists paths (such as "result/0/6"; "*" matches any element)
	// whose values are timestamps or otherwise state-dependent: only their
	// JSON types are compared.
	free []string
	// ours maps paths to the value (JSON) that jobq must answer there:
	// the ids of our jobs, and jobq's documented behaviour where it differs
	// from luxid's (the reason is given next to each case).
	ours map[string]string
	// bugs maps paths to the explanation of a difference that is a daemon
	// bug: the difference still fails the test, with the explanation.
	bugs map[string]string
	// absent lists paths of object keys luxid answers and jobq
	// legitimately does not (the reason is given next to each case).
	absent []string
}

// play sends the capture's request (ids rewritten) on c and compares the
// reply with luxid's. It returns our reply, decoded.
func play(t *testing.T, c *rawConn, name string, e expect) any {
	t.Helper()
	cp := ganetiref.LoadCapture(t, name)
	req := rewrite(t, cp.ReqRaw, e.ids)
	got := c.roundTrip(req)
	return checkReply(t, cp, got, e)
}

// rewrite replaces each old text of pairs (which must occur exactly once)
// by its new text.
func rewrite(t *testing.T, b []byte, pairs []string) []byte {
	t.Helper()
	if len(pairs)%2 != 0 {
		t.Fatalf("odd rewrite pairs %q", pairs)
	}
	for i := 0; i < len(pairs); i += 2 {
		old, repl := []byte(pairs[i]), []byte(pairs[i+1])
		if n := bytes.Count(b, old); n != 1 {
			t.Fatalf("rewriting %q: found %d times in %q", old, n, b)
		}
		b = bytes.Replace(b, old, repl, 1)
	}
	return b
}

// checkReply compares our reply bytes with the capture's reply.
func checkReply(t *testing.T, cp ganetiref.Capture, got []byte, e expect) any {
	t.Helper()
	markPlayed(t, cp.Name)
	want := decodeMsg(t, "luxid's reply", cp.RepRaw)
	ours := decodeMsg(t, "our reply", got)
	ov := map[string]any{}
	for p, js := range e.ours {
		ov[p] = decodeMsg(t, "expected value at "+p, []byte(js))
	}
	cmp := &shapeCmp{free: e.free, ours: ov, absent: e.absent}
	cmp.compare("", want, ours, false)
	for p := range ov {
		if !cmp.usedOurs[p] {
			t.Errorf("%s: expected value for %s was never compared (no such path)", cp.Name, p)
		}
	}
	var lines []string
	explained := map[string]bool{}
	for _, d := range cmp.diffs {
		line := d.msg
		for p, why := range e.bugs {
			if pathMatch(p, d.path) {
				line += "\n      DAEMON BUG: " + why
				explained[p] = true
			}
		}
		lines = append(lines, line)
	}
	for p := range e.bugs {
		if !explained[p] {
			t.Logf("%s: the known daemon bug at %s no longer shows; remove it from the test", cp.Name, p)
		}
	}
	if len(lines) > 0 {
		t.Errorf("%s: reply differs from luxid's:\n  luxid: %q\n  ours:  %q\n  %s",
			cp.Name, cp.RepRaw, got, strings.Join(lines, "\n  "))
	} else if bytes.Equal(got, cp.RepRaw) {
		t.Logf("%s: byte-identical to luxid's reply", cp.Name)
	} else {
		t.Logf("%s: same shape as luxid's reply\n  luxid: %q\n  ours:  %q", cp.Name, cp.RepRaw, got)
	}
	return ours
}

// decodeMsg decodes one message (a trailing 0x03 and whitespace allowed)
// keeping numbers as json.Number.
func decodeMsg(t *testing.T, what string, b []byte) any {
	t.Helper()
	b = bytes.TrimSuffix(b, []byte{0x03})
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s %q: %v", what, b, err)
	}
	if _, err := d.Token(); err != io.EOF {
		t.Fatalf("%s %q: text after the JSON value", what, b)
	}
	return v
}

type shapeCmp struct {
	absent   []string
	free     []string
	ours     map[string]any
	usedOurs map[string]bool
	diffs    []diff
}

type diff struct{ path, msg string }

func (c *shapeCmp) add(path, format string, args ...any) {
	c.diffs = append(c.diffs, diff{path, path + ": " + fmt.Sprintf(format, args...)})
}

func pathMatch(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ps[i] != "*" && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func numEqual(a, b json.Number) bool {
	if x, err := a.Int64(); err == nil {
		if y, err := b.Int64(); err == nil {
			return x == y
		}
	}
	x, err1 := a.Float64()
	y, err2 := b.Float64()
	return err1 == nil && err2 == nil && x == y
}

func join(path, elem string) string {
	if path == "" {
		return elem
	}
	return path + "/" + elem
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// compare walks want (luxid's value) and got (ours). free: values below
// are compared by type only.
func (c *shapeCmp) compare(path string, want, got any, free bool) {
	if exp, ok := c.ours[path]; ok && (c.usedOurs == nil || !c.usedOurs[path]) {
		if c.usedOurs == nil {
			c.usedOurs = map[string]bool{}
		}
		c.usedOurs[path] = true
		// jobq's documented value replaces luxid's here.
		c.compare(path, exp, got, free)
		return
	}
	for _, p := range c.free {
		if pathMatch(p, path) {
			free = true
		}
	}
	kw, kg := kind(want), kind(got)
	if kw != kg {
		c.add(path, "luxid has %s %s, we have %s %s", kw, show(want), kg, show(got))
		return
	}
	switch w := want.(type) {
	case []any:
		g := got.([]any)
		if len(w) != len(g) {
			c.add(path, "luxid has %d elements %s, we have %d %s", len(w), show(w), len(g), show(g))
			return
		}
		for i := range w {
			c.compare(join(path, strconv.Itoa(i)), w[i], g[i], free)
		}
	case map[string]any:
		g := got.(map[string]any)
		var keys []string
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inW:
				c.add(join(path, k), "we have key %q (%s), luxid does not", k, show(gv))
			case !inG && slices.Contains(c.absent, join(path, k)):
			case !inG:
				c.add(join(path, k), "luxid has key %q (%s), we do not", k, show(wv))
			default:
				c.compare(join(path, k), wv, gv, free)
			}
		}
	case json.Number:
		if !free && !numEqual(w, got.(json.Number)) {
			c.add(path, "luxid has %s, we have %s", w, got)
		}
	default:
		if !free && want != got {
			c.add(path, "luxid has %s, we have %s", show(want), show(got))
		}
	}
}

// resultInt extracts an integer at a path of a decoded reply.
func resultInt(t *testing.T, v any, path ...any) int64 {
	t.Helper()
	cur := v
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("no %q in %s", p, show(v))
			}
			cur = m[p]
		case int:
			l, ok := cur.([]any)
			if !ok || p >= len(l) {
				t.Fatalf("no [%d] in %s", p, show(v))
			}
			cur = l[p]
		}
	}
	n, ok := cur.(json.Number)
	if !ok {
		t.Fatalf("%v of %s is not a number", path, show(v))
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

// ---------------------------------------------------------------------------
// The captures, in the states they were taken in.

// TestGoldenFinishedJob plays the captures about Ganeti's job 20, one
// OP_TEST_DELAY job that was queued, then succeeded, then was archived.
func TestGoldenFinishedJob(t *testing.T) {
	defer checkPlayed(t)
	n := startNode(t, 1, nil)
	c := n.dialRaw()

	// Hold the only worker, so that the captured job stays queued until
	// we let it run.
	hold := n.gateJob("hold")
	n.waitGate("hold")

	var j20 int64
	t.Run("SubmitJob", func(t *testing.T) {
		rep := play(t, c, "luxi-SubmitJob", expect{
			// The next id of our queue.
			ours: map[string]string{"result": itoa(hold + 1)},
		})
		j20 = resultInt(t, rep, "result")
	})
	if j20 == 0 {
		t.Fatal("no job")
	}
	t.Run("WaitForJobChange", func(t *testing.T) {
		// No previous info: the current values at once (queued).
		play(t, c, "luxi-WaitForJobChange", expect{ids: []string{"[20,", "[" + itoa(j20) + ","}})
	})

	n.gates.open("hold")
	n.waitStatus(j20, "success")
	// Ganeti's queue held only job 20 at that point.
	var archived bool
	n.call(&archived, "ArchiveJob", hold)
	if !archived {
		t.Fatalf("cannot archive job %d", hold)
	}

	t.Run("WaitForJobChange-finished", func(t *testing.T) {
		play(t, c, "luxi-WaitForJobChange-finished", expect{ids: []string{"[20,", "[" + itoa(j20) + ","}})
	})
	t.Run("WaitForJobChange-unchanged", func(t *testing.T) {
		// A finished job is answered at once (SPEC: watchers of a final
		// job do not wait), as luxid did here (0.5 ms).
		start := time.Now()
		play(t, c, "luxi-WaitForJobChange-unchanged", expect{ids: []string{"[20,", "[" + itoa(j20) + ","}})
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("WaitForJobChange on a finished job took %v; it must answer at once", d)
		}
	})
	t.Run("QueryJobs", func(t *testing.T) {
		play(t, c, "luxi-QueryJobs", expect{
			ids: []string{"[[20],", "[[" + itoa(j20) + "],"},
			free: []string{
				"result/0/6", "result/0/7", "result/0/8", // received_ts, start_ts, end_ts
				// The nanosecond timestamps of the reason entries added at submit.
				"result/0/2/0/reason/*/2",
			},
			ours: map[string]string{
				"result/0/0": itoa(j20),
				// jobq records the author (this test's uid, from the
				// socket) before luxid's entry, which names our job.
				"result/0/2/0/reason": fmt.Sprintf(`[%s, ["gnt:opcode:test_delay", "job=%d;index=0", 0]]`, selfAuthorEntry(t), j20),
			},
			// Ganeti's LU fills in the UUIDs of the nodes it ran on; jobq
			// nodes have no UUIDs (SPEC §5 lists OP_TEST_DELAY's parameters
			// without on_node_uuids), so the submitted null is left out, as
			// luxid leaves out every null optional parameter.
			absent: []string{"result/0/2/0/on_node_uuids"},
		})
	})
	t.Run("QueryJobs-all-ids", func(t *testing.T) {
		play(t, c, "luxi-QueryJobs-all-ids", expect{ours: map[string]string{"result/0/0": itoa(j20)}})
	})
	t.Run("Query-job", func(t *testing.T) {
		play(t, c, "luxi-Query-job", expect{
			ids:  []string{`"id", 20]`, `"id", ` + itoa(j20) + `]`},
			ours: map[string]string{"result/data/0/0/1": itoa(j20)},
		})
	})
	t.Run("ArchiveJob", func(t *testing.T) {
		play(t, c, "luxi-ArchiveJob", expect{ids: []string{"[20]", "[" + itoa(j20) + "]"}})
	})
	t.Run("ArchiveJob-again", func(t *testing.T) {
		play(t, c, "luxi-ArchiveJob-again", expect{ids: []string{"[20]", "[" + itoa(j20) + "]"}})
	})
	t.Run("QueryJobs-archived", func(t *testing.T) {
		play(t, c, "luxi-QueryJobs-archived", expect{
			ids:  []string{"[[20],", "[[" + itoa(j20) + "],"},
			ours: map[string]string{"result/0/0": itoa(j20)},
		})
	})
	t.Run("Query-job-archived", func(t *testing.T) {
		play(t, c, "luxi-Query-job-archived", expect{
			ids:  []string{`"id", 20]`, `"id", ` + itoa(j20) + `]`},
			ours: map[string]string{"result/data/0/0/1": itoa(j20)},
		})
	})
}

// TestGoldenPendingJobs plays the captures of Ganeti's jobs 21 to 27: a
// SubmitManyJobs, a job that fails its parameters, and the four pending
// jobs 24 (running), 25 (waiting), 26 (queued, depends on 24) and 27
// (queued), whose priorities are changed and which are canceled.
//
// Holding them: the daemon runs two workers. A (24) runs OP_TEST_GATE; B
// (25) depends on A, so it takes the free worker, becomes waiting and is
// parked (which frees the worker); a filler gate job then takes the second
// worker, so C (26) and D (27) stay queued. (With a single worker B could
// not become waiting: it would stay queued behind A.)
func TestGoldenPendingJobs(t *testing.T) {
	defer checkPlayed(t)
	n := startNode(t, 2, nil)
	c := n.dialRaw()

	var j21, j22, j23 int64
	t.Run("SubmitManyJobs", func(t *testing.T) {
		rep := play(t, c, "luxi-SubmitManyJobs", expect{
			// Our first two ids.
			ours: map[string]string{"result/0/1": "1", "result/1/1": "2"},
		})
		j21, j22 = resultInt(t, rep, "result", 0, 1), resultInt(t, rep, "result", 1, 1)
	})
	t.Run("SubmitJob-duration0", func(t *testing.T) {
		rep := play(t, c, "luxi-SubmitJob-duration0", expect{ours: map[string]string{"result": "3"}})
		j23 = resultInt(t, rep, "result")
	})
	if j21 == 0 || j22 == 0 || j23 == 0 {
		t.Fatal("jobs not submitted")
	}
	n.waitStatus(j21, "success")
	n.waitStatus(j22, "success")
	n.waitStatus(j23, "error")
	t.Run("QueryJobs-error", func(t *testing.T) {
		play(t, c, "luxi-QueryJobs-error", expect{ids: []string{"[[23],", "[[" + itoa(j23) + "],"}})
	})

	a := n.gateJob("a")
	n.waitGate("a")
	b := n.submit(fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.01,"depends":[[%d,[]]]}`, a))
	n.waitStatus(b, "waiting")
	filler := n.gateJob("filler")
	n.waitGate("filler")

	var cj int64
	t.Run("SubmitJob-depends", func(t *testing.T) {
		rep := play(t, c, "luxi-SubmitJob-depends", expect{
			ids:  []string{"[[24, []]]", "[[" + itoa(a) + ", []]]"},
			ours: map[string]string{"result": itoa(filler + 1)},
		})
		cj = resultInt(t, rep, "result")
	})
	if cj == 0 {
		t.Fatal("no job")
	}
	d := n.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.01}`)
	quad := fmt.Sprintf("[[%d, %d, %d, %d],", a, b, cj, d)
	quadIDs := map[string]string{"result/0/0": itoa(a), "result/1/0": itoa(b), "result/2/0": itoa(cj), "result/3/0": itoa(d)}

	t.Run("QueryJobs-pending", func(t *testing.T) {
		play(t, c, "luxi-QueryJobs-pending", expect{ids: []string{"[[24, 25, 26, 27],", quad}, ours: quadIDs})
	})
	t.Run("ChangeJobPriority-queued", func(t *testing.T) {
		play(t, c, "luxi-ChangeJobPriority-queued", expect{
			ids:  []string{"[27,", "[" + itoa(d) + ","},
			ours: map[string]string{"result/1": fmt.Sprintf(`"Priorities of pending opcodes for job %d have been changed to 10"`, d)},
		})
	})
	t.Run("ChangeJobPriority-waiting", func(t *testing.T) {
		play(t, c, "luxi-ChangeJobPriority-waiting", expect{
			ids: []string{"[25,", "[" + itoa(b) + ","},
			// Documented difference: luxid signals the job's process
			// ("Job 25 with pid 21632 signaled"); jobq changes the
			// priorities of the waiting job's pending opcodes itself.
			ours: map[string]string{"result/1": fmt.Sprintf(`"Priorities of pending opcodes for job %d have been changed to 10"`, b)},
		})
	})
	t.Run("QueryJobs-after-prio", func(t *testing.T) {
		play(t, c, "luxi-QueryJobs-after-prio", expect{
			ids: []string{"[[25, 27],", fmt.Sprintf("[[%d, %d],", b, d)},
			ours: map[string]string{
				"result/0/0": itoa(b), "result/1/0": itoa(d),
				// Follows from ChangeJobPriority-waiting: in jobq the
				// waiting job's priority did change to 10 (in Ganeti the
				// signaled process had not yet acted on it).
				"result/0/2": "10", "result/0/3": "[10]",
			},
		})
	})
	t.Run("CancelJob-queued", func(t *testing.T) {
		play(t, c, "luxi-CancelJob-queued", expect{
			ids:  []string{"[26,", "[" + itoa(cj) + ","},
			ours: map[string]string{"result/1": fmt.Sprintf(`"Dequeued job %d"`, cj)},
		})
	})
	t.Run("CancelJob-running", func(t *testing.T) {
		play(t, c, "luxi-CancelJob-running", expect{
			ids: []string{"[24,", "[" + itoa(a) + ","},
			// luxid's answer byte for byte: a running job is not
			// canceled (kill stops it).
		})
	})
	t.Run("WaitForJobChange-nochange", func(t *testing.T) {
		// A running job whose status the client already has: the
		// current values at the timeout (1 s).
		start := time.Now()
		play(t, c, "luxi-WaitForJobChange-nochange", expect{ids: []string{"[24,", "[" + itoa(a) + ","}})
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("answered after %v, before the 1 s timeout", d)
		}
	})
	t.Run("CancelJob-waiting", func(t *testing.T) {
		play(t, c, "luxi-CancelJob-waiting", expect{
			ids: []string{"[25,", "[" + itoa(b) + ","},
			// Documented difference: jobq cancels a waiting job. The
			// capture shows a race in Ganeti, where the job got its lock
			// and finished before the cancel took effect ("Job exited
			// before it could have been canceled, status
			// JOB_STATUS_SUCCESS").
			ours: map[string]string{"result": fmt.Sprintf(`[true, "Job %d will be canceled"]`, b)},
		})
	})

	n.gates.open("a")
	n.gates.open("filler")
	n.waitStatus(a, "success")
	n.waitStatus(filler, "success")
	n.waitStatus(d, "success")
	if st := n.statuses(b, cj); st[0] != "canceled" || st[1] != "canceled" {
		t.Fatalf("jobs %d and %d are %v, want canceled", b, cj, st)
	}

	t.Run("QueryJobs-after-cancel", func(t *testing.T) {
		play(t, c, "luxi-QueryJobs-after-cancel", expect{
			ids:  []string{"[[24, 25, 26, 27],", quad},
			free: []string{"result/*/5"}, // end_ts
			ours: mergeMaps(quadIDs, map[string]string{
				// Follows from CancelJob-waiting: job 25 was canceled
				// here, while in Ganeti it had already succeeded.
				"result/1/1": `"canceled"`, "result/1/3": `["canceled"]`,
			}),
		})
	})
	t.Run("CancelJob-finished", func(t *testing.T) {
		play(t, c, "luxi-CancelJob-finished", expect{
			ids: []string{"[26,", "[" + itoa(cj) + ","},
			// Documented difference (SPEC §3): a final job answers the
			// same "no longer waiting" text as a running one, where luxid
			// says "Job 26 not found in queue".
			ours: map[string]string{"result/1": fmt.Sprintf(`"Job %d is no longer waiting in the queue"`, cj)},
		})
	})
	t.Run("CancelJob-unknown", func(t *testing.T) {
		play(t, c, "luxi-CancelJob-unknown", expect{})
	})
}

func mergeMaps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// clusterConfig prepares a data directory with the configuration of the
// captured cluster (name cluster1.ganeti.test, master node1.ganeti.test).
func clusterConfig(t *testing.T) func(dir string) {
	return func(dir string) {
		b, err := json.Marshal(cluster.Config{Name: "cluster1.ganeti.test", Master: "node1.ganeti.test", Epoch: 1,
			Nodes: []cluster.Node{{Name: "node1.ganeti.test", Candidate: true, Online: true}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cluster.json"), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGoldenDrainAndConfig plays the drain flag, configuration, field and
// unknown-method captures.
func TestGoldenDrainAndConfig(t *testing.T) {
	defer checkPlayed(t)
	n := startNode(t, 1, clusterConfig(t))
	c := n.dialRaw()
	t.Run("SetQueueDrainFlag-true", func(t *testing.T) {
		play(t, c, "luxi-SetQueueDrainFlag-true", expect{})
	})
	t.Run("SubmitJob-drained", func(t *testing.T) {
		play(t, c, "luxi-SubmitJob-drained", expect{})
		var ids []int64
		n.call(&ids, "QueryJobs", nil, []string{"id"})
		if len(ids) != 0 {
			t.Errorf("a drained queue took jobs: %v", ids)
		}
	})
	t.Run("SetQueueDrainFlag-false", func(t *testing.T) {
		play(t, c, "luxi-SetQueueDrainFlag-false", expect{})
	})
	t.Run("QueryConfigValues", func(t *testing.T) {
		play(t, c, "luxi-QueryConfigValues", expect{})
	})
	t.Run("QueryFields-job", func(t *testing.T) {
		play(t, c, "luxi-QueryFields-job", expect{})
	})
	t.Run("unknown-method", func(t *testing.T) {
		cp := ganetiref.LoadCapture(t, "luxi-unknown-method")
		got := c.roundTrip(cp.ReqRaw)
		if !bytes.Equal(got, cp.RepRaw) {
			t.Errorf("unknown method:\n got %q\nwant %q", got, cp.RepRaw)
		}
		checkReply(t, cp, got, expect{})
	})
	// The drain flag is really off again, and the connection still works.
	var v []any
	n.call(&v, "QueryConfigValues", []string{"drain_flag"})
	if len(v) != 1 || v[0] != false {
		t.Errorf("drain_flag = %v", v)
	}
	if rep := c.pyCall("QueryConfigValues", `[["drain_flag"]]`); string(rep) != `{"success":true,"result":[false]}`+"\x03" {
		t.Errorf("connection not usable after the unknown method: %q", rep)
	}
}

// ganetiJobFile is a finished job file as Ganeti's job process writes it
// (from ganeti-reference/queue/job-28), with %[1]d the id and %[2]d the
// seconds of its timestamps.
const ganetiJobFile = `{"id": %[1]d, "ops": [{"input": {"duration": 0.01, "on_master": true, "on_nodes": [], "on_node_uuids": ["6b124f5f-060a-4771-9a2c-e520a3dffe72"], "repeat": 0, "interruptible": false, "no_locks": true, "dry_run": null, "debug_level": 0, "priority": 0, "depends": null, "comment": null, "reason": [["gnt:opcode:test_delay", "job=%[1]d;index=0", %[2]d530151000]], "OP_ID": "OP_TEST_DELAY"}, "status": "success", "result": null, "log": [], "start_timestamp": [%[2]d, 783288], "exec_timestamp": [%[2]d, 804254], "end_timestamp": [%[2]d, 901240], "priority": 0}], "start_timestamp": [%[2]d, 783288], "end_timestamp": [%[2]d, 901251], "received_timestamp": [%[2]d, 530151], "livelock": "/var/run/ganeti/livelocks/job_%06[1]d_%[2]d", "process_id": 22231}`

// ganetiCanceledJobFile is a job canceled while queued, as luxid writes it
// (from ganeti-reference/queue/job-26).
const ganetiCanceledJobFile = `{"id":%[1]d,"ops":[{"input":{"priority":0,"depends":null,"comment":null,"reason":[["gnt:opcode:test_delay","job=%[1]d;index=0",%[2]d308832000]],"OP_ID":"OP_TEST_DELAY","duration":1.0e-2,"on_master":true,"on_nodes":[],"repeat":0,"interruptible":false,"no_locks":true},"status":"canceled","result":null,"log":[],"priority":0,"start_timestamp":null,"exec_timestamp":null,"end_timestamp":[%[2]d,133098]}],"received_timestamp":[%[2]d,308832],"start_timestamp":null,"end_timestamp":[%[2]d,133098]}`

// TestGoldenAutoArchive plays the AutoArchiveJobs captures. Ganeti
// archived 7 jobs (21 to 27), all finished over a second before; the queue
// here starts with 7 finished jobs in Ganeti's file formats that ended an
// hour ago, and nothing else.
func TestGoldenAutoArchive(t *testing.T) {
	defer checkPlayed(t)
	old := time.Now().Add(-time.Hour).Unix()
	n := startNode(t, 1, func(dir string) {
		q := filepath.Join(dir, "queue")
		if err := os.MkdirAll(q, 0o750); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{"version": "1\n", "serial": "7\n"}
		for id := 1; id <= 7; id++ {
			tmpl := ganetiJobFile
			if id%3 == 0 {
				tmpl = ganetiCanceledJobFile
			}
			files[fmt.Sprintf("job-%d", id)] = fmt.Sprintf(tmpl, id, old)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(q, name), []byte(data), 0o640); err != nil {
				t.Fatal(err)
			}
		}
	})
	c := n.dialRaw()
	loaded := n.statuses(1, 2, 3, 4, 5, 6, 7)
	if want := "[success success canceled success success canceled success]"; fmt.Sprint(loaded) != want {
		t.Fatalf("Ganeti's job files loaded as %v, want %s", loaded, want)
	}

	t.Run("AutoArchiveJobs-1s", func(t *testing.T) {
		play(t, c, "luxi-AutoArchiveJobs-1s", expect{})
		var rows [][]any
		n.call(&rows, "QueryJobs", []int64{1, 2, 3, 4, 5, 6, 7}, []string{"archived"})
		for i, r := range rows {
			if len(r) != 1 || r[0] != true {
				t.Errorf("job %d: archived = %v", i+1, r)
			}
		}
	})

	// Two finished jobs, a running one and a queued one.
	var many [][]any
	delay := json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.01}`)
	n.call(&many, "SubmitManyJobs", [][]json.RawMessage{{delay}, {delay}})
	if len(many) != 2 {
		t.Fatalf("SubmitManyJobs: %v", many)
	}
	n.waitStatus(8, "success")
	n.waitStatus(9, "success")
	running := n.gateJob("run")
	n.waitGate("run")
	queued := n.submit(string(delay))

	t.Run("AutoArchiveJobs-all", func(t *testing.T) {
		play(t, c, "luxi-AutoArchiveJobs-all", expect{
			// Documented difference (SPEC §10): age -1 archives every
			// final job in jobq (here 8 and 9); Ganeti 3.0 archives none
			// (a bug).
			ours: map[string]string{"result": "[2, 0]"},
		})
		var rows [][]any
		n.call(&rows, "QueryJobs", []int64{8, 9, running, queued}, []string{"archived", "status"})
		if got := fmt.Sprint(rows); got != "[[true success] [true success] [false running] [false queued]]" {
			t.Errorf("after autoarchive all: %s", got)
		}
	})
}

// TestGoldenSocatConversation replays the socat transcript (one
// connection, ten calls) against the daemon.
func TestGoldenSocatConversation(t *testing.T) {
	defer checkPlayed(t)
	// Parsed by ganetiref.ParseSocat; requests and replies alternate.
	reqs, reps := ganetiref.LoadConversation(t)
	if len(reqs) != 10 || len(reps) != 10 {
		t.Fatalf("%d requests, %d replies", len(reqs), len(reps))
	}
	cp := func(i int) ganetiref.Capture {
		return ganetiref.Capture{Name: fmt.Sprintf("%s call %d", ganetiref.Socat, i+1), ReqRaw: reqs[i], RepRaw: reps[i]}
	}

	n := startNode(t, 1, nil)
	c := n.dialRaw()
	hold := n.gateJob("hold")
	n.waitGate("hold")
	id := hold + 1 // Ganeti's 6052
	ids := func(i int, pairs ...string) []byte { return rewrite(t, reqs[i], pairs) }
	jid := itoa(id)

	// 1: SubmitJob, 2: the first WaitForJobChange (queued: the worker is
	// held).
	checkReply(t, cp(0), c.roundTrip(reqs[0]), expect{ours: map[string]string{"result": jid}})
	checkReply(t, cp(1), c.roundTrip(ids(1, "[6052,", "["+jid+",")), expect{})

	// 3: waiting for a change from queued. The job goes queued, waiting,
	// running, success within milliseconds once released; which of the
	// later states the watcher is woken for is timing, so only the shape
	// is compared (Ganeti's watcher saw running).
	c.send(ids(2, "[6052,", "["+jid+","))
	n.gates.open("hold")
	got := checkReply(t, cp(2), c.recv(), expect{free: []string{"result/0/0"}})
	if st := fmt.Sprint(got.(map[string]any)["result"].([]any)[0].([]any)[0]); st != "waiting" && st != "running" && st != "success" {
		t.Errorf("call 3: status %s after queued", st)
	}
	// 4: from running to success. Let the job finish first, so the answer
	// does not depend on whether call 3 saw waiting or running.
	n.waitStatus(id, "success")
	checkReply(t, cp(3), c.roundTrip(ids(3, "[6052,", "["+jid+",")), expect{})
	// 5: QueryJobs, 6: Query.
	checkReply(t, cp(4), c.roundTrip(ids(4, "[[6052],", "[["+jid+"],")), expect{ours: map[string]string{"result/0/0": jid}})
	checkReply(t, cp(5), c.roundTrip(ids(5, `"id", 6052]`, `"id", `+jid+`]`)), expect{ours: map[string]string{"result/data/0/0/1": jid}})
	// 7: SubmitManyJobs.
	checkReply(t, cp(6), c.roundTrip(reqs[6]), expect{ours: map[string]string{"result/0/1": itoa(id + 1), "result/1/1": itoa(id + 2)}})
	// 8: CancelJob of an unknown job, 9: ArchiveJob, 10: AutoArchiveJobs
	// of jobs older than an hour (none).
	checkReply(t, cp(7), c.roundTrip(reqs[7]), expect{})
	checkReply(t, cp(8), c.roundTrip(ids(8, "[6052]", "["+jid+"]")), expect{})
	checkReply(t, cp(9), c.roundTrip(reqs[9]), expect{})
}

// ---------------------------------------------------------------------------
// Requests luxid's captures do not show.

// failureReply checks that rep is a failure reply: luxid's "Failed to
// parse request: ..." string, or an [ErrorClass, [args]] error that is not
// an internal error. For SubmitManyJobs (perJob) a success whose every
// entry is [false, message] also rejects the request (SPEC §6's result
// shape).
func failureReply(t *testing.T, what string, rep []byte, perJob bool) {
	t.Helper()
	var r struct {
		Success *bool
		Result  json.RawMessage
	}
	if !bytes.HasSuffix(rep, []byte{0x03}) || json.Unmarshal(bytes.TrimSuffix(rep, []byte{0x03}), &r) != nil || r.Success == nil {
		t.Errorf("%s: not a LUXI reply: %q", what, rep)
		return
	}
	if *r.Success {
		var entries [][]any
		if perJob && json.Unmarshal(r.Result, &entries) == nil && len(entries) > 0 {
			all := true
			for _, e := range entries {
				all = all && len(e) == 2 && e[0] == false
			}
			if all {
				return
			}
		}
		t.Errorf("%s: succeeded: %q", what, rep)
		return
	}
	var s string
	if json.Unmarshal(r.Result, &s) == nil {
		if !strings.HasPrefix(s, "Failed to parse request: ") {
			t.Errorf("%s: failure string %q does not start like luxid's", what, s)
		}
		return
	}
	var e luxi.Error
	if err := e.UnmarshalJSON(r.Result); err != nil {
		t.Errorf("%s: failure result is neither a string nor [class, args]: %q", what, rep)
		return
	}
	if strings.Contains(fmt.Sprint(e.Args...), "Internal error") || e.Class == "" {
		t.Errorf("%s: %q", what, rep)
	}
}

// TestMalformedRequests sends what Ganeti's captures do not show: broken
// JSON and arguments of the wrong types for every method. Each gets an
// error reply and the connection stays usable.
func TestMalformedRequests(t *testing.T) {
	n := startNode(t, 1, nil)
	c := n.dialRaw()
	id := n.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.01}`)
	n.waitStatus(id, "success")
	alive := func(t *testing.T, what string) {
		t.Helper()
		want := fmt.Sprintf(`{"success":true,"result":[[%d,"success"]]}`+"\x03", id)
		if rep := c.pyCall("QueryJobs", fmt.Sprintf(`[[%d], ["id", "status"]]`, id)); string(rep) != want {
			t.Fatalf("after %s the connection answers %q, want %q", what, rep, want)
		}
	}

	for _, m := range []struct{ name, msg string }{
		{"truncated JSON", `{"method": "QueryJobs", "args": [`},
		{"not JSON", `hello`},
		{"not an object", `[1, 2, 3]`},
		{"no method", `{"args": [], "version": 3000000}`},
		{"method not a string", `{"method": 5, "args": [], "version": 3000000}`},
		{"empty message", ``},
		{"invalid UTF-8", "{\"method\": \"Query\xff\", \"args\": []}"},
	} {
		t.Run(m.name, func(t *testing.T) {
			rep := c.roundTrip([]byte(m.msg + "\n\x03"))
			t.Logf("%q -> %s", m.msg, bytes.TrimSuffix(rep, []byte{0x03}))
			failureReply(t, m.name, rep, false)
			var s string
			if json.Unmarshal(bytes.TrimSuffix(rep, []byte{0x03}), &struct{ Result *string }{&s}) != nil {
				t.Errorf("%s: luxid answers requests it cannot parse with a string; got %q", m.name, rep)
			}
			alive(t, m.name)
		})
	}

	wrong := map[string][]string{
		"SubmitJob":               {`[]`, `{}`, `"x"`, `[{"OP_ID": "OP_TEST_DELAY"}]`, `[5]`, `[[5]]`, `[[]]`, `[[{}], 1]`},
		"SubmitJobToDrainedQueue": {`[]`, `["x"]`, `[[[1]]]`},
		"SubmitManyJobs":          {`[]`, `[5]`, `[[5]]`, `[[[5]]]`, `[{"a": 1}]`},
		"WaitForJobChange":        {`[]`, `["x", ["status"], null, null, 1]`, `[1, "status", null, null, 1]`, `[1, [5], null, null, 1]`, `[1, ["status"], null, "x", 1]`, `[1, ["status"], null, null, "x"]`, `[1, ["status"], null, null]`, `[1, ["nosuchfield"], null, null, 1]`},
		"QueryJobs":               {`[]`, `["x", ["id"]]`, `[[1], "id"]`, `[[1], [5]]`, `[[-1], ["id"]]`, `[[1.5], ["id"]]`, `[[1], ["nosuchfield"]]`},
		"Query":                   {`[]`, `[5, ["id"], null]`, `["job", "id", null]`, `["job", ["id"], "x"]`, `["job", ["id"], ["==", "id"]]`, `["node", ["id"], null]`, `["job", ["id"]]`},
		"QueryFields":             {`[]`, `[5, ["id"]]`, `["job", "id"]`, `["job", [5]]`, `["instance", ["id"]]`},
		"CancelJob":               {`[]`, `["x"]`, `[1, "yes"]`, `[1, false, 3]`, `[null]`, `[{}]`},
		"ChangeJobPriority":       {`[]`, `["x", 1]`, `[1, "high"]`, `[1, 1.5]`, `[1, 100]`, `[1]`},
		"ArchiveJob":              {`[]`, `["x"]`, `[[1]]`, `[1, 2]`, `[true]`},
		"AutoArchiveJobs":         {`[]`, `["all", 10]`, `[1, "x"]`, `[1]`},
		"SetDrainFlag":            {`[]`, `["yes"]`, `[1]`, `[true, false]`}, // [null]: TestNullArguments
		"QueryConfigValues":       {`[]`, `["drain_flag"]`, `[[5]]`, `[["no_such_value"]]`},
	}
	methods := make([]string, 0, len(wrong))
	for m := range wrong {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	for _, m := range methods {
		t.Run(m, func(t *testing.T) {
			for _, args := range wrong[m] {
				what := m + " " + args
				rep := c.pyCall(m, args)
				failureReply(t, what, rep, m == "SubmitManyJobs")
				t.Logf("%s -> %s", what, bytes.TrimSuffix(rep, []byte{0x03}))
				alive(t, what)
			}
			// Arguments that are not a list at all.
			rep := c.roundTrip([]byte(fmt.Sprintf(`{"method": %q, "args": {"a": 1}, "version": 3000000}`+"\n\x03", m)))
			failureReply(t, m+" with object args", rep, false)
			alive(t, m+" with object args")
		})
	}
	// Nothing was submitted, the drain flag did not change.
	var ids [][]any
	n.call(&ids, "QueryJobs", nil, []string{"id"})
	if len(ids) != 1 {
		t.Errorf("jobs after the malformed requests: %v", ids)
	}
	var v []any
	n.call(&v, "QueryConfigValues", []string{"drain_flag"})
	if v[0] != false {
		t.Errorf("drain flag changed: %v", v)
	}
}

// TestNullArguments sends JSON null where a method takes a number, a
// boolean or a list. luxid decodes every argument with its type and
// answers "Failed to parse request" (null is only valid for QueryJobs' id
// list and WaitForJobChange's previous info and log serial). Each must be
// an error reply that changes nothing.
func TestNullArguments(t *testing.T) {
	n := startNode(t, 1, nil)
	c := n.dialRaw()
	done := n.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.01}`)
	n.waitStatus(done, "success")
	hold := n.gateJob("hold")
	n.waitGate("hold")
	queued := n.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.01,"priority":10}`)

	cases := []struct{ method, args, harm string }{
		{"SubmitJob", `[null]`, ""},
		{"SubmitJobToDrainedQueue", `[null]`, ""},
		{"SubmitManyJobs", `[null]`, ""},
		{"WaitForJobChange", fmt.Sprintf(`[%d, null, null, null, 1]`, done), ""},
		{"WaitForJobChange", fmt.Sprintf(`[%d, ["status"], null, null, null]`, done), ""},
		{"QueryJobs", fmt.Sprintf(`[[%d], null]`, done), ""},
		{"Query", `["job", null, null]`, ""},
		{"QueryFields", `[null, ["id"]]`, ""},
		{"ChangeJobPriority", fmt.Sprintf(`[%d, null]`, queued), "null taken as priority 0: the queued job's priority changes from 10 to 0"},
		{"CancelJob", `[null]`, ""},
		{"CancelJob", fmt.Sprintf(`[%d, null]`, queued), "null taken as kill=false: the queued job is canceled"},
		{"ArchiveJob", `[null]`, ""},
		{"AutoArchiveJobs", `[null, 10]`, "null taken as age 0: every finished job is archived"},
		{"AutoArchiveJobs", `[1, null]`, "null taken as timeout 0"},
		{"QueryConfigValues", `[null]`, ""},
		{"SetDrainFlag", `[null]`, "null taken as false: the drained queue is undrained"},
	}
	for _, k := range cases {
		what := k.method + " " + k.args
		if k.method == "SetDrainFlag" {
			n.call(nil, "SetDrainFlag", true)
		}
		rep := c.pyCall(k.method, k.args)
		var r struct{ Success bool }
		_ = json.Unmarshal(bytes.TrimSuffix(rep, []byte{0x03}), &r)
		if !r.Success {
			failureReply(t, what, rep, false)
			continue
		}
		harm := ""
		if k.harm != "" {
			harm = "; here " + k.harm
		}
		t.Errorf("%s: accepted: %s\n      DAEMON BUG: the LUXI handler decodes arguments with encoding/json into "+
			"plain Go values, so JSON null silently becomes the zero value (luxid answers \"Failed to parse request\")%s",
			what, bytes.TrimSuffix(rep, []byte{0x03}), harm)
	}

	// What the accepted nulls did.
	var v []any
	n.call(&v, "QueryConfigValues", []string{"drain_flag"})
	if v[0] != true {
		t.Errorf("the drain flag was cleared by SetDrainFlag [null]")
	}
	var rows [][]any
	n.call(&rows, "QueryJobs", []int64{done, hold, queued}, []string{"archived", "status", "priority"})
	if got := fmt.Sprint(rows); got != "[[false success 0] [false running 0] [false queued 10]]" {
		t.Errorf("jobs after the null arguments: %s, want [[false success 0] [false running 0] [false queued 10]]", got)
	}
}

// TestOversizedMessage needs a daemon with a small message limit, which
// Options does not offer.
// TestOversizedMessage: jobqd refuses a LUXI message over
// luxi.DefaultMaxMessageSize (64 MiB) with luxid's parse error, before its
// end arrives, closes that connection, and goes on serving the others.
// (It used to skip, always.)
func TestOversizedMessage(t *testing.T) {
	n := startNode(t, 1, nil)
	other := n.dialRaw() // connected before, served after
	if rep := other.pyCall("QueryConfigValues", `[["drain_flag"]]`); string(rep) != `{"success":true,"result":[false]}`+"\x03" {
		t.Fatalf("QueryConfigValues: %q", rep)
	}
	big := n.dialRaw()
	head := []byte(`{"method": "SubmitJob", "args": [[{"OP_ID": "OP_TEST_DELAY", "duration": 0.001, "comment": "`)
	done := make(chan error, 1)
	go func() {
		// The writer stops when jobqd closes the connection; no
		// terminator is ever sent.
		big.nc.SetWriteDeadline(time.Now().Add(callTimeout))
		if _, err := big.nc.Write(head); err != nil {
			done <- err
			return
		}
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for sent := len(head); sent <= luxi.DefaultMaxMessageSize+len(chunk); sent += len(chunk) {
			if _, err := big.nc.Write(chunk); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	want := fmt.Sprintf(`{"success":false,"result":"Failed to parse request: message exceeds the limit of %d bytes"}`+"\x03", luxi.DefaultMaxMessageSize)
	if rep, err := big.tryRecv(); err != nil || string(rep) != want {
		t.Fatalf("oversized message: %q %v, want %q", rep, err, want)
	}
	if rep, err := big.tryRecv(); err == nil {
		t.Fatalf("connection still open after an oversized message; read %q", rep)
	}
	big.nc.Close()
	<-done
	if rep := other.pyCall("QueryConfigValues", `[["drain_flag"]]`); string(rep) != `{"success":true,"result":[false]}`+"\x03" {
		t.Fatalf("the other client after an oversized message: %q", rep)
	}
	if ids := n.statuses(); len(ids) != 0 {
		t.Fatalf("jobs after an oversized submission: %v", ids)
	}
}

// TestOtherClientsServedDuringWait checks that while one client waits in
// WaitForJobChange, others (raw and Go client) are served, and that the
// watcher is woken by the change.
func TestOtherClientsServedDuringWait(t *testing.T) {
	n := startNode(t, 1, nil)
	id := n.gateJob("g")
	n.waitGate("g")
	n.waitStatus(id, "running")

	watcher := n.dialRaw()
	watcher.send([]byte(fmt.Sprintf(`{"method": "WaitForJobChange", "args": [%d, ["status"], ["running"], null, 60], "version": 3000000}`+"\n\x03", id)))
	type result struct {
		b   []byte
		err error
	}
	woke := make(chan result, 1)
	go func() {
		b, err := watcher.tryRecv()
		woke <- result{b, err}
	}()

	other := n.dialRaw()
	for i := 0; i < 3; i++ {
		rep := other.pyCall("QueryJobs", fmt.Sprintf(`[[%d], ["status"]]`, id))
		if string(rep) != `{"success":true,"result":[["running"]]}`+"\x03" {
			t.Fatalf("other client: %q", rep)
		}
	}
	second := n.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.01}`)
	if st := n.statuses(second); st[0] != "queued" {
		t.Errorf("job %d is %v behind the running gate", second, st)
	}
	// A second watcher, through the Go client, on another job.
	wctx, wcancel := context.WithTimeout(context.Background(), callTimeout)
	defer wcancel()
	watch2 := make(chan error, 1)
	go func() {
		_, err := n.c.Call(wctx, "WaitForJobChange", second, []string{"status"}, []string{"queued"}, nil, 60)
		watch2 <- err
	}()
	if rep := other.pyCall("QueryConfigValues", `[["drain_flag"]]`); string(rep) != `{"success":true,"result":[false]}`+"\x03" {
		t.Errorf("other client: %q", rep)
	}
	select {
	case r := <-woke:
		t.Fatalf("the watcher answered before the job changed: %q %v", r.b, r.err)
	default:
	}

	start := time.Now()
	n.gates.open("g")
	select {
	case r := <-woke:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if string(r.b) != `{"success":true,"result":[["success"],[]]}`+"\x03" {
			t.Errorf("watcher: %q", r.b)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("watcher woken after %v", d)
		}
	case <-time.After(callTimeout):
		t.Fatal("the watcher was not woken by the change")
	}
	select {
	case err := <-watch2:
		if err != nil {
			t.Errorf("second watcher: %v", err)
		}
	case <-time.After(callTimeout):
		t.Fatal("the second watcher was not woken")
	}
}
