package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoginRequired(t *testing.T) {
	e := newEnv(t, 2, Config{})
	c := e.anon()
	r := c.get("/ui/jobs?status=running")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/login?next=%2Fui%2Fjobs%3Fstatus%3Drunning" {
		t.Fatalf("GET /ui/jobs without a session: %d %q", r.status, r.header.Get("Location"))
	}
	wantStatus(t, "events without a session", c.get("/ui/jobs/1/events"), http.StatusUnauthorized)
	wantStatus(t, "drain without a session", c.do("POST", "/ui/drain", url.Values{"drain": {"1"}}), http.StatusUnauthorized)
	wantStatus(t, "logout without a session", c.do("POST", "/ui/logout", url.Values{}), http.StatusUnauthorized)
	wantStatus(t, "login page", c.get("/ui/login?next=/ui/jobs"), http.StatusOK,
		`<label for="user">User name</label>`, `<label for="password">Password</label>`, `name="next" value="/ui/jobs"`)
	// A made-up cookie is no session.
	c.cookie = "made-up"
	if r := c.get("/ui/"); r.status != http.StatusSeeOther {
		t.Fatalf("made-up session: %d", r.status)
	}
	// Static files need no session.
	wantStatus(t, "style", c.get("/ui/static/style.css"), http.StatusOK, ":root")
	wantStatus(t, "script", c.get("/ui/static/app.js"), http.StatusOK, "EventSource")
	if r := c.get("/ui"); r.status != http.StatusMovedPermanently || r.header.Get("Location") != "/ui/" {
		t.Fatalf("/ui: %d %q", r.status, r.header.Get("Location"))
	}
}

func TestLoginForm(t *testing.T) {
	e := newEnv(t, 2, Config{})
	c := e.anon()
	r := c.do("POST", "/ui/login", url.Values{"user": {"admin"}, "password": {"wrong"}, "next": {"/ui/locks"}})
	wantStatus(t, "wrong password", r, http.StatusUnauthorized, "Wrong user name or password.", `value="admin"`)
	if r.header.Get("Set-Cookie") != "" {
		t.Fatalf("a failed login set a cookie: %q", r.header.Get("Set-Cookie"))
	}
	wantStatus(t, "unknown user", c.do("POST", "/ui/login", url.Values{"user": {"nobody"}, "password": {"x"}}), http.StatusUnauthorized)

	r = c.do("POST", "/ui/login", url.Values{"user": {"admin"}, "password": {"adminpw"}, "next": {"/ui/locks"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/locks" {
		t.Fatalf("login: %d %q", r.status, r.header.Get("Location"))
	}
	ck := r.header.Get("Set-Cookie")
	for _, attr := range []string{CookieName + "=", "Path=/ui", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("session cookie %q lacks %s", ck, attr)
		}
	}
	// Where to go after logging in is a dashboard path, nothing else.
	for next, want := range map[string]string{
		"https://evil.example/": "/ui/", "//evil.example/ui/": "/ui/", "/2/jobs": "/ui/",
		"/ui/jobs?status=error": "/ui/jobs?status=error", "/ui/jobs/1/events": "/ui/", `/ui\evil`: "/ui/",
	} {
		r := c.do("POST", "/ui/login", url.Values{"user": {"viewer"}, "password": {"viewerpw"}, "next": {next}})
		if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
			t.Errorf("next=%q: %d %q, want %q", next, r.status, r.header.Get("Location"), want)
		}
	}
	// A login form posted from another site is refused.
	req, _ := http.NewRequest("POST", e.ts.URL+"/ui/login", strings.NewReader("user=admin&password=adminpw"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login: %d", resp.StatusCode)
	}
}

func TestLoginBasic(t *testing.T) {
	e := newEnv(t, 2, Config{})
	c := e.anon()
	r := c.get("/ui/login?basic=1&next=/ui/jobs")
	wantStatus(t, "basic without credentials", r, http.StatusUnauthorized)
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("WWW-Authenticate: %q", r.header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/ui/login?basic=1&next=/ui/jobs", nil)
	req.SetBasicAuth("viewer", "viewerpw")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/jobs" ||
		!strings.Contains(resp.Header.Get("Set-Cookie"), CookieName+"=") {
		t.Fatalf("basic login: %d %q %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Set-Cookie"))
	}
	req.SetBasicAuth("viewer", "wrong")
	resp, err = c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("basic login with a wrong password: %d", resp.StatusCode)
	}
}

func TestLogoutAndUserChanges(t *testing.T) {
	e := newEnv(t, 2, Config{})
	a := e.login("admin", "adminpw")
	wantStatus(t, "logout without token", a.do("POST", "/ui/logout", url.Values{}), http.StatusForbidden)
	r := a.post("/ui/logout", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/login?out=1" {
		t.Fatalf("logout: %d %q", r.status, r.header.Get("Location"))
	}
	if r := a.get("/ui/"); r.status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", r.status)
	}
	// A changed password ends the sessions of that user; a user losing
	// write can no longer act.
	a = e.login("admin", "adminpw")
	v := e.login("viewer", "viewerpw")
	e.users.set("admin adminpw read\nviewer newpw read\n")
	if r := v.get("/ui/"); r.status != http.StatusSeeOther {
		t.Fatalf("session of a user whose password changed: %d", r.status)
	}
	wantStatus(t, "drain by a user who lost write", a.post("/ui/drain", url.Values{"drain": {"1"}}), http.StatusForbidden)
	e.users.set("")
	if r := a.get("/ui/"); r.status != http.StatusSeeOther {
		t.Fatalf("session of a removed user: %d", r.status)
	}
}

