package format

import (
	"bytes"
	"fmt"
	"github.com/jobq-dev/jobq/internal/numfmt"
	"strings"
	"testing"
)

// jobRow is one job of the reference captures' job lists.
type jobRow struct {
	id       int
	status   string
	priority int
	duration float64
}

// summary is the job summary as luxid builds it for OP_TEST_DELAY.
func (r jobRow) summary() []any {
	return []any{"TEST_DELAY(" + numfmt.ShowDouble(r.duration) + ")"}
}

// benchErrors are the rows of the 1000-job bench run (duration 0) that the
// captures show, from first to last id.
func benchErrors(first, last int) []jobRow {
	var rows []jobRow
	for id := first; id <= last; id++ {
		rows = append(rows, jobRow{id: id, status: "error"})
	}
	return rows
}

// The jobs after the bench run, as cli-06 shows them.
var laterJobs = []jobRow{
	{6028, "success", 0, 0.01},
	{6030, "success", 0, 0.05},
	{6031, "success", 0, 0.2},
	{6032, "success", 0, 5.0},
	{6033, "canceled", 0, 0.01},
	{6035, "success", 0, 0.05},
	{6036, "success", 0, 0.2},
	{6037, "success", 0, 5.0},
	{6038, "canceled", 0, 0.01},
	{6039, "error", 0, 0},
	{6040, "success", 0, 0.01},
	{6041, "success", 0, 0.1},
	{6042, "success", 0, 0.1},
}

// listRows returns QueryJobs rows for the fields, with values typed as a
// JSON decoder with UseNumber produces them.
func listRows(t *testing.T, fields []string, jobs []jobRow) [][]any {
	var rows [][]any
	for _, j := range jobs {
		var r []any
		for _, f := range fields {
			var v string
			switch f {
			case "id":
				v = fmt.Sprint(j.id)
			case "status":
				v = fmt.Sprintf("%q", j.status)
			case "priority":
				v = fmt.Sprint(j.priority)
			case "summary":
				v = fmt.Sprintf("[%q]", j.summary()[0])
			case "archived":
				v = "true"
			default:
				t.Fatalf("no value for %s", f)
			}
			r = append(r, decode(t, v))
		}
		rows = append(rows, r)
	}
	return rows
}

func concat(parts ...[]jobRow) []jobRow {
	var out []jobRow
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestJobListReference(t *testing.T) {
	tests := []struct {
		golden string
		fields []string
		jobs   []jobRow
	}{
		{"cli-06-job-list", DefaultJobListFields, concat(
			benchErrors(5028, 5055), benchErrors(6013, 6027), laterJobs,
			[]jobRow{{6043, "queued", 0, 0.05}})},
		{"cli-16-job-list-error", DefaultJobListFields, concat(
			benchErrors(5028, 5055), benchErrors(6002, 6027),
			[]jobRow{{6039, "error", 0, 0}, {6044, "error", 0, 3.0}, {6047, "error", 0, 0.01}})},
		{"cli-20-job-list-pending", ParseFields("id,status,priority,summary", DefaultJobListFields), []jobRow{
			{6049, "waiting", 0, 0.01}, {6050, "waiting", 0, 0.01}}},
		{"cli-26-job-list-after-cancel", ParseFields("id,status,priority,summary", DefaultJobListFields), []jobRow{
			{6048, "success", 0, 2.0}, {6049, "success", 0, 0.01}, {6050, "success", 0, 0.01}}},
		{"cli-34-job-list-archived", append(ParseFields("id,status,summary", DefaultJobListFields), "archived"), []jobRow{
			{6040, "success", 0, 0.01}}},
		{"cli-38-job-list-after-autoarchive", DefaultJobListFields, concat(
			benchErrors(5028, 5055), benchErrors(6019, 6027),
			laterJobs[:10], laterJobs[11:],
			[]jobRow{
				{6043, "success", 0, 0.05},
				{6044, "error", 0, 3.0},
				{6045, "canceled", 0, 0.01},
				{6046, "success", 0, 0.3},
				{6047, "error", 0, 0.01},
				{6048, "success", 0, 2.0},
				{6049, "success", 0, 0.01},
				{6050, "success", 0, 0.01},
			})},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			table := JobListTable(tc.fields, listRows(t, tc.fields, tc.jobs), false, nil, refLoc)
			checkText(t, "table", table.String(), golden(t, tc.golden))
		})
	}
}

