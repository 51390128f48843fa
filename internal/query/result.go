package query

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ResultStatus is the status of one value in a query2 result (Ganeti's
// RS_* constants).
type ResultStatus int

// Result statuses.
const (
	RSNormal  ResultStatus = 0 // value present
	RSUnknown ResultStatus = 1 // unknown field
	RSNoData  ResultStatus = 2 // no data (e.g. RPC error)
	RSUnavail ResultStatus = 3 // value unavailable for this item
	RSOffline ResultStatus = 4 // resource offline
)

// ResultEntry is one value of a query2 result row; it marshals to
// [status, value], with a null value unless Status is RSNormal.
type ResultEntry struct {
	Status ResultStatus
	Value  any
}

// Unavailable is the entry for a field that has no value for this job
// (RS_UNAVAIL), e.g. any field but "id" of a requested job that does not
// exist.
func Unavailable() ResultEntry { return ResultEntry{Status: RSUnavail} }

// MarshalJSON encodes the entry as [status, value]. It does not escape
// <, > and & itself, so an encoder with SetEscapeHTML(false) produces the
// same bytes as Ganeti.
func (e ResultEntry) MarshalJSON() ([]byte, error) {
	return e.appendJSON(nil)
}

// UnmarshalJSON decodes [status, value]; numbers in the value decode as
// json.Number.
func (e *ResultEntry) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return fmt.Errorf("query result entry: expected [status, value], got %d elements", len(pair))
	}
	var st ResultStatus
	if err := json.Unmarshal(pair[0], &st); err != nil {
		return fmt.Errorf("query result entry status: %w", err)
	}
	v, err := canonJSON(pair[1])
	if err != nil {
		return fmt.Errorf("query result entry value: %w", err)
	}
	e.Status, e.Value = st, v
	return nil
}

// QueryResult is the result of a LUXI Query call:
// {"fields": [field definitions], "data": [[[status, value], …], …]}.
type QueryResult struct {
	Fields []FieldDef      `json:"fields"`
	Data   [][]ResultEntry `json:"data"`
}

// FieldsResult is the result of a LUXI QueryFields call: {"fields": […]}.
type FieldsResult struct {
	Fields []FieldDef `json:"fields"`
}

// BuildQueryResult shapes rows of field values into a Query result. fields
// are the output fields (LookupJobFields of the requested names) and each
// row holds one value per field, in the same order:
//
//   - a field whose Kind is KindUnknown yields [1, null] (RS_UNKNOWN),
//     whatever the row holds there (nil is fine);
//   - a ResultEntry (or *ResultEntry) is used as is, so a getter can report
//     RS_UNAVAIL etc.; see Unavailable;
//   - nil for received_ts, start_ts or end_ts yields [3, null] (RS_UNAVAIL),
//     as Ganeti reports a missing timestamp;
//   - any other value v yields [0, v]; v is encoded with encoding/json;
//   - a row shorter than fields yields [2, null] (RS_NODATA) for the missing
//     values; extra values are ignored.
//
// Rows are kept in the order given: for a filter with RequestedIDs, the
// requested order; otherwise ascending job id.
func BuildQueryResult(fields []FieldDef, rows [][]any) QueryResult {
	res := QueryResult{
		Fields: append(make([]FieldDef, 0, len(fields)), fields...),
		Data:   make([][]ResultEntry, 0, len(rows)),
	}
	for _, row := range rows {
		out := make([]ResultEntry, len(fields))
		for i, f := range fields {
			switch {
			case f.Kind == KindUnknown:
				out[i] = ResultEntry{Status: RSUnknown}
			case i >= len(row):
				out[i] = ResultEntry{Status: RSNoData}
			default:
				out[i] = entryFor(f, row[i])
			}
		}
		res.Data = append(res.Data, out)
	}
	return res
}

func entryFor(f FieldDef, v any) ResultEntry {
	switch e := v.(type) {
	case ResultEntry:
		if e.Status != RSNormal {
			e.Value = nil
		}
		return e
	case *ResultEntry:
		if e == nil {
			return ResultEntry{Status: RSUnavail}
		}
		return entryFor(f, *e)
	case nil:
		if timestampFields[f.Name] {
			return ResultEntry{Status: RSUnavail}
		}
	}
	return ResultEntry{Status: RSNormal, Value: v}
}

// MakeRow builds one row for BuildQueryResult from a getter with Match's
// contract: ok=false (no data) becomes RS_UNAVAIL; unknown fields are left
// nil (BuildQueryResult reports them as RS_UNKNOWN) and get is not called
// for them.
func MakeRow(fields []FieldDef, get func(field string) (any, bool)) []any {
	row := make([]any, len(fields))
	for i, f := range fields {
		if f.Kind == KindUnknown {
			continue
		}
		v, ok := get(f.Name)
		if !ok {
			row[i] = ResultEntry{Status: RSUnavail}
			continue
		}
		row[i] = v
	}
	return row
}

// BuildFieldsResult shapes field definitions into a QueryFields result. Use
// FieldsForQueryFields(names) for the definitions: with a null or empty
// name list Ganeti answers all job fields sorted by name.
func BuildFieldsResult(fields []FieldDef) FieldsResult {
	return FieldsResult{Fields: append(make([]FieldDef, 0, len(fields)), fields...)}
}

// Compat converts a Query result to the result of a classic query
// (QueryJobs): one list of plain values per row, null for any value whose
// status is not RS_NORMAL (so a requested job that does not exist gives its
// id, if requested, and nulls). Like Ganeti's queryCompat, it fails when an
// output field is unknown, with
// ["OpPrereqError", ["Unknown output fields selected: a, b", "wrong_input"]].
func (r QueryResult) Compat() ([][]any, error) {
	var unknown []string
	for _, f := range r.Fields {
		if f.Kind == KindUnknown {
			unknown = append(unknown, f.Name)
		}
	}
	if len(unknown) > 0 {
		return nil, &Error{
			Class: ClassOpPrereqError,
			Args:  []any{"Unknown output fields selected: " + strings.Join(unknown, ", "), ECodeInval},
		}
	}
	out := make([][]any, 0, len(r.Data))
	for _, row := range r.Data {
		vals := make([]any, len(row))
		for i, e := range row {
			if e.Status == RSNormal {
				vals[i] = e.Value
			}
		}
		out = append(out, vals)
	}
	return out, nil
}
