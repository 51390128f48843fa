package format

import (
	"testing"
	"time"
)

func TestWatchReference(t *testing.T) {
	checkText(t, "cli-10", WatchHeader(decode(t, "6040"))+"\n", golden(t, "cli-10-job-watch"))

	// cli-12: gnt-job watch on a running job; its log as
	// WaitForJobChange returns it.
	got := WatchHeader(6046) + "\n"
	for _, e := range decode(t, `[[1,[1795758426,180542],"message"," - INFO: Test delay iteration 0/2"],
 [2,[1795758426,540756],"message"," - INFO: Test delay iteration 1/2"],
 [3,[1795758426,957475],"message"," - INFO: Test delay iteration 2/2"]]`).([]any) {
		line, ok := WatchLogEntry(e, refLoc)
		if !ok {
			t.Fatalf("WatchLogEntry(%v) failed", e)
		}
		got += line + "\n"
	}
	checkText(t, "cli-12", got, golden(t, "cli-12-job-watch-running"))
}

func TestWatchLogLine(t *testing.T) {
	tests := []struct {
		ts      any
		logType string
		msg     any
		want    string
	}{
		{[2]int64{1795758426, 180542}, "message", " - INFO: x", "Fri Nov 27 05:47:06 2026  - INFO: x"},
		{time.Date(2026, 11, 1, 3, 4, 5, 999999999, time.UTC), "message", "day padding", "Sun Nov  1 03:04:05 2026 day padding"},
		{decode(t, "[1795758426,999999]"), "message", "tab\there", `Fri Nov 27 05:47:06 2026 tab\there`},
		{decode(t, "[1795758426.7,0]"), "message", "float seconds", "Fri Nov 27 05:47:06 2026 float seconds"},
		{decode(t, "[1795758426,0]"), "remote-import", decode(t, `{"a":[1]}`), "Fri Nov 27 05:47:06 2026 {'a': [1]}"},
		{nil, "message", "no time", "? no time"},
	}
	for _, tc := range tests {
		if got := WatchLogLine(tc.ts, tc.logType, tc.msg, refLoc); got != tc.want {
			t.Errorf("WatchLogLine(%v, %q, %v) = %q, want %q", tc.ts, tc.logType, tc.msg, got, tc.want)
		}
	}
	if _, ok := WatchLogEntry(decode(t, `[1,2]`), refLoc); ok {
		t.Error("WatchLogEntry accepted a malformed entry")
	}
	if got := WatchHeader("7"); got != "Output from job 7 follows\n-------------------------" {
		t.Errorf("WatchHeader = %q", got)
	}
}

func TestFormatTimestamp(t *testing.T) {
	tests := []struct {
		ts   any
		want string
	}{
		{decode(t, "[1795758422,125936]"), "2026-11-27 05:47:02.125936"},
		{decode(t, "[1795758384,1388]"), "2026-11-27 05:46:24.001388"},
		{decodeFloat(t, "[1795758422,125936]"), "2026-11-27 05:47:02.125936"},
		{decode(t, "[1795758422.9,125936.7]"), "2026-11-27 05:47:02.125936"},
		{[]int64{0, 0}, "1970-01-01 00:00:00.000000"},
		{decode(t, `[1795758422,null]`), "2026-11-27 05:47:02"},
		{decode(t, `[null,5]`), "N/A"},
		{decode(t, `["x",5]`), "N/A"},
		{nil, "?"},
		{decode(t, "[1,2,3]"), "?"},
		{"2026", "?"},
		{time.Date(2026, 11, 27, 5, 47, 2, 125936999, time.UTC), "2026-11-27 05:47:02.125936"},
	}
	for _, tc := range tests {
		if got := FormatTimestamp(tc.ts, refLoc); got != tc.want {
			t.Errorf("FormatTimestamp(%v) = %q, want %q", tc.ts, got, tc.want)
		}
	}
	if got := FormatTimestamp(decode(t, "[1795758422,125936]"), time.FixedZone("X", -5*3600)); got != "2026-11-27 00:47:02.125936" {
		t.Errorf("FormatTimestamp in UTC-5 = %q", got)
	}
}

func TestSafeEncode(t *testing.T) {
	for in, want := range map[string]string{
		" - INFO: plain":   " - INFO: plain",
		"a\tb\nc\rd":       `a\tb\nc\rd`,
		"\x00\x1b[31m\x7f": `\x00\x1b[31m\x7f`,
		"café €𝄞":          `caf\xe9 \u20ac\U0001d11e`,
		"quote ' \" \\":    `quote ' " \`,
		"bad\xffbyte":      `bad\xffbyte`,
	} {
		if got := SafeEncode(in); got != want {
			t.Errorf("SafeEncode(%q) = %q, want %q", in, got, want)
		}
	}
}