func TestSessionExpiry(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := newEnv(t, 2, Config{Now: clock.now, SessionIdle: time.Hour, SessionMax: 3 * time.Hour, MaxSessions: 2})
	a := e.login("admin", "adminpw")
	clock.add(50 * time.Minute)
	wantStatus(t, "used within the idle time", a.get("/ui/locks"), http.StatusOK)
	clock.add(61 * time.Minute)
	if r := a.get("/ui/"); r.status != http.StatusSeeOther {
		t.Fatalf("idle session: %d", r.status)
	}
	a = e.login("admin", "adminpw")
	for range 4 {
		clock.add(50 * time.Minute)
		a.get("/ui/locks")
	}
	if r := a.get("/ui/"); r.status != http.StatusSeeOther {
		t.Fatalf("session older than SessionMax: %d", r.status)
	}
	// At most MaxSessions: the least recently used goes.
	s1 := e.login("admin", "adminpw")
	clock.add(time.Minute)
	s2 := e.login("admin", "adminpw")
	clock.add(time.Minute)
	s3 := e.login("admin", "adminpw")
	if r := s1.get("/ui/"); r.status != http.StatusSeeOther {
		t.Fatalf("oldest session kept beyond MaxSessions: %d", r.status)
	}
	wantStatus(t, "s2", s2.get("/ui/locks"), http.StatusOK)
	wantStatus(t, "s3", s3.get("/ui/locks"), http.StatusOK)
}

func TestOverview(t *testing.T) {
	e := newEnv(t, 2, Config{})
	ok := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	bad := e.submit(`{"OP_ID":"OP_TEST_JQUEUE","fail":true}`)
	run := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"run","steps":1}`)
	e.waitStatus(ok, "success")
	e.waitStatus(bad, "error")
	e.waitStatus(run, "running")
	v := e.login("viewer", "viewerpw")
	r := v.get("/ui/")
	wantStatus(t, "overview", r, http.StatusOK,
		"<h1>Overview", "of cluster1",
		`<span class="status status-success">success</span></a></th><td class="num">1</td>`,
		`<span class="status status-error">error</span></a></th><td class="num">1</td>`,
		`<span class="status status-running">running</span></a></th><td class="num">1</td>`,
		`all live jobs</th><td class="num">3</td>`,
		`<span class="num">1</span> <span class="muted">of 2 busy</span>`,
		"Open", "node1", "master", "holds the queue (master)", "A one-node cluster",
		fmt.Sprintf(`href="/ui/jobs/%d">Job %d</a>`, run, run), `data-refresh="5000"`, `id="live"`,
		"viewer", "read-only")
	if strings.Contains(r.body, "Drain the queue") {
		t.Fatal("a read-only user is offered to drain the queue")
	}
	e.steps.release("run")
	a := e.login("admin", "adminpw")
	wantStatus(t, "overview for a write user", a.get("/ui/"), http.StatusOK, `href="/ui/drain">Drain the queue…`, "can act")
}

func TestJobList(t *testing.T) {
	clock := &testClock{t: time.Now()}
	e := newEnv(t, 1, Config{Now: clock.now})
	for range 7 {
		id := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
		e.waitStatus(id, "success")
	}
	failed := e.submit(`{"OP_ID":"OP_TEST_JQUEUE","fail":true}`)
	e.waitStatus(failed, "error")
	v := e.login("viewer", "viewerpw")
	r := v.get("/ui/jobs?n=3")
	wantStatus(t, "page 1", r, http.StatusOK, "1–3 of 8 live jobs, newest first",
		`<a href="/ui/jobs/8">Job 8</a>`, `<a href="/ui/jobs/6">Job 6</a>`,
		`<a href="/ui/jobs?before=6&amp;n=3" rel="next">Older ›</a>`, `<a href="/ui/jobs?after=0&amp;n=3">Oldest »</a>`,
		`<label for="f-status">Status</label>`, `<label for="f-age">Received in</label>`)
	if strings.Contains(r.body, `href="/ui/jobs/5"`) {
		t.Fatal("page 1 of 3 shows job 5")
	}
	wantStatus(t, "page 2", v.get("/ui/jobs?before=6&n=3"), http.StatusOK, "4–6 of 8",
		`href="/ui/jobs/5"`, `href="/ui/jobs/3"`, `href="/ui/jobs?after=5&amp;n=3" rel="prev">‹ Newer</a>`)
	wantStatus(t, "oldest", v.get("/ui/jobs?after=0&n=3"), http.StatusOK, "6–8 of 8",
		`href="/ui/jobs/3"`, `href="/ui/jobs/1"`, `<span class="muted">Older ›</span>`)
	wantStatus(t, "newer than 5", v.get("/ui/jobs?after=5&n=3"), http.StatusOK, "1–3 of 8", `href="/ui/jobs/8"`)
	r = v.get("/ui/jobs?status=error")
	wantStatus(t, "errors", r, http.StatusOK, "1–1 of 1 error jobs", fmt.Sprintf(`href="/ui/jobs/%d"`, failed),
		`<option value="error" selected>`)
	if strings.Contains(r.body, `href="/ui/jobs/1"`) {
		t.Fatal("the error filter shows a successful job")
	}
	wantStatus(t, "unfinished", v.get("/ui/jobs?status=unfinished"), http.StatusOK, "No unfinished jobs.")
	wantStatus(t, "finished", v.get("/ui/jobs?status=finished"), http.StatusOK, "of 8 finished jobs")
	wantStatus(t, "received in the last 15 minutes", v.get("/ui/jobs?age=15m"), http.StatusOK, "1–8 of 8")
	clock.add(2 * time.Hour)
	wantStatus(t, "received in the last hour, two hours later", v.get("/ui/jobs?age=1h"), http.StatusOK,
		"No live jobs received in the last hour.")
	wantStatus(t, "bad status", v.get("/ui/jobs?status=nonsense"), http.StatusBadRequest)
	wantStatus(t, "bad n", v.get("/ui/jobs?n=0"), http.StatusBadRequest)
	wantStatus(t, "bad before", v.get("/ui/jobs?before=x"), http.StatusBadRequest)
	if r := v.get("/ui/jobs/go?id=3"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/jobs/3" {
		t.Fatalf("open by id: %d %q", r.status, r.header.Get("Location"))
	}
}

func TestJobPage(t *testing.T) {
	e := newEnv(t, 2, Config{})
	id := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"a","steps":2}`, `{"OP_ID":"OP_TEST_JQUEUE","fail":true}`)
	e.waitStatus(id, "running")
	a := e.login("admin", "adminpw")
	r := a.get(fmt.Sprintf("/ui/jobs/%d", id))
	wantStatus(t, "running job", r, http.StatusOK,
		fmt.Sprintf(`<h1>Job %d <span class="status status-running" data-bind="status">running</span></h1>`, id),
		fmt.Sprintf(`data-events="/ui/jobs/%d/events?after=1"`, id),
		"Opcode 1: <code>OP_TEST_STEPS</code>", "Opcode 2: <code>OP_TEST_JQUEUE</code>",
		`&#34;OP_ID&#34;: &#34;OP_TEST_STEPS&#34;`, // the input, pretty
		`<td class="msg">step 0</td>`, `role="log"`,
		fmt.Sprintf(`href="/ui/jobs/%d/cancel">Cancel job…</a>`, id),
		fmt.Sprintf(`href="/ui/jobs/%d/priority">Change priority…</a>`, id))
	e.steps.release("a")
	e.waitStatus(id, "error")
	r = a.get(fmt.Sprintf("/ui/jobs/%d", id))
	wantStatus(t, "failed job", r, http.StatusOK,
		`status-error" data-bind="status">error</span></h1>`, "This job has finished.",
		`<td class="msg">step 1</td>`, `&#34;steps&#34;: 2`, // first result
		`class="result failed"`, "OpExecError",
		fmt.Sprintf(`href="/ui/jobs/%d/archive">Archive job…</a>`, id))
	if strings.Contains(r.body, "data-events") {
		t.Fatal("a finished job's page follows events")
	}
	v := e.login("viewer", "viewerpw")
	r = v.get(fmt.Sprintf("/ui/jobs/%d", id))
	wantStatus(t, "read-only view", r, http.StatusOK, "read-only user")
	if strings.Contains(r.body, "/archive") {
		t.Fatal("a read-only user is offered to archive")
	}
	wantStatus(t, "missing job", v.get("/ui/jobs/999"), http.StatusNotFound, "Job 999 does not exist")
	wantStatus(t, "not a job id", v.get("/ui/jobs/x1"), http.StatusNotFound)
	wantStatus(t, "not a page", v.get("/ui/nothing"), http.StatusNotFound)
}

