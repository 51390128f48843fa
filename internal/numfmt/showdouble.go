// Package numfmt writes floating-point numbers the way Python and Haskell
// print them, as Ganeti's clients (Python) and luxid (Haskell) do.
package numfmt

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

// shortestDigits returns the shortest decimal digits that read back as the
// absolute value of f, and the decimal point position: |f| = 0.DIGITS ×
// 10^decpt. f must be finite; for zero it returns ("0", 1).
func shortestDigits(f float64) (digits string, decpt int) {
	s := strconv.FormatFloat(math.Abs(f), 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(s, "e")
	e, _ := strconv.Atoi(exp)
	digits = strings.Replace(mant, ".", "", 1)
	return digits, e + 1
}

// PyFloat returns Python 3's repr() of a float: the shortest digits that
// read back as f, in fixed notation when 1e-4 <= |f| < 1e16 (always with a
// fractional part: 5.0, 0.01, 1e+16 is the first exponent form) and in
// exponent notation otherwise (1e-05, 1.5e+300); inf, -inf and nan.
func PyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	sign := ""
	if math.Signbit(f) {
		sign = "-"
	}
	digits, decpt := shortestDigits(f)
	if decpt > 16 || decpt < -3 {
		var b strings.Builder
		b.WriteString(sign)
		b.WriteByte(digits[0])
		if len(digits) > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		exp := decpt - 1
		b.WriteByte('e')
		if exp < 0 {
			b.WriteByte('-')
			exp = -exp
		} else {
			b.WriteByte('+')
		}
		if exp < 10 {
			b.WriteByte('0')
		}
		b.WriteString(strconv.Itoa(exp))
		return b.String()
	}
	return sign + fixedDigits(digits, decpt)
}

// fixedDigits places the decimal point into digits (0.DIGITS × 10^decpt),
// always printing at least one digit on each side of the point.
func fixedDigits(digits string, decpt int) string {
	switch {
	case decpt <= 0:
		return "0." + strings.Repeat("0", -decpt) + digits
	case decpt >= len(digits):
		return digits + strings.Repeat("0", decpt-len(digits)) + ".0"
	default:
		return digits[:decpt] + "." + digits[decpt:]
	}
}
