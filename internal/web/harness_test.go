package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/rapi"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/locking"
	"github.com/jobq-dev/jobq/opcodes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// steps is the test opcode OP_TEST_STEPS {"name": N, "steps": K, "lock":
// L}: for each step it logs "step i" and waits until the test calls
// step(N) (or release(N)); with a lock it holds node/L exclusively.
type steps struct {
	mu   sync.Mutex
	next map[string]chan struct{}
}

func (s *steps) ch(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == nil {
		s.next = map[string]chan struct{}{}
	}
	if s.next[name] == nil {
		s.next[name] = make(chan struct{})
	}
	return s.next[name]
}

// step lets the opcode called name take one step (it blocks until the
// opcode is ready to).
func (s *steps) step(name string) { s.ch(name) <- struct{}{} }

// release lets the opcode called name run to its end.
func (s *steps) release(name string) { close(s.ch(name)) }

type stepsOp struct {
	s     *steps
	Name  string `json:"name"`
	Steps int    `json:"steps"`
	Lock  string `json:"lock"`
}

func (p *stepsOp) Validate() error { return nil }

func (p *stepsOp) Locks(opcodes.Env) []locking.Request {
	if p.Lock == "" {
		return nil
	}
	return []locking.Request{{Level: locking.LevelNode, Names: []string{p.Lock}, Mode: locking.Exclusive}}
}

func (p *stepsOp) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	next := p.s.ch(p.Name)
	for i := range p.Steps {
		env.Log(fmt.Sprintf("step %d", i))
		select {
		case <-next:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return map[string]any{"steps": p.Steps}, nil
}

// fakeUsers is a users file in memory.
type fakeUsers struct {
	mu    sync.Mutex
	users map[string]*rapi.User
}

func (f *fakeUsers) LookupUser(name string) *rapi.User {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[name]
	if u == nil {
		return nil
	}
	c := *u
	return &c
}

func (f *fakeUsers) set(data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = rapi.ParseUsers(data)
}

const testUsers = "admin adminpw write,admin\n" +
	"writer writerpw write\n" +
	"near nearpw write,administrator,Admin,admins\n" +
	"viewer viewerpw read\n"

// env is a dashboard on a real queue, served over TLS by httptest.
type env struct {
	t     *testing.T
	q     *queue.Queue
	h     *Handler
	ts    *httptest.Server
	steps *steps
	users *fakeUsers
}

func newEnv(t *testing.T, maxRunning int, cfg Config) *env {
	t.Helper()
	e := &env{t: t, steps: &steps{}, users: &fakeUsers{}}
	e.users.set(testUsers)
	reg := opcodes.Builtin()
	if err := reg.Register(opcodes.Definition{ID: "OP_TEST_STEPS", SummaryField: "name",
		New: func() opcodes.Params { return &stepsOp{s: e.steps} }}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(queue.Config{Store: st, Registry: reg, MaxRunning: maxRunning, NodeName: "node1"})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	e.q = q
	cfg.Queue, cfg.Users = q, e.users
	if cfg.Cluster == nil {
		cfg.Cluster = func() Cluster {
			return Cluster{Name: "cluster1", Master: "node1", MaxRunningJobs: maxRunning,
				Nodes: []Node{{Name: "node1", Address: "127.0.0.1:1811", Candidate: true, Online: true}}}
		}
	}
	e.h = New(cfg)
	e.ts = httptest.NewTLSServer(e.h)
	t.Cleanup(func() {
		e.ts.CloseClientConnections()
		e.ts.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // interrupt what still runs
		q.Shutdown(ctx)
	})
	return e
}

// submit submits one job of opcodes (JSON objects) and returns its id.
func (e *env) submit(ops ...string) int64 {
	e.t.Helper()
	job := make([]json.RawMessage, len(ops))
	for i, o := range ops {
		job[i] = json.RawMessage(o)
	}
	res, err := e.q.Submit([][]json.RawMessage{job}, false)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		e.t.Fatalf("submit: %v %+v", err, res)
	}
	return res[0].ID
}

// waitStatus waits (on the queue's change notifications) until a job has
// one of the statuses.
func (e *env) waitStatus(id int64, want ...string) {
	e.t.Helper()
	var prev json.RawMessage
	for {
		res, err := e.q.WaitForJobChange(context.Background(), id, []string{"status"}, prev, 1<<62, 1<<62)
		if err != nil || res == nil {
			e.t.Fatalf("job %d: %v", id, err)
		}
		var st []string
		_ = json.Unmarshal(res.Values, &st)
		for _, w := range want {
			if st[0] == w {
				return
			}
		}
		prev = res.Values
	}
}

// client is a browser: a session cookie and the CSRF token it last saw.
type client struct {
	e      *env
	cookie string
	csrf   string
	hc     *http.Client
}

func (e *env) anon() *client {
	hc := e.ts.Client()
	c := &client{e: e, hc: &http.Client{Transport: hc.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	return c
}

// login logs in with the form and returns the logged-in client.
func (e *env) login(user, pw string) *client {
	e.t.Helper()
	c := e.anon()
	resp := c.do("POST", "/ui/login", url.Values{"user": {user}, "password": {pw}, "next": {"/ui/"}})
	if resp.status != http.StatusSeeOther {
		e.t.Fatalf("login %s: %d %s", user, resp.status, resp.body)
	}
	for _, ck := range resp.header.Values("Set-Cookie") {
		if strings.HasPrefix(ck, CookieName+"=") {
			c.cookie = strings.SplitN(strings.TrimPrefix(ck, CookieName+"="), ";", 2)[0]
		}
	}
	if c.cookie == "" {
		e.t.Fatalf("login %s: no session cookie", user)
	}
	c.get("/ui/") // learns the CSRF token
	return c
}

type response struct {
	status int
	header http.Header
	body   string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) do(method, path string, form url.Values) response {
	c.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.ts.URL+path, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie})
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (c *client) get(path string) response { return c.do("GET", path, nil) }

// post posts a form with the client's CSRF token.
func (c *client) post(path string, form url.Values) response {
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", c.csrf)
	}
	return c.do("POST", path, form)
}

// wantStatus checks a response's status and that its body contains every
// fragment.
func wantStatus(t *testing.T, what string, r response, status int, fragments ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, r.status, status, r.body)
	}
	for _, f := range fragments {
		if !strings.Contains(r.body, f) {
			t.Fatalf("%s: body lacks %q:\n%s", what, f, r.body)
		}
	}
}

// testClock is a clock that tests move.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