func TestLocksPage(t *testing.T) {
	e := newEnv(t, 2, Config{})
	holder := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"h","steps":1,"lock":"n1"}`)
	e.waitStatus(holder, "running")
	waiter := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"w","steps":1,"lock":"n1"}`)
	e.waitStatus(waiter, "waiting")
	v := e.login("viewer", "viewerpw")
	wantStatus(t, "locks", v.get("/ui/locks"), http.StatusOK, "<h1>Locks</h1>", "<code>node/n1</code>",
		`<td data-label="Mode">exclusive</td>`, fmt.Sprintf(`<a href="/ui/jobs/%d">job %d</a></td>`, holder, holder),
		fmt.Sprintf(`<div>exclusive: <a href="/ui/jobs/%d">job %d</a></div>`, waiter, waiter))
	e.steps.release("h")
	e.steps.release("w")
	e.waitStatus(waiter, "success")
}

func TestActions(t *testing.T) {
	e := newEnv(t, 1, Config{})
	run := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"r","steps":1}`)
	e.waitStatus(run, "running")
	queued := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	a := e.login("admin", "adminpw")
	v := e.login("viewer", "viewerpw")
	path := func(id int64, action string) string { return fmt.Sprintf("/ui/jobs/%d/%s", id, action) }

	// Read users see no confirmation page and cannot act, token or not.
	wantStatus(t, "viewer's cancel page", v.get(path(queued, "cancel")), http.StatusForbidden, "may only look")
	wantStatus(t, "viewer cancels", v.post(path(queued, "cancel"), nil), http.StatusForbidden)
	wantStatus(t, "viewer drains", v.post("/ui/drain", url.Values{"drain": {"1"}}), http.StatusForbidden)
	wantStatus(t, "viewer archives", v.post(path(run, "archive"), nil), http.StatusForbidden)
	wantStatus(t, "viewer changes priority", v.post(path(queued, "priority"), url.Values{"priority": {"3"}}), http.StatusForbidden)
	// Write users need the token.
	wantStatus(t, "cancel without token", a.do("POST", path(queued, "cancel"), url.Values{}), http.StatusForbidden, "security token")
	wantStatus(t, "cancel with a wrong token", a.do("POST", path(queued, "cancel"), url.Values{"csrf": {"x" + a.csrf}}), http.StatusForbidden)
	wantStatus(t, "cancel with viewer's token", a.do("POST", path(queued, "cancel"), url.Values{"csrf": {v.csrf}}), http.StatusForbidden)
	wantStatus(t, "drain without token", a.do("POST", "/ui/drain", url.Values{"drain": {"1"}}), http.StatusForbidden)

	// Priority: confirmation page, then the change.
	wantStatus(t, "priority page", a.get(path(queued, "priority")), http.StatusOK,
		fmt.Sprintf("Change the priority of job %d", queued), `<label for="priority">New priority`,
		`name="csrf" value="`+a.csrf+`"`)
	r := a.post(path(queued, "priority"), url.Values{"priority": {"7"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != path(queued, "")[:len(path(queued, ""))-1] {
		t.Fatalf("priority: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	wantStatus(t, "after the priority change", a.get(fmt.Sprintf("/ui/jobs/%d", queued)), http.StatusOK,
		`<p class="flash" role="status">`, `<dd data-bind="priority">7</dd>`)
	wantStatus(t, "bad priority", a.post(path(queued, "priority"), url.Values{"priority": {"-21"}}), http.StatusBadRequest)

	// Cancel a queued job.
	wantStatus(t, "cancel page", a.get(path(queued, "cancel")), http.StatusOK, fmt.Sprintf("Cancel job %d?", queued))
	r = a.post(path(queued, "cancel"), nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	wantStatus(t, "after cancel", a.get(fmt.Sprintf("/ui/jobs/%d", queued)), http.StatusOK,
		`status-canceled" data-bind="status">canceled</span>`, `<p class="flash" role="status">`)
	// A running job: refused unless killed.
	wantStatus(t, "cancel page of a running job", a.get(path(run, "cancel")), http.StatusOK, `name="kill"`)
	a.post(path(run, "cancel"), nil)
	wantStatus(t, "refused cancel", a.get(fmt.Sprintf("/ui/jobs/%d", run)), http.StatusOK, "Not canceled:", "status-running")
	a.post(path(run, "cancel"), url.Values{"kill": {"1"}})
	e.waitStatus(run, "canceled")

	// Archive.
	wantStatus(t, "archive page", a.get(path(run, "archive")), http.StatusOK, fmt.Sprintf("Archive job %d?", run))
	a.post(path(run, "archive"), nil)
	wantStatus(t, "archived", a.get(fmt.Sprintf("/ui/jobs/%d", run)), http.StatusOK,
		fmt.Sprintf("Job %d archived.", run), "<dt>Archived</dt><dd>yes</dd>")
	a.post(path(run, "archive"), nil)
	wantStatus(t, "archived twice", a.get(fmt.Sprintf("/ui/jobs/%d", run)), http.StatusOK, "was not archived")
	wantStatus(t, "unknown action", a.get(path(run, "explode")), http.StatusNotFound)

	// Drain and undrain.
	wantStatus(t, "drain page", a.get("/ui/drain"), http.StatusOK, "Drain the queue?", `name="drain" value="1"`)
	r = a.post("/ui/drain", url.Values{"drain": {"1"}})
	if r.status != http.StatusSeeOther || !e.q.Drained() {
		t.Fatalf("drain: %d drained=%v", r.status, e.q.Drained())
	}
	wantStatus(t, "drained overview", a.get("/ui/"), http.StatusOK, "The queue is drained", "Drained", "Undrain the queue…")
	wantStatus(t, "undrain page", a.get("/ui/drain"), http.StatusOK, "Undrain the queue?", `name="drain" value="0"`)
	a.post("/ui/drain", url.Values{"drain": {"0"}})
	if e.q.Drained() {
		t.Fatal("still drained")
	}
	wantStatus(t, "bad drain value", a.post("/ui/drain", url.Values{"drain": {"maybe"}}), http.StatusBadRequest)

	// A POST from another origin is refused even with the token.
	form := url.Values{"csrf": {a.csrf}, "drain": {"1"}}
	req, _ := http.NewRequest("POST", e.ts.URL+"/ui/drain", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.AddCookie(&http.Cookie{Name: CookieName, Value: a.cookie})
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || e.q.Drained() {
		t.Fatalf("cross-site drain: %d drained=%v", resp.StatusCode, e.q.Drained())
	}
}