// cli-08: gnt-job list --no-headers --separator=| -o id,status,priority,
// summary,received_ts,start_ts,end_ts,oplog,opstatus,opresult, with the
// rows as luxid sends them.
const cli08Rows = `[
[5028,"error",0,["TEST_DELAY(0.0)"],[1795758165,207640],[1795758165,406932],[1795758165,413755],[[]],["error"],[["OpPrereqError",["Duration must be greater than zero"]]]],
[5029,"error",0,["TEST_DELAY(0.0)"],[1795758165,215079],[1795758165,642447],[1795758165,654605],[[]],["error"],[["OpPrereqError",["Duration must be greater than zero"]]]],
[6027,"error",0,["TEST_DELAY(0.0)"],[1795758167,671693],[1795758383,735331],[1795758383,741011],[[]],["error"],[["OpPrereqError",["Duration must be greater than zero"]]]],
[6028,"success",0,["TEST_DELAY(1.0e-2)"],[1795758212,744464],[1795758384,1388],[1795758384,249554],[[]],["success"],[null]],
[6030,"success",0,["TEST_DELAY(5.0e-2)"],[1795758385,74087],[1795758385,299636],[1795758385,410093],[[]],["success"],[null]],
[6031,"success",0,["TEST_DELAY(0.2)"],[1795758385,717283],[1795758385,947723],[1795758386,499216],[[[1,[1795758385,958281],"message"," - INFO: Test delay iteration 0/1"],[2,[1795758386,217535],"message"," - INFO: Test delay iteration 1/1"]]],["success"],[null]],
[6032,"success",0,["TEST_DELAY(5.0)"],[1795758386,428065],[1795758386,723648],[1795758391,809120],[[]],["success"],[null]],
[6033,"canceled",0,["TEST_DELAY(1.0e-2)"],[1795758386,623399],null,[1795758387,88484],[[]],["canceled"],[null]],
[6035,"success",0,["TEST_DELAY(5.0e-2)"],[1795758397,392292],[1795758397,574597],[1795758397,682572],[[]],["success"],[null]],
[6036,"success",0,["TEST_DELAY(0.2)"],[1795758397,904075],[1795758398,182532],[1795758398,725393],[[[1,[1795758398,194115],"message"," - INFO: Test delay iteration 0/1"],[2,[1795758398,447495],"message"," - INFO: Test delay iteration 1/1"]]],["success"],[null]],
[6037,"success",0,["TEST_DELAY(5.0)"],[1795758398,681773],[1795758398,971372],[1795758404,35900],[[]],["success"],[null]],
[6038,"canceled",0,["TEST_DELAY(1.0e-2)"],[1795758398,882438],null,[1795758399,349444],[[]],["canceled"],[null]],
[6039,"error",0,["TEST_DELAY(0.0)"],[1795758421,571200],[1795758421,817582],[1795758421,823303],[[]],["error"],[["OpPrereqError",["Duration must be greater than zero"]]]],
[6040,"success",0,["TEST_DELAY(1.0e-2)"],[1795758422,125936],[1795758422,321059],[1795758422,417209],[[]],["success"],[null]],
[6041,"success",0,["TEST_DELAY(0.1)"],[1795758422,368946],[1795758422,563106],[1795758423,112107],[[]],["success"],[null]],
[6042,"success",0,["TEST_DELAY(0.1)"],[1795758423,437755],[1795758423,736230],[1795758424,169434],[[]],["success"],[null]],
[6043,"success",0,["TEST_DELAY(5.0e-2)"],[1795758424,289168],[1795758424,643001],[1795758424,906089],[[[1,[1795758424,657520],"message"," - INFO: Test delay iteration 0/1"],[2,[1795758424,780032],"message"," - INFO: Test delay iteration 1/1"]]],["success"],[null]]
]`

func cli08(t *testing.T, decodeFn func(*testing.T, string) any) (fields []string, rows [][]any, ids map[string]bool) {
	fields = ParseFields("id,status,priority,summary,received_ts,start_ts,end_ts,oplog,opstatus,opresult", DefaultJobListFields)
	ids = map[string]bool{}
	for _, r := range decodeFn(t, cli08Rows).([]any) {
		row := r.([]any)
		rows = append(rows, row)
		ids[fmt.Sprint(row[0])] = true
	}
	return fields, rows, ids
}

