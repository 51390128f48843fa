package format

import (
	"encoding/json"
	"math"
	"testing"
)

func TestPyReprScalars(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, "None"},
		{true, "True"},
		{false, "False"},
		{0, "0"},
		{-7, "-7"},
		{int64(1795758422124506368), "1795758422124506368"},
		{uint8(200), "200"},
		{json.Number("6040"), "6040"},
		{json.Number("-10"), "-10"},
		{json.Number("1795758422124506368"), "1795758422124506368"},
		{json.Number("123456789012345678901234567890"), "123456789012345678901234567890"},
		{json.Number("1.0e-2"), "0.01"},
		{json.Number("0.01"), "0.01"},
		{json.Number("5.0"), "5.0"},
		{json.Number("1E-5"), "1e-05"},
		{json.Number("1e400"), "inf"},
		{json.Number("-0.0"), "-0.0"},
		{5.0, "5.0"},
		{float32(0.5), "0.5"},
	}
	for _, tc := range tests {
		if got := PyRepr(tc.in); got != tc.want {
			t.Errorf("PyRepr(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Expected values printed by CPython 3.11's repr().
func TestPyFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0.01, "0.01"},
		{1e-05, "1e-05"},
		{5.0, "5.0"},
		{0.0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{0.1, "0.1"},
		{0.3, "0.3"},
		{1e16, "1e+16"},
		{1e15, "1000000000000000.0"},
		{123.456, "123.456"},
		{1e-4, "0.0001"},
		{0.00011, "0.00011"},
		{1.5e-5, "1.5e-05"},
		{1e22, "1e+22"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{5e-324, "5e-324"},
		{2.5, "2.5"},
		{-2.5, "-2.5"},
		{1.0 / 3, "0.3333333333333333"},
		{1 << 53, "9007199254740992.0"},
		{1<<53 + 2, "9007199254740994.0"},
		{1234567890123456.0, "1234567890123456.0"},
		{12345678901234567.0, "1.2345678901234568e+16"},
		{9999999999999998.0, "9999999999999998.0"},
		{0.001, "0.001"},
		{1e100, "1e+100"},
		{-1e-100, "-1e-100"},
		{100.0, "100.0"},
		{1795758422124506368.0, "1.7957584221245064e+18"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
		{math.NaN(), "nan"},
	}
	for _, tc := range tests {
		if got := PyFloat(tc.in); got != tc.want {
			t.Errorf("PyFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if got := PyRepr(tc.in); got != tc.want {
			t.Errorf("PyRepr(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Expected values printed by CPython 3.11's repr().
func TestPyReprStrings(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `''`},
		{"a", `'a'`},
		{"it's", `"it's"`},
		{`say "hi"`, `'say "hi"'`},
		{`both ' and "`, `'both \' and "'`},
		{`back\slash`, `'back\\slash'`},
		{"tab\there", `'tab\there'`},
		{"nl\n", `'nl\n'`},
		{"cr\r", `'cr\r'`},
		{"\x00\x1f\x7f", `'\x00\x1f\x7f'`},
		{"café", `'café'`},
		{"\u00a0nbsp", `'\xa0nbsp'`},
		{"\u200b", `'\u200b'`},
		{"€", `'€'`},
		{"\U0001d11e", "'\U0001d11e'"},
		{"\U000e0001", `'\U000e0001'`},
		{"x\u0085y", `'x\x85y'`},
		{"\u2028", `'\u2028'`},
		{"bad\xffbyte", `'bad\xffbyte'`},
		{"Node 'no-such-node' not known", `"Node 'no-such-node' not known"`},
	}
	for _, tc := range tests {
		if got := PyRepr(tc.in); got != tc.want {
			t.Errorf("PyRepr(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if got := PyStr(tc.in); got != tc.in {
			t.Errorf("PyStr(%q) = %q, want the string itself", tc.in, got)
		}
	}
}

func TestPyReprContainers(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"status list", []any{"error"}, "['error']"},
		{"timestamp", []any{json.Number("1795758165"), json.Number("207640")}, "[1795758165, 207640]"},
		{"timestamp array", [2]int64{1795758165, 207640}, "[1795758165, 207640]"},
		{"string slice", []string{"a", "b'c"}, `['a', "b'c"]`},
		{"empty", []any{}, "[]"},
		{"nested empty", []any{[]any{}}, "[[]]"},
		{"result", []any{nil}, "[None]"},
		{"tuple", Tuple{1, 2}, "(1, 2)"},
		{"one-tuple", Tuple{1}, "(1,)"},
		{"empty tuple", Tuple{}, "()"},
		{"dict sorted", map[string]any{"b": []any{nil, true, false}, "a": 1, "c": map[string]any{"d": Tuple{1}}, "e": Tuple{}},
			"{'a': 1, 'b': [None, True, False], 'c': {'d': (1,)}, 'e': ()}"},
		{"typed map", map[string]int{"z": 1, "y": 2}, "{'y': 2, 'z': 1}"},
		{"ordered dict", OrderedDict{{Key: "z", Value: 1}, {Key: "a", Value: "x"}}, "{'z': 1, 'a': 'x'}"},
		{"nil pointer", (*int)(nil), "None"},
		{"pointer", func() *string { s := "p"; return &s }(), "'p'"},
	}
	for _, tc := range tests {
		if got := PyRepr(tc.in); got != tc.want {
			t.Errorf("%s: PyRepr = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// The values of cli-08 (gnt-job list -o ...,oplog,opstatus,opresult), as
// luxid sends them.
func TestPyReprReference(t *testing.T) {
	tests := []struct {
		json, want string
	}{
		{`[["OpPrereqError",["Duration must be greater than zero"]]]`,
			`[['OpPrereqError', ['Duration must be greater than zero']]]`},
		{`[[[1,[1795758385,958281],"message"," - INFO: Test delay iteration 0/1"],[2,[1795758386,217535],"message"," - INFO: Test delay iteration 1/1"]]]`,
			`[[[1, [1795758385, 958281], 'message', ' - INFO: Test delay iteration 0/1'], [2, [1795758386, 217535], 'message', ' - INFO: Test delay iteration 1/1']]]`},
		{`[[]]`, `[[]]`},
		{`["success"]`, `['success']`},
		{`[null]`, `[None]`},
		{`{"duration":1.0e-2,"on_master":true,"on_nodes":[],"comment":null}`,
			`{'comment': None, 'duration': 0.01, 'on_master': True, 'on_nodes': []}`},
	}
	for _, tc := range tests {
		if got := PyRepr(decode(t, tc.json)); got != tc.want {
			t.Errorf("PyRepr(%s) = %s, want %s", tc.json, got, tc.want)
		}
	}
}

func TestIntegralFloatsToInts(t *testing.T) {
	in := decodeFloat(t, `{"a":[1795758165,207640],"b":0.01,"c":5.0,"d":[{"e":-3}],"f":"x","g":1e300}`)
	got := PyRepr(IntegralFloatsToInts(in))
	want := "{'a': [1795758165, 207640], 'b': 0.01, 'c': 5, 'd': [{'e': -3}], 'f': 'x', 'g': 1e+300}"
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// The input is not modified.
	if PyRepr(in.(map[string]any)["a"]) != "[1795758165.0, 207640.0]" {
		t.Errorf("input modified: %s", PyRepr(in))
	}
}
