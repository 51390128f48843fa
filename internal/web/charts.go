package web

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/internal/queue"
)

// The charts page: over the last hour (per minute) and the last day (per
// 15 minutes), the jobs that ended per second by final status, the
// queue's depth, and the percentiles of the wait from submission to start
// and of the run time, as the daemon keeps them (queue.History). Drawn as
// SVG on the server (no script); /ui/charts.json gives the same numbers.

const (
	chartW, chartH = 720.0, 160.0
	chartLeft      = 56.0 // room for the y labels
)

type svgBar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type svgLine struct {
	Points string
	Class  string
	Label  string
	// Dots mark the points (a line of one point draws nothing).
	Dots []svgLabel
}

// line makes a line through the points (x, y).
func line(class, label string, xs, ys []float64) svgLine {
	l := svgLine{Class: class, Label: label}
	pts := make([]string, len(xs))
	for i := range xs {
		pts[i] = fmt.Sprintf("%.1f,%.1f", xs[i], ys[i])
		l.Dots = append(l.Dots, svgLabel{X: xs[i], Y: ys[i]})
	}
	l.Points = strings.Join(pts, " ")
	return l
}

type svgLabel struct {
	X, Y float64
	Text string
}

type svgChart struct {
	ID, Title, Desc string
	Empty           string // why nothing is drawn; "" when something is
	W, H            float64
	Bars            []svgBar
	Lines           []svgLine
	YLabels         []svgLabel
	XLabels         []svgLabel
}

type chartSet struct {
	Name                 string // "the last hour", "the last day"
	Rate, Depth, Latency svgChart
	Totals               queue.Finished
}

type chartsData struct {
	Sets []chartSet
}

func (h *Handler) chartsPage(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	hour, day := h.cfg.Queue.Charts()
	d := chartsData{Sets: []chartSet{makeSet("hour", "the last hour", hour), makeSet("day", "the last day", day)}}
	h.render(w, r, s, http.StatusOK, "charts", &page{Title: "Charts", Nav: "charts", Data: d})
}

func (h *Handler) chartsJSON(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	hour, day := h.cfg.Queue.Charts()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]queue.Chart{"last_hour": hour, "last_day": day})
}

func makeSet(id, name string, c queue.Chart) chartSet {
	set := chartSet{Name: name}
	for _, p := range c.Points {
		set.Totals.Success += p.Finished.Success
		set.Totals.Error += p.Finished.Error
		set.Totals.Canceled += p.Finished.Canceled
	}
	set.Rate = rateChart(id, name, c)
	set.Depth = depthChart(id, name, c)
	set.Latency = latencyChart(id, name, c)
	return set
}

// xLabels puts a time label every few points.
func xLabels(c queue.Chart, x func(i int) float64) []svgLabel {
	var out []svgLabel
	every := max(len(c.Points)/6, 1)
	for i := 0; i < len(c.Points); i += every {
		out = append(out, svgLabel{X: x(i), Y: chartH + 14, Text: c.Points[i].Start.Local().Format("15:04")})
	}
	return out
}

func slotX(c queue.Chart, i int) float64 {
	return chartLeft + float64(i)*(chartW-chartLeft)/float64(max(len(c.Points), 1))
}

func rateChart(id, name string, c queue.Chart) svgChart {
	g := svgChart{ID: id + "-rate", Title: "Jobs ended per second, " + name, W: chartW, H: chartH + 20,
		Desc: "Stacked bars per " + c.Step.String() + ": success, error, canceled."}
	top := 0.0
	for _, p := range c.Points {
		top = math.Max(top, p.PerSecond)
	}
	if top == 0 {
		g.Empty = "No job ended in " + name + "."
		return g
	}
	top = niceCeil(top)
	step := c.Step.Seconds()
	bw := (chartW - chartLeft) / float64(len(c.Points))
	for i, p := range c.Points {
		y := chartH
		for _, part := range []struct {
			n     int64
			class string
		}{{p.Finished.Success, "success"}, {p.Finished.Error, "error"}, {p.Finished.Canceled, "canceled"}} {
			if part.n == 0 {
				continue
			}
			hgt := float64(part.n) / step / top * chartH
			y -= hgt
			g.Bars = append(g.Bars, svgBar{X: slotX(c, i), Y: y, W: math.Max(bw-1, 1), H: hgt, Class: part.class,
				Title: fmt.Sprintf("%s: %d %s (%.3g/s)", p.Start.Local().Format("15:04"), part.n, part.class, float64(part.n)/step)})
		}
	}
	g.YLabels = []svgLabel{{X: chartLeft - 6, Y: 10, Text: fmt.Sprintf("%.3g/s", top)}, {X: chartLeft - 6, Y: chartH, Text: "0"}}
	g.XLabels = xLabels(c, func(i int) float64 { return slotX(c, i) })
	return g
}

