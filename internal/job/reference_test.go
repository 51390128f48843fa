package job

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refDir holds job files captured from a Ganeti 3.0.2 queue.
const refDir = "../../testdata/ganeti-reference/queue"

// referenceFiles returns the reference job files, or skips the test when the
// reference directory is not there.
func referenceFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := readReferenceFiles()
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Skipf("no reference job files in %s", refDir)
	}
	return files
}

// readReferenceFiles maps each reference job file's name to its contents.
func readReferenceFiles() (map[string][]byte, error) {
	paths, err := filepath.Glob(filepath.Join(refDir, "*.json"))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(p)] = b
	}
	return files, nil
}

var refName = regexp.MustCompile(`^job-(\d+)\.(.*)\.json$`)

// expectedStatus is what a reference file's name says about its job.
func expectedStatus(name string) Status {
	switch {
	case strings.Contains(name, "canceled"):
		return StatusCanceled
	case strings.Contains(name, "error"):
		return StatusError
	}
	return StatusSuccess
}

func TestReferenceFiles(t *testing.T) {
	files := referenceFiles(t)
	styles := map[string]int{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b := files[name]
		t.Run(name, func(t *testing.T) {
			m := refName.FindStringSubmatch(name)
			if m == nil {
				t.Fatalf("unexpected reference file name %s", name)
			}
			j, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want, _ := strconv.ParseInt(m[1], 10, 64); j.ID != want {
				t.Errorf("id = %d, want %d", j.ID, want)
			}

			// Status from the name, and from the opcodes as stored.
			want := expectedStatus(m[2])
			if got := j.CalcStatus(); got != want {
				t.Errorf("CalcStatus = %s, want %s", got, want)
			}
			for i, op := range j.Ops {
				if op.Status != want {
					t.Errorf("op %d status %s, want %s for this capture", i, op.Status, want)
				}
			}
			if !j.Final() || j.EndTimestamp == nil {
				t.Errorf("captured job is not final (end_timestamp %v)", j.EndTimestamp)
			}
			if p := j.CalcPriority(); p != DefaultPriority {
				t.Errorf("CalcPriority of a finished job = %d, want %d", p, DefaultPriority)
			}
			if j.ReceivedTimestamp == nil {
				t.Errorf("no received timestamp")
			}
			last := j.Ops[len(j.Ops)-1]
			if last.EndTimestamp == nil || j.EndTimestamp.Before(*last.EndTimestamp) {
				t.Errorf("job ends at %v, before its last opcode (%v)", j.EndTimestamp, last.EndTimestamp)
			}
			for i, op := range j.Ops {
				if OpID(op.Input) == "" {
					t.Errorf("op %d has no OP_ID", i)
				}
				if _, err := ParseCommon(op.Input); err != nil {
					t.Errorf("op %d: ParseCommon: %v", i, err)
				}
			}
			checkSerials(t, j)

			// Style: job-26 is luxid's compact JSON, the others the job
			// process's spaced JSON.
			compact := !bytes.Contains(b, []byte(`": `))
			if compact {
				styles["compact"]++
			} else {
				styles["spaced"]++
			}
			if (m[1] == "26") != compact {
				t.Errorf("compact = %v; only job-26 should be compact", compact)
			}

			// Extra members: the job process writes livelock and process_id.
			if !compact {
				for _, k := range []string{"livelock", "process_id"} {
					if _, ok := j.Extra[k]; !ok {
						t.Errorf("extra member %q not preserved (Extra=%v)", k, j.Extra)
					}
				}
			}

			// Encode then Decode gives an equal job.
			enc, err := j.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			back, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode(Encode()): %v\n%s", err, enc)
			}
			if diff := cmp.Diff(j, back, jsonEqual); diff != "" {
				t.Errorf("round trip differs (-file +re-read):\n%s", diff)
			}
			enc2, err := back.Encode()
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Errorf("second Encode differs: %v\n%s\n%s", err, enc, enc2)
			}
			// Semantically the encoded file is the original file.
			var orig, again any
			if err := json.Unmarshal(b, &orig); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(enc, &again); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(orig, again); diff != "" {
				t.Errorf("Encode lost or changed members (-file +encoded):\n%s", diff)
			}
			// The compact file is exactly what jobq writes: same member order
			// and number spelling as luxid.
			if compact && !bytes.Equal(bytes.TrimSpace(b), enc) {
				t.Errorf("Encode of the compact file differs:\nfile: %s\nenc:  %s", b, enc)
			}
		})
	}
	if len(files) > 1 && (styles["compact"] == 0 || styles["spaced"] == 0) {
		t.Errorf("expected both JSON styles among the reference files, got %v", styles)
	}
}

