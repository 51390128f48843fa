package numfmt

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestShowDouble(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		// The summaries of the reference captures.
		{0.01, "1.0e-2"},
		{0.05, "5.0e-2"},
		{0.1, "0.1"},
		{0.2, "0.2"},
		{0.3, "0.3"},
		{0.0, "0.0"},
		{2.0, "2.0"},
		{3.0, "3.0"},
		{5.0, "5.0"},
		// Boundaries of the fixed notation: 0.1 <= |x| < 10^7.
		{0.001, "1.0e-3"},
		{0.09999999999999999, "9.999999999999999e-2"},
		{9999999.0, "9999999.0"},
		{9999999.5, "9999999.5"},
		{1e7, "1.0e7"},
		{12345678.0, "1.2345678e7"},
		{12345678.9, "1.23456789e7"},
		// Others.
		{123.456, "123.456"},
		{100.0, "100.0"},
		{1234567.5, "1234567.5"},
		{1.0 / 3, "0.3333333333333333"},
		{1.5e-5, "1.5e-5"},
		{1e22, "1.0e22"},
		{1e-300, "1.0e-300"},
		{5e-324, "5.0e-324"},
		{math.MaxFloat64, "1.7976931348623157e308"},
		{-0.01, "-1.0e-2"},
		{-5.0, "-5.0"},
		{-0.5, "-0.5"},
		{math.Copysign(0, -1), "-0.0"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
		{math.NaN(), "NaN"},
	}
	for _, tc := range tests {
		if got := ShowDouble(tc.in); got != tc.want {
			t.Errorf("ShowDouble(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// showDoubleShape checks the form of Haskell's show: fixed notation with a
// digit on each side of the point for 0.1 <= |x| < 1e7, else d.ddde±N.
func showDoubleShape(t *rapid.T, x float64, s string) {
	body := strings.TrimPrefix(s, "-")
	if math.Signbit(x) != (body != s) {
		t.Fatalf("ShowDouble(%v) = %q: wrong sign", x, s)
	}
	a := math.Abs(x)
	mant, exp, isExp := strings.Cut(body, "e")
	if isExp != (a != 0 && (a < 0.1 || a >= 1e7)) {
		t.Fatalf("ShowDouble(%v) = %q: wrong notation", x, s)
	}
	intPart, frac, ok := strings.Cut(mant, ".")
	if !ok || intPart == "" || frac == "" {
		t.Fatalf("ShowDouble(%v) = %q: want digits on both sides of the point", x, s)
	}
	if isExp {
		if len(intPart) != 1 || intPart == "0" {
			t.Fatalf("ShowDouble(%v) = %q: want one non-zero digit before the point", x, s)
		}
		if strings.HasPrefix(exp, "+") || strings.HasPrefix(exp, "0") || strings.HasPrefix(exp, "-0") {
			t.Fatalf("ShowDouble(%v) = %q: exponent is not Haskell's", x, s)
		}
	}
	if len(frac) > 1 && strings.HasSuffix(frac, "0") && !isExp {
		t.Fatalf("ShowDouble(%v) = %q: trailing zero", x, s)
	}
}

// ShowDouble's output reads back as the same float64 (Go parses Haskell's
// notation directly; only the names of the non-finite values differ).
func TestShowDoubleRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var x float64
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0:
			x = rapid.Float64().Draw(t, "any")
		case 1:
			x = math.Float64frombits(rapid.Uint64().Draw(t, "bits"))
		case 2:
			// Durations as users type them.
			x = float64(rapid.IntRange(-100000, 100000).Draw(t, "n")) / math.Pow(10, float64(rapid.IntRange(0, 6).Draw(t, "scale")))
		default:
			x = rapid.SampledFrom([]float64{0, math.Copysign(0, -1), 0.1, 1e7, math.Nextafter(0.1, 0), math.Nextafter(1e7, 0), math.SmallestNonzeroFloat64, math.MaxFloat64}).Draw(t, "edge")
		}
		s := ShowDouble(x)
		if math.IsNaN(x) {
			if s != "NaN" {
				t.Fatalf("ShowDouble(NaN) = %q", s)
			}
			return
		}
		goSyntax := strings.NewReplacer("Infinity", "Inf").Replace(s)
		back, err := strconv.ParseFloat(goSyntax, 64)
		if err != nil {
			t.Fatalf("ShowDouble(%v) = %q does not parse: %v", x, s, err)
		}
		if back != x || math.Signbit(back) != math.Signbit(x) {
			t.Fatalf("ShowDouble(%v) = %q reads back as %v", x, s, back)
		}
		if !math.IsInf(x, 0) {
			showDoubleShape(t, x, s)
		}
		// PyFloat round-trips too.
		p := PyFloat(x)
		back, err = strconv.ParseFloat(p, 64)
		if err != nil || back != x {
			t.Fatalf("PyFloat(%v) = %q reads back as %v (%v)", x, p, back, err)
		}
	})
}
