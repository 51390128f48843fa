package query

import (
	"bytes"
	"encoding/json"
	"testing"
)

type textish string

func (t textish) MarshalText() ([]byte, error) { return []byte("T:" + string(t)), nil }

type plainString string

// The fast encoder writes exactly what encoding/json (without HTML
// escaping) writes, for every kind of value.
func TestFastEncoderMatchesEncodingJSON(t *testing.T) {
	values := []any{nil, int64(-5), 7, true, false, "plain", "quote\" back\\slash", "<&>", "ünïcode",
		"line\nbreak\x01", "\u2028", []string{"a", "b\"c"}, []string{}, json.Number("1.0e-2"), json.Number("12"),
		plainString("named"), textish("x"), map[string]any{"b": 1, "a": []any{nil, "x"}}, []any{1.5, "y"},
		json.RawMessage(`{"k":[1,2]}`), [2]int64{1, 2}, 0.01, string([]byte{0xff, 'a'})}
	for _, v := range values {
		got, err := appendValue(nil, v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		want, err := marshalNoHTML(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%#v: fast %s, encoding/json %s", v, got, want)
		}
	}
	if _, err := appendValue(nil, json.Number("not a number")); err == nil {
		t.Error("an invalid json.Number was written")
	}
}

func BenchmarkQueryResultMarshal(b *testing.B) {
	fields := LookupJobFields([]string{"id", "status", "summary"})
	rows := make([][]any, 100000)
	for i := range rows {
		rows[i] = []any{int64(i + 1), "success", []string{"TEST_DELAY(1.0e-3)"}}
	}
	res := BuildQueryResult(fields, rows)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(res); err != nil {
			b.Fatal(err)
		}
	}
}
