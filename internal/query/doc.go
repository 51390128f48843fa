// Package query implements Ganeti's query2 machinery for the "job"
// resource, as pure code without I/O: the job field definitions, the filter
// language (parsing, evaluation, recognising lookups by job id) and the
// shapes of the Query and QueryFields results. The queue engine computes the
// field values; this package decides which jobs match and how the answer
// looks on the wire. Behaviour follows Ganeti 3.0's luxid
// (src/Ganeti/Query/{Language,Filter,Query,Job}.hs) and its command-line
// client (lib/client/gnt_job.py, lib/cli.py, lib/qlang.py).
//
// # Fields
//
// JobFields, LookupJobFields and FieldsForQueryFields give the definitions
// (name, title, kind, doc) byte-identical to Ganeti's. An unknown name gets
// {"name": N, "title": N, "kind": "unknown", "doc": "Unknown field 'N'"}
// and its value in every row is [1, null] (RS_UNKNOWN); Query does not fail
// on unknown fields (QueryJobs does: see QueryResult.Compat).
//
// # Filters
//
// A filter is JSON null (match everything) or a list whose first element is
// an operator:
//
//	["|", f, …]          or; ["|"] matches nothing
//	["&", f, …]          and; ["&"] matches everything
//	["!", f]             not
//	["?", field]         the field's (bool) value
//	["==", field, v]     equal; "=" is accepted as a legacy synonym
//	["!=", field, v]     legacy; parsed as ["!", ["==", field, v]]
//	["<"|"<="|">"|">=", field, v]
//	["=~", field, re]    regular expression search (unanchored)
//	["=[]", field, v]    the field (a list) contains v
//
// A nested null is also a filter (true). As in Ganeti, a comparison value v
// must be a string or an integral number (5 and 5.0 are accepted, 5.5, true,
// null and lists are not), strings compare only with strings and numbers
// only with numbers (otherwise Match fails with a ParameterError), and
// timestamp fields (received_ts, start_ts, end_ts) compare by their seconds.
// Ganeti uses PCRE; this package uses Go's RE2 syntax, so PCRE-only
// constructs (back-references, look-around) are rejected as invalid. A field
// without data (a job that does not exist, a null timestamp) makes any
// comparison on it true.
//
// Errors (type *Error) carry Ganeti's exception class; Error.Result is the
// "result" member of the failed LUXI reply:
//
//   - malformed filter (unknown operator, wrong arity, value of the wrong
//     type, bad regexp): luxid rejects the request while decoding it and
//     replies {"success": false, "result": "Failed to parse request: …"}, a
//     bare string (Class is ClassRequest, "");
//   - unknown field in the filter: ["ParameterError", ["Can't find field
//     named 'foo'"]];
//   - type mismatch during evaluation: ["ParameterError", ["Invalid types in
//     comparison, trying to compare …"]];
//   - invalid job id in an id list: ["GenericError", [...]].
//
// Ganeti never reports a bad filter as OpPrereqError; OpPrereqError with
// code "wrong_input" is what QueryJobs answers for unknown output fields:
// ["OpPrereqError", ["Unknown output fields selected: foo", "wrong_input"]].
//
// # How the engine runs a Query(["job", fields, filter])
//
//  1. f, err := ParseFilter(filter); on error reply with err.(*Error).Result().
//  2. defs := LookupJobFields(fields).
//  3. If ids, ok := f.RequestedIDs(); ok, take exactly those jobs, in that
//     order, live or archived, including ids that do not exist (their row is
//     the id plus RS_UNAVAIL values). Otherwise take all live jobs in
//     ascending id order, plus the archived ones when WantArchived(fields).
//  4. Keep a job when f.Match(get) is true (get supplies f.Fields(); it may
//     return ok=false or a ResultEntry with RSUnavail for missing data).
//  5. Reply BuildQueryResult(defs, rows), each row e.g. MakeRow(defs, get).
//     Ganeti does not escape <, > and & in JSON; encode the reply with a
//     json.Encoder with SetEscapeHTML(false) for identical bytes.
//
// QueryFields(["job", names]) answers BuildFieldsResult(FieldsForQueryFields(names)).
// QueryJobs([ids or null, fields]) is Ganeti's "classic" query: luxid runs
// Query with the filter ["|", ["|", ["==","id",N]…], ["|", ["==","id",N]…]]
// (the id list twice, for the name and uuid fields, which are both "id" for
// jobs; with a null id list both halves are null, which scans every job) and
// converts the result with Compat.
//
// # What Ganeti 3.0's gnt-job sends
//
// `gnt-job list` always uses the LUXI Query call (never QueryJobs), through
// cli.GenericList with namefield "id" and isnumeric set. The default output
// fields are id, status, summary; -o replaces them, -o +a,b appends. The
// filter is built from two parts: the job-id arguments (qlang.MakeFilter)
// and the status option (qlang.MakeSimpleFilter("status", statuses)). When
// both exist the filter is ["&", idfilter, statusfilter]; when one exists,
// that one; when neither, null. Version is 3000000 in every request.
//
// No arguments:
//
//	{"method": "Query", "args": ["job", ["id", "status", "summary"], null], "version": 3000000}
//
// Job ids (`gnt-job list -o id,status,priority,summary 6048 6049 6050`); the
// arguments are converted to integers (a non-integer is rejected by the
// client with "Invalid job ID passed"):
//
//	{"method": "Query", "args": ["job", ["id", "status", "priority", "summary"],
//	  ["|", ["==", "id", 6048], ["==", "id", 6049], ["==", "id", 6050]]], "version": 3000000}
//
// A single argument containing one of ( ) = / ! ~ ' " \ or white space
// (Ganeti's QLANG_FILTER_DETECTION_CHARS), or with -F/--filter the single
// argument, is parsed as a filter expression instead:
// `gnt-job list 'status == "error" and id > 100'` sends
// ["&", ["==", "status", "error"], [">", "id", 100]].
//
// Status options, each ["|", ["==", "status", s], …] over a set:
//
//	--pending   queued, waiting, canceling
//	--running   running
//	--error     error
//	--finished  canceled, success, error
//
// The sets are Python frozensets, so the order of the "|" terms is not
// fixed (it can differ between runs). `gnt-job list --error`:
//
//	{"method": "Query", "args": ["job", ["id", "status", "summary"],
//	  ["|", ["==", "status", "error"]]], "version": 3000000}
//
// `gnt-job list --pending -o id,status,priority,summary`:
//
//	{"method": "Query", "args": ["job", ["id", "status", "priority", "summary"],
//	  ["|", ["==", "status", "queued"], ["==", "status", "waiting"], ["==", "status", "canceling"]]],
//	 "version": 3000000}
//
// `gnt-job list --error 6048` (ids and a status):
//
//	["&", ["|", ["==", "id", 6048]], ["|", ["==", "status", "error"]]]
//
// --archived does not touch the filter: it appends "archived" to the output
// fields (unless already there), and luxid includes archived jobs in a scan
// exactly when "archived" is an output field (WantArchived). That is why the
// output of `gnt-job list --archived` gets an "Archived" column.
// `gnt-job list --archived -o id,status,summary 6040`:
//
//	{"method": "Query", "args": ["job", ["id", "status", "summary", "archived"],
//	  ["|", ["==", "id", 6040]]], "version": 3000000}
//
// and `gnt-job list --archived`:
//
//	{"method": "Query", "args": ["job", ["id", "status", "summary", "archived"], null], "version": 3000000}
//
// Jobs named by id are found live or archived with or without --archived.
// The CLI prints the field titles from the reply as column headers, formats
// bools as Y/N and non-normal values as "-" (RS_UNAVAIL), "?" (RS_NODATA),
// "??" (RS_UNKNOWN, plus a warning and exit code 14) or "*" (RS_OFFLINE).
//
// `gnt-job list-fields` uses QueryFields; with no arguments the field list
// is null (all fields, sorted by name), otherwise the given names:
//
//	{"method": "QueryFields", "args": ["job", null], "version": 3000000}
//	{"method": "QueryFields", "args": ["job", ["id", "status"]], "version": 3000000}
//
// Other gnt-job commands that query: `gnt-job info ID…` sends Query with
// fields id, status, ops, opresult, opstatus, oplog, opstart, opexec, opend,
// received_ts, start_ts, end_ts and the filter ["|", ["==", "id", ID], …]
// (it prints "Job ID N not found" for a row whose status is not RS_NORMAL);
// `gnt-job cancel` and `gnt-job change-priority` with --pending, --queued
// or --waiting send Query(["id", "status", "summary"], status filter) to
// find the jobs. cli.PollJob (gnt-job watch and wait, and every command that
// waits for its job) uses WaitForJobChange and then QueryJobs([id],
// ["status", "opstatus", "opresult"]).
package query
