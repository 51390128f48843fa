package query

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobq-dev/jobq/internal/ganetiref"
)

// readReference reads a capture from a real Ganeti 3.0.2 cluster
// (testdata/ganeti-reference, found by ganetiref); name includes ".txt".
func readReference(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(referenceDir(t), name))
	if err != nil {
		t.Fatalf("reading capture: %v", err)
	}
	return b
}

// referenceDir returns the capture directory, skipping the test where it
// is missing.
func referenceDir(t *testing.T) string {
	t.Helper()
	dir, err := ganetiref.FindDir(".")
	if err != nil {
		t.Skipf("reference captures not available: %v", err)
	}
	return dir
}

// luxiExchange returns the raw request and reply of a luxi-*.txt capture
// (name includes ".txt") without the trailing newline and 0x03 terminator.
func luxiExchange(t *testing.T, name string) (req, reply []byte) {
	t.Helper()
	c, err := ganetiref.ReadCapture(referenceDir(t), strings.TrimSuffix(name, ".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(c.ReqRaw, "\x03\n"), bytes.TrimRight(c.RepRaw, "\x03\n")
}

type luxiRequest struct {
	Method string            `json:"method"`
	Args   []json.RawMessage `json:"args"`
}

type luxiReply struct {
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result"`
}

func decodeExchange(t *testing.T, name string) (luxiRequest, luxiReply) {
	t.Helper()
	rawReq, rawReply := luxiExchange(t, name)
	var req luxiRequest
	if err := json.Unmarshal(rawReq, &req); err != nil {
		t.Fatalf("%s request: %v", name, err)
	}
	var reply luxiReply
	if err := json.Unmarshal(rawReply, &reply); err != nil {
		t.Fatalf("%s reply: %v", name, err)
	}
	if !reply.Success {
		t.Fatalf("%s: reply is not a success", name)
	}
	return req, reply
}

// TestQueryCaptures rebuilds Ganeti's Query replies from the captured
// request and the captured values, and requires the same bytes.
func TestQueryCaptures(t *testing.T) {
	for _, name := range []string{"luxi-Query-job.txt", "luxi-Query-job-archived.txt"} {
		t.Run(name, func(t *testing.T) {
			req, reply := decodeExchange(t, name)
			if req.Method != "Query" || len(req.Args) != 3 {
				t.Fatalf("unexpected request %s %d args", req.Method, len(req.Args))
			}
			var what string
			var fields []string
			if err := json.Unmarshal(req.Args[0], &what); err != nil || what != "job" {
				t.Fatalf("resource %q, %v", what, err)
			}
			if err := json.Unmarshal(req.Args[1], &fields); err != nil {
				t.Fatal(err)
			}
			f, err := ParseFilter(req.Args[2])
			if err != nil {
				t.Fatalf("ParseFilter(%s): %v", req.Args[2], err)
			}
			ids, ok := f.RequestedIDs()
			if diff := cmp.Diff([]int64{20}, ids); !ok || diff != "" {
				t.Errorf("RequestedIDs() = %v, %v; diff (-want +got):\n%s", ids, ok, diff)
			}

			var want QueryResult
			if err := json.Unmarshal(reply.Result, &want); err != nil {
				t.Fatal(err)
			}
			defs := LookupJobFields(fields)
			if diff := cmp.Diff(want.Fields, defs); diff != "" {
				t.Errorf("field definitions differ (-ganeti +ours):\n%s", diff)
			}
			rows := make([][]any, len(want.Data))
			for i, row := range want.Data {
				rows[i] = make([]any, len(row))
				for j, e := range row {
					rows[i][j] = e.Value
				}
			}
			// The captured job matches the captured filter.
			row := rows[0]
			match, err := f.Match(func(field string) (any, bool) {
				for i, n := range fields {
					if n == field {
						return row[i], true
					}
				}
				return nil, false
			})
			if err != nil || !match {
				t.Errorf("Match on the captured job = %v, %v; want true", match, err)
			}
			got, err := json.Marshal(BuildQueryResult(defs, rows))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, reply.Result) {
				t.Errorf("result bytes differ\nganeti: %s\nours:   %s", reply.Result, got)
			}
		})
	}
}

func TestQueryFieldsCapture(t *testing.T) {
	req, reply := decodeExchange(t, "luxi-QueryFields-job.txt")
	if req.Method != "QueryFields" || len(req.Args) != 2 {
		t.Fatalf("unexpected request %s %d args", req.Method, len(req.Args))
	}
	var names []string
	if err := json.Unmarshal(req.Args[1], &names); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(BuildFieldsResult(FieldsForQueryFields(names)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, reply.Result) {
		t.Errorf("result bytes differ\nganeti: %s\nours:   %s", reply.Result, got)
	}
}

// qftNames maps field kinds to the names gnt-*-list-fields prints
// (lib/cli.py _QFT_NAMES).
var qftNames = map[string]string{
	KindUnknown:   "Unknown",
	KindText:      "Text",
	KindBool:      "Boolean",
	KindNumber:    "Number",
	KindUnit:      "Storage size",
	KindTimestamp: "Timestamp",
	KindOther:     "Custom",
}

// TestListFieldsCapture compares every job field with the output of
// `gnt-job list-fields` (all fields, sorted by name).
func TestListFieldsCapture(t *testing.T) {
	lines := strings.Split(strings.TrimRight(string(readReference(t, "cli-07-job-list-fields.txt")), "\n"), "\n")
	if lines[0] != "$ gnt-job list-fields" || lines[len(lines)-1] != "[rc=0]" {
		t.Fatalf("unexpected capture framing: %q ... %q", lines[0], lines[len(lines)-1])
	}
	header := lines[1]
	cols := []int{0}
	for _, title := range []string{"Type", "Title", "Description"} {
		i := strings.Index(header, " "+title)
		if i < 0 {
			t.Fatalf("header %q lacks %s", header, title)
		}
		cols = append(cols, i+1)
	}
	type listed struct{ Name, Type, Title, Doc string }
	var want []listed
	for _, line := range lines[2 : len(lines)-1] {
		cell := func(k int) string {
			end := len(line)
			if k+1 < len(cols) {
				end = cols[k+1]
			}
			return strings.TrimSpace(line[cols[k]:end])
		}
		want = append(want, listed{cell(0), cell(1), cell(2), cell(3)})
	}
	var got []listed
	for _, f := range FieldsForQueryFields(nil) {
		got = append(got, listed{f.Name, qftNames[f.Kind], f.Title, f.Doc})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("job fields differ from gnt-job list-fields (-ganeti +ours):\n%s", diff)
	}
	if diff := cmp.Diff(JobFields(), FieldsForQueryFields([]string{})); diff != "" {
		t.Errorf("QueryFields with an empty list must answer all fields:\n%s", diff)
	}
}

// TestListHeaders checks the column titles `gnt-job list` printed, which
// come from the field definitions of the Query reply.
func TestListHeaders(t *testing.T) {
	for _, name := range []string{
		"cli-06-job-list.txt",
		"cli-16-job-list-error.txt",
		"cli-20-job-list-pending.txt",
		"cli-26-job-list-after-cancel.txt",
		"cli-34-job-list-archived.txt",
	} {
		t.Run(name, func(t *testing.T) {
			lines := strings.SplitN(string(readReference(t, name)), "\n", 3)
			args := strings.Fields(strings.TrimPrefix(lines[0], "$ gnt-job list"))
			// gnt_job.ListJobs: default fields, -o replaces, --archived appends.
			fields := []string{"id", "status", "summary"}
			archived := false
			for i := 0; i < len(args); i++ {
				switch args[i] {
				case "-o":
					i++
					fields = strings.Split(args[i], ",")
				case "--archived":
					archived = true
				}
			}
			if archived && !WantArchived(fields) {
				fields = append(fields, FieldArchived)
			}
			var titles []string
			for _, f := range LookupJobFields(fields) {
				titles = append(titles, f.Title)
			}
			if diff := cmp.Diff(strings.Fields(lines[1]), titles); diff != "" {
				t.Errorf("header differs (-ganeti +ours):\n%s", diff)
			}
		})
	}
}
