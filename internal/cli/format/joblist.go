package format

import (
	"math"
	"strings"
	"time"
)

// Query field kinds, as LUXI's QueryFields and Query return them.
const (
	KindUnknown   = "unknown"
	KindText      = "text"
	KindBool      = "bool"
	KindNumber    = "number"
	KindFloat     = "float"
	KindUnit      = "unit"
	KindTimestamp = "timestamp"
	KindOther     = "other"
)

// FieldDef is a query field definition as LUXI's QueryFields returns it.
type FieldDef struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Kind  string `json:"kind"`
	Doc   string `json:"doc"`
}

// JobFields are the fields of a job, in the order `gnt-job list-fields`
// prints them (by name), with Ganeti's titles, kinds and descriptions.
var JobFields = []FieldDef{
	{"archived", "Archived", KindBool, "Whether job is archived"},
	{"end_ts", "End", KindOther, "Timestamp of job end (tuple containing seconds and microseconds)"},
	{"id", "ID", KindNumber, "Job ID"},
	{"opend", "OpCode_end", KindOther, "List of opcode execution end timestamps"},
	{"opexec", "OpCode_exec", KindOther, "List of opcode execution start timestamps (after acquiring locks)"},
	{"oplog", "OpCode_log", KindOther, "List of opcode output logs"},
	{"oppriority", "OpCode_prio", KindOther, "List of opcode priorities"},
	{"opresult", "OpCode_result", KindOther, "List of opcodes results"},
	{"ops", "OpCodes", KindOther, "List of all opcodes"},
	{"opstart", "OpCode_start", KindOther, "List of opcode start timestamps (before acquiring locks)"},
	{"opstatus", "OpCode_status", KindOther, "List of opcodes status"},
	{"priority", "Priority", KindNumber, "Current job priority (19 to -20)"},
	{"received_ts", "Received", KindOther, "Timestamp of when job was received (tuple containing seconds and microseconds)"},
	{"start_ts", "Start", KindOther, "Timestamp of job start (tuple containing seconds and microseconds)"},
	{"status", "Status", KindText, "Job status"},
	{"summary", "Summary", KindOther, "List of per-opcode summaries"},
}

// ExtraJobFields are jobq's job fields beyond Ganeti's (jobs in time),
// which list-fields does not print but -o takes.
var ExtraJobFields = []FieldDef{
	{"author", "Author", KindText, "Who submitted the job, as jobqd recorded it in the reason trail (jobq): the LUXI peer's uid and user, the RAPI or dashboard user, the node or schedule"},
	{"not_before", "Not_before", KindOther, "Timestamp before which the job does not start, or null (jobq) (tuple containing seconds and microseconds)"},
	{"optimeout", "OpCode_timeout", KindOther, "List of opcode time limits from their execution start in seconds (jobq)"},
	{"timeout", "Timeout", KindOther, "The job's time limit from its start in seconds, or null (jobq)"},
}

// DefaultJobListFields are the fields `gnt-job list` shows without -o.
var DefaultJobListFields = []string{"id", "status", "summary"}

// JobField returns the definition of the job field name. For an unknown
// name it returns a definition of kind "unknown" titled with the name
// (what Ganeti's query layer answers) and false.
func JobField(name string) (FieldDef, bool) {
	for _, f := range JobFields {
		if f.Name == name {
			return f, true
		}
	}
	for _, f := range ExtraJobFields {
		if f.Name == name {
			return f, true
		}
	}
	return FieldDef{Name: name, Title: name, Kind: KindUnknown, Doc: "Unknown field '" + name + "'"}, false
}

// ParseFields interprets an -o/--output value as Ganeti does: empty means
// the defaults, "+a,b" appends a and b to the defaults, "a,b" replaces
// them. The result is a new slice.
func ParseFields(selected string, defaults []string) []string {
	if selected == "" {
		return append([]string(nil), defaults...)
	}
	if rest, ok := strings.CutPrefix(selected, "+"); ok {
		return append(append([]string(nil), defaults...), strings.Split(rest, ",")...)
	}
	return strings.Split(selected, ",")
}

// KindName returns the user-visible name of a field kind as
// `list-fields` prints it in its Type column: Text, Boolean, Number,
// Floating-point number, Storage size, Timestamp, Custom (for "other"),
// Unknown; any other kind is returned unchanged.
func KindName(kind string) string {
	switch kind {
	case KindUnknown:
		return "Unknown"
	case KindText:
		return "Text"
	case KindBool:
		return "Boolean"
	case KindNumber:
		return "Number"
	case KindFloat:
		return "Floating-point number"
	case KindUnit:
		return "Storage size"
	case KindTimestamp:
		return "Timestamp"
	case KindOther:
		return "Custom"
	}
	return kind
}

// alignsRight reports whether Ganeti right-aligns a column of this kind.
func alignsRight(kind string) bool {
	return kind == KindNumber || kind == KindFloat || kind == KindUnit
}

// ListFieldsTable returns the table `gnt-job list-fields` prints: Name,
// Type (KindName), Title and Description, one row per definition, in the
// given order.
func ListFieldsTable(defs []FieldDef, noHeaders bool, separator *string) *Table {
	t := &Table{
		Columns: []Column{
			{Title: "Name"}, {Title: "Type"}, {Title: "Title"}, {Title: "Description"},
		},
		NoHeaders: noHeaders,
		Separator: separator,
	}
	for _, d := range defs {
		t.Rows = append(t.Rows, []string{d.Name, KindName(d.Kind), d.Title, d.Doc})
	}
	return t
}