func TestJobListSeparatorReference(t *testing.T) {
	for name, decodeFn := range map[string]func(*testing.T, string) any{"UseNumber": decode, "float64": decodeFloat} {
		t.Run(name, func(t *testing.T) {
			fields, rows, ids := cli08(t, decodeFn)
			want := goldenLines(t, "cli-08-job-list-custom", func(l string) bool {
				return ids[strings.SplitN(l, "|", 2)[0]]
			})
			if strings.Count(want, "\n") != len(rows) {
				t.Fatalf("golden has %d of the %d rows", strings.Count(want, "\n"), len(rows))
			}
			got := JobListTable(fields, rows, true, Sep("|"), refLoc).String()
			checkText(t, "table", got, want)
		})
	}
}

func TestListFieldsReference(t *testing.T) {
	checkText(t, "list-fields", ListFieldsTable(JobFields, false, nil).String(), golden(t, "cli-07-job-list-fields"))

	// The same from a QueryFields reply.
	var defs []FieldDef
	for _, f := range decode(t, `[{"name":"id","title":"ID","kind":"number","doc":"Job ID"},{"name":"status","title":"Status","kind":"text","doc":"Job status"}]`).([]any) {
		m := f.(map[string]any)
		defs = append(defs, FieldDef{Name: m["name"].(string), Title: m["title"].(string), Kind: m["kind"].(string), Doc: m["doc"].(string)})
	}
	want := "Name   Type   Title  Description\n" +
		"id     Number ID     Job ID\n" +
		"status Text   Status Job status\n"
	checkText(t, "list-fields id,status", ListFieldsTable(defs, false, nil).String(), want)
	checkText(t, "list-fields --no-headers --separator=,", ListFieldsTable(defs, true, Sep(",")).String(),
		"id,Number,ID,Job ID\nstatus,Text,Status,Job status\n")
}

func TestKindName(t *testing.T) {
	for kind, want := range map[string]string{
		"number": "Number", "text": "Text", "bool": "Boolean", "other": "Custom",
		"timestamp": "Timestamp", "unknown": "Unknown", "float": "Floating-point number",
		"unit": "Storage size", "weird": "weird",
	} {
		if got := KindName(kind); got != want {
			t.Errorf("KindName(%q) = %q, want %q", kind, got, want)
		}
	}
}

func TestTable(t *testing.T) {
	cols := []Column{{Title: "ID", AlignRight: true}, {Title: "Name"}, {Title: "N", AlignRight: true}}
	rows := [][]string{{"1", "alpha", "10"}, {"22", "b", "3"}}
	tests := []struct {
		name  string
		table Table
		want  string
	}{
		{"right last column is padded", Table{Columns: cols, Rows: rows},
			"ID Name   N\n" +
				" 1 alpha 10\n" +
				"22 b      3\n"},
		{"no headers", Table{Columns: cols, Rows: rows, NoHeaders: true},
			" 1 alpha 10\n" +
				"22 b      3\n"},
		{"separator", Table{Columns: cols, Rows: rows, Separator: Sep("|")},
			"ID|Name|N\n1|alpha|10\n22|b|3\n"},
		{"empty separator", Table{Columns: cols, Rows: rows, NoHeaders: true, Separator: Sep("")},
			"1alpha10\n22b3\n"},
		{"multi-character separator", Table{Columns: cols[:2], Rows: [][]string{{"1", "a"}}, Separator: Sep(" :: ")},
			"ID :: Name\n1 :: a\n"},
		{"left last column not padded", Table{Columns: cols[:2], Rows: [][]string{{"1", "a"}, {"2", "longer"}}},
			"ID Name\n 1 a\n 2 longer\n"},
		{"width in characters", Table{Columns: []Column{{Title: "A"}, {Title: "B"}}, Rows: [][]string{{"é€", "x"}, {"abc", "y"}}},
			"A   B\né€  x\nabc y\n"},
		{"short rows", Table{Columns: cols, Rows: [][]string{{"1"}}},
			"ID Name N\n 1       \n"},
		{"header only", Table{Columns: cols}, "ID Name N\n"},
		{"nothing", Table{Columns: cols, NoHeaders: true}, ""},
	}
	for _, tc := range tests {
		checkText(t, tc.name, tc.table.String(), tc.want)
		var b bytes.Buffer
		n, err := tc.table.WriteTo(&b)
		if err != nil || n != int64(len(tc.want)) || b.String() != tc.want {
			t.Errorf("%s: WriteTo wrote %d bytes %q, %v", tc.name, n, b.String(), err)
		}
	}
}

