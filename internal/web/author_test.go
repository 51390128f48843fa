package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/queue"
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
		`<dd class="author">jobq:dashboard writer <a class="author-jobs" href="/ui/jobs?author=jobq%3adashboard%20writer">`)

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

// submitBy submits a job of one opcode as who.
func (e *env) submitBy(who author.Actor, op string) int64 {
	e.t.Helper()
	res, err := e.q.SubmitWith([][]json.RawMessage{{json.RawMessage(op)}}, queue.SubmitOptions{Author: who})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		e.t.Fatalf("submit as %v: %v %+v", who, err, res)
	}
	return res[0].ID
}

func TestAuthorMatch(t *testing.T) {
	rapiAlice := author.RAPIUser("alice").String()
	luxiAlice := author.LUXIUser(1000, "alice").String()
	luxiUID := author.LUXIUser(1001, "").String()
	dash := author.DashboardUser("bob").String()
	sched := author.Schedule("nightly", "node1").String()
	node := author.Node("node2").String()
	spaced := author.RAPIUser("ann lee").String()
	for _, tc := range []struct {
		want  string
		match []string
	}{
		{"alice", []string{rapiAlice, luxiAlice}},           // a user name, any source
		{"uid=1000", []string{luxiAlice}},                   // a LUXI uid
		{"uid=1000(alice)", []string{luxiAlice}},            // who, whole
		{"uid=1001", []string{luxiUID}},                     // a uid without a name
		{"jobq:luxi", []string{luxiAlice, luxiUID}},         // a source
		{"jobq:luxi uid=100", []string{luxiAlice, luxiUID}}, // the start of an author
		{"jobq:rapi alice", []string{rapiAlice}},            // an author, whole
		{"jobq:schedule:", []string{sched}},                 // every schedule
		{"node1", []string{sched}},                          // the node a schedule fired on
		{"node2", []string{node}},                           // a node
		{"bob", []string{dash}},                             //
		{"ann lee", []string{spaced}},                       // who with a space
		{"ali", nil},                                        // near misses: the start of a name
		{"Alice", nil},                                      // another case
		{"lice", nil},                                       // the end of a name
		{"uid=100", nil},                                    // the start of a uid
		{"(alice)", nil},                                    //
		{"rapi alice", nil},                                 // the middle of an author
		{"jobq:rapi alice ", nil},                           // more than the author
		{"jobq:rapi alice bob", nil},                        //
	} {
		var got []string
		for _, a := range []string{rapiAlice, luxiAlice, luxiUID, dash, sched, node, spaced, ""} {
			if authorMatch(a, tc.want) {
				got = append(got, a)
			}
		}
		if !slices.Equal(got, tc.match) {
			t.Errorf("author=%q matches %q, want %q", tc.want, got, tc.match)
		}
	}
	if authorMatch("", "") || authorMatch(rapiAlice, "") {
		t.Error("an empty author or search matches")
	}
}