func depthChart(id, name string, c queue.Chart) svgChart {
	g := svgChart{ID: id + "-depth", Title: "Queue depth (unfinished jobs), " + name, W: chartW, H: chartH + 20,
		Desc: "The highest number of unfinished jobs sampled in each interval."}
	top := int64(0)
	seen := false
	for _, p := range c.Points {
		if p.Depth >= 0 {
			seen = true
			top = max(top, p.Depth)
		}
	}
	if !seen {
		g.Empty = "No sample in " + name + "."
		return g
	}
	topF := niceCeil(math.Max(float64(top), 1))
	bw := (chartW - chartLeft) / float64(len(c.Points))
	var xs, ys []float64
	for i, p := range c.Points {
		if p.Depth < 0 {
			continue
		}
		xs, ys = append(xs, slotX(c, i)+bw/2), append(ys, chartH-float64(p.Depth)/topF*chartH)
	}
	g.Lines = []svgLine{line("depth", "depth", xs, ys)}
	g.YLabels = []svgLabel{{X: chartLeft - 6, Y: 10, Text: fmt.Sprintf("%.0f", topF)}, {X: chartLeft - 6, Y: chartH, Text: "0"}}
	g.XLabels = xLabels(c, func(i int) float64 { return slotX(c, i) })
	return g
}

func latencyChart(id, name string, c queue.Chart) svgChart {
	g := svgChart{ID: id + "-latency", Title: "Wait (submission to start) and run time, p50/p90/p99, " + name,
		W: chartW, H: chartH + 20, Desc: "Seconds on a logarithmic scale, per interval; within a factor of 1.4 above the true value."}
	lo, hi := math.Inf(1), 0.0
	for _, p := range c.Points {
		for _, v := range []float64{p.Wait.P50, p.Wait.P90, p.Wait.P99, p.Run.P50, p.Run.P90, p.Run.P99} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if hi == 0 {
		g.Empty = "No job ran in " + name + "."
		return g
	}
	l0, l1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if l1 == l0 {
		l1++
	}
	y := func(v float64) float64 { return chartH - (math.Log10(v)-l0)/(l1-l0)*chartH }
	bw := (chartW - chartLeft) / float64(len(c.Points))
	for _, series := range []struct {
		label, class string
		get          func(p queue.ChartPoint) float64
	}{
		{"wait p50", "wait p50", func(p queue.ChartPoint) float64 { return p.Wait.P50 }},
		{"wait p90", "wait p90", func(p queue.ChartPoint) float64 { return p.Wait.P90 }},
		{"wait p99", "wait p99", func(p queue.ChartPoint) float64 { return p.Wait.P99 }},
		{"run p50", "run p50", func(p queue.ChartPoint) float64 { return p.Run.P50 }},
		{"run p90", "run p90", func(p queue.ChartPoint) float64 { return p.Run.P90 }},
		{"run p99", "run p99", func(p queue.ChartPoint) float64 { return p.Run.P99 }},
	} {
		var xs, ys []float64
		for i, p := range c.Points {
			if v := series.get(p); v > 0 {
				xs, ys = append(xs, slotX(c, i)+bw/2), append(ys, y(v))
			}
		}
		g.Lines = append(g.Lines, line(series.class, series.label, xs, ys))
	}
	for e := l0; e <= l1; e++ {
		g.YLabels = append(g.YLabels, svgLabel{X: chartLeft - 6, Y: math.Max(y(math.Pow(10, e)), 10), Text: secondsLabel(math.Pow(10, e))})
	}
	g.XLabels = xLabels(c, func(i int) float64 { return slotX(c, i) })
	return g
}

func secondsLabel(s float64) string {
	return (time.Duration(s * float64(time.Second))).String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
