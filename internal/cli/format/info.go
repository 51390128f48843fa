package format

import (
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// InfoField is one entry of an OrderedDict.
type InfoField struct {
	Key   string
	Value any
	// Align names an alignment group: the values of all entries of one
	// OrderedDict with the same non-empty Align start in the same column
	// ("Received:         2026-..." / "Processing start: 2026-...").
	Align string
}

// OrderedDict is a dictionary printed in the given order by
// WriteGenericInfo (Ganeti's list of (key, value[, group]) tuples).
type OrderedDict []InfoField

// WriteGenericInfo writes data as Ganeti's PrintGenericInfo does (the
// layout of `gnt-job info`, a YAML document):
//
//   - an OrderedDict prints "key: value" lines in order, aligning values
//     by InfoField.Align; a map[string]any prints its keys sorted;
//   - a list prints one "- item" per element; nested lists put further
//     dashes on the same line ("- - gnt:client:gnt-debug");
//   - a Tuple whose elements are all scalars prints inline: [1, message, x]
//     (other Tuples print as lists; unlike Python's, a list that starts with
//     a Tuple is still a list: only OrderedDict is a dictionary);
//   - a scalar prints as Python's str(): None, True, 0.01, text;
//   - a container after a key starts on the next line, indented by two
//     spaces per level, and the key line keeps the space after the colon
//     ("Opcodes: "); an empty list or dict leaves just "key: ".
//
// Trailing newlines are collapsed into one.
func WriteGenericInfo(w io.Writer, data any) error {
	var b strings.Builder
	writeInfo(&b, data, 0, false)
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

const infoIndent = "  "

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, OrderedDict, Tuple, []any:
		return true
	case nil, string:
		return false
	}
	if _, ok := asList(v); ok {
		return true
	}
	return reflect.ValueOf(v).Kind() == reflect.Map
}

func writeInfo(b *strings.Builder, data any, level int, afterKey bool) {
	switch x := data.(type) {
	case OrderedDict:
		if len(x) == 0 {
			b.WriteByte('\n')
			return
		}
		widths := map[string]int{}
		for _, f := range x {
			if f.Align != "" {
				widths[f.Align] = max(widths[f.Align], utf8.RuneCountInString(f.Key))
			}
		}
		for i, f := range x {
			if afterKey && i == 0 {
				b.WriteByte('\n')
			}
			if afterKey || i > 0 {
				b.WriteString(strings.Repeat(infoIndent, level))
			}
			b.WriteString(f.Key)
			b.WriteString(": ")
			if f.Align != "" {
				b.WriteString(strings.Repeat(" ", widths[f.Align]-utf8.RuneCountInString(f.Key)))
			}
			writeInfo(b, f.Value, level+1, true)
		}
		return
	case Tuple:
		simple := true
		for _, e := range x {
			if isContainer(e) {
				simple = false
				break
			}
		}
		if simple {
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = PyStr(e)
			}
			b.WriteString("[" + strings.Join(parts, ", ") + "]\n")
			return
		}
	}
	if m, ok := asStringMap(data); ok {
		if len(m) == 0 {
			b.WriteByte('\n')
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		od := make(OrderedDict, len(keys))
		for i, k := range keys {
			od[i] = InfoField{Key: k, Value: m[k]}
		}
		writeInfo(b, od, level, afterKey)
		return
	}
	if l, ok := asList(data); ok {
		if len(l) == 0 {
			b.WriteByte('\n')
			return
		}
		if afterKey {
			b.WriteByte('\n')
		}
		for i, e := range l {
			if afterKey || i > 0 {
				b.WriteString(strings.Repeat(infoIndent, level))
			}
			b.WriteString("- ")
			writeInfo(b, e, level+1, false)
		}
		return
	}
	b.WriteString(PyStr(data))
	b.WriteByte('\n')
}