// TestSearchByAuthor: the job list selects the jobs of an author (a user
// name, a uid, the start of an author), with the other filters; each row
// names its author and links to that author's jobs; the pager keeps the
// author; a hostile author name stays text; a bad one is refused with why.
func TestSearchByAuthor(t *testing.T) {
	e := newEnv(t, 1, Config{})
	const delay = `{"OP_ID":"OP_TEST_DELAY","duration":0.001}`
	rapi := e.submitBy(author.RAPIUser("alice"), delay)
	luxi := e.submitBy(author.LUXIUser(1000, "alice"), `{"OP_ID":"OP_TEST_JQUEUE","fail":true}`)
	dash := e.submitBy(author.DashboardUser("bob"), delay)
	hostile := e.submitBy(author.RAPIUser(xssScript), delay)
	none := e.submit(delay)
	for _, id := range []int64{rapi, luxi, dash, hostile, none} {
		e.waitStatus(id, "success", "error")
	}
	all := []int64{rapi, luxi, dash, hostile, none}
	v := e.login("viewer", "viewerpw")
	for _, tc := range []struct {
		query string
		want  []int64
		count string
	}{
		{"author=alice", []int64{rapi, luxi}, `1–2 of 2 live jobs submitted by &#34;alice&#34;`},
		{"author=+alice+", []int64{rapi, luxi}, "1–2 of 2"}, // spaces around are dropped
		{"author=uid%3D1000", []int64{luxi}, "1–1 of 1"},
		{"author=jobq%3Arapi", []int64{rapi, hostile}, "1–2 of 2"},
		{"author=alice&status=error", []int64{luxi}, `1–1 of 1 error jobs submitted by &#34;alice&#34;`},
		{"author=alice&op=OP_TEST_DELAY", []int64{rapi}, "1–1 of 1"},
		{"author=ali", nil, `No live jobs submitted by &#34;ali&#34;.`}, // no prefix of a name
		{"author=" + url.QueryEscape(xssScript), []int64{hostile}, "1–1 of 1 live jobs submitted by &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;"},
		{"author=", all, "1–5 of 5 live jobs, newest first"},
	} {
		r := v.get("/ui/jobs?" + tc.query)
		wantStatus(t, tc.query, r, http.StatusOK, tc.count)
		noRawHTML(t, tc.query, r.body)
		for _, id := range all {
			shown := strings.Contains(r.body, fmt.Sprintf(`<a href="/ui/jobs/%d">Job %d</a>`, id, id))
			if want := slices.Contains(tc.want, id); shown != want {
				t.Errorf("%s: job %d shown %v, want %v", tc.query, id, shown, want)
			}
		}
	}
	// Each row names its author, linked to the author's jobs; the hostile
	// one as text; a job without an author says so.
	r := v.get("/ui/jobs")
	wantStatus(t, "authors in the list", r, http.StatusOK,
		`<td data-label="Author" class="author"><a href="/ui/jobs?author=jobq%3arapi%20alice" title="The jobs of jobq:rapi alice">jobq:rapi alice</a></td>`,
		`>jobq:luxi uid=1000(alice)</a></td>`,
		`>jobq:rapi &lt;script&gt;alert(1)&lt;/script&gt;</a></td>`,
		`<td data-label="Author" class="author"><span class="muted">–</span></td>`)
	noRawHTML(t, "the list", r.body)
	// The link finds the author's jobs.
	wantStatus(t, "the list's link", v.get("/ui/jobs?author=jobq%3arapi%20alice"), http.StatusOK, "1–1 of 1")
	wantStatus(t, "the job page's link", v.get(fmt.Sprintf("/ui/jobs/%d", hostile)), http.StatusOK,
		`<dd class="author">jobq:rapi &lt;script&gt;alert(1)&lt;/script&gt; <a class="author-jobs" href="/ui/jobs?author=jobq%3arapi%20%3cscript%3ealert%281%29%3c%2fscript%3e">`)
	// The form shows the author searched for; the pager keeps it.
	wantStatus(t, "the pager keeps the author", v.get("/ui/jobs?author=alice&n=1"), http.StatusOK,
		`<input id="f-author" name="author" type="text" maxlength="200" value="alice"`,
		fmt.Sprintf(`href="/ui/jobs?author=alice&amp;before=%d&amp;n=1" rel="next"`, luxi))
	// Refusals say what an author is.
	for _, bad := range []string{"alice%01", "a%0Ab", strings.Repeat("a", maxAuthorSearch+1), "%ff"} {
		r := v.get("/ui/jobs?author=" + bad)
		wantStatus(t, "author="+bad, r, http.StatusBadRequest, "Bad author", "a user name such as alice, a uid such as uid=1000")
	}
	wantStatus(t, "the longest author", v.get("/ui/jobs?author="+strings.Repeat("a", maxAuthorSearch)), http.StatusOK, "No live jobs submitted by")
}