// sse reads a server-sent event stream.
type sse struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

type event struct {
	name, id, data string
}

func (c *client) events(ctx context.Context, path string, lastID string) *sse {
	c.e.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.e.ts.URL+path, nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie})
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		c.e.t.Fatalf("events: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sse{t: c.e.t, resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event (comments and retry lines are skipped).
func (s *sse) next() event {
	s.t.Helper()
	var ev event
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("event stream ended: %v (event so far %+v)", err, ev)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.name != "" {
				return ev
			}
		case strings.HasPrefix(line, "event: "):
			ev.name = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		}
	}
}

// nextNamed skips state events until one called name.
func (s *sse) nextNamed(name string) event {
	s.t.Helper()
	for {
		ev := s.next()
		if ev.name == name {
			return ev
		}
		if ev.name != "state" {
			s.t.Fatalf("event %+v while waiting for %q", ev, name)
		}
	}
}

func TestEventsDeliverLogLinesAsTheyAppear(t *testing.T) {
	ended := make(chan struct{}, 10)
	e := newEnv(t, 2, Config{})
	e.h.streamEnded = func() { ended <- struct{}{} }
	id := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"s","steps":3}`, `{"OP_ID":"OP_TEST_STEPS","name":"t","steps":1}`)
	a := e.login("viewer", "viewerpw")
	s := a.events(context.Background(), fmt.Sprintf("/ui/jobs/%d/events", id), "")
	defer s.resp.Body.Close()

	var log logView
	for i := range 3 {
		ev := s.nextNamed("log")
		if err := json.Unmarshal([]byte(ev.data), &log); err != nil {
			t.Fatal(err)
		}
		if log.Message != fmt.Sprintf("step %d", i) || log.Op != 0 || ev.id != fmt.Sprint(log.Serial) || log.Type != "message" {
			t.Fatalf("log event %d: %+v %+v", i, ev, log)
		}
		e.steps.step("s") // the next line appears only now
	}
	// The second opcode's line is on opcode 1.
	ev := s.nextNamed("log")
	if err := json.Unmarshal([]byte(ev.data), &log); err != nil || log.Op != 1 || log.Message != "step 0" {
		t.Fatalf("second opcode's log: %+v %+v", ev, log)
	}
	e.steps.step("t")
	// State events say what changed; the last ones end the stream.
	var st jobView
	for {
		ev := s.next()
		if ev.name == "end" {
			break
		}
		if ev.name != "state" {
			t.Fatalf("unexpected %+v", ev)
		}
		if err := json.Unmarshal([]byte(ev.data), &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.Status != "success" || !st.Final || len(st.Ops) != 2 || st.Ops[0].Result != "{\n  \"steps\": 3\n}" ||
		st.Ops[1].Status != "success" || !st.End.Set() {
		t.Fatalf("last state: %+v", st)
	}
	<-ended
	if n := e.h.streams.Load(); n != 0 {
		t.Fatalf("%d streams after the job ended", n)
	}

	// A finished job: its state and the end at once; a reconnecting
	// browser gets only the lines after its Last-Event-ID.
	s2 := a.events(context.Background(), fmt.Sprintf("/ui/jobs/%d/events", id), "2")
	defer s2.resp.Body.Close()
	ev = s2.nextNamed("log")
	if err := json.Unmarshal([]byte(ev.data), &log); err != nil || log.Serial != 3 {
		t.Fatalf("after Last-Event-ID 2: %+v", ev)
	}
	s2.nextNamed("log")
	s2.nextNamed("end")
	<-ended

	s3 := a.events(context.Background(), "/ui/jobs/999/events", "")
	defer s3.resp.Body.Close()
	if ev := s3.next(); ev.name != "gone" {
		t.Fatalf("unknown job: %+v", ev)
	}
	<-ended
}

func TestEventsEndWhenTheClientGoesAway(t *testing.T) {
	ended := make(chan struct{}, 1)
	e := newEnv(t, 2, Config{Heartbeat: time.Hour})
	e.h.streamEnded = func() { ended <- struct{}{} }
	id := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"x","steps":1}`)
	a := e.login("admin", "adminpw")
	ctx, cancel := context.WithCancel(context.Background())
	s := a.events(ctx, fmt.Sprintf("/ui/jobs/%d/events", id), "")
	s.nextNamed("log")
	if n := e.h.streams.Load(); n != 1 {
		t.Fatalf("%d streams", n)
	}
	cancel() // the browser closes the page
	s.resp.Body.Close()
	<-ended // the wait loop ended, long before its heartbeat
	if n := e.h.streams.Load(); n != 0 {
		t.Fatalf("%d streams after the client left", n)
	}
	e.steps.release("x")
	e.waitStatus(id, "success")
}

