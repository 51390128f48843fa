package queue

import (
	"math"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
)

func TestHistoryChart(t *testing.T) {
	var h History
	base := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(min int, sec int) time.Time {
		return base.Add(time.Duration(min)*time.Minute + time.Duration(sec)*time.Second)
	}
	// Minute 0: 3 successes (waits 10 ms, runs 1 s), an error; minute 1:
	// a job canceled before it ran; minute 2: nothing; depths sampled.
	for range 3 {
		h.Finished(at(0, 5), job.StatusSuccess, true, 10*time.Millisecond, time.Second)
	}
	h.Finished(at(0, 30), job.StatusError, true, 10*time.Millisecond, 100*time.Second)
	h.Finished(at(1, 0), job.StatusCanceled, false, 0, 0)
	h.Finished(at(1, 0), job.StatusRunning, true, 0, 0) // not final: ignored
	h.Depth(at(0, 0), 4)
	h.Depth(at(0, 10), 7)
	h.Depth(at(0, 20), 2)

	c := h.Chart(at(2, 59), time.Minute, 3)
	if len(c.Points) != 3 || c.StepS != 60 || !c.Points[0].Start.Equal(at(0, 0)) {
		t.Fatalf("chart: %+v", c)
	}
	p0, p1, p2 := c.Points[0], c.Points[1], c.Points[2]
	if p0.Finished != (Finished{3, 1, 0}) || p1.Finished != (Finished{0, 0, 1}) || p2.Finished.Total() != 0 {
		t.Errorf("finished: %+v %+v %+v", p0.Finished, p1.Finished, p2.Finished)
	}
	if p0.PerSecond != 4.0/60 || p0.Depth != 7 || p1.Depth != -1 {
		t.Errorf("rate %v, depths %d %d", p0.PerSecond, p0.Depth, p1.Depth)
	}
	// Percentiles within a factor √2 above the true value.
	within := func(got, want float64) bool { return got >= want && got <= want*math.Sqrt2*1.0001 }
	if !within(p0.Wait.P50, 0.010) || !within(p0.Wait.P99, 0.010) || !within(p0.Run.P50, 1) || !within(p0.Run.P99, 100) || !within(p0.Run.P90, 100) {
		t.Errorf("quantiles: wait %+v run %+v", p0.Wait, p0.Run)
	}
	if p1.Wait.P50 != -1 || p2.Run.P99 != -1 {
		t.Errorf("no data: %+v %+v", p1.Wait, p2.Run)
	}
	// 15-minute steps add the minutes up.
	d := h.Chart(at(14, 0), 15*time.Minute, 2)
	if d.Points[1].Finished != (Finished{3, 1, 1}) || d.Points[0].Finished.Total() != 0 {
		t.Errorf("15-minute chart: %+v", d.Points)
	}
	// A day later the slots are reused: the old minutes are gone.
	h.Finished(at(24*60, 1), job.StatusSuccess, true, time.Millisecond, time.Millisecond)
	e := h.Chart(at(24*60, 30), time.Minute, 24*60+1)
	if e.Points[0].Finished.Total() != 0 || e.Points[len(e.Points)-1].Finished != (Finished{1, 0, 0}) {
		t.Errorf("a day later: first %+v, last %+v", e.Points[0].Finished, e.Points[len(e.Points)-1].Finished)
	}
}

// The queue records every job that ends, canceled ones included, and
// samples its depth.
func TestQueueCharts(t *testing.T) {
	h := newHarness(t, t.TempDir(), 1)
	ok := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	bad := h.submit(op(`{"OP_ID":"OP_TEST_JQUEUE","fail":true}`))
	h.waitFinal(ok)
	h.waitFinal(bad)
	run := h.submit(gate("g"))
	h.waitStatus(run, job.StatusRunning)
	queued := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	h.q.SampleDepth()
	if done, _, err := h.q.CancelJob(queued, false); !done || err != nil {
		t.Fatalf("cancel: %v %v", done, err)
	}
	hour, day := h.q.Charts()
	if len(hour.Points) != 60 || len(day.Points) != 96 {
		t.Fatalf("points: %d %d", len(hour.Points), len(day.Points))
	}
	var f Finished
	var depth int64 = -1
	for _, p := range hour.Points {
		f.Success += p.Finished.Success
		f.Error += p.Finished.Error
		f.Canceled += p.Finished.Canceled
		depth = max(depth, p.Depth)
	}
	if f != (Finished{1, 1, 1}) || depth != 2 {
		t.Errorf("the last hour: %+v, depth %d", f, depth)
	}
	_, release := h.g.get("g")
	close(release)
	h.waitFinal(run)
}