func TestFormatJobListValue(t *testing.T) {
	tests := []struct {
		field string
		json  string
		want  string
	}{
		{"id", `6040`, "6040"},
		{"priority", `-10`, "-10"},
		{"status", `"waiting"`, "waiting"},
		{"summary", `["TEST_DELAY(1.0e-2)","TEST_DELAY(5.0)"]`, "TEST_DELAY(1.0e-2),TEST_DELAY(5.0)"},
		{"summary", `[]`, ""},
		{"archived", `true`, "Y"},
		{"archived", `false`, "N"},
		{"received_ts", `[1795758165,207640]`, "[1795758165, 207640]"},
		{"start_ts", `null`, "-"},
		{"end_ts", `null`, "-"},
		{"opstart", `[[1795758422,321059],null]`, "['2026-11-27 05:47:02.321059', '?']"},
		{"opexec", `[]`, "[]"},
		{"oppriority", `[0,-10]`, "[0, -10]"},
		{"ops", `[{"OP_ID":"OP_TEST_DELAY","duration":1.0e-2}]`, "[{'OP_ID': 'OP_TEST_DELAY', 'duration': 0.01}]"},
		{"opresult", `[null]`, "[None]"},
		{"no_such_field", `[1]`, "[1]"},
	}
	for _, tc := range tests {
		if got := FormatJobListValue(tc.field, decode(t, tc.json), refLoc); got != tc.want {
			t.Errorf("FormatJobListValue(%q, %s) = %q, want %q", tc.field, tc.json, got, tc.want)
		}
	}
	// Query reply cells: [status, value].
	cells := []struct {
		field, json, want string
	}{
		{"id", `[0,20]`, "20"},
		{"summary", `[0,["TEST_DELAY(1.0e-2)"]]`, "TEST_DELAY(1.0e-2)"},
		{"archived", `[0,true]`, "Y"},
		{"start_ts", `[3,null]`, "-"},
		{"foo", `[1,null]`, "??"},
		{"id", `[2,null]`, "*"},
		{"id", `[4,null]`, "*"},
	}
	for _, tc := range cells {
		if got := FormatJobQueryCell(tc.field, decode(t, tc.json), refLoc); got != tc.want {
			t.Errorf("FormatJobQueryCell(%q, %s) = %q, want %q", tc.field, tc.json, got, tc.want)
		}
	}
}

func TestResultStatusText(t *testing.T) {
	for _, tc := range []struct {
		status      int
		short, long string
	}{
		{ResultNormal, "", ""},
		{ResultUnknown, "??", "Unknown field"},
		{ResultNoData, "*", "No data"},
		{ResultUnavail, "-", "Not available"},
		{ResultOffline, "*", "Resource marked offline"},
		{99, "?", "?"},
	} {
		if got := ResultStatusText(tc.status, false); got != tc.short {
			t.Errorf("ResultStatusText(%d, false) = %q, want %q", tc.status, got, tc.short)
		}
		if got := ResultStatusText(tc.status, true); got != tc.long {
			t.Errorf("ResultStatusText(%d, true) = %q, want %q", tc.status, got, tc.long)
		}
	}
}

func TestParseFields(t *testing.T) {
	def := []string{"id", "status", "summary"}
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", def},
		{"id,priority", []string{"id", "priority"}},
		{"+priority,archived", []string{"id", "status", "summary", "priority", "archived"}},
	} {
		got := ParseFields(tc.in, def)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseFields(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	got := ParseFields("", def)
	got[0] = "changed"
	if def[0] != "id" {
		t.Error("ParseFields returned the defaults slice itself")
	}
}

func TestFormatQueryValue(t *testing.T) {
	for _, tc := range []struct {
		kind string
		v    any
		want string
	}{
		{KindTimestamp, decode(t, "1795758422"), "2026-11-27 05:47:02"},
		{KindTimestamp, "x", "N/A"},
		{KindNumber, 3.0, "3"},
		{KindNumber, 3.5, "3.5"},
		{KindText, "t", "t"},
		{KindBool, decode(t, "[]"), "N"},
		{KindBool, decode(t, "[1]"), "Y"},
		{KindOther, nil, "-"},
	} {
		if got := FormatQueryValue(tc.kind, tc.v, refLoc); got != tc.want {
			t.Errorf("FormatQueryValue(%q, %#v) = %q, want %q", tc.kind, tc.v, got, tc.want)
		}
	}
}
