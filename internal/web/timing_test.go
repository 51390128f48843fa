package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
)

// A delayed job shows when it starts: on its page and in the job list.
func TestDelayedJobShown(t *testing.T) {
	e := newEnv(t, 2, Config{})
	nb := job.TS(time.Now().Add(2*time.Hour + 30*time.Minute).Truncate(time.Second))
	res, err := e.q.SubmitTimed([][]json.RawMessage{{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":1}`)}}, false, job.Timing{NotBefore: &nb})
	if err != nil || res[0].Err != nil {
		t.Fatalf("submit: %v %v", err, res)
	}
	id := res[0].ID
	plain := e.submit(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	e.waitStatus(plain, "success")
	text := nb.Time().UTC().Format("2006-01-02 15:04:05 UTC")
	a := e.login("admin", "adminpw")
	r := a.get(fmt.Sprintf("/ui/jobs/%d", id))
	wantStatus(t, "delayed job", r, http.StatusOK,
		`status-queued" data-bind="status">queued</span></h1>`,
		fmt.Sprintf(`<dt>Not before</dt><dd class="not-before"><time datetime="%s">%s</time> (in 2 h)</dd>`,
			nb.Time().UTC().Format(time.RFC3339Nano), text),
		fmt.Sprintf(`href="/ui/jobs/%d/cancel">Cancel job…</a>`, id))
	r = a.get(fmt.Sprintf("/ui/jobs/%d", plain))
	if strings.Contains(r.body, "Not before") {
		t.Fatalf("a job without a not-before time shows one")
	}
	r = a.get("/ui/jobs")
	wantStatus(t, "job list", r, http.StatusOK,
		fmt.Sprintf(`<span class="muted not-before">starts <time datetime="%s" title="%s">in 2 h</time></span>`,
			nb.Time().UTC().Format(time.RFC3339Nano), text))
	if n := strings.Count(r.body, "not-before"); n != 1 {
		t.Fatalf("the job list shows %d not-before times, want 1 (the delayed job's)", n)
	}
}

func TestUntil(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "1 s", 30 * time.Second: "31 s", 5 * time.Minute: "5 min", 3 * time.Hour: "3 h", 72 * time.Hour: "3 days",
	} {
		if got := until(d); got != want {
			t.Errorf("until(%s) = %q, want %q", d, got, want)
		}
	}
}
