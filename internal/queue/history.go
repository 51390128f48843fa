package queue

import (
	"math"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
)

// History keeps, per minute for the last day, what the dashboard's charts
// show: jobs that ended by final status, the queue's depth (unfinished
// jobs, its highest sample in the minute), and the distributions of the
// wait from submission to start and of the run time from start to end (in
// half-octave buckets, so that percentiles are read within a factor of
// √2). It lives in the daemon's memory: a restart starts it afresh. Its
// methods take the time, so that it is tested without a clock.
type History struct {
	mu   sync.Mutex
	mins [historyMinutes]histMinute
}

const (
	historyMinutes = 24 * 60
	// histBuckets half-octave buckets from 1 ms: bucket i holds
	// durations up to 2^(i/2) ms (the last holds everything longer).
	histBuckets = 64
	// depthSampleEvery is how often the queue samples its depth.
	depthSampleEvery = 10 * time.Second
)

type histMinute struct {
	minute    int64    // the unix minute this slot holds; 0: none
	finished  [3]int64 // success, error, canceled
	depth     int64    // highest depth sampled
	depthSeen bool
	wait, run [histBuckets]int32
}

func finalSlot(s job.Status) int {
	switch s {
	case job.StatusSuccess:
		return 0
	case job.StatusError:
		return 1
	case job.StatusCanceled:
		return 2
	}
	return -1
}

// bucketOf is the half-octave bucket of d.
func bucketOf(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	if ms <= 1 {
		return 0
	}
	return min(int(math.Ceil(2*math.Log2(ms))), histBuckets-1)
}

// bucketUpper is the longest duration bucket i holds, in seconds.
func bucketUpper(i int) float64 { return math.Pow(2, float64(i)/2) / 1000 }

// slot returns the minute of t, emptied when it held an older minute.
func (h *History) slot(t time.Time) *histMinute {
	m := t.Unix() / 60
	s := &h.mins[m%historyMinutes]
	if s.minute != m {
		*s = histMinute{minute: m}
	}
	return s
}

// Finished records a job that ended at t in status, with its wait and run
// times when it started (started false: it ended before it ran).
func (h *History) Finished(t time.Time, status job.Status, started bool, wait, run time.Duration) {
	i := finalSlot(status)
	if i < 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.slot(t)
	s.finished[i]++
	if started {
		s.wait[bucketOf(wait)]++
		s.run[bucketOf(run)]++
	}
}

// Depth records the number of unfinished jobs sampled at t.
func (h *History) Depth(t time.Time, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.slot(t)
	if !s.depthSeen || int64(n) > s.depth {
		s.depth, s.depthSeen = int64(n), true
	}
}

// ChartPoint is one interval of a chart. Depth is -1 and the percentiles
// are -1 when nothing was sampled or finished in it; percentiles are in
// seconds, the upper bounds of their buckets.
type ChartPoint struct {
	Start     time.Time `json:"start"`
	Finished  Finished  `json:"finished"`
	PerSecond float64   `json:"jobs_per_second"`
	Depth     int64     `json:"depth"`
	Wait      Quantiles `json:"wait_seconds"`
	Run       Quantiles `json:"run_seconds"`
}

// Finished counts the jobs that ended, by final status.
type Finished struct {
	Success  int64 `json:"success"`
	Error    int64 `json:"error"`
	Canceled int64 `json:"canceled"`
}

// Total is every job that ended.
func (f Finished) Total() int64 { return f.Success + f.Error + f.Canceled }

// Quantiles are a distribution's percentiles in seconds (-1: no data).
type Quantiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// Chart is a series of equal intervals ending now.
type Chart struct {
	Step   time.Duration `json:"-"`
	StepS  int64         `json:"step_seconds"`
	Points []ChartPoint  `json:"points"`
}

// Chart aggregates the last n intervals of step (a whole number of
// minutes) ending with the minute of now, oldest first.
func (h *History) Chart(now time.Time, step time.Duration, n int) Chart {
	per := max(int64(step/time.Minute), 1)
	last := now.Unix() / 60
	first := last - per*int64(n) + 1
	c := Chart{Step: time.Duration(per) * time.Minute, StepS: per * 60}
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range n {
		from := first + int64(p)*per
		pt := ChartPoint{Start: time.Unix(from*60, 0), Depth: -1}
		var wait, run [histBuckets]int64
		for m := from; m < from+per; m++ {
			if m <= last-historyMinutes {
				continue
			}
			s := &h.mins[m%historyMinutes]
			if s.minute != m {
				continue
			}
			pt.Finished.Success += s.finished[0]
			pt.Finished.Error += s.finished[1]
			pt.Finished.Canceled += s.finished[2]
			if s.depthSeen && s.depth > pt.Depth {
				pt.Depth = s.depth
			}
			for i := range histBuckets {
				wait[i] += int64(s.wait[i])
				run[i] += int64(s.run[i])
			}
		}
		pt.PerSecond = float64(pt.Finished.Total()) / c.Step.Seconds()
		pt.Wait = quantiles(&wait)
		pt.Run = quantiles(&run)
		c.Points = append(c.Points, pt)
	}
	return c
}

// quantiles reads p50, p90 and p99 off a histogram (-1 when empty).
func quantiles(b *[histBuckets]int64) Quantiles {
	var total int64
	for _, n := range b {
		total += n
	}
	if total == 0 {
		return Quantiles{-1, -1, -1}
	}
	at := func(q float64) float64 {
		rank := int64(math.Ceil(q * float64(total)))
		var seen int64
		for i, n := range b {
			seen += n
			if seen >= rank {
				return bucketUpper(i)
			}
		}
		return bucketUpper(histBuckets - 1)
	}
	return Quantiles{at(0.5), at(0.9), at(0.99)}
}
