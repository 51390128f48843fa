package hostile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// luxiCall sends one raw request on a new connection to d and returns the
// reply (without its terminator).
func luxiCall(t *testing.T, d *daemon, msg []byte) []byte {
	t.Helper()
	c := d.dialRaw()
	defer c.nc.Close()
	c.write(append(msg, 0x03))
	b, err := c.read()
	if err != nil {
		t.Fatalf("reading the reply to %q: %v", msg, err)
	}
	return b
}

// FuzzLUXISubmitRoundTrip (issue 16, finding 1): whatever SubmitJob
// accepts from a LUXI client reads back identical (QueryJobs ops) after
// jobqd restarts, with nothing quarantined; whatever it refuses leaves no
// job file; every reply is JSON in UTF-8 (what Python's json.loads needs).
func FuzzLUXISubmitRoundTrip(f *testing.F) {
	for _, s := range []string{
		`[{"OP_ID": "OP_X", "comment": "caf\u00e9 <b>"}]`,
		"[{\"OP_ID\": \"OP_X\", \"comment\": \"caf\xe9\"}]",
		`[{"OP_ID": "OP_X", "a": 1, "a": 2}]`,
		`[{"OP_ID": "OP_X", "n": 1.50, "e": 1e400, "x": [[[[[[[[[[]]]]]]]]]]}, {"OP_ID": "OP_Y", "depends": [[-1, []]]}]`,
		`[]`, `[1]`, `[{"OP_ID": "OP_X"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		dir := t.TempDir()
		d := start(t, dir)
		msg := append(append([]byte(`{"method": "SubmitJob", "args": [`), ops...), []byte(`], "version": 3000000}`)...)
		rep := luxiCall(t, d, msg)
		if !utf8.Valid(rep) || !json.Valid(rep) {
			t.Fatalf("reply is not JSON in UTF-8: %q", rep)
		}
		var r struct {
			Success bool
			Result  json.RawMessage
		}
		json.Unmarshal(rep, &r)
		jobs := func() []string {
			m, _ := filepath.Glob(filepath.Join(dir, "queue", "job-*"))
			return m
		}
		if !r.Success {
			if len(jobs()) > 0 {
				t.Fatalf("refused (%s), yet stored %v", rep, jobs())
			}
			return
		}
		query := append(append([]byte(`{"method": "QueryJobs", "args": [[`), r.Result...), []byte(`], ["ops"]], "version": 3000000}`)...)
		before := luxiCall(t, d, query)
		if !utf8.Valid(before) || !json.Valid(before) || !bytes.HasPrefix(before, []byte(`{"success":true,"result":[[[{`)) {
			t.Fatalf("QueryJobs before the restart: %q", before)
		}
		if err := d.Stop(); err != nil {
			t.Fatalf("stopping jobqd: %v", err)
		}
		d = start(t, dir)
		if after := luxiCall(t, d, query); !bytes.Equal(after, before) {
			t.Fatalf("after a restart:\n%s\nbefore:\n%s", after, before)
		}
		if ents, _ := os.ReadDir(filepath.Join(dir, "queue", "quarantine")); len(ents) > 0 {
			t.Fatalf("quarantined: %v", ents)
		}
	})
}
