package web

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestAuthorOnJobPage: the job page says who submitted the job and who
// canceled, reprioritised or archived it, as the dashboard user who did
// it; a job submitted without an author says so.
func TestAuthorOnJobPage(t *testing.T) {
	e := newEnv(t, 1, Config{})
	run := e.submit(`{"OP_ID":"OP_TEST_STEPS","name":"r","steps":1}`)
	e.waitStatus(run, "running")
	queued := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	w := e.login("writer", "writerpw")
	page := func(id int64) string { return fmt.Sprintf("/ui/jobs/%d", id) }

	// e.submit has no author: the page says so, it does not make one up.
	wantStatus(t, "no author", w.get(page(queued)), http.StatusOK, `<dt>Submitted by</dt><dd class="author">–</dd>`)

	w.post(page(queued)+"/priority", url.Values{"priority": {"5"}})
	w.post(page(queued)+"/cancel", nil)
	e.waitStatus(queued, "canceled")
	wantStatus(t, "canceled by writer", w.get(page(queued)), http.StatusOK,
		`<dd class="job-action">Priority changed to 5 by jobq:dashboard writer</dd>`,
		`<dd class="job-action">Canceled by jobq:dashboard writer</dd>`)

	// Resubmitted by the dashboard user: its author.
	r := w.post(page(queued)+"/resubmit", nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("resubmit: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	wantStatus(t, "resubmitted job's author", w.get(loc), http.StatusOK,
		`<dd class="author">jobq:dashboard writer</dd>`)

	w.post(page(run)+"/cancel", url.Values{"kill": {"1"}})
	e.waitStatus(run, "canceled")
	w.post(page(run)+"/archive", nil)
	wantStatus(t, "killed and archived by writer", w.get(page(run)), http.StatusOK,
		`<dd class="job-action">Killed by jobq:dashboard writer</dd>`,
		`<dd class="job-action">Archived by jobq:dashboard writer</dd>`, "<dt>Archived</dt><dd>yes</dd>")
}

// TestDashboardAdminCalls: draining is an administrative call, for users
// with the admin option only; options that merely look like it do not
// count, nor does write.
func TestDashboardAdminCalls(t *testing.T) {
	e := newEnv(t, 1, Config{})
	for _, u := range [][2]string{{"writer", "writerpw"}, {"near", "nearpw"}} {
		c := e.login(u[0], u[1])
		wantStatus(t, u[0]+" drains", c.post("/ui/drain", url.Values{"drain": {"1"}}), http.StatusForbidden, "administrative call")
		if e.q.Drained() {
			t.Fatalf("%s drained the queue", u[0])
		}
	}
	a := e.login("admin", "adminpw")
	if r := a.post("/ui/drain", url.Values{"drain": {"1"}}); r.status != http.StatusSeeOther || !e.q.Drained() {
		t.Fatalf("admin drains: %d drained=%v", r.status, e.q.Drained())
	}
	a.post("/ui/drain", url.Values{"drain": {"0"}})
	// A resubmission of an administrative opcode is the admin's only.
	id := e.submit(`{"OP_ID":"OP_RESTRICTED_COMMAND","command":"nothing","nodes":[]}`)
	e.waitStatus(id, "error", "success", "canceled")
	w := e.login("writer", "writerpw")
	r := w.post(fmt.Sprintf("/ui/jobs/%d/resubmit", id), nil)
	wantStatus(t, "writer's resubmission refused", w.get(r.header.Get("Location")), http.StatusOK, "was not resubmitted", "administrative call")
}