func TestEventsLimit(t *testing.T) {
	e := newEnv(t, 2, Config{MaxStreams: 1})
	id := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"x","steps":1}`)
	a := e.login("admin", "adminpw")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := a.events(ctx, fmt.Sprintf("/ui/jobs/%d/events", id), "")
	defer s.resp.Body.Close()
	s.nextNamed("log")
	wantStatus(t, "second stream", a.get(fmt.Sprintf("/ui/jobs/%d/events", id)), http.StatusServiceUnavailable)
	e.steps.release("x")
	s.nextNamed("end")
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, 2, Config{})
	r := e.login("viewer", "viewerpw").get("/ui/")
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	} {
		if !strings.Contains(r.header.Get(k), want) {
			t.Errorf("%s: %q, want %q", k, r.header.Get(k), want)
		}
	}
}

// TestOverviewReplication: the overview shows each node's replication
// state as the master reports it.
func TestOverviewReplication(t *testing.T) {
	e := newEnv(t, 2, Config{Cluster: func() Cluster {
		return Cluster{Name: "cluster1", Master: "node1", MaxRunningJobs: 2, Nodes: []Node{
			{Name: "node1", Address: "192.0.2.1:1811", Candidate: true, Online: true, Replication: "holds the queue (master)"},
			{Name: "node2", Address: "192.0.2.2:1811", Candidate: true, Online: true, Replication: "behind by 3 updates"},
			{Name: "node3", Address: "192.0.2.3:1811", Candidate: false, Online: false},
		}}
	}})
	v := e.login("viewer", "viewerpw")
	r := v.get("/ui/")
	wantStatus(t, "overview", r, http.StatusOK, "behind by 3 updates", "node3", "offline", "unknown")
	if strings.Contains(r.body, "A one-node cluster") {
		t.Error("a three-node cluster is called a one-node cluster")
	}
}

// TestFailureReasons: every list says why a failed job failed (its failing
// opcode and error message), and the job's page shows that opcode first,
// expanded, with the reason above everything (issue 19).
func TestFailureReasons(t *testing.T) {
	e := newEnv(t, 1, Config{})
	id := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`, `{"OP_ID":"OP_TEST_JQUEUE","fail":true}`,
		`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	e.waitStatus(id, "error")
	ok := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	e.waitStatus(ok, "success")
	v := e.login("viewer", "viewerpw")
	reason := fmt.Sprintf(`<div class="reason"><a href="/ui/jobs/%d#op-1">Opcode 2</a>: Opcode failure was requested</div>`, id)
	for _, path := range []string{"/ui/jobs", "/ui/jobs?status=error", "/ui/"} {
		r := v.get(path)
		wantStatus(t, path, r, http.StatusOK, reason)
		if n := strings.Count(r.body, `class="reason"`); n != 1 {
			t.Errorf("%s: %d reasons, want the failed job's only", path, n)
		}
	}
	r := v.get(fmt.Sprintf("/ui/jobs/%d", id))
	wantStatus(t, "failed job", r, http.StatusOK,
		`<strong>Failed at <a href="#op-1">opcode 2 (<code>OP_TEST_JQUEUE</code>)</a>:</strong>`,
		`<span class="reason">Opcode failure was requested</span>`, `class="op op-failed" id="op-1"`)
	first, second := strings.Index(r.body, `id="op-1"`), strings.Index(r.body, `id="op-0"`)
	if first < 0 || second < 0 || first > second {
		t.Errorf("the failing opcode is not first: op-1 at %d, op-0 at %d", first, second)
	}
	// Only the failing opcode's input is expanded.
	sections := strings.Split(r.body, `<section class="op`)
	for _, sec := range sections[1:] {
		open := strings.Contains(sec, `<details class="input" open>`)
		if failed := strings.HasPrefix(sec, ` op-failed"`); open != failed {
			t.Errorf("input expanded %v in a section (failing %v): %.80q", open, failed, sec)
		}
	}
	// A job that did not fail has no reason box and its opcodes in order.
	if r := v.get(fmt.Sprintf("/ui/jobs/%d", ok)); strings.Contains(r.body, "Failed at") || strings.Contains(r.body, "op-failed") {
		t.Errorf("a successful job's page shows a failure:\n%s", r.body)
	}
}

