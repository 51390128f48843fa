package format

import (
	"math"
	"strconv"
	"strings"
)

// ShowDouble returns Haskell's `show` of a Double, which is how Ganeti's
// luxid writes numbers into job summaries ("TEST_DELAY(1.0e-2)"):
//
//   - the shortest digits that read back as x (the same digits Python and
//     Go choose);
//   - fixed notation when 0.1 <= |x| < 10^7, always with a fractional part:
//     0.3, 5.0, 123.456, 9999999.0; zero is 0.0;
//   - otherwise d.ddd followed by e and the exponent with no plus sign and
//     no padding, and at least one digit after the point: 1.0e-2, 5.0e-2,
//     1.0e7, 1.2345e-5;
//   - a minus sign in front of negative values (and of -0.0); NaN,
//     Infinity and -Infinity.
func ShowDouble(x float64) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "Infinity"
	case math.IsInf(x, -1):
		return "-Infinity"
	}
	sign := ""
	if math.Signbit(x) {
		sign = "-"
	}
	if x == 0 {
		return sign + "0.0"
	}
	// |x| = 0.DIGITS × 10^e, as Haskell's floatToDigits returns it.
	digits, e := shortestDigits(x)
	if e < 0 || e > 7 {
		var b strings.Builder
		b.WriteString(sign)
		b.WriteByte(digits[0])
		b.WriteByte('.')
		if len(digits) > 1 {
			b.WriteString(digits[1:])
		} else {
			b.WriteByte('0')
		}
		b.WriteByte('e')
		b.WriteString(strconv.Itoa(e - 1))
		return b.String()
	}
	return sign + fixedDigits(digits, e)
}
