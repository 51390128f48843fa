package duration

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0}, {"90", 90 * time.Second}, {"0.5", 500 * time.Millisecond}, {"3", 3 * time.Second},
		{"10s", 10 * time.Second}, {"5m", 5 * time.Minute}, {"1h", time.Hour}, {"1h30m", 90 * time.Minute},
		{"250ms", 250 * time.Millisecond}, {"2d", 48 * time.Hour}, {"1w", 7 * 24 * time.Hour}, {"007", 7 * time.Second},
		{"1e3", 1000 * time.Second}, {"1.5h", 90 * time.Minute},
	} {
		if got, err := Parse(tc.in); err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "soon", "abc", "-1", "-1s", "all", "NaN", "inf", "+5", " 1h", "1h ", "1 h",
		"1H", "h", "1x", "1.5d", "d", "1hh"} {
		d, err := Parse(bad)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, d)
			continue
		}
		want := `invalid duration "` + bad + `": ` + Forms
		if err.Error() != want {
			t.Errorf("Parse(%q): %q, want %q", bad, err, want)
		}
	}
	for _, big := range []string{"1e30", "99999999999999999999d", "9223372036854775807", "300y0h", "2562048h", "99999999999999999999"} {
		_, err := Parse(big)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "invalid duration") {
			t.Errorf("Parse(%q): %v, want one sentence", big, err)
		}
	}
	if e := (&Error{Input: "x", What: "age"}).Error(); !strings.HasPrefix(e, `invalid age "x": `) {
		t.Errorf("What: %q", e)
	}
}

// Every duration Go prints, and every whole number of seconds, parses
// back to itself.
func TestParseRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := time.Duration(rapid.Int64Range(0, int64(Max)).Draw(t, "d"))
		if got, err := Parse(d.String()); err != nil || got != d {
			t.Fatalf("Parse(%q) = %v, %v", d.String(), got, err)
		}
		s := rapid.Int64Range(0, 1<<32).Draw(t, "s")
		if got, err := Parse(strconv.FormatInt(s, 10)); err != nil || got != time.Duration(s)*time.Second {
			t.Fatalf("Parse(%d) = %v, %v", s, got, err)
		}
	})
}

func TestFlagError(t *testing.T) {
	in := fmt.Errorf(`invalid argument "x" for "--ttl" flag: %w`, &Error{Input: "x"})
	if got, want := FlagError(in).Error(), `--ttl: invalid duration "x": `+Forms; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	in = fmt.Errorf(`invalid argument "x" for "-t, --timeout" flag: %w`, &Error{Input: "x"})
	if got, want := FlagError(in).Error(), `--timeout: invalid duration "x": `+Forms; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	other := errors.New(`unknown flag: --bogus`)
	if FlagError(other) != other {
		t.Error("another error was changed")
	}
}
