package queue

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/retention"
)

func quick() []byte {
	return []byte(`{"OP_ID":"OP_TEST_DELAY","duration":0.01,"no_locks":true}`)
}

func (h *harness) archived(id int64) bool {
	h.t.Helper()
	return h.fields(id, "archived")[0].(bool)
}

// The default policy, Ganeti's watcher's: every 5 minutes from the start,
// jobs that ended 6 hours ago or more are archived; others stay.
func TestHousekeepingArchivesAfterSixHours(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		start := time.Now()
		h.q.StartHousekeeping(retention.Default(), nil)
		time.Sleep(2 * time.Minute)
		old := h.submit(quick())
		h.waitFinal(old)
		time.Sleep(time.Hour)
		young := h.submit(quick())
		h.waitFinal(young)
		pending := h.submitTimed(job.Timing{NotBefore: at(time.Now().Add(100 * time.Hour))}, quick())
		// Runs are at 5m, 10m, ... from the start; the job ended at 2m:
		// at the run of 6h it is 5h58m old, at the run of 6h05m 6h03m.
		time.Sleep(time.Until(start.Add(6*time.Hour + time.Minute)))
		synctest.Wait()
		if h.archived(old) {
			t.Fatal("a job that ended less than 6h ago was archived")
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if !h.archived(old) {
			t.Fatalf("the job that ended 6h ago is not archived at the run after 6h; state %+v", h.q.Housekeeping())
		}
		if h.archived(young) || h.archived(pending) {
			t.Fatal("a young or unfinished job was archived")
		}
		st := h.q.Housekeeping()
		if st.TotalArchived != 1 || st.LastError != "" || !st.Running || st.NextRun.Sub(st.LastRun) != 5*time.Minute {
			t.Fatalf("housekeeping state %+v", st)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if !h.archived(young) || h.archived(pending) {
			t.Fatalf("7h05m on: young archived=%v, pending archived=%v", h.archived(young), h.archived(pending))
		}
	})
}

// gnt-cluster watcher pause pauses the housekeeping until its end.
func TestHousekeepingPaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		id := h.submit(quick())
		h.waitFinal(id)
		until := float64(time.Now().Add(10 * time.Hour).Unix())
		h.q.StartHousekeeping(retention.Default(), retention.PauseJSON(&until))
		time.Sleep(10*time.Hour - time.Minute)
		synctest.Wait()
		if h.archived(id) {
			t.Fatal("archived during a watcher pause")
		}
		if st := h.q.Housekeeping(); st.PausedUntil.IsZero() || !st.LastRun.IsZero() {
			t.Fatalf("during the pause: %+v", st)
		}
		time.Sleep(6 * time.Minute)
		synctest.Wait()
		if !h.archived(id) {
			t.Fatal("not archived at the first run after the pause")
		}
		// watcher continue, then pause again: a new job waits.
		id2 := h.submit(quick())
		h.waitFinal(id2)
		until = float64(time.Now().Add(100 * time.Hour).Unix())
		p := retention.Default()
		p.ArchiveAge = 0
		h.q.SetHousekeeping(p, retention.PauseJSON(&until))
		time.Sleep(time.Hour)
		synctest.Wait()
		if h.archived(id2) {
			t.Fatal("archived during the second pause")
		}
		h.q.SetHousekeeping(p, retention.PauseJSON(nil))
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if !h.archived(id2) {
			t.Fatal("not archived once the pause was lifted")
		}
	})
}

// A policy change applies from the next run; auto-archiving can be off.
func TestHousekeepingPolicyChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		id := h.submit(quick())
		h.waitFinal(id)
		off := retention.Default()
		off.AutoArchive = false
		h.q.StartHousekeeping(off, nil)
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if h.archived(id) {
			t.Fatal("archived with auto-archiving off")
		}
		on := retention.Policy{AutoArchive: true, ArchiveAge: time.Minute, Interval: 30 * time.Second}
		h.q.SetHousekeeping(on, nil)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if !h.archived(id) {
			t.Fatalf("not archived 30s after the policy was changed: %+v", h.q.Housekeeping())
		}
	})
}

// The archive's disk budget deletes the oldest archived jobs.
func TestHousekeepingArchiveBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		var ids []int64
		for range 3 {
			id := h.submit(quick())
			h.waitFinal(id)
			ids = append(ids, id)
		}
		p := retention.Policy{AutoArchive: true, ArchiveAge: 0, Interval: time.Minute, MaxBytes: 1}
		h.q.StartHousekeeping(p, nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		// Archived at this run, deleted by its budget at once.
		for _, id := range ids {
			if rows, err := h.q.QueryJobs([]int64{id}, []string{"id"}); err != nil || string(rows[0]) != "null" {
				t.Fatalf("job %d after a 1-byte archive budget: %s %v", id, rows[0], err)
			}
		}
		if st := h.q.Housekeeping(); st.TotalArchived != 3 || st.TotalDeleted != 3 {
			t.Fatalf("housekeeping state %+v", st)
		}
	})
}