// Query result statuses: the first element of each cell of a LUXI Query
// reply.
const (
	ResultNormal  = 0
	ResultUnknown = 1
	ResultNoData  = 2
	ResultUnavail = 3
	ResultOffline = 4
)

// ResultStatusText returns what a listing shows instead of a value whose
// query result status is not normal: "??" for an unknown field, "*" for no
// data or an offline resource, "-" for a value that is not available; with
// verbose, Ganeti's long descriptions. It returns "" for ResultNormal and
// "?" for a status it does not know.
func ResultStatusText(status int, verbose bool) string {
	var long, short string
	switch status {
	case ResultNormal:
		return ""
	case ResultUnknown:
		long, short = "Unknown field", "??"
	case ResultNoData:
		long, short = "No data", "*"
	case ResultUnavail:
		long, short = "Not available", "-"
	case ResultOffline:
		long, short = "Resource marked offline", "*"
	default:
		return "?"
	}
	if verbose {
		return long
	}
	return short
}

// FormatQueryValue formats a field value of the given kind as Ganeti's
// listings do by default: booleans as Y or N, numbers and text with str(),
// timestamps (seconds since the epoch) as local time "2006-01-02 15:04:05",
// anything else (kind "other") with Python's str(), which for lists and
// dicts is their repr: [1795758165, 207640]. A nil value is shown as "-",
// as Ganeti shows a value that is not available.
func FormatQueryValue(kind string, v any, loc *time.Location) string {
	if v == nil {
		return ResultStatusText(ResultUnavail, false)
	}
	switch kind {
	case KindBool:
		if pyTruthy(v) {
			return "Y"
		}
		return "N"
	case KindNumber:
		return intStr(v)
	case KindTimestamp:
		if f, ok := asFloat(v); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return time.Unix(int64(math.Floor(f)), 0).In(loc0(loc)).Format("2006-01-02 15:04:05")
		}
		return "N/A"
	}
	return PyStr(v)
}

// FormatJobListValue formats the value of job field field as `gnt-job
// list` prints it:
//
//   - status: the status name; summary: the per-opcode summaries joined
//     with "," (TEST_DELAY(1.0e-2));
//   - opstart, opexec, opend: the list of local times (FormatTimestamp),
//     printed as a list: ['2026-11-27 05:47:02.321059'];
//   - id and priority: the number (6040, -10); archived: Y or N;
//   - everything else, timestamps such as received_ts included, with
//     Python's str(): [1795758165, 207640], [None], ['error'],
//     [['OpPrereqError', ['Duration must be greater than zero']]];
//   - a nil value (e.g. the start_ts of a job canceled before it ran): "-".
//
// loc (nil: time.Local) is used for opstart, opexec and opend. Float64
// input goes through IntegralFloatsToInts.
func FormatJobListValue(field string, v any, loc *time.Location) string {
	v = IntegralFloatsToInts(v)
	if v == nil {
		return ResultStatusText(ResultUnavail, false)
	}
	switch field {
	case "status":
		return PyStr(v)
	case "summary":
		l, ok := asList(v)
		if !ok {
			return PyStr(v)
		}
		parts := make([]string, len(l))
		for i, s := range l {
			parts[i] = PyStr(s)
		}
		return strings.Join(parts, ",")
	case "not_before":
		return FormatTimestamp(v, loc)
	case "opstart", "opexec", "opend":
		l, ok := asList(v)
		if !ok {
			return PyStr(v)
		}
		out := make([]any, len(l))
		for i, ts := range l {
			out[i] = FormatTimestamp(ts, loc)
		}
		return PyRepr(out)
	}
	def, _ := JobField(field)
	return FormatQueryValue(def.Kind, v, loc)
}

// FormatJobQueryCell formats one cell of a LUXI Query reply for jobs, a
// [status, value] pair: a normal cell as FormatJobListValue, any other
// status as ResultStatusText. A cell that is not such a pair is formatted
// as a plain value.
func FormatJobQueryCell(field string, cell any, loc *time.Location) string {
	if l, ok := asList(cell); ok && len(l) == 2 {
		if st, isInt := asInt(l[0]); isInt {
			if st != ResultNormal {
				return ResultStatusText(int(st), false)
			}
			return FormatJobListValue(field, l[1], loc)
		}
	}
	return FormatJobListValue(field, cell, loc)
}

// JobListTable builds the table `gnt-job list` prints for the given fields
// and rows of raw values (one value per field, as QueryJobs returns them;
// nil rows, i.e. jobs that do not exist, are skipped). Titles come from
// JobFields (an unknown field is titled with its name) and numeric fields
// are right-aligned. Note that `gnt-job list --archived` adds the
// "archived" field when it is not selected; that is the caller's job.
func JobListTable(fields []string, rows [][]any, noHeaders bool, separator *string, loc *time.Location) *Table {
	t := &Table{NoHeaders: noHeaders, Separator: separator}
	for _, f := range fields {
		def, _ := JobField(f)
		t.Columns = append(t.Columns, Column{Title: def.Title, AlignRight: alignsRight(def.Kind)})
	}
	for _, r := range rows {
		if r == nil {
			continue
		}
		cells := make([]string, len(fields))
		for i, f := range fields {
			var v any
			if i < len(r) {
				v = r[i]
			}
			cells[i] = FormatJobListValue(f, v, loc)
		}
		t.Rows = append(t.Rows, cells)
	}
	return t
}

// pyTruthy is Python's bool(v) for JSON values.
func pyTruthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case map[string]any:
		return len(x) > 0
	case OrderedDict:
		return len(x) > 0
	}
	if f, ok := asFloat(v); ok {
		return f != 0
	}
	if l, ok := asList(v); ok {
		return len(l) > 0
	}
	return true
}
