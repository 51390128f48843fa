package queue

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/jobq-dev/jobq/internal/filter"
	"github.com/jobq-dev/jobq/internal/job"
)

// The scheduler with filter rules and rate limits, against the decision
// function: after every submission and every job end, (1) no RATE_LIMIT
// rule and no ad hoc bucket has more running jobs than its limit, (2) a
// queued job is paused only if a rule pauses it, rate-limited only if its
// limit is full, and waits in the ready heap only while every worker is
// busy, (3) a job a REJECT rule matches is canceled without having
// started; and once the rules are removed, every job that was not
// rejected runs.
func TestPropertySchedulerKeepsTheRules(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var rules []filter.Rule
		for i := range rapid.IntRange(0, 4).Draw(rt, "nrules") {
			var preds any
			var action any
			switch rapid.IntRange(0, 3).Draw(rt, "kind") {
			case 0:
				preds, action = []any{[]any{"opcode", []any{"=~", "name", "^p"}}}, "PAUSE"
			case 1:
				preds, action = []any{[]any{"opcode", []any{"=~", "name", "^r"}}}, "REJECT"
			case 2:
				preds, action = []any{[]any{"opcode", []any{"=~", "name", "^l"}}}, []any{"RATE_LIMIT", int64(rapid.IntRange(1, 2).Draw(rt, "n"))}
			case 3:
				preds, action = []any{[]any{"reason", []any{"=~", "reason", "vip"}}}, "ACCEPT"
			}
			r, err := filter.NewRule(filter.Input{Priority: rapid.IntRange(0, 2).Draw(rt, "prio"), Predicates: preds, Action: action}, 0)
			if err != nil {
				rt.Fatal(err)
			}
			r.UUID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			rules = append(rules, r)
		}
		set, err := filter.Compile(rules)
		if err != nil {
			rt.Fatal(err)
		}
		h := newHarnessConfig(t, t.TempDir(), Config{MaxRunning: rapid.IntRange(1, 4).Draw(rt, "max"), Filters: set})
		defer h.close()
		names := map[int64]string{}
		for i := range rapid.IntRange(1, 8).Draw(rt, "njobs") {
			name := fmt.Sprintf("%s%d", rapid.SampledFrom([]string{"p", "r", "l", "x"}).Draw(rt, "prefix"), i)
			reason := rapid.SampledFrom([]string{"", "vip", "rate-limit:1:b", "rate-limit:2:c"}).Draw(rt, "reason")
			in := map[string]any{"OP_ID": "OP_TEST_GATE", "name": name}
			if reason != "" {
				in["reason"] = []any{[]any{"gnt:user", reason, 1}}
			}
			b, _ := json.Marshal(in)
			names[h.submit(b)] = name
		}
		checkScheduler(rt, h, set)
		// End running jobs one at a time.
		for range rapid.IntRange(0, 8).Draw(rt, "ends") {
			var running []int64
			h.q.mu.Lock()
			for id := range names {
				if e := h.q.jobs[id]; e != nil && e.owned {
					running = append(running, id)
				}
			}
			h.q.mu.Unlock()
			if len(running) == 0 {
				break
			}
			id := rapid.SampledFrom(running).Draw(rt, "end")
			_, r := h.g.get(names[id])
			close(r)
			h.waitFinal(id)
			waitLeftWorker(rt, h, id)
			delete(names, id)
			checkScheduler(rt, h, set)
		}
		// Without rules every job that is left runs. (A rejected job is
		// canceled in the working state at once, shown once stored.)
		h.q.SetFilters(nil)
		rejected := map[int64]bool{}
		h.q.mu.Lock()
		for id := range names {
			rejected[id] = h.q.jobs[id].job.CalcStatus() == job.StatusCanceled
		}
		h.q.mu.Unlock()
		for id, name := range names {
			if !rejected[id] {
				_, r := h.g.get(name)
				close(r)
			}
		}
		for id, name := range names {
			if rejected[id] {
				if st := h.waitFinal(id); st != job.StatusCanceled {
					rt.Fatalf("rejected job %d (%s) ended %s", id, name, st)
				}
				continue
			}
			if st := h.waitFinal(id); st != job.StatusSuccess {
				rt.Fatalf("job %d (%s) ended %s once the rules were gone", id, name, st)
			}
		}
	})
}

