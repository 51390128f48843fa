package queue

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
)

// These tests run in a synctest bubble: time.Sleep advances the bubble's
// fake clock (it waits for nothing real), and synctest.Wait returns once
// every goroutine of the queue is blocked, so what a test reads after it
// is what the engine did by that (fake) time.

func (h *harness) submitTimed(tm job.Timing, ops ...json.RawMessage) int64 {
	h.t.Helper()
	res, err := h.q.SubmitTimed([][]json.RawMessage{ops}, false, tm)
	if err != nil || res[0].Err != nil {
		h.t.Fatalf("submit: %v %v", err, res)
	}
	return res[0].ID
}

func at(t time.Time) *job.Timestamp {
	ts := job.TS(t)
	return &ts
}

func TestDelayedJobStaysQueuedUntilItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		start := time.Now()
		id := h.submitTimed(job.Timing{NotBefore: at(start.Add(3 * time.Second))}, gate("late"))
		now := h.submit(gate("now"))
		synctest.Wait()
		if st := h.status(now); st != job.StatusRunning {
			t.Fatalf("the job without a not-before time is %s, want running", st)
		}
		if st := h.status(id); st != job.StatusQueued {
			t.Fatalf("the delayed job is %s at once, want queued", st)
		}
		if n := h.q.Delayed(); n != 1 {
			t.Fatalf("Delayed() = %d, want 1", n)
		}
		time.Sleep(3*time.Second - time.Millisecond)
		synctest.Wait()
		if st := h.status(id); st != job.StatusQueued {
			t.Fatalf("the delayed job is %s 1ms before its time, want queued", st)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if st := h.status(id); st != job.StatusRunning {
			t.Fatalf("the delayed job is %s at its time, want running", st)
		}
		j := h.fileJob(id)
		if j.NotBefore == nil || *j.NotBefore != *at(start.Add(3 * time.Second)) {
			t.Fatalf("the job file's not_before is %v, want %v", j.NotBefore, at(start.Add(3*time.Second)))
		}
		if got := j.StartTimestamp.Time().Sub(start); got != 3*time.Second {
			t.Fatalf("the delayed job started %s after submission, want 3s", got)
		}
		for _, name := range []string{"late", "now"} {
			_, release := h.g.get(name)
			close(release)
		}
		h.waitFinal(id)
		h.waitFinal(now)
	})
}

func TestDelayedJobsReleasedInTimeOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 1)
		start := time.Now()
		// Submitted in an order other than their times; one worker.
		offsets := []int{5, 1, 3, 2, 4}
		ids := map[int]int64{}
		for _, s := range offsets {
			ids[s] = h.submitTimed(job.Timing{NotBefore: at(start.Add(time.Duration(s) * time.Second))},
				op(`{"OP_ID":"OP_TEST_DELAY","duration":0.01,"no_locks":true}`))
		}
		// Checked 100ms after each second: a job due then has run its
		// 10ms.
		time.Sleep(100 * time.Millisecond)
		for s := 1; s <= 5; s++ {
			time.Sleep(time.Second)
			synctest.Wait()
			for k := 1; k <= 5; k++ {
				st := h.status(ids[k])
				if k <= s && st != job.StatusSuccess {
					t.Fatalf("at +%ds the job due at +%ds is %s, want success", s, k, st)
				}
				if k > s && st != job.StatusQueued {
					t.Fatalf("at +%ds the job due at +%ds is %s, want queued", s, k, st)
				}
			}
		}
	})
}

func TestDelayedJobCancelAndPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		start := time.Now()
		a := h.submitTimed(job.Timing{NotBefore: at(start.Add(time.Minute))}, gate("a"))
		b := h.submitTimed(job.Timing{NotBefore: at(start.Add(time.Minute))}, gate("b"))
		synctest.Wait()
		ok, msg, err := h.q.ChangeJobPriority(b, -10)
		if err != nil || !ok {
			t.Fatalf("change priority of a delayed job: %v %q %v", ok, msg, err)
		}
		ok, msg, err = h.q.CancelJob(a, false)
		if err != nil || !ok {
			t.Fatalf("cancel a delayed job: %v %q %v", ok, msg, err)
		}
		if st := h.status(a); st != job.StatusCanceled {
			t.Fatalf("the canceled delayed job is %s", st)
		}
		if p := h.fields(b, "priority")[0]; p != float64(-10) {
			t.Fatalf("the delayed job's priority is %v, want -10", p)
		}
		if st := h.status(b); st != job.StatusQueued {
			t.Fatalf("the delayed job is %s after a priority change, want queued", st)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if st := h.status(a); st != job.StatusCanceled {
			t.Fatalf("the canceled delayed job is %s at its time, want canceled", st)
		}
		if st := h.status(b); st != job.StatusRunning {
			t.Fatalf("the delayed job is %s at its time, want running", st)
		}
		_, release := h.g.get("b")
		close(release)
		h.waitFinal(b)
	})
}

func TestDelayedJobSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := newHarness(t, dir, 4)
		start := time.Now()
		id := h.submitTimed(job.Timing{NotBefore: at(start.Add(10 * time.Second))},
			op(`{"OP_ID":"OP_TEST_DELAY","duration":0.01,"no_locks":true}`))
		time.Sleep(4 * time.Second)
		h.close()
		h = newHarness(t, dir, 4)
		synctest.Wait()
		if st := h.status(id); st != job.StatusQueued {
			t.Fatalf("the delayed job is %s after a restart before its time, want queued", st)
		}
		time.Sleep(6*time.Second + 100*time.Millisecond)
		synctest.Wait()
		if st := h.status(id); st != job.StatusSuccess {
			t.Fatalf("the delayed job is %s after a restart, at its time, want success", st)
		}
		// A job whose time passed while no queue ran starts at once.
		id2 := h.submitTimed(job.Timing{NotBefore: at(time.Now().Add(time.Second))},
			op(`{"OP_ID":"OP_TEST_DELAY","duration":0.01,"no_locks":true}`))
		h.close()
		time.Sleep(time.Hour)
		h = newHarness(t, dir, 4)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if st := h.status(id2); st != job.StatusSuccess {
			t.Fatalf("the job due while the queue was down is %s after the start, want success", st)
		}
	})
}

