package format

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// AgeAll is what ParseAge returns for "all": archive every finished job,
// whatever its age (LUXI's AutoArchiveJobs takes -1 for it).
const AgeAll int64 = -1

var ageUnits = map[byte]int64{
	's': 1,
	'm': 60,
	'h': 3600,
	'd': 86400,
	'w': 604800,
}

// ParseAge parses the AGE argument of `jobq autoarchive`, as Ganeti's
// ParseTimespec does: a whole number of seconds, optionally followed by
// one of the units s, m, h, d or w (30s, 15m, 1h, 2d, 1w; "3600" is an
// hour), or the word "all", which gives AgeAll. Negative ages, fractions,
// spaces and values that overflow are rejected with a one-sentence error.
func ParseAge(s string) (int64, error) {
	if s == "all" {
		return AgeAll, nil
	}
	bad := func() (int64, error) {
		return 0, fmt.Errorf("invalid age %q: give a whole number of seconds, optionally followed by s, m, h, d or w (such as 1h or 2d), or \"all\"", s)
	}
	if s == "" {
		return bad()
	}
	num, mult := s, int64(1)
	if m, ok := ageUnits[s[len(s)-1]]; ok {
		num, mult = s[:len(s)-1], m
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return bad()
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid age %q: the value is too large", s)
	}
	return n * mult, nil
}