// asStringMap returns a map with string keys as map[string]any.
func asStringMap(v any) (map[string]any, bool) {
	if m, ok := v.(map[string]any); ok {
		return m, true
	}
	if v == nil {
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	m := make(map[string]any, rv.Len())
	iter := rv.MapRange()
	for iter.Next() {
		m[iter.Key().String()] = iter.Value().Interface()
	}
	return m, true
}

// JobInfoFields are the job fields JobInfo uses, in the order `gnt-job
// info` queries them.
var JobInfoFields = []string{
	"id", "status", "ops", "opresult", "opstatus", "oplog",
	"opstart", "opexec", "opend", "received_ts", "start_ts", "end_ts",
	// jobq's (jobs in time), shown only when set.
	"not_before", "timeout", "optimeout",
}

// RowToMap pairs a QueryJobs row with the field names it was queried
// with. A nil row (a job that does not exist) gives nil.
func RowToMap(fields []string, row []any) map[string]any {
	if row == nil {
		return nil
	}
	m := make(map[string]any, len(fields))
	for i, f := range fields {
		if i < len(row) {
			m[f] = row[i]
		} else {
			m[f] = nil
		}
	}
	return m
}

// JobInfoEntry is one job for JobsInfo.
type JobInfoEntry struct {
	// ID is the job id as requested; it is printed for a job that does not
	// exist ("Job ID 999999 not found").
	ID any
	// Job holds the job's fields by name (JobInfoFields, as QueryJobs
	// returns them), or nil when the job does not exist.
	Job map[string]any
}

// JobInfo writes `gnt-job info` output for one job; job holds its fields
// by name (JobInfoFields, as QueryJobs returns them). Times are shown in
// loc (nil: time.Local). A nil job is an error; use JobsInfo to print
// "Job ID N not found".
func JobInfo(w io.Writer, job map[string]any, loc *time.Location) error {
	if job == nil {
		return fmt.Errorf("format: JobInfo needs a job")
	}
	return JobsInfo(w, []JobInfoEntry{{ID: job["id"], Job: job}}, loc)
}

// JobsInfo writes `gnt-job info` output for several jobs, in order: one
// YAML list item per job, "- Job ID N not found" for an entry whose Job is
// nil. Times are shown in loc (nil: time.Local). For the layout see
// JobInfoTree.
func JobsInfo(w io.Writer, jobs []JobInfoEntry, loc *time.Location) error {
	items := make([]any, len(jobs))
	for i, j := range jobs {
		if j.Job == nil {
			items[i] = "Job ID " + intStr(j.ID) + " not found"
			continue
		}
		items[i] = JobInfoTree(j.Job, loc)
	}
	return WriteGenericInfo(w, items)
}

// JobInfoTree returns the data `gnt-job info` prints for one job, for
// WriteGenericInfo:
//
//	Job ID: 6040
//	  Status: success
//	  Received:         2026-11-27 05:47:02.125936
//	  Processing start: 2026-11-27 05:47:02.321059 (delta 0.195123s)
//	  Processing end:   2026-11-27 05:47:02.417209 (delta 0.096150s)
//	  Total processing time: 0.291273 seconds
//	  Opcodes:
//	    - Opcode: OP_TEST_DELAY
//	      Status: success
//	      Processing start: ... / Execution start: ... / Processing end: ...
//	      Input fields: (the opcode's parameters, sorted by name)
//	      Result: None
//	      Execution log:
//	        - Time: 2026-11-27 05:47:06.180542
//	          Content: [1, message,  - INFO: Test delay iteration 0/2]
//
// A missing job timestamp prints "unknown (None)", a missing opcode
// timestamp "N/A", and the total processing time is "N/A" unless both the
// received and end timestamps are known. Float64 input goes through
// IntegralFloatsToInts.
func JobInfoTree(job map[string]any, loc *time.Location) OrderedDict {
	job = IntegralFloatsToInts(job).(map[string]any)
	recv, start, end := job["received_ts"], job["start_ts"], job["end_ts"]
	info := OrderedDict{
		{Key: "Job ID", Value: intStr(job["id"])},
		{Key: "Status", Value: PyStr(job["status"])},
		jobTimestamp("Received", recv, nil, loc),
	}
	if nb := job["not_before"]; nb != nil {
		info = append(info, jobTimestamp("Not before", nb, nil, loc))
	}
	if tl := job["timeout"]; tl != nil {
		info = append(info, InfoField{Key: "Time limit", Value: limitText(tl)})
	}
	info = append(info,
		jobTimestamp("Processing start", start, recv, loc),
		jobTimestamp("Processing end", end, start, loc),
	)
	total := "N/A"
	if recv != nil && end != nil {
		if d, ok := tsDelta(recv, end); ok {
			total = fmt.Sprintf("%.6f seconds", d)
		}
	}
	info = append(info, InfoField{Key: "Total processing time", Value: total})

	ops, _ := asList(job["ops"])
	nth := func(field string, i int) any {
		l, _ := asList(job[field])
		if i < len(l) {
			return l[i]
		}
		return nil
	}
	opcodes := make([]any, 0, len(ops))
	for i, op := range ops {
		var opID any
		if m, ok := asStringMap(op); ok {
			opID = m["OP_ID"]
		}
		opInfo := OrderedDict{
			{Key: "Opcode", Value: PyStr(opID)},
			{Key: "Status", Value: PyStr(nth("opstatus", i))},
			opTimestamp("Processing start", nth("opstart", i), loc),
			opTimestamp("Execution start", nth("opexec", i), loc),
			opTimestamp("Processing end", nth("opend", i), loc),
			{Key: "Input fields", Value: op},
			{Key: "Result", Value: nth("opresult", i)},
		}
		if tl := nth("optimeout", i); tl != nil {
			opInfo = append(opInfo, InfoField{Key: "Time limit", Value: limitText(tl)})
		}
		logs, _ := asList(nth("oplog", i))
		execLog := make([]any, 0, len(logs))
		for _, entry := range logs {
			execLog = append(execLog, logEntryInfo(entry, loc))
		}
		opInfo = append(opInfo, InfoField{Key: "Execution log", Value: execLog})
		opcodes = append(opcodes, opInfo)
	}
	return append(info, InfoField{Key: "Opcodes", Value: opcodes})
}

func jobTimestamp(name string, ts, prior any, loc *time.Location) InfoField {
	f := InfoField{Key: name, Align: "job_timestamp"}
	if ts == nil {
		f.Value = "unknown (None)"
		return f
	}
	s := FormatTimestamp(ts, loc)
	if prior != nil {
		if d, ok := tsDelta(prior, ts); ok {
			s += fmt.Sprintf(" (delta %.6fs)", d)
		}
	}
	f.Value = s
	return f
}

func opTimestamp(name string, ts any, loc *time.Location) InfoField {
	f := InfoField{Key: name, Value: "N/A", Align: "opcode_timestamp"}
	if _, ok := asList(ts); ok {
		f.Value = FormatTimestamp(ts, loc)
	}
	return f
}

// tsDelta returns to - from in seconds for two [sec, usec] timestamps,
// computed as Ganeti does (whole seconds, plus microseconds / 1e6).
func tsDelta(from, to any) (float64, bool) {
	f, okF := asList(from)
	t, okT := asList(to)
	if !okF || !okT || len(f) != 2 || len(t) != 2 {
		return 0, false
	}
	ds, ok1 := numDiff(t[0], f[0])
	du, ok2 := numDiff(t[1], f[1])
	if !ok1 || !ok2 {
		return 0, false
	}
	return ds + du/1000000.0, true
}

// numDiff returns a - b, exactly when both are integers.
func numDiff(a, b any) (float64, bool) {
	ia, okA := asInt(a)
	ib, okB := asInt(b)
	if okA && okB {
		return float64(ia - ib), true
	}
	fa, okA := asFloat(a)
	fb, okB := asFloat(b)
	return fa - fb, okA && okB
}

// logEntryInfo renders one [serial, ts, type, message] log entry.
func logEntryInfo(entry any, loc *time.Location) OrderedDict {
	l, _ := asList(entry)
	get := func(i int) any {
		if i < len(l) {
			return l[i]
		}
		return nil
	}
	logType := PyStr(get(2))
	return OrderedDict{
		{Key: "Time", Value: FormatTimestamp(get(1), loc)},
		{Key: "Content", Value: Tuple{get(0), logType, FormatLogMessage(logType, get(3))}},
	}
}

// limitText shows a time limit in seconds as a duration: "1m30s".
func limitText(v any) string {
	f, ok := asFloat(v)
	if !ok || f <= 0 {
		return PyStr(v)
	}
	return (time.Duration(math.Round(f*1e6)) * time.Microsecond).String()
}
