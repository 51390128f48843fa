package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/schedule"
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

// The schedules page lists each schedule with when it fires next.
func TestSchedulesPage(t *testing.T) {
	e := newEnv(t, 2, Config{})
	v := e.login("viewer", "viewerpw")
	wantStatus(t, "no schedule", v.get("/ui/schedules"), http.StatusOK, "<h1>Schedules</h1>", "No schedule.",
		`href="/ui/schedules" aria-current="page">Schedules</a>`)
	e.q.SetSchedules([]schedule.Spec{
		{Name: "nightly", Cron: "0 3 * * *", TZ: "Europe/Zurich", Ops: []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":1}`)},
			Concurrency: schedule.Forbid, CatchUp: schedule.CatchOnce, Created: schedule.Seconds(time.Now())},
	}, nil)
	next := e.q.Schedules()[0].Next
	if next.IsZero() || !next.After(time.Now()) || next.In(time.FixedZone("", 0)).Minute() != 0 {
		t.Fatalf("the schedule's next fire time %v", next)
	}
	wantStatus(t, "a schedule", v.get("/ui/schedules"), http.StatusOK,
		"<code>nightly</code>", "cron 0 3 * * * (Europe/Zurich)", "concurrency forbid, catch-up once",
		fmt.Sprintf(`<time datetime="%s"`, next.UTC().Format(time.RFC3339Nano)),
		`<code>{&#34;OP_ID&#34;:&#34;OP_TEST_DELAY&#34;,&#34;duration&#34;:1}</code>`)
}