func TestSubmitTimedRefusesBadTiming(t *testing.T) {
	h := newHarness(t, t.TempDir(), 1)
	_, err := h.q.SubmitTimed([][]json.RawMessage{{gate("x")}}, false, job.Timing{Timeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "give a positive duration") {
		t.Fatalf("a negative time limit: err = %v, want a refusal saying what to give", err)
	}
	if n := len(h.q.Counts()); n != 0 {
		t.Fatalf("a refused submission left jobs: %v", h.q.Counts())
	}
}

func TestOpcodeTimeLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		timing job.Timing
		after  time.Duration
		want   string
	}{
		{"opcode", job.Timing{OpTimeout: 5 * time.Second}, 5 * time.Second,
			"Opcode timed out: it ran longer than its time limit of 5s"},
		{"job", job.Timing{Timeout: 7 * time.Second, OpTimeout: time.Hour}, 7 * time.Second,
			"Job timed out: it ran longer than its time limit of 7s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, t.TempDir(), 4)
				id := h.submitTimed(tc.timing, gate("slow"), gate("never"))
				started, _ := h.g.get("slow")
				<-started // the opcode runs (synctest would report a deadlock otherwise)
				time.Sleep(tc.after - time.Millisecond)
				synctest.Wait()
				if st := h.status(id); st != job.StatusRunning {
					t.Fatalf("the job is %s just before its limit, want running", st)
				}
				time.Sleep(time.Millisecond)
				synctest.Wait()
				v := h.fields(id, "status", "opstatus", "opresult")
				want := fmt.Sprintf(`["error",["error","error"],[["OpExecError",[%q]],["OpExecError",["Preceding opcode failed"]]]]`, tc.want)
				got, _ := json.Marshal(v)
				if string(got) != want {
					t.Fatalf("after its limit the job is\n%s\nwant\n%s", got, want)
				}
				if j := h.fileJob(id); j.CalcStatus() != job.StatusError {
					t.Fatalf("the job file says %s, want error", j.CalcStatus())
				}
			})
		})
	}
}

func TestOpcodeWithinLimitSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		id := h.submitTimed(job.Timing{OpTimeout: 5 * time.Second, Timeout: 5 * time.Second}, gate("quick"))
		started, release := h.g.get("quick")
		<-started
		time.Sleep(4 * time.Second)
		close(release)
		if st := h.waitFinal(id); st != job.StatusSuccess {
			t.Fatalf("a job that ended within its limits is %s", st)
		}
		// Its limit's timer is stopped: nothing changes it later.
		time.Sleep(time.Minute)
		synctest.Wait()
		if st := h.status(id); st != job.StatusSuccess {
			t.Fatalf("a job that ended within its limits is %s a minute later", st)
		}
	})
}

// Each opcode may have its own limit; a timing with more limits than a
// job's opcodes is refused.
func TestPerOpcodeTimeLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		id := h.submitTimed(job.Timing{OpTimeouts: []time.Duration{time.Hour, 3 * time.Second}},
			op(`{"OP_ID":"OP_TEST_DELAY","duration":2,"no_locks":true}`), gate("second"))
		started, _ := h.g.get("second")
		<-started // the first opcode (2 s) ran within its hour
		time.Sleep(3 * time.Second)
		synctest.Wait()
		v, _ := json.Marshal(h.fields(id, "opstatus", "opresult", "optimeout"))
		want := `[["success","error"],[null,["OpExecError",["Opcode timed out: it ran longer than its time limit of 3s"]]],[3600,3]]`
		if string(v) != want {
			t.Fatalf("job %s, want %s", v, want)
		}
		_, err := h.q.SubmitTimed([][]json.RawMessage{{gate("x")}}, false, job.Timing{OpTimeouts: []time.Duration{time.Second, time.Second}})
		if err == nil || !strings.Contains(err.Error(), "op_timeouts has 2 limits for a job of 1 opcodes; give at most one per opcode") {
			t.Fatalf("too many opcode limits: %v", err)
		}
	})
}

// A job past its own limit while it waits for its opcode's locks ends in
// error then, without waiting on.
func TestJobTimeLimitWhileWaitingForLocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		// OP_TEST_DELAY without no_locks takes the master node's lock.
		holder := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":100,"on_master":true,"no_locks":false}`))
		synctest.Wait()
		waiter := h.submitTimed(job.Timing{Timeout: 5 * time.Second}, op(`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_master":true,"no_locks":false}`))
		time.Sleep(5*time.Second - time.Millisecond)
		synctest.Wait()
		if st := h.status(waiter); st != job.StatusWaiting {
			t.Fatalf("the job waiting for the lock is %s before its limit", st)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		v, _ := json.Marshal(h.fields(waiter, "status", "opresult"))
		if want := `["error",[["OpExecError",["Job timed out: it ran longer than its time limit of 5s"]]]]`; string(v) != want {
			t.Fatalf("the job past its limit while waiting: %s, want %s", v, want)
		}
		if st := h.status(holder); st != job.StatusRunning {
			t.Fatalf("the lock's holder is %s", st)
		}
		if _, _, err := h.q.CancelJob(holder, true); err != nil {
			t.Fatal(err)
		}
		h.waitFinal(holder)
	})
}
