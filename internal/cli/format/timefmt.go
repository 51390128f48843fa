package format

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// splitTimestamp returns the seconds and microseconds of a [sec, usec]
// timestamp (any two-element list or array of numbers) or of a time.Time.
// Fractional seconds are floored, fractional microseconds truncated, as
// Python's localtime() and "%d" do. hasUsec is false when the second
// element is not a number.
func splitTimestamp(ts any) (sec, usec int64, hasUsec, ok bool) {
	if t, isTime := ts.(time.Time); isTime {
		return t.Unix(), int64(t.Nanosecond() / 1000), true, true
	}
	if t, isTime := ts.(*time.Time); isTime && t != nil {
		return t.Unix(), int64(t.Nanosecond() / 1000), true, true
	}
	l, isList := asList(ts)
	if !isList || len(l) != 2 {
		return 0, 0, false, false
	}
	if i, isInt := asInt(l[0]); isInt {
		sec = i
	} else if f, isNum := asFloat(l[0]); isNum && !math.IsNaN(f) && !math.IsInf(f, 0) {
		sec = int64(math.Floor(f))
	} else {
		return 0, 0, false, false
	}
	if i, isInt := asInt(l[1]); isInt {
		return sec, i, true, true
	}
	if f, isNum := asFloat(l[1]); isNum && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return sec, int64(math.Trunc(f)), true, true
	}
	return sec, 0, false, true
}

func loc0(loc *time.Location) *time.Location {
	if loc == nil {
		return time.Local
	}
	return loc
}

// FormatTimestamp formats a [sec, usec] timestamp as Ganeti's CLI does:
// the local time in loc (nil: time.Local) as "2026-11-27 05:47:02.125936".
// A value that is not a two-element list gives "?"; a list whose seconds
// are not a number gives "N/A". A time.Time is accepted too.
func FormatTimestamp(ts any, loc *time.Location) string {
	if l, isList := asList(ts); isList && len(l) == 2 && !isNumber(l[0]) {
		return "N/A"
	}
	sec, usec, hasUsec, ok := splitTimestamp(ts)
	if !ok {
		return "?"
	}
	s := time.Unix(sec, 0).In(loc0(loc)).Format("2006-01-02 15:04:05")
	if hasUsec {
		s += fmt.Sprintf(".%06d", usec)
	}
	return s
}

// WatchHeader returns the two lines `gnt-job watch` prints before a job's
// log, without a final newline:
//
//	Output from job 6046 follows
//	----------------------------
func WatchHeader(jobID any) string {
	msg := "Output from job " + intStr(jobID) + " follows"
	return msg + "\n" + strings.Repeat("-", utf8.RuneCountInString(msg))
}

// WatchLogLine returns one log message as `gnt-job watch` (and a
// synchronous `gnt-debug delay`) prints it, without a final newline: the
// time of ts in loc (nil: time.Local) in C's ctime() format, a space, and
// the message as FormatLogMessage renders it. Ganeti's messages start with
// " - INFO: ", hence the two spaces in
//
//	Fri Nov 27 05:47:06 2026  - INFO: Test delay iteration 0/2
//
// ts is a [sec, usec] timestamp or a time.Time; an unusable ts prints "?"
// as the time.
func WatchLogLine(ts any, logType string, msg any, loc *time.Location) string {
	when := "?"
	if sec, usec, _, ok := splitTimestamp(ts); ok {
		// Ganeti merges seconds and microseconds into a float and lets
		// ctime() drop the fraction.
		merged := math.Floor(float64(sec) + float64(usec)*0.000001)
		when = time.Unix(int64(merged), 0).In(loc0(loc)).Format(time.ANSIC)
	}
	return when + " " + FormatLogMessage(logType, msg)
}

// WatchLogEntry is WatchLogLine for one job log entry as LUXI returns it,
// [serial, [sec, usec], type, message]. ok is false when entry does not
// have that shape.
func WatchLogEntry(entry any, loc *time.Location) (line string, ok bool) {
	l, isList := asList(entry)
	if !isList || len(l) != 4 {
		return "", false
	}
	return WatchLogLine(l[1], PyStr(l[2]), l[3], loc), true
}

// LogTypeMessage is the log entry type of plain text messages.
const LogTypeMessage = "message"

// FormatLogMessage renders a job log message for display as Ganeti does:
// a message of type "message" is used as is, any other is converted with
// Python's str(); then the text is made safe for a terminal (SafeEncode).
func FormatLogMessage(logType string, msg any) string {
	return SafeEncode(PyStr(msg))
}

// SafeEncode makes text safe to print, as Ganeti does with log messages:
// tab, newline and carriage return become \t, \n and \r, other control
// characters and DEL become \xNN, and non-ASCII characters are escaped as
// Python's "backslashreplace" does (\xNN, \uNNNN, \UNNNNNNNN). Bytes that
// are not UTF-8 become \xNN.
func SafeEncode(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, "\\x%02x", text[i])
			i++
			continue
		}
		i += size
		switch {
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 32 || r == 127:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r < 127:
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r <= 0xffff:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			fmt.Fprintf(&b, "\\U%08x", r)
		}
	}
	return b.String()
}
