package cli

import (
	"testing"
	"time"
)

func TestParseAt(t *testing.T) {
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	now := time.Date(2026, 12, 7, 20, 30, 0, 0, zurich)
	for _, tc := range []struct{ in, want string }{
		{"2026-12-24 18:00", "2026-12-24T18:00:00+01:00"},
		{"2026-12-24 18:00:30", "2026-12-24T18:00:30+01:00"},
		{"2026-12-24T18:00", "2026-12-24T18:00:00+01:00"},
		{"2026-12-24", "2026-12-24T00:00:00+01:00"},
		{"2026-07-01 12:00", "2026-07-01T12:00:00+02:00"}, // summer time
		{"2026-12-24T18:00:00Z", "2026-12-24T18:00:00Z"},
		{"2026-12-24T18:00:00.5+05:00", "2026-12-24T18:00:00.5+05:00"},
		{"21:00", "2026-12-07T21:00:00+01:00"},    // later today
		{"20:30", "2026-12-08T20:30:00+01:00"},    // now: the next one
		{"06:15:10", "2026-12-08T06:15:10+01:00"}, // passed: tomorrow
		{"@1893456000", "2030-01-01T00:00:00Z"},
		{"@1893456000.25", "2030-01-01T00:00:00.25Z"},
	} {
		got, err := parseAt(tc.in, now, zurich)
		if err != nil {
			t.Errorf("parseAt(%q): %v", tc.in, err)
			continue
		}
		want, _ := time.Parse(time.RFC3339Nano, tc.want)
		if !got.Equal(want) {
			t.Errorf("parseAt(%q) = %s, want %s", tc.in, got, want)
		}
	}
	for _, in := range []string{"", "tomorrow", "25:00", "2026-13-01", "@-5", "@x", "18h"} {
		if got, err := parseAt(in, now, zurich); err == nil {
			t.Errorf("parseAt(%q) = %s, want an error", in, got)
		}
	}
}

func TestDelayTiming(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "12", "13", "14")
	// testNow is 2026-11-27 05:47:01.569201 UTC.
	checkResult(t, run(t, f.path, "debug", "delay", "--submit", "--in", "10m", "5"), result{stdout: "JobID: 12\n"})
	checkResult(t, run(t, f.path, "debug", "delay", "--submit", "--at", "2026-12-24 18:00", "--timeout", "1h", "--op-timeout", "90", "5"),
		result{stdout: "JobID: 13\n"})
	checkResult(t, run(t, f.path, "command", "--submit", "uptime", "-n", "node1", "--at", "@1893456000.5"), result{stdout: "JobID: 14\n"})
	op := `[[{"duration":5.0,"on_master":true,"on_nodes":[],"repeat":0,"interruptible":false,"no_locks":false,` +
		`"dry_run":false,"debug_level":0,"priority":0,"depends":null,"comment":null,` +
		`"reason":[["gnt:client:jobq","delay",1795758421569201152]],"OP_ID":"OP_TEST_DELAY"}]`
	calls := f.getCalls()
	want := []string{
		`SubmitJob ` + op + `,{"not_before":[1795759021,569201]}]`,
		`SubmitJob ` + op + `,{"not_before":[1798135200,0],"op_timeout":90,"timeout":3600}]`,
	}
	if len(calls) != 3 || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("calls:\n%q\nwant the first two:\n%q", calls, want)
	}
	if want := `,{"not_before":[1893456000,500000]}]`; len(calls[2]) < len(want) || calls[2][len(calls[2])-len(want):] != want {
		t.Fatalf("command's call %s does not end with %s", calls[2], want)
	}
}

func TestTimingUsageErrors(t *testing.T) {
	f := startFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"debug", "delay", "--at", "18:00", "--in", "1h", "1"}, `Give either --at or --in, not both (see "jobq debug delay --help")`},
		{[]string{"debug", "delay", "--at", "soon", "1"}, `--at: "soon" is not a time; give one such as "2026-12-24 18:00", "18:00", "2026-12-24T18:00:00Z" or "@1893456000" (see "jobq debug delay --help")`},
		{[]string{"debug", "delay", "--in", "later", "1"}, `--in: invalid duration "later": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobq debug delay --help")`},
		{[]string{"command", "x", "-n", "a", "--in", "-5m"}, `--in: invalid duration "-5m": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobq command --help")`},
	} {
		got := run(t, f.path, tc.args...)
		checkResult(t, got, result{stderr: tc.want + "\n", code: 2})
	}
	f.checkCalls(t)
}
