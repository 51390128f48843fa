package query

import "sort"

// Field kinds, Ganeti's QFT_* constants (the "kind" member of a field
// definition).
const (
	KindUnknown     = "unknown"
	KindText        = "text"
	KindBool        = "bool"
	KindNumber      = "number"
	KindNumberFloat = "float"
	KindUnit        = "unit"
	KindTimestamp   = "timestamp"
	KindOther       = "other"
)

// Job field names.
const (
	FieldID         = "id"
	FieldStatus     = "status"
	FieldPriority   = "priority"
	FieldArchived   = "archived"
	FieldOps        = "ops"
	FieldOpResult   = "opresult"
	FieldOpStatus   = "opstatus"
	FieldOpLog      = "oplog"
	FieldOpStart    = "opstart"
	FieldOpExec     = "opexec"
	FieldOpEnd      = "opend"
	FieldOpPriority = "oppriority"
	FieldSummary    = "summary"
	FieldReceivedTS = "received_ts"
	FieldStartTS    = "start_ts"
	FieldEndTS      = "end_ts"
	// jobq's fields (jobs in time): not in Ganeti's list (QueryFields
	// without names, gnt-job list-fields), found by name.
	FieldNotBefore = "not_before"
	FieldTimeout   = "timeout"
	FieldOpTimeout = "optimeout"
	// FieldAuthor is who submitted the job (package author).
	FieldAuthor = "author"
)

// FieldDef is a query2 field definition. It marshals to JSON exactly as
// Ganeti sends it: {"name":…,"title":…,"kind":…,"doc":…}.
type FieldDef struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Kind  string `json:"kind"`
	Doc   string `json:"doc"`
}

const tsDocSuffix = " (tuple containing seconds and microseconds)"

// jobFieldList is in Ganeti's declaration order (src/Ganeti/Query/Job.hs).
var jobFieldList = []FieldDef{
	{FieldID, "ID", KindNumber, "Job ID"},
	{FieldStatus, "Status", KindText, "Job status"},
	{FieldPriority, "Priority", KindNumber, "Current job priority (19 to -20)"},
	{FieldArchived, "Archived", KindBool, "Whether job is archived"},
	{FieldOps, "OpCodes", KindOther, "List of all opcodes"},
	{FieldOpResult, "OpCode_result", KindOther, "List of opcodes results"},
	{FieldOpStatus, "OpCode_status", KindOther, "List of opcodes status"},
	{FieldOpLog, "OpCode_log", KindOther, "List of opcode output logs"},
	{FieldOpStart, "OpCode_start", KindOther, "List of opcode start timestamps (before acquiring locks)"},
	{FieldOpExec, "OpCode_exec", KindOther, "List of opcode execution start timestamps (after acquiring locks)"},
	{FieldOpEnd, "OpCode_end", KindOther, "List of opcode execution end timestamps"},
	{FieldOpPriority, "OpCode_prio", KindOther, "List of opcode priorities"},
	{FieldSummary, "Summary", KindOther, "List of per-opcode summaries"},
	{FieldReceivedTS, "Received", KindOther, "Timestamp of when job was received" + tsDocSuffix},
	{FieldStartTS, "Start", KindOther, "Timestamp of job start" + tsDocSuffix},
	{FieldEndTS, "End", KindOther, "Timestamp of job end" + tsDocSuffix},
}

// extensionFieldList are jobq's job fields beyond Ganeti's.
var extensionFieldList = []FieldDef{
	{FieldNotBefore, "Not_before", KindOther, "Timestamp before which the job does not start, or null (jobq)" + tsDocSuffix},
	{FieldTimeout, "Timeout", KindOther, "The job's time limit from its start in seconds, or null (jobq)"},
	{FieldOpTimeout, "OpCode_timeout", KindOther, "List of opcode time limits from their execution start in seconds (jobq)"},
	{FieldAuthor, "Author", KindText, "Who submitted the job, as jobqd recorded it in the reason trail (jobq): the LUXI peer's uid and user, the RAPI or dashboard user, the node or schedule"},
}

// ExtensionJobFields returns jobq's job fields beyond Ganeti's, which
// QueryFields lists only when asked for by name.
func ExtensionJobFields() []FieldDef { return append([]FieldDef(nil), extensionFieldList...) }

var jobFieldMap = func() map[string]FieldDef {
	m := make(map[string]FieldDef, len(jobFieldList))
	for _, f := range append(append([]FieldDef(nil), jobFieldList...), extensionFieldList...) {
		m[f.Name] = f
	}
	return m
}()

// timestampFields are the job fields Ganeti marks QffTimestamp: their value
// is a [seconds, microseconds] pair or null, filters compare the seconds
// only, and a null value is reported as RS_UNAVAIL.
var timestampFields = map[string]bool{
	FieldReceivedTS: true,
	FieldStartTS:    true,
	FieldEndTS:      true,
	FieldNotBefore:  true,
}

// IsTimestampField reports whether name is one of the job timestamp fields
// (received_ts, start_ts, end_ts).
func IsTimestampField(name string) bool { return timestampFields[name] }

// IsJobField reports whether name is a known job field.
func IsJobField(name string) bool {
	_, ok := jobFieldMap[name]
	return ok
}

// JobFields returns the definitions of all job fields, sorted by name (the
// order of QueryFields with no field list and of `gnt-job list-fields`).
func JobFields() []FieldDef {
	out := make([]FieldDef, len(jobFieldList))
	copy(out, jobFieldList)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// UnknownField returns Ganeti's definition of a field that does not exist:
// kind "unknown", title = name, doc "Unknown field '<name>'".
func UnknownField(name string) FieldDef {
	return FieldDef{Name: name, Title: name, Kind: KindUnknown, Doc: "Unknown field '" + name + "'"}
}

// LookupJobFields returns the definitions of the named fields, in the order
// given; an unknown name yields UnknownField(name). An empty list yields an
// empty (non-nil) list, as for Query; see FieldsForQueryFields for
// QueryFields.
func LookupJobFields(names []string) []FieldDef {
	out := make([]FieldDef, 0, len(names))
	for _, n := range names {
		if f, ok := jobFieldMap[n]; ok {
			out = append(out, f)
		} else {
			out = append(out, UnknownField(n))
		}
	}
	return out
}

// FieldsForQueryFields returns the definitions QueryFields answers for the
// requested names: all fields sorted by name when names is null or empty,
// otherwise LookupJobFields(names).
func FieldsForQueryFields(names []string) []FieldDef {
	if len(names) == 0 {
		return JobFields()
	}
	return LookupJobFields(names)
}

// WantArchived reports whether a full scan for a Query with these output
// fields must include archived jobs. Ganeti's luxid reads the archive
// directory during a scan exactly when "archived" is one of the requested
// output fields (filter fields do not count); jobs requested by id (see
// Filter.RequestedIDs) are looked up in the archive regardless.
func WantArchived(fields []string) bool {
	for _, f := range fields {
		if f == FieldArchived {
			return true
		}
	}
	return false
}