// TestSearch: the job list searches text in the opcodes' input, result and
// log (any case), and by OP_ID, with the other filters; the pager keeps
// the search.
func TestSearch(t *testing.T) {
	e := newEnv(t, 1, Config{})
	failed := e.submit(`{"OP_ID":"OP_TEST_JQUEUE","fail":true,"log_messages":["disk sdb1 replaced"]}`)
	e.waitStatus(failed, "error")
	delay := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"comment":"Migration of <vm7>"}`)
	e.waitStatus(delay, "success")
	logged := e.submit(`{"OP_ID":"OP_TEST_JQUEUE","log_messages":["nothing to see"]}`)
	e.waitStatus(logged, "success")
	v := e.login("viewer", "viewerpw")
	for _, tc := range []struct {
		query string
		want  []int64
		count string
	}{
		{"q=SDB1", []int64{failed}, `1–1 of 1 live jobs mentioning &#34;SDB1&#34;`},                        // a log message
		{"q=failure+was+requested", []int64{failed}, "1–1 of 1"},                                           // a result
		{"q=%3Cvm7%3E", []int64{delay}, "1–1 of 1"},                                                        // an input, with < and >
		{"op=op_test_jqueue", []int64{logged, failed}, "1–2 of 2 live jobs with an OP_TEST_JQUEUE opcode"}, // an OP_ID
		{"op=OP_TEST_JQUEUE&status=success", []int64{logged}, "1–1 of 1 success jobs with an OP_TEST_JQUEUE opcode"},
		{"q=nothing&op=OP_TEST_DELAY", nil, "No live jobs with an OP_TEST_DELAY opcode mentioning &#34;nothing&#34;."},
	} {
		r := v.get("/ui/jobs?" + tc.query)
		wantStatus(t, tc.query, r, http.StatusOK, tc.count)
		for _, id := range []int64{failed, delay, logged} {
			shown := strings.Contains(r.body, fmt.Sprintf(`<a href="/ui/jobs/%d">Job %d</a>`, id, id))
			if want := slices.Contains(tc.want, id); shown != want {
				t.Errorf("%s: job %d shown %v, want %v", tc.query, id, shown, want)
			}
		}
	}
	wantStatus(t, "the pager keeps the search", v.get("/ui/jobs?op=OP_TEST_JQUEUE&n=1"), http.StatusOK,
		`href="/ui/jobs?before=3&amp;n=1&amp;op=OP_TEST_JQUEUE" rel="next"`, `value="OP_TEST_JQUEUE"`)
	wantStatus(t, "a bad OP_ID", v.get("/ui/jobs?op=OP%20X"), http.StatusBadRequest, "Bad search")
}

