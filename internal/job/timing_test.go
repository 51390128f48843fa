package job

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"pgregory.net/rapid"
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

func TestParseTimingObject(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{``, `{}`, ""},
		{`null`, `{}`, ""},
		{`{}`, `{}`, ""},
		{`{"not_before": 1893456000}`, `{"not_before":[1893456000,0]}`, ""},
		{`{"not_before": 1893456000.25}`, `{"not_before":[1893456000,250000]}`, ""},
		{`{"not_before": 1893456000.9999999}`, `{"not_before":[1893456001,0]}`, ""},
		{`{"not_before": [1893456000, 5]}`, `{"not_before":[1893456000,5]}`, ""},
		{`{"not_before": null, "timeout": null}`, `{}`, ""},
		{`{"timeout": 600, "op_timeout": 1.5}`, `{"op_timeout":1.5,"timeout":600}`, ""},
		{`{"not_before": "tomorrow"}`, ``, `not_before "tomorrow" is not a time; send seconds since the epoch or [seconds, microseconds]`},
		{`{"not_before": -1}`, ``, `not_before -1 is not a time; send seconds since the epoch, e.g. 1893456000`},
		{`{"timeout": "10m"}`, ``, `timeout "10m" is not a time limit; send a number of seconds up to 31622400`},
		{`{"timeout": 1e300}`, ``, `timeout 1e300 is not a time limit; send a number of seconds up to 31622400`},
		{`{"timeout": -5}`, ``, `the job time limit -5s is negative; give a positive duration such as 10m`},
		{`{"op_timeout": 0.0001}`, ``, `the opcode time limit 100µs is shorter than a millisecond; give a longer one`},
		{`{"timout": 5}`, ``, `unknown submission option "timout"; the options are not_before, timeout, op_timeout, op_timeouts`},
		{`{"op_timeouts": [60, null, 1.5]}`, `{"op_timeouts":[60,null,1.5]}`, ""},
		{`{"op_timeouts": "60"}`, ``, `op_timeouts "60" is not a list of time limits; send seconds by opcode, such as [60, null, 600]`},
		{`{"op_timeouts": [1, -2]}`, ``, `the opcode 2 time limit -2s is negative; give a positive duration such as 10m`},
		{`{"op_timeouts": [1e300]}`, ``, `op_timeouts member 1 (1e+300) is not a time limit; send a number of seconds up to 31622400`},
		{`[1]`, ``, `the submission's options must be an object such as {"not_before": 1893456000, "timeout": 600}`},
	} {
		tm, err := ParseTimingObject(json.RawMessage(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseTimingObject(%s) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTimingObject(%s): %v", tc.in, err)
			continue
		}
		got, _ := json.Marshal(tm.Members())
		if string(got) != tc.want {
			t.Errorf("ParseTimingObject(%s) = %s, want %s", tc.in, got, tc.want)
		}
		// Members reads back as the same timing.
		back, err := ParseTimingObject(got)
		if err != nil || !reflect.DeepEqual(back, tm) {
			t.Errorf("ParseTimingObject(Members(%s)) = %+v, %v; want %+v", tc.in, back, err, tm)
		}
	}
}

// TestDueProperties: Due is monotone in time and false exactly before the
// not-before time; OpDeadline is the earlier of the two limits.
func TestDueProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nb := Timestamp{rapid.Int64Range(0, 1e10).Draw(t, "nbs"), rapid.Int64Range(0, 999999).Draw(t, "nbus")}
		now := Timestamp{rapid.Int64Range(0, 1e10).Draw(t, "nows"), rapid.Int64Range(0, 999999).Draw(t, "nowus")}
		j := &Job{ID: 1, Ops: []*Op{{Status: StatusQueued}}}
		if !j.Due(now) {
			t.Fatalf("a job without a not-before time is not due at %v", now)
		}
		j.SetTiming(Timing{NotBefore: &nb})
		if got, want := j.Due(now), !now.Before(nb); got != want {
			t.Fatalf("Due(%v) with not-before %v = %v", now, nb, got)
		}
		later := Timestamp{now[0] + rapid.Int64Range(0, 1e6).Draw(t, "dt"), now[1]}
		if j.Due(now) && !j.Due(later) {
			t.Fatalf("due at %v but not at the later %v", now, later)
		}

		jt := time.Duration(rapid.Int64Range(0, 1e6).Draw(t, "jobms")) * time.Millisecond
		ot := time.Duration(rapid.Int64Range(0, 1e6).Draw(t, "opms")) * time.Millisecond
		j.SetTiming(Timing{Timeout: jt, OpTimeout: ot})
		start := Timestamp{rapid.Int64Range(0, 1e9).Draw(t, "start"), 0}
		exec := Timestamp{start[0] + rapid.Int64Range(0, 1e5).Draw(t, "wait"), 0}
		j.StartTimestamp, j.Ops[0].StartTimestamp, j.Ops[0].ExecTimestamp = &start, &start, &exec
		at, which := j.OpDeadline(0)
		var cands []time.Time
		if jt > 0 {
			cands = append(cands, start.Time().Add(jt))
		}
		if ot > 0 {
			cands = append(cands, exec.Time().Add(ot))
		}
		if len(cands) == 0 {
			if which != LimitNone {
				t.Fatalf("no limits but a deadline %v (%s)", at, which)
			}
			return
		}
		want := cands[0]
		for _, c := range cands[1:] {
			if c.Before(want) {
				want = c
			}
		}
		if !at.Equal(want) || which == LimitNone {
			t.Fatalf("OpDeadline = %v (%s), want %v", at, which, want)
		}
	})
}

// BenchmarkDue is the decision whether a queued job may start.
func BenchmarkDue(b *testing.B) {
	j := &Job{ID: 1, Ops: []*Op{{Status: StatusQueued}}}
	nb := Timestamp{1893456000, 0}
	j.SetTiming(Timing{NotBefore: &nb})
	now := Timestamp{1893455999, 999999}
	n := 0
	for b.Loop() {
		if j.Due(now) {
			n++
		}
	}
	if n != 0 {
		b.Fatal("due before its time")
	}
}

func TestSetTimingPerOpcode(t *testing.T) {
	j := &Job{ID: 1, Ops: []*Op{{}, {}, {}}}
	tm := Timing{OpTimeout: time.Second, OpTimeouts: []time.Duration{0, 5 * time.Second}}
	if err := tm.CheckOps(len(j.Ops)); err != nil {
		t.Fatal(err)
	}
	j.SetTiming(tm)
	if got := []float64{j.Ops[0].Timeout, j.Ops[1].Timeout, j.Ops[2].Timeout}; !reflect.DeepEqual(got, []float64{1, 5, 1}) {
		t.Fatalf("opcode limits %v, want [1 5 1]", got)
	}
	err := Timing{OpTimeouts: []time.Duration{1, 2, 3, 4}}.CheckOps(3)
	if err == nil || err.Error() != "op_timeouts has 4 limits for a job of 3 opcodes; give at most one per opcode" {
		t.Fatalf("CheckOps: %v", err)
	}
}
