package query

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

// FuzzParseFilter checks that any input either parses into a filter whose
// canonical form is stable, or fails with a typed *Error; and that
// evaluating a parsed filter never panics. CI runs the seeds only.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		``,
		`null`,
		`["|", ["==", "id", 20]]`,
		`["|", ["==", "id", 6048], ["==", "id", 6049], ["==", "id", 6050]]`,
		`["|", ["==", "status", "queued"], ["==", "status", "waiting"], ["==", "status", "canceling"]]`,
		`["|", ["==", "status", "canceled"], ["==", "status", "success"], ["==", "status", "error"]]`,
		`["&", ["|", ["==", "id", 6048]], ["|", ["==", "status", "error"]]]`,
		`["|", ["|", ["==", "id", 20], ["==", "id", 21]], ["|", ["==", "id", 20], ["==", "id", 21]]]`,
		`["|", null, null]`,
		`["&", ["==", "status", "error"], [">", "id", 100]]`,
		`["!", ["=~", "status", "^(queued|waiting)$"]]`,
		`["&", ["?", "archived"], ["<=", "priority", -10], ["=[]", "opstatus", "error"]]`,
		`["=[]", "oppriority", 0]`,
		`[">=", "end_ts", 1795756390]`,
		`["!=", "status", "success"]`,
		`["=", "id", "20"]`,
		`["==", "priority", 5.0]`,
		`["==", "priority", 5.5]`,
		`["==", "id", 123456789012345678901234567890]`,
		`["|", ["==", "id", "abc"]]`,
		`["==", "nosuch", 1]`,
		`["xor"]`,
		`["=~", "status", "(unclosed"]`,
		`[[["|"]]]`,
		`{"a": 1}`,
	} {
		f.Add([]byte(seed))
	}
	rows := []map[string]any{
		{"id": int64(20), "status": "error", "priority": 0, "archived": false,
			"opstatus": []string{"error"}, "oppriority": []int{0}, "end_ts": []int64{1795756390, 5},
			"summary": []string{"TEST_DELAY(1.0)"}},
		{"id": json.Number("6048"), "status": 5, "archived": "no", "opstatus": "x", "end_ts": "bad"},
		{},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		flt, err := ParseFilter(data)
		if err != nil {
			var qe *Error
			if !errors.As(err, &qe) || qe.Message() == "" || qe.Result() == nil {
				t.Fatalf("ParseFilter(%q): untyped or empty error %v", data, err)
			}
			return
		}
		canonical := flt.String()
		again, err := ParseFilter(json.RawMessage(canonical))
		if err != nil {
			t.Fatalf("canonical form %s of %q does not parse: %v", canonical, data, err)
		}
		if again.String() != canonical {
			t.Fatalf("canonical form not stable: %s, then %s", canonical, again)
		}
		for _, name := range flt.Fields() {
			if !IsJobField(name) {
				t.Fatalf("Fields() has unknown field %q", name)
			}
		}
		ids1, ok1 := flt.RequestedIDs()
		ids2, ok2 := again.RequestedIDs()
		if ok1 != ok2 || !slices.Equal(ids1, ids2) {
			t.Fatalf("RequestedIDs differ after round trip: %v %v, %v %v", ids1, ok1, ids2, ok2)
		}
		for _, row := range rows {
			m1, err1 := flt.Match(func(f string) (any, bool) { v, ok := row[f]; return v, ok })
			m2, err2 := again.Match(func(f string) (any, bool) { v, ok := row[f]; return v, ok })
			if m1 != m2 || (err1 == nil) != (err2 == nil) {
				t.Fatalf("round trip changes Match: %v %v, %v %v", m1, err1, m2, err2)
			}
			var qe *Error
			if err1 != nil && !errors.As(err1, &qe) {
				t.Fatalf("Match: untyped error %v", err1)
			}
		}
	})
}
