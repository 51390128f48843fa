package job

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode: Decode never panics; what it accepts re-encodes to a file that
// decodes to the same job and encodes to the same bytes; the derived
// functions and Recover work on anything Decode accepts.
func FuzzDecode(f *testing.F) {
	files, err := readReferenceFiles()
	if err != nil {
		f.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f.Add(files[name])
	}
	for _, s := range []string{
		`{"id":1,"ops":[{"input":{"OP_ID":"OP_TEST_DELAY"},"status":"queued"}]}`,
		`{"id":2,"ops":[{"input":{},"status":"running","log":[[1,[1,2],"message",{"a":[1,"<&>"]}]]},{"input":{},"status":"queued","priority":-20}],"received_timestamp":[1.5,2e2],"x":null}`,
		`{"id":3,"ops":[{"input":{},"status":"waiting"},{"input":{},"status":"canceling"}],"end_timestamp":[5,0],"ID":4}`,
		`{"id":4,"ops":[{"input":{},"status":"error","result":["OpExecError",["x"]]}],"Id":9,"id":5}`,
		`[]`, `null`, `{}`, `{"id":1,"ops":[null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := Decode(b)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "job ") {
				t.Errorf("error %q does not start with \"job \"", msg)
			}
			return
		}
		enc, err := j.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded job: %v", err)
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode()) = %v\ninput:   %q\nencoded: %s", err, b, enc)
		}
		if strings.Contains(back.Repaired, "UTF-8") {
			t.Fatalf("Encode wrote text that is not valid UTF-8: %q", enc)
		}
		j.Repaired, back.Repaired = "", "" // repeated names inside values stay
		if diff := cmp.Diff(j, back, jsonEqual); diff != "" {
			t.Fatalf("round trip differs (-decoded +re-decoded):\n%s\ninput: %q", diff, b)
		}
		enc2, err := back.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode not stable: %v\n%s\n%s", err, enc, enc2)
		}

		// Everything else must cope with any decodable job.
		_ = j.CalcStatus()
		_ = j.CalcPriority()
		_ = j.LogsAfter(0)
		_ = j.LastLogSerial()
		c := j.Clone()
		if diff := cmp.Diff(j, c); diff != "" {
			t.Fatalf("Clone differs:\n%s", diff)
		}
		c.Recover(Timestamp{1 << 40, 0})
		if st := c.CalcStatus(); st.Final() != (c.EndTimestamp != nil) || st == StatusRunning ||
			st == StatusCanceling || st == StatusWaiting {
			t.Fatalf("after Recover: status %s, end timestamp %v", st, c.EndTimestamp)
		}
		if c.Recover(Timestamp{1 << 41, 0}) {
			t.Fatalf("a second Recover changed the job again")
		}
		// Recover worked on the clone only.
		if enc3, _ := j.Encode(); !bytes.Equal(enc, enc3) {
			t.Fatalf("Recover of a clone changed the original")
		}
	})
}