// TestBulkActions: write users tick jobs in the list and cancel, archive
// or reprioritise them after one confirmation page; each job gets the
// call its own page makes, and the outcome names the refusals.
func TestBulkActions(t *testing.T) {
	e := newEnv(t, 1, Config{})
	done1 := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	e.waitStatus(done1, "success")
	done2 := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	e.waitStatus(done2, "success")
	run := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"r","steps":1}`)
	e.waitStatus(run, "running")
	q1 := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	q2 := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	a := e.login("admin", "adminpw")
	v := e.login("viewer", "viewerpw")
	ids := func(action string, list ...int64) url.Values {
		u := url.Values{"action": {action}}
		for _, id := range list {
			u.Add("id", fmt.Sprint(id))
		}
		return u
	}

	// The list offers the choice to write users only.
	wantStatus(t, "admin's list", a.get("/ui/jobs?status=finished"), http.StatusOK,
		fmt.Sprintf(`<input type="checkbox" name="id" value="%d" form="bulk"`, done1), `<form method="get" action="/ui/jobs/bulk" id="bulk"`,
		`<input type="hidden" name="back" value="/ui/jobs?status=finished">`)
	if r := v.get("/ui/jobs"); strings.Contains(r.body, `type="checkbox"`) || strings.Contains(r.body, `id="bulk"`) {
		t.Error("a read-only user is offered bulk actions")
	}
	wantStatus(t, "viewer's bulk page", v.get("/ui/jobs/bulk?"+ids("cancel", q1).Encode()), http.StatusForbidden)
	wantStatus(t, "viewer's bulk post", v.post("/ui/jobs/bulk", ids("cancel", q1)), http.StatusForbidden)
	wantStatus(t, "bulk post without token", a.do("POST", "/ui/jobs/bulk", ids("cancel", q1)), http.StatusForbidden)
	wantStatus(t, "no jobs", a.get("/ui/jobs/bulk?action=cancel"), http.StatusBadRequest, "No jobs chosen")
	wantStatus(t, "bad action", a.get("/ui/jobs/bulk?"+ids("delete", q1).Encode()), http.StatusBadRequest)
	wantStatus(t, "bad id", a.get("/ui/jobs/bulk?action=cancel&id=x"), http.StatusBadRequest)

	// Archive: one confirmation for all, then each; the unfinished one is
	// refused and named.
	u := ids("archive", done1, done2, q1)
	u.Set("back", "/ui/jobs?status=finished")
	wantStatus(t, "archive confirmation", a.get("/ui/jobs/bulk?"+u.Encode()), http.StatusOK, "Archive 3 jobs?",
		fmt.Sprintf(`<a href="/ui/jobs/%d">Job %d</a>`, done2, done2), `<button type="submit" class="primary">Archive 3 jobs</button>`,
		`name="csrf" value="`+a.csrf+`"`)
	r := a.post("/ui/jobs/bulk", u)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/jobs?status=finished" {
		t.Fatalf("bulk archive: %d %q", r.status, r.header.Get("Location"))
	}
	wantStatus(t, "after the bulk archive", a.get("/ui/jobs"), http.StatusOK,
		fmt.Sprintf("2 of 3 jobs archived. Refused: Job %d is not a finished job of the live queue.", q1))
	for id, want := range map[int64]bool{done1: true, done2: true, q1: false} {
		rows, err := e.q.QueryJobs([]int64{id}, []string{"archived"})
		if err != nil || string(rows[0]) != fmt.Sprintf("[%v]", want) {
			t.Errorf("job %d archived: %s %v, want %v", id, rows[0], err, want)
		}
	}

	// Priority, then cancel, of the queued jobs; the running one is
	// refused unless killed.
	// One job is one job, not "1 jobs".
	wantStatus(t, "one job's confirmation", a.get("/ui/jobs/bulk?"+ids("priority", q1).Encode()), http.StatusOK,
		"<title>Change the priority of 1 job?", `<h1>Change the priority of 1 job?</h1>`, `Change the priority of 1 job</button>`)
	wantStatus(t, "bad priority", a.post("/ui/jobs/bulk", func() url.Values { u := ids("priority", q1, q2); u.Set("priority", "99"); return u }()), http.StatusBadRequest)
	u = ids("priority", q1, q2)
	u.Set("priority", "5")
	a.post("/ui/jobs/bulk", u)
	wantStatus(t, "after the bulk priority", a.get("/ui/jobs"), http.StatusOK, "2 of 2 jobs reprioritised.")
	for _, id := range []int64{q1, q2} {
		if rows, _ := e.q.QueryJobs([]int64{id}, []string{"priority"}); string(rows[0]) != "[5]" {
			t.Errorf("job %d priority: %s", id, rows[0])
		}
	}
	wantStatus(t, "cancel confirmation", a.get("/ui/jobs/bulk?"+ids("cancel", run, q1, q2).Encode()), http.StatusOK,
		"Cancel 3 jobs?", `<label for="kill">Kill the running opcodes`)
	a.post("/ui/jobs/bulk", ids("cancel", run, q1, q2))
	wantStatus(t, "after the bulk cancel", a.get("/ui/jobs"), http.StatusOK,
		fmt.Sprintf("2 of 3 jobs canceled (or to be canceled). Refused: job %d: Job no longer waiting, can&#39;t cancel (informed it anyway).", run))
	for _, id := range []int64{q1, q2} {
		e.waitStatus(id, "canceled")
	}
	e.steps.release("r")
	e.waitStatus(run, "success")
}

// TestArchiveListed: the archive is listed and searched like the live
// queue ("In: the archive", or both).
func TestArchiveListed(t *testing.T) {
	e := newEnv(t, 1, Config{})
	old := e.submit(`{"OP_ID":"OP_TEST_JQUEUE","log_messages":["rotated the keys"]}`)
	e.waitStatus(old, "success")
	live := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	e.waitStatus(live, "success")
	if ok, err := e.q.ArchiveJob(old); !ok || err != nil {
		t.Fatalf("archive: %v %v", ok, err)
	}
	v := e.login("viewer", "viewerpw")
	link := func(id int64) string { return fmt.Sprintf(`<a href="/ui/jobs/%d">Job %d</a>`, id, id) }
	for _, tc := range []struct {
		query      string
		count      string
		shown, not []int64
	}{
		{"", "1–1 of 1 live jobs", []int64{live}, []int64{old}},
		{"in=archive", "1–1 of 1 archived jobs", []int64{old}, []int64{live}},
		{"in=all", "1–2 of 2 live and archived jobs", []int64{old, live}, nil},
		{"in=all&q=rotated", "1–1 of 1 live and archived jobs mentioning", []int64{old}, []int64{live}},
		{"in=archive&status=success", "1–1 of 1 success archived jobs", []int64{old}, nil},
	} {
		r := v.get("/ui/jobs?" + tc.query)
		wantStatus(t, tc.query, r, http.StatusOK, tc.count)
		for _, id := range tc.shown {
			if !strings.Contains(r.body, link(id)) {
				t.Errorf("%q: job %d not shown", tc.query, id)
			}
		}
		for _, id := range tc.not {
			if strings.Contains(r.body, link(id)) {
				t.Errorf("%q: job %d shown", tc.query, id)
			}
		}
	}
	wantStatus(t, "archived badge", v.get("/ui/jobs?in=archive"), http.StatusOK, link(old)+` <span class="muted">archived</span>`)
	wantStatus(t, "bad where", v.get("/ui/jobs?in=attic"), http.StatusBadRequest)
}

// TestResubmit: a finished job is resubmitted as a new job with the same
// opcodes; the two pages link to each other (the link from the old job
// also for resubmissions this process did not make, found from the new
// job's reason trail).
func TestResubmit(t *testing.T) {
	e := newEnv(t, 1, Config{})
	old := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"reason":[["gnt:client:jobq","delay",1]]}`,
		`{"OP_ID":"OP_TEST_JQUEUE","fail":true}`)
	e.waitStatus(old, "error")
	a := e.login("admin", "adminpw")
	v := e.login("viewer", "viewerpw")
	page := func(id int64) string { return fmt.Sprintf("/ui/jobs/%d", id) }
	wantStatus(t, "old job's page", a.get(page(old)), http.StatusOK, fmt.Sprintf(`href="/ui/jobs/%d/resubmit">Resubmit job…</a>`, old))
	wantStatus(t, "confirmation", a.get(page(old)+"/resubmit"), http.StatusOK, fmt.Sprintf("Resubmit job %d?", old),
		"the same 2 opcode(s)", fmt.Sprintf("Submit a copy of job %d", old))
	wantStatus(t, "viewer resubmits", v.post(page(old)+"/resubmit", nil), http.StatusForbidden)
	r := a.post(page(old)+"/resubmit", nil)
	loc := r.header.Get("Location")
	var n int64
	if r.status != http.StatusSeeOther || func() error { _, err := fmt.Sscanf(loc, "/ui/jobs/%d", &n); return err }() != nil || n <= old {
		t.Fatalf("resubmit: %d %q", r.status, loc)
	}
	e.waitStatus(n, "error") // it fails the same way
	wantStatus(t, "new job's page", a.get(loc), http.StatusOK, fmt.Sprintf("Job %d resubmits job %d.", n, old),
		fmt.Sprintf(`Resubmits <a href="/ui/jobs/%d">job %d</a>.`, old, old))
	wantStatus(t, "old job's page after", a.get(page(old)), http.StatusOK,
		fmt.Sprintf(`Resubmitted as <a href="/ui/jobs/%d">job %d</a>.`, n, n))

	// The same opcodes; the queue's reason entries once each, the client's
	// kept, the resubmission's added.
	rows, err := e.q.QueryJobs([]int64{old, n}, []string{"ops"})
	if err != nil {
		t.Fatal(err)
	}
	var oldOps, newOps []map[string]any
	if json.Unmarshal(rows[0], &[]any{&oldOps}) != nil || json.Unmarshal(rows[1], &[]any{&newOps}) != nil || len(newOps) != 2 {
		t.Fatalf("ops: %s %s", rows[0], rows[1])
	}
	for i := range oldOps {
		for k, ov := range oldOps[i] {
			if k != "reason" && fmt.Sprint(newOps[i][k]) != fmt.Sprint(ov) {
				t.Errorf("opcode %d %s: %v, was %v", i, k, newOps[i][k], ov)
			}
		}
		trail := fmt.Sprint(newOps[i]["reason"])
		if strings.Count(trail, "gnt:opcode:") != 1 || !strings.Contains(trail, fmt.Sprintf("jobq:web:resubmit job=%d;user=admin", old)) ||
			(i == 0) != strings.Contains(trail, "gnt:client:jobq delay") {
			t.Errorf("opcode %d's reason trail: %s", i, trail)
		}
	}

	// A resubmission made elsewhere (another process, before a restart)
	// is found from its reason trail.
	other := e.submit(fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"reason":[["jobq:web:resubmit","job=%d;user=x",1]]}`, old))
	e.waitStatus(other, "success")
	wantStatus(t, "old job's page, two resubmissions", a.get(page(old)), http.StatusOK,
		fmt.Sprintf(`Resubmitted as <a href="/ui/jobs/%d">job %d</a>, <a href="/ui/jobs/%d">job %d</a>.`, n, n, other, other))

	// An unfinished job is not resubmitted.
	run := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"r","steps":1}`)
	e.waitStatus(run, "running")
	wantStatus(t, "unfinished confirmation", a.get(page(run)+"/resubmit"), http.StatusOK, "has not finished (running)")
	if r := a.post(page(run)+"/resubmit", nil); r.header.Get("Location") != page(run) {
		t.Fatalf("resubmit of a running job: %d %q", r.status, r.header.Get("Location"))
	}
	wantStatus(t, "after the refusal", a.get(page(run)), http.StatusOK, fmt.Sprintf("Job %d was not resubmitted: it has not finished (running).", run))
	e.steps.release("r")
	e.waitStatus(run, "success")
}