// TestReferenceFileDetails checks particular captures.
func TestReferenceFileDetails(t *testing.T) {
	files := referenceFiles(t)
	load := func(name string) *Job {
		t.Helper()
		b, ok := files[name]
		if !ok {
			t.Skipf("%s missing", name)
		}
		j, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	t.Run("log", func(t *testing.T) {
		j := load("job-8.repeat3-with-log.json")
		if got := j.LastLogSerial(); got != 3 {
			t.Errorf("LastLogSerial = %d, want 3", got)
		}
		logs := j.LogsAfter(1)
		if len(logs) != 2 || logs[0].Serial != 2 || logs[0].Type != "message" ||
			string(logs[0].Message) != `" - INFO: Test delay iteration 1/2"` ||
			logs[0].Time != (Timestamp{1795756328, 229766}) {
			t.Errorf("LogsAfter(1) = %+v", logs)
		}
		if e := j.AppendLog(0, Timestamp{1795756329, 0}, "message", json.RawMessage(`"more"`)); e.Serial != 4 {
			t.Errorf("next serial %d, want 4", e.Serial)
		}
	})
	t.Run("error", func(t *testing.T) {
		j := load("job-23.error-duration0.json")
		var res []any
		if err := json.Unmarshal(j.Ops[0].Result, &res); err != nil {
			t.Fatal(err)
		}
		want := []any{"OpPrereqError", []any{"Duration must be greater than zero"}}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		if j.Ops[0].ExecTimestamp != nil {
			t.Errorf("rejected opcode has an exec timestamp")
		}
		if got := string(PrereqError("Duration must be greater than zero", "").Raw()); got !=
			`["OpPrereqError",["Duration must be greater than zero"]]` {
			t.Errorf("PrereqError encodes as %s", got)
		}
	})
	t.Run("canceled-queued", func(t *testing.T) {
		j := load("job-26.canceled-queued.json")
		op := j.Ops[0]
		if op.StartTimestamp != nil || j.StartTimestamp != nil || string(op.Result) != "null" ||
			*op.EndTimestamp != *j.EndTimestamp {
			t.Errorf("luxid's canceled-queued job: %+v / %+v", j, op)
		}
		// jobq's Cancel of a queued job gives the same shape.
		mine, err := New(26, []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY"}`)},
			*j.ReceivedTimestamp, 0)
		if err != nil {
			t.Fatal(err)
		}
		res := mine.Cancel(*j.EndTimestamp)
		if !res.OK || res.Message != "Dequeued job 26" {
			t.Errorf("Cancel = %+v", res)
		}
		m := mine.Ops[0]
		if diff := cmp.Diff(
			[]any{j.CalcStatus(), op.Status, op.StartTimestamp, op.ExecTimestamp, op.EndTimestamp, string(op.Result), j.StartTimestamp, j.EndTimestamp},
			[]any{mine.CalcStatus(), m.Status, m.StartTimestamp, m.ExecTimestamp, m.EndTimestamp, string(m.Result), mine.StartTimestamp, mine.EndTimestamp},
		); diff != "" {
			t.Errorf("jobq's canceled queued job differs from luxid's (-luxid +jobq):\n%s", diff)
		}
		c, err := ParseCommon(op.Input)
		if err != nil || len(c.Depends) != 1 || c.Depends[0].JobID != 24 || len(c.Depends[0].Statuses) != 0 {
			t.Errorf("ParseCommon = %+v, %v", c, err)
		}
	})
	t.Run("priority", func(t *testing.T) {
		// Priority changed to 10 while queued: the opcode's field, not its
		// input parameter.
		j := load("job-27.depends-prio10.json")
		c, err := ParseCommon(j.Ops[0].Input)
		if err != nil || c.Priority != 0 || j.Ops[0].Priority != 10 {
			t.Errorf("input priority %d (%v), opcode priority %d", c.Priority, err, j.Ops[0].Priority)
		}
	})
	t.Run("reason", func(t *testing.T) {
		// New appends the reason entry exactly as Ganeti did for job 22.
		j := load("job-22.two-ops.json")
		var in map[string]json.RawMessage
		if err := json.Unmarshal(j.Ops[1].Input, &in); err != nil {
			t.Fatal(err)
		}
		delete(in, "reason")
		raw, _ := json.Marshal(in)
		mine, err := New(22, []json.RawMessage{raw, raw}, *j.ReceivedTimestamp, 1795756390508643000)
		if err != nil {
			t.Fatal(err)
		}
		for i := range j.Ops {
			var want, got struct{ Reason any }
			_ = json.Unmarshal(j.Ops[i].Input, &want)
			_ = json.Unmarshal(mine.Ops[i].Input, &got)
			if diff := cmp.Diff(want.Reason, got.Reason); diff != "" {
				t.Errorf("op %d reason (-ganeti +jobq):\n%s", i, diff)
			}
		}
	})
}

func checkSerials(t *testing.T, j *Job) {
	t.Helper()
	var prev int64
	for _, e := range j.LogsAfter(0) {
		if e.Serial <= prev {
			t.Errorf("log serial %d after %d", e.Serial, prev)
		}
		prev = e.Serial
	}
	if prev != j.LastLogSerial() {
		t.Errorf("LastLogSerial = %d, highest serial %d", j.LastLogSerial(), prev)
	}
}

// TestDecodeErrors derives broken files from a reference file and from
// scratch; each must fail with one short sentence naming the problem.
func TestDecodeErrors(t *testing.T) {
	base := []byte(`{"id": 8, "ops": [{"input": {"OP_ID": "OP_TEST_DELAY", "duration": 0.3}, "status": "success", "result": null, "log": [[1, [1795756327, 845127], "message", " - INFO: Test delay iteration 0/2"]], "start_timestamp": [1795756327, 813092], "exec_timestamp": [1795756327, 839669], "end_timestamp": [1795756328, 992223], "priority": 0}], "start_timestamp": [1795756327, 813092], "end_timestamp": [1795756328, 992237], "received_timestamp": [1795756327, 391032], "livelock": "/var/run/ganeti/livelocks/job_000008_1795756327", "process_id": 18820}`)
	if files, err := filepath.Glob(filepath.Join(refDir, "job-8.*.json")); err == nil && len(files) == 1 {
		if b, err := os.ReadFile(files[0]); err == nil {
			base = b
		}
	}
	if _, err := Decode(base); err != nil {
		t.Fatalf("base file: %v", err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(base, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	op0 := func(m map[string]any) map[string]any { return m["ops"].([]any)[0].(map[string]any) }
	for _, tc := range []struct {
		name, want string
		in         []byte
	}{
		{"truncated", "not valid JSON", base[:len(base)/2]},
		{"truncated at the end", "not valid JSON", bytes.TrimSpace(base)[:len(bytes.TrimSpace(base))-1]},
		{"empty", "not valid JSON", nil},
		{"trailing garbage", "not valid JSON", append(append([]byte{}, base...), "}"...)},
		{"id missing", "no valid id", edit(func(m map[string]any) { delete(m, "id") })},
		{"id zero", "no valid id", edit(func(m map[string]any) { m["id"] = 0 })},
		{"id not a number", `"id"`, edit(func(m map[string]any) { m["id"] = "8" })},
		{"id fractional", `"id"`, edit(func(m map[string]any) { m["id"] = 8.5 })},
		{"no ops", "no opcodes", edit(func(m map[string]any) { m["ops"] = []any{} })},
		{"ops missing", "no opcodes", edit(func(m map[string]any) { delete(m, "ops") })},
		{"ops not a list", `"ops"`, edit(func(m map[string]any) { m["ops"] = map[string]any{} })},
		{"unknown status", `unknown status "bogus"`, edit(func(m map[string]any) { op0(m)["status"] = "bogus" })},
		{"status not a string", `"ops"`, edit(func(m map[string]any) { op0(m)["status"] = 3 })},
		{"input not an object", "input is not an object", edit(func(m map[string]any) { op0(m)["input"] = []any{1} })},
		{"input null", "input is not an object", edit(func(m map[string]any) { op0(m)["input"] = nil })},
		{"bad timestamp", "timestamp", edit(func(m map[string]any) { m["end_timestamp"] = []any{1, 2, 3} })},
		{"bad log entry", "log entry", edit(func(m map[string]any) { op0(m)["log"] = []any{[]any{1, "x"}} })},
		{"bad log serial", "log entry serial", edit(func(m map[string]any) {
			op0(m)["log"] = []any{[]any{"one", []any{1, 0}, "message", "x"}}
		})},
		{"input not an object: list", "not a JSON object", []byte(`[1, 2, 3]`)},
		{"input not an object: string", "not a JSON object", []byte(`"job"`)},
		{"input not an object: null", "not a JSON object", []byte(`null`)},
		{"input not an object: number", "not a JSON object", []byte(`8`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Decode(tc.in)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", j)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not mention %q", msg, tc.want)
			}
			if strings.Contains(msg, "\n") || len(msg) > 200 || !strings.HasPrefix(msg, "job ") {
				t.Errorf("error %q is not one short sentence about the job file", msg)
			}
		})
	}
}

// TestEncodeExtraMembers: extra members come after the job's own, and an
// extra member that would duplicate one of them is not written.
func TestEncodeExtraMembers(t *testing.T) {
	j, err := New(3, []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY"}`)}, Timestamp{1, 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	j.Extra = map[string]json.RawMessage{"id": json.RawMessage(`99`), "process_id": json.RawMessage(`7`)}
	b, err := j.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, []byte(`"id":`)) != 1 || !bytes.HasSuffix(b, []byte(`,"process_id":7}`)) {
		t.Errorf("Encode = %s", b)
	}
	back, err := Decode(b)
	if err != nil || back.ID != 3 || string(back.Extra["process_id"]) != "7" {
		t.Errorf("Decode = %+v, %v", back, err)
	}
	// Clone copies the extra members.
	c := back.Clone()
	c.Extra["process_id"] = json.RawMessage(`8`)
	if string(back.Extra["process_id"]) != "7" {
		t.Errorf("Clone shares Extra with the original")
	}
}

func TestTimestamp(t *testing.T) {
	ts := Timestamp{1795756327, 845127}
	if got := TS(ts.Time()); got != ts {
		t.Errorf("TS(Time()) = %v", got)
	}
	if !(Timestamp{1, 999999}).Before(Timestamp{2, 0}) || !(Timestamp{2, 1}).Before(Timestamp{2, 2}) ||
		(Timestamp{2, 2}).Before(Timestamp{2, 2}) || (Timestamp{3, 0}).Before(Timestamp{2, 5}) {
		t.Errorf("Before is wrong")
	}
	for in, want := range map[string]Timestamp{
		`[1, 2]`:          {1, 2},
		`[1795756327, 0]`: {1795756327, 0},
		`[1.0, 2.9]`:      {1, 2},
		`[1e3, 0]`:        {1000, 0},
		`[-5, 10]`:        {-5, 10},
	} {
		var got Timestamp
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{`[1]`, `[1,2,3]`, `{}`, `"x"`, `[1,true]`, `[1e400, 0]`} {
		var got Timestamp
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", in, got)
		}
	}
}
