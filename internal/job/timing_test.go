package job

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// timing runs the scenario commands of timing.go (see TestScenarios).
func (s *scenario) timing(t *testing.T, d *datadriven.TestData, j *Job, op int, now Timestamp) string {
	switch d.Cmd {
	case "timing":
		var tm Timing
		if d.HasArg("not-before") {
			var nb int64
			d.ScanArgs(t, "not-before", &nb)
			tm.NotBefore = &Timestamp{nb, 0}
		}
		for _, a := range []struct {
			name string
			dst  *time.Duration
		}{{"timeout", &tm.Timeout}, {"op-timeout", &tm.OpTimeout}} {
			if d.HasArg(a.name) {
				var v string
				d.ScanArgs(t, a.name, &v)
				dur, err := time.ParseDuration(v)
				if err != nil {
					d.Fatalf(t, "%s: %v", a.name, err)
				}
				*a.dst = dur
			}
		}
		if err := tm.Check(); err != nil {
			return "error: " + err.Error() + "\n"
		}
		j.SetTiming(tm)
		return show(j)
	case "due":
		return fmt.Sprintf("due=%v at %s\n", j.Due(now), fmtTS(&now))
	case "deadline", "timeout":
		if op < 0 || op >= len(j.Ops) {
			d.Fatalf(t, "%s needs op=I with 0 <= I < %d", d.Cmd, len(j.Ops))
		}
		at, which := j.OpDeadline(op)
		out := "no limit\n"
		if which != LimitNone {
			out = fmt.Sprintf("deadline %s (%s limit)\n", fmtTS(&Timestamp{at.Unix(), int64(at.Nanosecond() / 1000)}), which)
		}
		if d.Cmd == "timeout" {
			j.TimeOut(op, which, now)
			out += show(j)
		}
		return out
	}
	return ""
}
