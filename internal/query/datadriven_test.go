package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestDataDriven runs the scripts in testdata/*.txt (rewrite the expected
// output with `go test ./internal/query -run TestDataDriven -rewrite`).
//
// Commands:
//
//	parse
//	<filter JSON, possibly over several lines; empty means no filter>
//	----
//	filter: <canonical JSON>   fields: …   ids: …
//	(or error: <class>: <message> / luxi: <reply result>)
//
//	match [numbers=float64]
//	filter: <filter JSON>
//	row: <JSON object of field values; a missing field has no data>
//	row: …
//	----
//	one line per row: true, false or error: <class>: <message>
//
// Rows decode numbers as json.Number unless numbers=float64.
func TestDataDriven(t *testing.T) {
	// Only testdata/*.txt: rapid and the fuzzer keep their own files in
	// subdirectories of testdata.
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				switch d.Cmd {
				case "parse":
					return runParse(d.Input)
				case "match":
					useFloat := false
					if arg, ok := d.Arg("numbers"); ok {
						useFloat = arg.SingleVal(t) == "float64"
					}
					return runMatch(t, d.Input, useFloat)
				default:
					d.Fatalf(t, "unknown command %q", d.Cmd)
					return ""
				}
			})
		})
	}
}

func describeError(err error) string {
	var qe *Error
	if !errors.As(err, &qe) {
		return fmt.Sprintf("error: untyped: %v\n", err)
	}
	class := qe.Class
	if class == ClassRequest {
		class = "request"
	}
	res, mErr := json.Marshal(qe.Result())
	if mErr != nil {
		res = []byte(mErr.Error())
	}
	return fmt.Sprintf("error: %s: %s\nluxi: %s\n", class, qe.Message(), res)
}

func runParse(input string) string {
	f, err := ParseFilter(json.RawMessage(input))
	if err != nil {
		return describeError(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "filter: %s\n", f)
	fmt.Fprintf(&b, "fields: %s\n", strings.Join(f.Fields(), ", "))
	if ids, ok := f.RequestedIDs(); ok {
		strs := make([]string, len(ids))
		for i, id := range ids {
			strs[i] = fmt.Sprint(id)
		}
		fmt.Fprintf(&b, "ids: %s\n", strings.Join(strs, ", "))
	} else {
		b.WriteString("ids: scan\n")
	}
	return b.String()
}

func runMatch(t *testing.T, input string, useFloat bool) string {
	var f *Filter
	var out strings.Builder
	for _, line := range strings.Split(input, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "filter:"):
			var err error
			f, err = ParseFilter(json.RawMessage(strings.TrimPrefix(line, "filter:")))
			if err != nil {
				return "filter " + describeError(err)
			}
		case strings.HasPrefix(line, "row:"):
			if f == nil {
				t.Fatalf("row before filter: %s", line)
			}
			row := decodeRow(t, strings.TrimPrefix(line, "row:"), useFloat)
			ok, err := f.Match(func(field string) (any, bool) {
				v, present := row[field]
				return v, present
			})
			if err != nil {
				out.WriteString(describeError(err))
			} else {
				fmt.Fprintf(&out, "%t\n", ok)
			}
		default:
			t.Fatalf("bad match input line %q", line)
		}
	}
	return out.String()
}

func decodeRow(t *testing.T, s string, useFloat bool) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	if !useFloat {
		dec.UseNumber()
	}
	var row map[string]any
	if err := dec.Decode(&row); err != nil {
		t.Fatalf("bad row %q: %v", s, err)
	}
	return row
}
