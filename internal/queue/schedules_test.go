package queue

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/schedule"
)

func spec(name string, every time.Duration, concurrency, catchUp string, op string) schedule.Spec {
	return schedule.Spec{Name: name, Every: every.Seconds(), Ops: []json.RawMessage{json.RawMessage(op)},
		Concurrency: concurrency, CatchUp: catchUp, Created: schedule.Seconds(time.Now())}
}

// scheduled is a job a schedule made: its fire time and its times.
type scheduled struct {
	id         int64
	fire       time.Time
	start, end *job.Timestamp
}

// scheduledJobs reads the live jobs' files: those with a "schedule"
// member of name, by fire time.
func (h *harness) scheduledJobs(name string) []scheduled {
	h.t.Helper()
	rows, err := h.q.QueryJobs(nil, []string{"id"})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []scheduled
	for _, r := range rows {
		var v []int64
		if err := json.Unmarshal(r, &v); err != nil {
			h.t.Fatal(err)
		}
		j := h.fileJob(v[0])
		var tag scheduleTag
		if json.Unmarshal(j.Extra["schedule"], &tag) != nil || tag.Name != name {
			continue
		}
		out = append(out, scheduled{id: j.ID, fire: schedule.Time(tag.Fire), start: j.StartTimestamp, end: j.EndTimestamp})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].fire.Before(out[b].fire) })
	return out
}

// checkOnce fails when a fire time has two jobs.
func checkOnce(t *testing.T, jobs []scheduled) {
	t.Helper()
	for i := 1; i < len(jobs); i++ {
		if !jobs[i].fire.After(jobs[i-1].fire) {
			t.Fatalf("fire time %v has jobs %d and %d", jobs[i].fire, jobs[i-1].id, jobs[i].id)
		}
	}
}

// A schedule every minute over a simulated day makes exactly 1,440 jobs,
// one per fire time.
func TestScheduleEveryMinuteForADay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarnessConfig(t, t.TempDir(), Config{MaxRunning: 4, KeepFinal: 100})
		start := time.Now()
		h.q.SetSchedules([]schedule.Spec{spec("minutely", time.Minute, schedule.Allow, schedule.CatchSkip,
			`{"OP_ID":"OP_TEST_DELAY","duration":1,"no_locks":true}`)}, nil)
		time.Sleep(24*time.Hour + 30*time.Second)
		synctest.Wait()
		jobs := h.scheduledJobs("minutely")
		if len(jobs) != 1440 {
			t.Fatalf("%d jobs in a day, want 1440", len(jobs))
		}
		checkOnce(t, jobs)
		for i, j := range jobs {
			if want := start.Add(time.Duration(i+1) * time.Minute); !j.fire.Equal(want) {
				t.Fatalf("job %d fired for %v, want %v", i, j.fire, want)
			}
			if got := j.start.Time().Sub(j.fire); got < 0 || got > time.Second {
				t.Fatalf("job %d for %v started %s after its fire time", j.id, j.fire, got)
			}
		}
		st := h.q.Schedules()[0]
		if st.State.LastJob != jobs[1439].id || len(st.State.Jobs) != schedule.KeepJobs || !st.Next.Equal(start.Add(1441*time.Minute)) {
			t.Fatalf("schedule state %+v", st)
		}
		rec, err := h.q.readScheduleState("minutely")
		if err != nil || rec.LastJob != jobs[1439].id || rec.LastFire != schedule.Seconds(jobs[1439].fire) {
			t.Fatalf("fire record %+v %v", rec, err)
		}
	})
}

// With the forbid policy and hour-long jobs, no two jobs overlap.
func TestScheduleForbidNoOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 10)
		h.q.SetSchedules([]schedule.Spec{spec("hourly-jobs", 10*time.Minute, schedule.Forbid, schedule.CatchSkip,
			`{"OP_ID":"OP_TEST_DELAY","duration":3600,"no_locks":true}`)}, nil)
		time.Sleep(12*time.Hour + time.Minute)
		synctest.Wait()
		jobs := h.scheduledJobs("hourly-jobs")
		if len(jobs) < 10 || len(jobs) > 12 {
			t.Fatalf("%d jobs in 12h of hour-long jobs fired every 10 min with forbid, want 10 to 12", len(jobs))
		}
		checkOnce(t, jobs)
		for i := 1; i < len(jobs); i++ {
			prev, cur := jobs[i-1], jobs[i]
			if prev.end == nil || cur.start == nil || cur.start.Before(*prev.end) {
				t.Fatalf("job %d (start %v) overlaps job %d (end %v)", cur.id, cur.start, prev.id, prev.end)
			}
		}
		if st := h.q.Schedules()[0]; st.State.Skipped < 50 {
			t.Fatalf("forbid skipped %d fire times, want most of 72", st.State.Skipped)
		}
	})
}

