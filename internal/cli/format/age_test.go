package format

import (
	"strings"
	"testing"
)

func TestParseAge(t *testing.T) {
	good := map[string]int64{
		"all":   AgeAll,
		"0":     0,
		"30":    30,
		"30s":   30,
		"15m":   900,
		"1h":    3600,
		"2d":    172800,
		"1w":    604800,
		"4w":    2419200,
		"007":   7,
		"3600":  3600,
		"1h30m": 5400,
		"1.5h":  5400,
		"0.5":   0,
	}
	for in, want := range good {
		got, err := ParseAge(in)
		if err != nil || got != want {
			t.Errorf("ParseAge(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "h", "1x", "-1", "-1h", "1.5d", " 1h", "1h ", "1 h", "ALL", "1H", "h1", "+5", "1hh", "9223372036854775807m", "99999999999999999999"} {
		got, err := ParseAge(in)
		if err == nil {
			t.Errorf("ParseAge(%q) = %d, want an error", in, got)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "invalid age ") {
			t.Errorf("ParseAge(%q) error %q is not one sentence about the age", in, msg)
		}
	}
}