// TestCharts: the charts page draws the last hour and day of jobs ended
// by status, the queue's depth and the latency percentiles as SVG, and
// charts.json gives the same numbers.
func TestCharts(t *testing.T) {
	e := newEnv(t, 1, Config{})
	ok := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	bad := e.submit(`{"OP_ID":"OP_TEST_JQUEUE","fail":true}`)
	e.waitStatus(ok, "success")
	e.waitStatus(bad, "error")
	e.q.SampleDepth()
	v := e.login("viewer", "viewerpw")
	wantStatus(t, "charts", v.get("/ui/charts"), http.StatusOK, `aria-current="page">Charts</a>`,
		"In the last hour", "In the last day", "1 succeeded, 1 failed, 0 canceled.",
		`<figcaption>Jobs ended per second, the last hour</figcaption>`, `<rect class="bar success"`, `<rect class="bar error"`,
		`<polyline class="line depth"`, `href="/ui/charts.json"`)
	// Every percentile the title names, of both latencies (wait p90 was
	// missing).
	for _, l := range []string{"wait p50", "wait p90", "wait p99", "run p50", "run p90", "run p99"} {
		wantStatus(t, "charts", v.get("/ui/charts"), http.StatusOK, `<polyline class="line `+l+`"`, `<li class="`+l+`">`+l+`</li>`)
	}
	r := v.get("/ui/charts.json")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("charts.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
	var got map[string]struct {
		Step   int64 `json:"step_seconds"`
		Points []struct {
			Finished struct{ Success, Error, Canceled int64 } `json:"finished"`
			Depth    int64                                    `json:"depth"`
			Run      struct{ P50 float64 }                    `json:"run_seconds"`
		} `json:"points"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("charts.json: %v\n%s", err, r.body)
	}
	for name, want := range map[string]struct {
		step   int64
		points int
	}{"last_hour": {60, 60}, "last_day": {900, 96}} {
		c := got[name]
		var succ, errs int64
		ran := false
		depth := int64(-1)
		for _, p := range c.Points {
			succ += p.Finished.Success
			errs += p.Finished.Error
			ran = ran || p.Run.P50 > 0
			depth = max(depth, p.Depth)
		}
		if c.Step != want.step || len(c.Points) != want.points || succ != 1 || errs != 1 || !ran || depth < 0 {
			t.Errorf("%s: step %d, %d points, %d/%d ended, ran %v, depth %d", name, c.Step, len(c.Points), succ, errs, ran, depth)
		}
	}
	if r := e.anon().get("/ui/charts.json"); r.status == http.StatusOK {
		t.Error("charts.json without logging in")
	}
}

// TestTimeRange: the job list selects jobs received in a range of times
// (the server's time zone), with the pager keeping it.
func TestTimeRange(t *testing.T) {
	e := newEnv(t, 1, Config{})
	for range 3 {
		e.waitStatus(e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`), "success")
	}
	v := e.login("viewer", "viewerpw")
	at := func(d time.Duration) string { return time.Now().Add(d).Format("2006-01-02T15:04") }
	before, after := at(-time.Hour), at(time.Hour)
	wantStatus(t, "from an hour ago", v.get("/ui/jobs?from="+before), http.StatusOK, "1–3 of 3 live jobs received from "+strings.Replace(before, "T", " ", 1),
		`name="from" type="datetime-local" value="`+before+`"`)
	wantStatus(t, "from in an hour", v.get("/ui/jobs?from="+after), http.StatusOK, "No live jobs received from")
	wantStatus(t, "before an hour ago", v.get("/ui/jobs?to="+before), http.StatusOK, "No live jobs received before")
	wantStatus(t, "a range", v.get("/ui/jobs?from="+before+"&to="+after+"&n=2"), http.StatusOK, "1–2 of 3",
		"from="+url.QueryEscape(before), "to="+url.QueryEscape(after))
	wantStatus(t, "a bad time", v.get("/ui/jobs?from=yesterday"), http.StatusBadRequest, "Bad time")
}
