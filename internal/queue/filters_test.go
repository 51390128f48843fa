package queue

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/filter"
	"github.com/jobq-dev/jobq/internal/job"
)

// rules compiles filter rules given as "ACTION PREDICATES-JSON" lines.
func rules(t *testing.T, lines ...string) *filter.Set {
	t.Helper()
	var rs []filter.Rule
	for i, l := range lines {
		action, preds, _ := strings.Cut(l, " ")
		var p any
		if err := json.Unmarshal([]byte(preds), &p); err != nil {
			t.Fatalf("predicates %s: %v", preds, err)
		}
		var a any = action
		if n, ok := strings.CutPrefix(action, "RATE_LIMIT:"); ok {
			a = "RATE_LIMIT " + n
		}
		r, err := filter.NewRule(filter.Input{Priority: i, Predicates: p, Action: a}, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.UUID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		rs = append(rs, r)
	}
	s, err := filter.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) status(id int64) job.Status {
	h.t.Helper()
	return job.Status(h.fields(id, "status")[0].(string))
}

// stays checks that the job is still queued once the jobs submitted after
// it (which the scheduler looks at later) have started.
func (h *harness) staysQueued(id int64, after ...string) {
	h.t.Helper()
	for _, name := range after {
		s, _ := h.g.get(name)
		await(h.t, s, "job "+name+" to start")
	}
	if st := h.status(id); st != job.StatusQueued {
		h.t.Fatalf("job %d is %s, want queued", id, st)
	}
}

func gateReason(name, reason string) json.RawMessage {
	return op(fmt.Sprintf(`{"OP_ID":"OP_TEST_GATE","name":%q,"reason":[["gnt:user",%q,1]]}`, name, reason))
}

func TestFilterPauseHoldsUntilRemoved(t *testing.T) {
	h := newHarness(t, t.TempDir(), 5)
	h.q.SetFilters(rules(t, `PAUSE [["opcode", ["=", "name", "p"]]]`))
	p := h.submit(gate("p"))
	other := h.submit(gate("x"))
	h.staysQueued(p, "x")
	// A rule change that still pauses it keeps it.
	h.q.SetFilters(rules(t, `CONTINUE []`, `PAUSE [["jobid", ["==", "id", 1]]]`))
	if st := h.status(p); st != job.StatusQueued {
		t.Fatalf("paused job is %s", st)
	}
	h.q.SetFilters(nil)
	s, r := h.g.get("p")
	await(t, s, "the paused job to start once its rule is gone")
	close(r)
	_, r = h.g.get("x")
	close(r)
	if st := h.waitFinal(p); st != job.StatusSuccess {
		t.Fatal(st)
	}
	h.waitFinal(other)
}

func TestFilterRejectCancelsQueuedAndNewJobs(t *testing.T) {
	h := newHarness(t, t.TempDir(), 1)
	blocker := h.submit(gate("block"))
	started, release := h.g.get("block")
	await(t, started, "blocker started")
	queued := h.submit(gate("q1"))
	keep := h.submit(gate("keep"))
	// Added after q1 was queued: it cancels q1, not the running blocker.
	h.q.SetFilters(rules(t, `REJECT [["opcode", ["=~", "name", "^q"]]]`))
	if st := h.waitFinal(queued); st != job.StatusCanceled {
		t.Fatalf("queued job matching REJECT: %s", st)
	}
	j := h.fileJob(queued)
	if j.StartTimestamp != nil || j.EndTimestamp == nil || j.Ops[0].Status != job.StatusCanceled {
		t.Fatalf("rejected job on disk: %+v", j)
	}
	later := h.submit(gate("q2"))
	if st := h.waitFinal(later); st != job.StatusCanceled {
		t.Fatalf("new job matching REJECT: %s", st)
	}
	if st := h.status(blocker); st != job.StatusRunning {
		t.Fatalf("running job: %s", st)
	}
	close(release)
	s, r := h.g.get("keep")
	await(t, s, "the job no rule matches")
	close(r)
	h.waitFinal(keep)
}

func TestFilterRateLimit(t *testing.T) {
	h := newHarness(t, t.TempDir(), 10)
	h.q.SetFilters(rules(t, `RATE_LIMIT:2 [["opcode", ["=", "OP_ID", "OP_TEST_GATE"]], ["opcode", ["!", ["=", "name", "free"]]]]`))
	a, b, c := h.submit(gate("a")), h.submit(gate("b")), h.submit(gate("c"))
	free := h.submit(gate("free"))
	h.staysQueued(c, "a", "b", "free")
	// The limit holds when the rules are set again.
	h.q.SetFilters(rules(t, `RATE_LIMIT:2 [["opcode", ["=", "OP_ID", "OP_TEST_GATE"]], ["opcode", ["!", ["=", "name", "free"]]]]`))
	time.Sleep(10 * time.Millisecond)
	if st := h.status(c); st != job.StatusQueued {
		t.Fatalf("third limited job is %s", st)
	}
	_, ra := h.g.get("a")
	close(ra)
	h.waitFinal(a)
	sc, rc := h.g.get("c")
	await(t, sc, "the limited job to start when one of the two ends")
	for _, n := range []string{"b", "free"} {
		_, r := h.g.get(n)
		close(r)
	}
	close(rc)
	for _, id := range []int64{b, c, free} {
		h.waitFinal(id)
	}
}

// Ganeti's ad hoc limit: gnt-debug delay --reason=rate-limit:1:mylabel
// twice, the second stays queued while the first runs.
func TestAdHocRateLimit(t *testing.T) {
	h := newHarness(t, t.TempDir(), 10)
	first := h.submit(gateReason("first", "rate-limit:1:mylabel"))
	second := h.submit(gateReason("second", "rate-limit:1:mylabel"))
	other := h.submit(gateReason("other", "rate-limit:2:mylabel"))
	h.staysQueued(second, "first", "other")
	_, r := h.g.get("first")
	close(r)
	h.waitFinal(first)
	s, r2 := h.g.get("second")
	await(t, s, "the second job of the bucket to start")
	close(r2)
	_, r3 := h.g.get("other")
	close(r3)
	h.waitFinal(second)
	h.waitFinal(other)
}

// Rules given at the start apply to the jobs the queue loads: a REJECT
// cancels those queued before a restart.
func TestFiltersAtOpen(t *testing.T) {
	dir := t.TempDir()
	h := newHarnessConfig(t, dir, Config{MaxRunning: 2, Filters: rules(t, `PAUSE []`)})
	id := h.submit(gate("a"))
	time.Sleep(10 * time.Millisecond)
	if st := h.status(id); st != job.StatusQueued {
		t.Fatalf("paused job is %s", st)
	}
	h.close()
	h = newHarnessConfig(t, dir, Config{MaxRunning: 2, Filters: rules(t, fmt.Sprintf(`REJECT [["jobid", ["==", "id", %d]]]`, id))})
	if st := h.waitFinal(id); st != job.StatusCanceled {
		t.Fatalf("job queued before the restart: %s", st)
	}
}

// BenchmarkSubmitToSuccessFilters is BenchmarkSubmitToSuccess with 100
// filter rules, none of which applies to the jobs (each is evaluated for
// every job the scheduler takes).
func BenchmarkSubmitToSuccessFilters(b *testing.B) {
	var rules []filter.Rule
	for i := range 100 {
		var preds any
		switch i % 3 {
		case 0:
			preds = []any{[]any{"opcode", []any{"=", "OP_ID", fmt.Sprintf("OP_OTHER_%d", i)}}}
		case 1:
			preds = []any{[]any{"reason", []any{"=~", "reason", fmt.Sprintf("maintenance %d", i)}}}
		default:
			preds = []any{[]any{"jobid", []any{"<", "id", "watermark"}}}
		}
		r, err := filter.NewRule(filter.Input{Priority: i % 7, Predicates: preds, Action: []string{"PAUSE", "REJECT", "RATE_LIMIT 5"}[i%3]}, 0)
		if err != nil {
			b.Fatal(err)
		}
		r.UUID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		rules = append(rules, r)
	}
	set, err := filter.Compile(rules)
	if err != nil {
		b.Fatal(err)
	}
	benchSubmitToSuccess(b, set)
}

// A job parked until its dependency ends is in the queue: a REJECT rule
// added meanwhile cancels it at once.
func TestFilterRejectCancelsParkedJobs(t *testing.T) {
	h := newHarness(t, t.TempDir(), 2)
	first := h.submit(gate("first"))
	s, r := h.g.get("first")
	await(t, s, "the first job to run")
	dep := h.submit(op(fmt.Sprintf(`{"OP_ID":"OP_TEST_GATE","name":"dep","depends":[[%d,[]]]}`, first)))
	h.waitStatus(dep, job.StatusWaiting)
	h.q.SetFilters(rules(t, `REJECT [["opcode", ["=", "name", "dep"]]]`))
	if st := h.waitFinal(dep); st != job.StatusCanceled {
		t.Fatalf("parked job matching REJECT: %s", st)
	}
	if st := h.status(first); st != job.StatusRunning {
		t.Fatalf("its dependency: %s", st)
	}
	close(r)
	h.waitFinal(first)
}

// A job that no rule holds, whatever runs, starts at submission as
// without rules (its first durable state says running); one a RATE_LIMIT
// rule or an ad hoc bucket counts goes through the scheduler.
func TestFilteredJobsStartAtSubmission(t *testing.T) {
	h := newHarness(t, t.TempDir(), 5)
	h.q.SetFilters(rules(t, `PAUSE [["opcode", ["=", "name", "other"]]]`, `RATE_LIMIT:3 [["opcode", ["=~", "name", "^l"]]]`))
	for _, tc := range []struct {
		in   json.RawMessage
		hold bool
	}{
		{gate("free"), false},
		{gate("other"), true},
		{gate("limited"), true},
		{gateReason("bucket", "rate-limit:4:x"), true},
		{gateReason("reason", "maintenance"), false},
	} {
		j, err := job.New(1, []json.RawMessage{tc.in}, job.Timestamp{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.q.mu.Lock()
		got := h.q.mayHoldLocked(h.q.newEntry(j, nil))
		h.q.mu.Unlock()
		if got != tc.hold {
			t.Errorf("%s: held back from the start at submission: %v, want %v", tc.in, got, tc.hold)
		}
	}
}

// A PAUSE rule holds queued jobs only: a job already running goes on to
// its next opcodes, as in Ganeti 3.0.2. design-optables.rst says the next
// opcode of a running job "will not be started", but Ganeti never built
// that: luxid's scheduler applies the rules when it picks queued jobs to
// run (JQScheduler's jobFiltering over the queued jobs only), and the job
// process that runs the opcodes (jqueue) does not read the rules.
func TestFilterPauseLetsRunningJobFinish(t *testing.T) {
	h := newHarness(t, t.TempDir(), 5)
	id := h.submit(gate("r1"), gate("r2"))
	s1, r1 := h.g.get("r1")
	await(t, s1, "the job's first opcode to start")
	h.q.SetFilters(rules(t, `PAUSE [["jobid", [">=", "id", 0]]]`))
	queued := h.submit(gate("q"))
	close(r1)
	s2, r2 := h.g.get("r2")
	await(t, s2, "the running job's second opcode to start under the PAUSE rule")
	close(r2)
	if st := h.waitFinal(id); st != job.StatusSuccess {
		t.Fatalf("running job under PAUSE: %s", st)
	}
	if st := h.status(queued); st != job.StatusQueued {
		t.Fatalf("job submitted under PAUSE: %s, want queued", st)
	}
	h.q.SetFilters(nil)
	s, r := h.g.get("q")
	await(t, s, "the paused job to start once its rule is gone")
	close(r)
	h.waitFinal(queued)
}
