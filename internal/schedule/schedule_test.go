package schedule

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"pgregory.net/rapid"
)

// TestScripts runs testdata/*.txt. Commands (times are RFC 3339 or
// seconds since the epoch):
//
//	spec                    the input block is a Spec (JSON): Check
//	next t=T [n=N]          the N (default 3) fire times after T
//	state [last=T] [job=N]  sets the state
//	decide t=T [running] [paused]
//	                        Decide, then Record it (job = 100 + fires)
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var s Spec
		var st State
		fires := int64(0)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			tm := func(name string) time.Time {
				var v string
				d.ScanArgs(t, name, &v)
				if x, err := time.Parse(time.RFC3339, v); err == nil {
					return x
				}
				var sec float64
				if _, err := fmt.Sscan(v, &sec); err != nil {
					d.Fatalf(t, "%s=%s is not a time", name, v)
				}
				return Time(sec)
			}
			show := func(x time.Time) string {
				if x.IsZero() {
					return "never"
				}
				return x.UTC().Format(time.RFC3339)
			}
			switch d.Cmd {
			case "spec":
				s = Spec{}
				if err := json.Unmarshal([]byte(d.Input), &s); err != nil {
					d.Fatalf(t, "%v", err)
				}
				st, fires = State{}, 0
				if err := s.Check(); err != nil {
					return "error: " + err.Error() + "\n"
				}
				return "ok\n"
			case "next":
				n := 3
				if d.HasArg("n") {
					d.ScanArgs(t, "n", &n)
				}
				x := tm("t")
				var out []string
				for range n {
					x = s.Next(x)
					out = append(out, show(x))
					if x.IsZero() {
						break
					}
				}
				return strings.Join(out, "\n") + "\n"
			case "state":
				st = State{}
				if d.HasArg("last") {
					st.LastFire = Seconds(tm("last"))
				}
				if d.HasArg("job") {
					d.ScanArgs(t, "job", &st.LastJob)
				}
				return "ok\n"
			case "decide":
				dec := Decide(s, st, tm("t"), d.HasArg("running"), d.HasArg("paused"))
				job := int64(0)
				if dec.Action == Fire {
					fires++
					job = 100 + fires
				}
				out := fmt.Sprintf("%s at=%s missed=%d cancel-previous=%v next=%s", dec.Action, show(dec.At), dec.Missed, dec.CancelPrevious, show(dec.Next))
				if dec.Why != "" {
					out += " (" + dec.Why + ")"
				}
				if dec.Action != Wait {
					st = st.Record(dec, job)
					out += fmt.Sprintf("\nstate last=%s job=%d jobs=%v skipped=%d", show(Time(st.LastFire)), st.LastJob, st.Jobs, st.Skipped)
				}
				return out + "\n"
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

// TestDecideFiresEachTimeOnce: whatever the times Decide is called at
// (a master that wakes late, elections, restarts that call it again), a
// fire time is handled at most once, in order, and with the once policy
// and no pause every call with something due fires.
func TestDecideFiresEachTimeOnce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := Spec{Name: "x", Every: float64(rapid.IntRange(1, 3600).Draw(t, "every")),
			Ops: []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY"}`)}, Concurrency: Allow,
			CatchUp: rapid.SampledFrom([]string{CatchSkip, CatchOnce}).Draw(t, "catchup"), Created: 1e9}
		if rapid.Bool().Draw(t, "cron") {
			s.Every, s.Cron = 0, rapid.SampledFrom([]string{"* * * * *", "*/5 * * * *", "0 3 * * *", "@hourly", "30 2 * * 0"}).Draw(t, "expr")
			s.TZ = rapid.SampledFrom([]string{"", "Europe/Zurich", "America/New_York"}).Draw(t, "tz")
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		now := Time(s.Created)
		var st State
		var last time.Time
		for range rapid.IntRange(1, 50).Draw(t, "calls") {
			now = now.Add(time.Duration(rapid.Int64Range(0, 3*86400).Draw(t, "dt")) * time.Second / 7)
			d := Decide(s, st, now, false, false)
			if d.Action == Wait {
				if !d.Next.After(now) {
					t.Fatalf("wait at %v with the next fire %v not after it", now, d.Next)
				}
				continue
			}
			if !d.At.After(last) || d.At.After(now) {
				t.Fatalf("handled %v after %v, at %v", d.At, last, now)
			}
			if s.CatchUp == CatchOnce && d.Action != Fire {
				t.Fatalf("once policy skipped %v: %s", d.At, d.Why)
			}
			last = d.At
			st = st.Record(d, 1)
			if again := Decide(s, st, now, false, false); again.Action != Wait {
				t.Fatalf("the same time %v handled twice: %+v", now, again)
			}
		}
	})
}

// BenchmarkDecide is one schedule's decision when nothing is due (what
// the master does for each schedule at each wake-up), for an interval and
// a cron expression in a time zone.
func BenchmarkDecide(b *testing.B) {
	op := []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY"}`)}
	now := time.Date(2026, 12, 7, 12, 0, 30, 0, time.UTC)
	for _, s := range []Spec{
		{Name: "every", Every: 60, Ops: op, Concurrency: Allow, CatchUp: CatchSkip},
		{Name: "cron", Cron: "0 3 * * *", TZ: "Europe/Zurich", Ops: op, Concurrency: Allow, CatchUp: CatchSkip},
	} {
		b.Run(s.Name, func(b *testing.B) {
			st := State{LastFire: Seconds(now.Add(-30 * time.Second))}
			for b.Loop() {
				if d := Decide(s, st, now, false, false); d.Action != Wait {
					b.Fatal(d)
				}
			}
		})
	}
}
