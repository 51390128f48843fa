package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Hostile text a client can put into a job: opcode parameters, log
// messages, an unknown OP_ID (which ends up in the error result).
const (
	xssScript = `<script>alert(1)</script>`
	xssImg    = `</pre><img src=x onerror=alert(1)>`
)

// noRawHTML fails when what a page or stream sent holds the hostile text
// as markup.
func noRawHTML(t *testing.T, what, body string) {
	t.Helper()
	for _, bad := range []string{"<script>alert", "<img", "</pre><", "onerror=alert(1)>"} {
		if strings.Contains(strings.ToLower(body), bad) {
			i := strings.Index(strings.ToLower(body), bad)
			t.Errorf("%s holds %q as markup: ...%s...", what, bad, body[max(0, i-80):min(len(body), i+80)])
		}
	}
}

// TestHostileTextIsEscaped (issue 16, finding 10): job input rendered as
// raw HTML with only '"' escaped passed every test. <script> and
// </pre><img onerror=...> go through the job page, the job list and the
// event stream as text: escaped in HTML, as text in the stream's JSON
// (which the page puts in with textContent).
func TestHostileTextIsEscaped(t *testing.T) {
	e := newEnv(t, 2, Config{})
	input, _ := json.Marshal(map[string]any{"OP_ID": "OP_TEST_STEPS", "name": xssScript, "steps": 1, "comment": xssImg})
	logs, _ := json.Marshal(map[string]any{"OP_ID": "OP_TEST_JQUEUE", "log_messages": []string{xssScript, xssImg}})
	unknown, _ := json.Marshal(map[string]any{"OP_ID": "OP_" + xssImg})
	id := e.submit(string(input), string(logs), string(unknown))
	e.waitStatus(id, "running")
	a := e.login("admin", "adminpw")

	// The stream, while the job runs: its first log line, then the rest.
	s := a.events(context.Background(), fmt.Sprintf("/ui/jobs/%d/events", id), "")
	defer s.resp.Body.Close()
	var raw strings.Builder
	var messages []string
	for {
		ev := s.next()
		raw.WriteString(ev.data + "\n")
		if ev.name == "end" {
			break
		}
		if ev.name == "log" {
			var l logView
			if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
				t.Fatal(err)
			}
			messages = append(messages, l.Message)
			if l.Message == "step 0" {
				e.steps.release(xssScript)
			}
		}
	}
	noRawHTML(t, "the event stream", raw.String())
	found := 0
	for _, m := range messages {
		if strings.HasSuffix(m, xssScript) || strings.HasSuffix(m, xssImg) {
			found++
		}
	}
	if found != 2 {
		t.Errorf("log lines in the stream %q, want the two hostile ones as text, as they were logged", messages)
	}
	e.waitStatus(id, "error")

	jobPage := a.get(fmt.Sprintf("/ui/jobs/%d", id))
	wantStatus(t, "job page", jobPage, 200, "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;")
	noRawHTML(t, "the job page", jobPage.body)
	list := a.get("/ui/jobs")
	wantStatus(t, "job list", list, 200, "&lt;script&gt;alert(1)&lt;/script&gt;")
	noRawHTML(t, "the job list", list.body)
	noRawHTML(t, "the overview", a.get("/ui/").body)

	// The stored JSON escapes < and > (\u003c), but a queue may hold
	// files Ganeti's Python wrote, which do not: the job page renders
	// such text as text too, in every place it shows job data.
	v := &jobView{ID: 7, Status: "error", Final: true, Summary: xssScript, Ops: []opView{{
		OpID: xssImg, Summary: xssScript, Status: "error", Input: xssImg, Result: xssScript,
		Logs: []logView{{Serial: 1, Type: xssScript, Message: xssImg}}}}}
	rec := httptest.NewRecorder()
	e.h.render(rec, httptest.NewRequest("GET", "/ui/jobs/7", nil), nil, 200, "job", &page{Title: "Job 7", Data: jobPageData{Job: v}})
	noRawHTML(t, "a job page of raw text", rec.Body.String())
	if !strings.Contains(rec.Body.String(), "&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the job page does not show the text escaped:\n%s", rec.Body)
	}

	// The page's script puts stream text in with textContent; the only
	// innerHTML it sets is copied from a page the server rendered.
	js, err := os.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`innerHTML\s*=\s*[^;]*`).FindAllString(string(js), -1) {
		if m != "innerHTML = fresh.innerHTML" {
			t.Errorf("app.js sets innerHTML from something else than a rendered page: %q", m)
		}
	}
	if n := strings.Count(string(js), "insertAdjacentHTML") + strings.Count(string(js), "document.write") + strings.Count(string(js), "outerHTML ="); n > 0 {
		t.Errorf("app.js writes HTML %d other ways", n)
	}
}
