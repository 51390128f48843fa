package query

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJobFieldsSortedAndComplete(t *testing.T) {
	fields := JobFields()
	if len(fields) != 16 {
		t.Fatalf("got %d job fields, want 16", len(fields))
	}
	for i := 1; i < len(fields); i++ {
		if fields[i-1].Name >= fields[i].Name {
			t.Errorf("fields not sorted: %q before %q", fields[i-1].Name, fields[i].Name)
		}
	}
	// The SPEC's list of job fields.
	for _, n := range []string{"id", "status", "priority", "archived", "ops", "opresult", "opstatus",
		"oplog", "opstart", "opexec", "opend", "oppriority", "summary", "received_ts", "start_ts", "end_ts"} {
		if !IsJobField(n) {
			t.Errorf("%q is not a job field", n)
		}
	}
	// Callers get a copy.
	fields[0].Name = "changed"
	if JobFields()[0].Name != "archived" {
		t.Error("JobFields returned shared storage")
	}
}

func TestLookupJobFields(t *testing.T) {
	got := LookupJobFields([]string{"status", "nosuch", "id"})
	want := []FieldDef{
		{"status", "Status", "text", "Job status"},
		{"nosuch", "nosuch", "unknown", "Unknown field 'nosuch'"},
		{"id", "ID", "number", "Job ID"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := mustJSON(t, got[1]); got != `{"name":"nosuch","title":"nosuch","kind":"unknown","doc":"Unknown field 'nosuch'"}` {
		t.Errorf("unknown field JSON = %s", got)
	}
	if got := LookupJobFields(nil); got == nil || len(got) != 0 {
		t.Errorf("LookupJobFields(nil) = %#v, want empty non-nil", got)
	}
	if got := mustJSON(t, BuildQueryResult(LookupJobFields(nil), [][]any{{}, {}})); got != `{"fields":[],"data":[[],[]]}` {
		t.Errorf("Query with no fields = %s", got)
	}
}

func TestFieldsForQueryFields(t *testing.T) {
	if diff := cmp.Diff(JobFields(), FieldsForQueryFields(nil)); diff != "" {
		t.Errorf("null list must give all fields:\n%s", diff)
	}
	got := mustJSON(t, BuildFieldsResult(FieldsForQueryFields([]string{"id", "x"})))
	want := `{"fields":[{"name":"id","title":"ID","kind":"number","doc":"Job ID"},{"name":"x","title":"x","kind":"unknown","doc":"Unknown field 'x'"}]}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := mustJSON(t, BuildFieldsResult(nil)); got != `{"fields":[]}` {
		t.Errorf("empty fields result = %s", got)
	}
}

func TestBuildQueryResultStatuses(t *testing.T) {
	defs := LookupJobFields([]string{"id", "status", "nosuch", "start_ts", "end_ts", "opstart", "priority", "archived"})
	type ts [2]int64
	rows := [][]any{
		// A finished job: timestamps present, per-opcode null inside a list.
		{int64(5), "success", "ignored", ts{1795756390, 405199}, []int64{1795756390, 488746},
			[]any{nil, []int{1, 2}}, 0, false},
		// A canceled job that never started: start_ts is null.
		{6, "canceled", nil, nil, ts{1, 2}, []any{nil}, json.Number("-10"), true},
		// A requested job that does not exist.
		{7, Unavailable(), nil, Unavailable(), &ResultEntry{Status: RSUnavail}, Unavailable(),
			ResultEntry{Status: RSNoData, Value: "dropped"}, ResultEntry{Status: RSOffline}},
		// A short row.
		{8, "queued"},
	}
	got := mustJSON(t, BuildQueryResult(defs, rows))
	want := `{"fields":[` +
		`{"name":"id","title":"ID","kind":"number","doc":"Job ID"},` +
		`{"name":"status","title":"Status","kind":"text","doc":"Job status"},` +
		`{"name":"nosuch","title":"nosuch","kind":"unknown","doc":"Unknown field 'nosuch'"},` +
		`{"name":"start_ts","title":"Start","kind":"other","doc":"Timestamp of job start (tuple containing seconds and microseconds)"},` +
		`{"name":"end_ts","title":"End","kind":"other","doc":"Timestamp of job end (tuple containing seconds and microseconds)"},` +
		`{"name":"opstart","title":"OpCode_start","kind":"other","doc":"List of opcode start timestamps (before acquiring locks)"},` +
		`{"name":"priority","title":"Priority","kind":"number","doc":"Current job priority (19 to -20)"},` +
		`{"name":"archived","title":"Archived","kind":"bool","doc":"Whether job is archived"}],` +
		`"data":[` +
		`[[0,5],[0,"success"],[1,null],[0,[1795756390,405199]],[0,[1795756390,488746]],[0,[null,[1,2]]],[0,0],[0,false]],` +
		`[[0,6],[0,"canceled"],[1,null],[3,null],[0,[1,2]],[0,[null]],[0,-10],[0,true]],` +
		`[[0,7],[3,null],[1,null],[3,null],[3,null],[3,null],[2,null],[4,null]],` +
		`[[0,8],[0,"queued"],[1,null],[2,null],[2,null],[2,null],[2,null],[2,null]]]}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := mustJSON(t, BuildQueryResult(defs, nil)); !strings.HasSuffix(got, `"data":[]}`) {
		t.Errorf("no rows must give an empty data list: %s", got)
	}
}

func TestResultEntryJSONRoundTrip(t *testing.T) {
	var res QueryResult
	in := `{"fields":[{"name":"id","title":"ID","kind":"number","doc":"Job ID"}],"data":[[[0,20]],[[3,null]],[[0,{"a":[1.5,"x",null]}]]]}`
	if err := json.Unmarshal([]byte(in), &res); err != nil {
		t.Fatal(err)
	}
	want := [][]ResultEntry{
		{{RSNormal, int64(20)}},
		{{RSUnavail, nil}},
		{{RSNormal, map[string]any{"a": []any{json.Number("1.5"), "x", nil}}}},
	}
	if diff := cmp.Diff(want, res.Data); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := mustJSON(t, res); got != in {
		t.Errorf("re-encoded: %s", got)
	}
	var e ResultEntry
	for _, bad := range []string{`[0]`, `{"a":1}`, `["x",1]`, `[0,1,2]`} {
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("decoding %s: no error", bad)
		}
	}
}

func TestResultHTMLEscaping(t *testing.T) {
	res := BuildQueryResult(LookupJobFields([]string{"summary"}), [][]any{{[]string{"TEST_DELAY(<&>)"}}})
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"data":[[[0,["TEST_DELAY(<&>)"]]]]`) {
		t.Errorf("value escaped despite SetEscapeHTML(false): %s", buf.String())
	}
	// The default encoder escapes, which is still the same JSON value.
	if got := mustJSON(t, res); !strings.Contains(got, `TEST_DELAY(\u003c\u0026\u003e)`) {
		t.Errorf("default encoding: %s", got)
	}
}

func TestMakeRow(t *testing.T) {
	defs := LookupJobFields([]string{"id", "nosuch", "status"})
	var asked []string
	row := MakeRow(defs, func(field string) (any, bool) {
		asked = append(asked, field)
		if field == "status" {
			return nil, false
		}
		return 9, true
	})
	if diff := cmp.Diff([]string{"id", "status"}, asked); diff != "" {
		t.Errorf("getter calls (-want +got):\n%s", diff)
	}
	if got := mustJSON(t, BuildQueryResult(defs, [][]any{row})); !strings.HasSuffix(got, `"data":[[[0,9],[1,null],[3,null]]]}`) {
		t.Errorf("got %s", got)
	}
}

func TestCompat(t *testing.T) {
	defs := LookupJobFields([]string{"id", "status", "end_ts"})
	res := BuildQueryResult(defs, [][]any{{20, "success", []int{1, 2}}, {21, Unavailable(), nil}})
	rows, err := res.Compat()
	if err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, rows); got != `[[20,"success",[1,2]],[21,null,null]]` {
		t.Errorf("classic rows = %s", got)
	}
	res = BuildQueryResult(LookupJobFields([]string{"id", "foo", "bar"}), nil)
	_, err = res.Compat()
	var qe *Error
	if !errors.As(err, &qe) {
		t.Fatalf("Compat with unknown fields: %v", err)
	}
	if got := mustJSON(t, qe.Result()); got != `["OpPrereqError",["Unknown output fields selected: foo, bar","wrong_input"]]` {
		t.Errorf("error reply = %s", got)
	}
	if rows, err := BuildQueryResult(defs, nil).Compat(); err != nil || rows == nil || len(rows) != 0 {
		t.Errorf("no rows: %v, %v", rows, err)
	}
}

func TestErrorShapes(t *testing.T) {
	_, err := ParseFilter(json.RawMessage(`["bogus"]`))
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != ClassRequest {
		t.Fatalf("got %v", err)
	}
	if got, want := qe.Result(), "Failed to parse request: Unknown filter operand 'bogus'"; got != want {
		t.Errorf("Result() = %v, want %v", got, want)
	}
	if got := err.Error(); got != "invalid query filter: Unknown filter operand 'bogus'" {
		t.Errorf("Error() = %q", got)
	}
	_, err = ParseFilter(json.RawMessage(`["?", "nosuch"]`))
	if !errors.As(err, &qe) || qe.Class != ClassParameterError {
		t.Fatalf("got %v", err)
	}
	if got := err.Error(); got != "ParameterError: Can't find field named 'nosuch'" {
		t.Errorf("Error() = %q", got)
	}
	if got := mustJSON(t, (&Error{Class: "GenericError"}).Result()); got != `["GenericError",[]]` {
		t.Errorf("no-args error = %s", got)
	}
}

func TestWantArchivedAndSimpleFilter(t *testing.T) {
	if WantArchived([]string{"id", "status"}) || !WantArchived([]string{"id", "archived"}) {
		t.Error("WantArchived")
	}
	if SimpleFilter("id") != nil {
		t.Error("SimpleFilter with no values must be nil")
	}
	got := mustJSON(t, SimpleFilter("status", "queued", "waiting"))
	if got != `["|",["==","status","queued"],["==","status","waiting"]]` {
		t.Errorf("SimpleFilter = %s", got)
	}
	f, err := ParseFilterValue(SimpleFilter("id", 3, int64(1), json.Number("3"), 2.0, big.NewInt(4)))
	if err != nil {
		t.Fatal(err)
	}
	ids, ok := f.RequestedIDs()
	if diff := cmp.Diff([]int64{3, 1, 2, 4}, ids); !ok || diff != "" {
		t.Errorf("RequestedIDs = %v %v", ids, ok)
	}
}

func TestParseFilterValueGoTypes(t *testing.T) {
	type status string
	f, err := ParseFilterValue([]any{"&", []any{"==", "status", status("error")}, []any{">", "priority", uint8(3)},
		[]string{"=~", "status", "or$"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.String(); got != `["&",["==","status","error"],[">","priority",3],["=~","status","or$"]]` {
		t.Errorf("got %s", got)
	}
	for _, v := range []any{float32(1.5), []any{"==", "id", make(chan int)}, []any{"==", "id", 1.5}} {
		if _, err := ParseFilterValue(v); err == nil {
			t.Errorf("ParseFilterValue(%#v): no error", v)
		}
	}
}

func TestNilAndEmptyFilter(t *testing.T) {
	var f *Filter
	ok, err := f.Match(nil)
	if !ok || err != nil || !f.IsEmpty() || f.Fields() != nil || f.String() != "null" {
		t.Error("nil filter must match everything")
	}
	if ids, ok := f.RequestedIDs(); ids != nil || ok {
		t.Error("nil filter has no requested ids")
	}
	for _, raw := range []string{"", "  \n", "null"} {
		f, err := ParseFilter(json.RawMessage(raw))
		if err != nil || !f.IsEmpty() {
			t.Errorf("ParseFilter(%q) = %v, %v", raw, f, err)
		}
	}
}

// TestMatchValueForms checks that Match accepts the value forms an engine
// is likely to return.
func TestMatchValueForms(t *testing.T) {
	type jobStatus string
	f, err := ParseFilter(json.RawMessage(`["&", ["==", "status", "error"], [">=", "priority", -10],
		["<", "end_ts", 1800000000], ["=[]", "oppriority", 0], ["=[]", "opstatus", "error"], ["?", "archived"]]`))
	if err != nil {
		t.Fatal(err)
	}
	rows := []map[string]any{
		{"status": "error", "priority": -10, "end_ts": []int64{1795756390, 1}, "oppriority": []int{0},
			"opstatus": []string{"error"}, "archived": true},
		{"status": jobStatus("error"), "priority": uint16(0), "end_ts": [2]int32{1795756390, 1},
			"oppriority": []float64{0}, "opstatus": []jobStatus{"error"}, "archived": ResultEntry{Value: true}},
		{"status": &ResultEntry{Value: "error"}, "priority": json.Number("-10"), "end_ts": tsJSON{1795756390, 1},
			"oppriority": []any{json.Number("0")}, "opstatus": json.RawMessage(`["error"]`), "archived": ptr(true)},
	}
	for i, row := range rows {
		ok, err := f.Match(func(field string) (any, bool) { v, ok := row[field]; return v, ok })
		if err != nil || !ok {
			t.Errorf("row %d: Match = %v, %v", i, ok, err)
		}
	}
}

type tsJSON [2]int64

func (t tsJSON) MarshalJSON() ([]byte, error) {
	return json.Marshal([]int64{t[0], t[1]})
}

func ptr[T any](v T) *T { return &v }