// Fire times missed while no queue ran follow the catch-up policy; a
// restart never fires a time twice; a fire record lost with a crash is
// found again in the job's "schedule" member.
func TestScheduleCatchUpAndRestart(t *testing.T) {
	for _, tc := range []struct {
		policy string
		caught int // jobs for the 30 missed fire times
	}{{schedule.CatchSkip, 0}, {schedule.CatchOnce, 1}} {
		t.Run(tc.policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				sp := spec("m", time.Minute, schedule.Allow, tc.policy, `{"OP_ID":"OP_TEST_DELAY","duration":1,"no_locks":true}`)
				h := newHarness(t, dir, 4)
				h.q.SetSchedules([]schedule.Spec{sp}, nil)
				time.Sleep(10*time.Minute + 30*time.Second)
				synctest.Wait()
				if n := len(h.scheduledJobs("m")); n != 10 {
					t.Fatalf("%d jobs in 10 min, want 10", n)
				}
				h.close()
				// Down for 30 minutes.
				time.Sleep(30 * time.Minute)
				h = newHarness(t, dir, 4)
				h.q.SetSchedules([]schedule.Spec{sp}, nil)
				time.Sleep(5 * time.Second)
				synctest.Wait()
				if n := len(h.scheduledJobs("m")); n != 10+tc.caught {
					t.Fatalf("%d jobs after 30 missed fire times with catch-up %s, want %d", n, tc.policy, 10+tc.caught)
				}
				time.Sleep(5 * time.Minute)
				synctest.Wait()
				jobs := h.scheduledJobs("m")
				if len(jobs) != 15+tc.caught {
					t.Fatalf("%d jobs, want %d", len(jobs), 15+tc.caught)
				}
				checkOnce(t, jobs)
				// A crash between the job's file and the record of its fire:
				// the next master reads the fire from the job.
				h.close()
				last := jobs[len(jobs)-1]
				rec := schedule.State{LastFire: schedule.Seconds(last.fire.Add(-time.Minute))}
				b, _ := json.Marshal(rec)
				if err := os.WriteFile(filepath.Join(dir, ScheduleFile("m")), b, 0o600); err != nil {
					t.Fatal(err)
				}
				h = newHarness(t, dir, 4)
				h.q.SetSchedules([]schedule.Spec{sp}, nil)
				synctest.Wait()
				if again := h.scheduledJobs("m"); len(again) != len(jobs) {
					t.Fatalf("after a lost fire record: %d jobs, want %d (a fire time made twice)", len(again), len(jobs))
				}
			})
		})
	}
}

// Schedules stop while the watcher is paused or the queue drained, and
// a removed schedule fires no more.
func TestSchedulePausedDrainedRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), 4)
		sp := spec("m", time.Minute, schedule.Allow, schedule.CatchSkip, `{"OP_ID":"OP_TEST_DELAY","duration":1,"no_locks":true}`)
		until := schedule.Seconds(time.Now().Add(10*time.Minute + 30*time.Second))
		pause, _ := json.Marshal(map[string]float64{"until": until})
		h.q.SetSchedules([]schedule.Spec{sp}, pause)
		time.Sleep(15*time.Minute + 30*time.Second)
		synctest.Wait()
		if n := len(h.scheduledJobs("m")); n != 5 {
			t.Fatalf("%d jobs in 15 min with a 10 min watcher pause, want 5", n)
		}
		if err := h.q.SetDrainFlag(true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if n := len(h.scheduledJobs("m")); n != 5 {
			t.Fatalf("%d jobs after 5 drained minutes, want still 5", n)
		}
		if st := h.q.Schedules()[0]; st.LastSkip != "the queue is drained" {
			t.Fatalf("last skip %q", st.LastSkip)
		}
		if err := h.q.SetDrainFlag(false); err != nil {
			t.Fatal(err)
		}
		h.q.SetSchedules(nil, nil)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := len(h.scheduledJobs("m")); n != 5 {
			t.Fatalf("%d jobs after the schedule's removal, want still 5", n)
		}
	})
}
