package job

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Everything New accepts, Decode reads back: a job built from inputs the
// strict decoder would refuse would be acknowledged now and quarantined at
// the next start (issue 16, finding 1).
func TestNewRefusesWhatDecodeWouldRefuse(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"invalid UTF-8", "{\"OP_ID\":\"OP_TEST_DELAY\",\"comment\":\"caf\xe9\"}", `opcode 0 holds text that is not valid UTF-8 (in /comment, at byte 39)`},
		{"invalid UTF-8 in a name", "{\"OP_ID\":\"OP_TEST_DELAY\",\"\xff\":1}", `not valid UTF-8`},
		{"truncated UTF-8 sequence", "{\"OP_ID\":\"OP_TEST_DELAY\",\"x\":[\"\xe2\x82\"]}", `not valid UTF-8`},
		{"surrogate half", "{\"OP_ID\":\"OP_TEST_DELAY\",\"x\":\"\xed\xa0\x80\"}", `not valid UTF-8`},
		{"duplicate member", `{"OP_ID":"OP_TEST_DELAY","x":{"a":1,"a":2}}`, `the member /x/a twice`},
		{"too deep", `{"OP_ID":"OP_TEST_DELAY","x":` + strings.Repeat("[", HardMaxDepth) + strings.Repeat("]", HardMaxDepth) + `}`, `more than 512 levels deep`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := New(7, []json.RawMessage{json.RawMessage(tc.in)}, Timestamp{1, 0}, 1)
			if err == nil {
				b, _ := j.Encode()
				_, derr := Decode(b)
				t.Fatalf("New accepted %q (Decode of its file: %v)", tc.in, derr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%q) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
	// Escapes are fine: "\u00e9" is the text café, "\ud83d\ude00" a pair.
	in := `{"OP_ID":"OP_TEST_DELAY","comment":"caf\u00e9 \ud83d\ude00","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`
	j, err := New(7, []json.RawMessage{json.RawMessage(in)}, Timestamp{1, 0}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := j.Encode()
	if _, err := Decode(b); err != nil {
		t.Fatalf("Decode of a job New built: %v", err)
	}
}

func TestCheckSubmission(t *testing.T) {
	ops := func(n int, in string) []json.RawMessage {
		out := make([]json.RawMessage, n)
		for i := range out {
			out[i] = json.RawMessage(in)
		}
		return out
	}
	small := `{"OP_ID":"OP_TEST_DELAY","duration":1}`
	lim := Limits{MaxOps: 3, MaxSize: 100, MaxDepth: 4}
	for _, tc := range []struct {
		name   string
		inputs []json.RawMessage
		limit  string // the LimitError's, "" for another error
		want   string
	}{
		{"no opcodes", nil, "", "a job needs at least one opcode"},
		{"too many opcodes", ops(4, small), "max_ops_per_job", "the job has 4 opcodes, more than the limit of 3 (max_ops_per_job)"},
		{"too large", ops(3, `{"OP_ID":"OP_TEST_DELAY","comment":"`+strings.Repeat("x", 40)+`"}`), "max_job_size", "more than the limit of 100 (max_job_size)"},
		{"too deep", ops(1, `{"a":[[[{}]]]}`), "max_input_depth", "opcode 0 nests arrays and objects more than 4 levels deep (max_input_depth)"},
		{"invalid UTF-8", ops(1, "{\"a\":\"\xc3\"}"), "", "not valid UTF-8"},
		{"not an object", ops(1, `[1]`), "", "opcode 0 is not a JSON object"},
		{"two values", ops(1, `{}{}`), "", "opcode 0 is not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSubmission(tc.inputs, lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckSubmission = %v, want an error containing %q", err, tc.want)
			}
			var le *LimitError
			if got := errors.As(err, &le); got != (tc.limit != "") || (got && le.Limit != tc.limit) {
				t.Fatalf("CheckSubmission = %#v, want a LimitError for %q", err, tc.limit)
			}
		})
	}
	if err := CheckSubmission(ops(3, `{"a":[[{}]]}`), lim); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	if err := CheckSubmission(ops(DefaultMaxOps, small), Limits{}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

// A file written before New refused such input (by jobq itself) is read,
// not refused: the loader must never quarantine what the queue wrote.
func TestDecodeRepairsWhatOlderVersionsWrote(t *testing.T) {
	file := "{\"id\":3,\"ops\":[{\"input\":{\"OP_ID\":\"OP_TEST_DELAY\",\"comment\":\"caf\xe9\",\"x\":{\"a\":1,\"a\":2}},\"status\":\"success\",\"result\":null,\"log\":[[1,[1,0],\"message\",\"\xff\"]],\"priority\":0,\"start_timestamp\":null,\"exec_timestamp\":null,\"end_timestamp\":[2,0]}],\"received_timestamp\":[1,0],\"start_timestamp\":null,\"end_timestamp\":[2,0]}"
	j, err := Decode([]byte(file))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if j.Repaired == "" {
		t.Fatal("Repaired is empty")
	}
	b, err := j.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "caf\uFFFD") || !strings.Contains(string(b), "\"message\",\"\uFFFD\"") {
		t.Fatalf("re-encoded: %s", b)
	}
	j2, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode of the re-encoded file: %v", err)
	}
	if j2.Repaired != "repeated member names accepted" {
		t.Fatalf("second Repaired = %q", j2.Repaired)
	}
	// A valid file is not marked; a broken one is still refused.
	ok := strings.ReplaceAll(strings.ReplaceAll(file, "\xe9", "e"), "\xff", "f")
	ok = strings.Replace(ok, `"a":1,`, "", 1)
	if j, err := Decode([]byte(ok)); err != nil || j.Repaired != "" {
		t.Fatalf("Decode(valid) = %v, Repaired %q", err, j.Repaired)
	}
	if _, err := Decode([]byte(file[:40])); err == nil {
		t.Fatal("a truncated file was accepted")
	}
}
