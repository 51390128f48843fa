// Package duration is the one parser of durations on jobq's and jobqd's
// command lines and in jobqd's configuration file: a number of seconds as
// Ganeti's delay takes it ("90", "0.5"), a Go duration ("10s", "5m",
// "1h30m", "250ms"), or a whole number of days or weeks as Ganeti's
// timespecs allow ("2d", "1w"). Durations are never negative.
package duration

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Forms is what the error message says a duration may be.
const Forms = "give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d)"

// Error is a string that is not a duration.
type Error struct {
	Input string
	// What names the value ("duration", "age", ...); "" is "duration".
	What string
	// Reason, when not empty, replaces Forms (a value too large).
	Reason string
}

func (e *Error) Error() string {
	what := e.What
	if what == "" {
		what = "duration"
	}
	reason := e.Reason
	if reason == "" {
		reason = Forms
	}
	return fmt.Sprintf("invalid %s %q: %s", what, e.Input, reason)
}

// Max is the longest duration accepted (about 292 years).
const Max = time.Duration(math.MaxInt64)

var days = map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}

// Parse parses s as a duration in one of the forms of the package
// comment.
func Parse(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) { return 0, &Error{Input: s} }
	tooLarge := func() (time.Duration, error) {
		return 0, &Error{Input: s, Reason: "it is too large (the most is about 292 years)"}
	}
	if s == "" || strings.TrimSpace(s) != s || strings.HasPrefix(s, "+") {
		return bad()
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil || isRangeErr(err) {
		switch {
		case math.IsNaN(f) || f < 0 || strings.ContainsAny(s, "nN"):
			// NaN, Inf, -1: not a number of seconds.
			return bad()
		case math.IsInf(f, 0) || f*float64(time.Second) >= float64(Max):
			return tooLarge()
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	if mult, ok := days[s[len(s)-1]]; ok {
		num := s[:len(s)-1]
		if num == "" || strings.Trim(num, "0123456789") != "" {
			return bad()
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > int64(Max/mult) {
			return tooLarge()
		}
		return time.Duration(n) * mult, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if strings.Contains(err.Error(), "invalid duration") || strings.Contains(err.Error(), "unit") {
			return bad()
		}
		return tooLarge()
	}
	if d < 0 {
		return bad()
	}
	return d, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// Value is a pflag.Value for a duration flag parsed with Parse. Its zero
// value prints as "0".
type Value struct{ P *time.Duration }

// Var returns a Value that sets *p, first set to def.
func Var(p *time.Duration, def time.Duration) Value {
	*p = def
	return Value{P: p}
}

func (v Value) String() string {
	if v.P == nil || *v.P == 0 {
		return "0"
	}
	return v.P.String()
}

// Set parses s with Parse.
func (v Value) Set(s string) error {
	d, err := Parse(s)
	if err != nil {
		return err
	}
	*v.P = d
	return nil
}

// Type is how help names the flag's value.
func (Value) Type() string { return "DURATION" }

// FlagError shortens pflag's error for a duration flag's bad value
// (`invalid argument "x" for "--ttl" flag: invalid duration "x": ...`) to
// `--ttl: invalid duration "x": ...`; other errors are returned as they
// are.
func FlagError(err error) error {
	msg := err.Error()
	const pre, mid = `invalid argument `, ` flag: invalid duration `
	i := strings.Index(msg, mid)
	if !strings.HasPrefix(msg, pre) || i < 0 {
		return err
	}
	// The flag's name is the last quoted string before mid.
	head := msg[:i]
	j := strings.LastIndex(head, ` for "`)
	if j < 0 || !strings.HasSuffix(head, `"`) {
		return err
	}
	name := head[j+len(` for "`) : len(head)-1]
	if k := strings.LastIndex(name, ", "); k >= 0 {
		name = name[k+2:] // "-r, --repeat"
	}
	return fmt.Errorf("%s: invalid duration %s", name, msg[i+len(mid):])
}