// waitLeftWorker waits until job id's worker has let it go (the job is
// final before its worker's slot is free).
func waitLeftWorker(t *rapid.T, h *harness, id int64) {
	deadline := time.Now().Add(waitTimeout)
	for {
		h.q.mu.Lock()
		_, tracked := h.q.flt.running[h.q.jobs[id]]
		owned := h.q.jobs[id].owned
		h.q.mu.Unlock()
		if !owned && !tracked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still holds its worker after %s", id, waitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func checkScheduler(t *rapid.T, h *harness, set *filter.Set) {
	q := h.q
	q.mu.Lock()
	defer q.mu.Unlock()
	var running []*filter.Job
	for _, e := range q.jobs {
		if e.owned {
			running = append(running, q.viewLocked(e))
		}
	}
	if len(running) != q.running {
		t.Fatalf("%d jobs in workers, the queue counts %d", len(running), q.running)
	}
	for k, r := range set.Rules() {
		if r.Action.Kind != filter.RateLimit {
			continue
		}
		n := 0
		for _, j := range running {
			if set.Applying(j) == k {
				n++
			}
		}
		if int64(n) > r.Action.N {
			t.Fatalf("rule %s RATE_LIMIT %d: %d jobs run", r.UUID, r.Action.N, n)
		}
	}
	for _, label := range []string{"rate-limit:1:b", "rate-limit:2:c"} {
		lim, _ := filter.BucketLimit(label)
		n := 0
		for _, e := range q.jobs {
			if e.owned {
				for _, op := range e.job.Ops {
					if json.Valid(op.Input) && containsReason(op.Input, label) {
						n++
						break
					}
				}
			}
		}
		if int64(n) > lim {
			t.Fatalf("bucket %s: %d jobs run", label, n)
		}
	}
	for id, e := range q.jobs {
		v := q.viewLocked(e)
		d := set.Decide(v, nil)
		if d.Verdict == filter.Rejected {
			if !e.job.Final() || e.job.CalcStatus() != job.StatusCanceled || e.job.StartTimestamp != nil {
				t.Fatalf("job %d matches a REJECT rule but is %s (start %v)", id, e.job.CalcStatus(), e.job.StartTimestamp)
			}
			continue
		}
		if e.owned || e.job.CalcStatus() != job.StatusQueued {
			continue // in a worker (queued until it takes its opcode), or not queued
		}
		_, paused := q.flt.paused[e]
		_, limited := q.flt.limited[e]
		switch {
		case paused:
			if d.Verdict != filter.Paused {
				t.Fatalf("job %d is paused, but the rules say %v", id, d.Verdict)
			}
		case limited:
			if dr := set.Decide(v, running); dr.Verdict != filter.Limited {
				t.Fatalf("job %d is rate-limited, but the rules say %v", id, dr.Verdict)
			}
		case e.heapIdx >= 0:
			if q.running < q.cfg.MaxRunning {
				t.Fatalf("job %d waits in the ready heap with %d of %d workers busy", id, q.running, q.cfg.MaxRunning)
			}
		default:
			t.Fatalf("queued job %d is neither ready, paused, nor rate-limited", id)
		}
	}
}

func containsReason(input json.RawMessage, text string) bool {
	var v struct {
		Reason [][]any `json:"reason"`
	}
	if json.Unmarshal(input, &v) != nil {
		return false
	}
	for _, r := range v.Reason {
		if len(r) == 3 && r[1] == text {
			return true
		}
	}
	return false
}
