package rapi

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/store"
)

// openQueue opens a queue on dir (jobs run on one worker).
func openQueue(t *testing.T, dir string) *queue.Queue {
	t.Helper()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(queue.Config{Store: st, MaxRunning: 1, NodeName: "node1"})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return q
}

func closeQueue(q *queue.Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // interrupt what still runs: it is recovered at the next start
	q.Shutdown(ctx)
}

// FuzzSubmitRoundTrip (issue 16, finding 1): whatever POST /2/jobs
// accepts reads back identical after a restart, every member submitted is
// stored with its value, and the answers are JSON that Python reads
// (valid UTF-8); whatever it refuses leaves no job file.
func FuzzSubmitRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"ops": [{"OP_ID": "OP_X", "comment": "caf\u00e9 \ud83d\ude00 <b>&"}]}`,
		"{\"ops\": [{\"OP_ID\": \"OP_X\", \"comment\": \"caf\xe9\"}]}",
		`{"ops": [{"OP_ID": "OP_X", "a": 1, "a": 2}]}`,
		`{"ops": [{"OP_ID": "OP_X", "n": 1.50, "m": -0, "e": 1e400, "big": 123456789012345678901234567890}]}`,
		`{"ops": [{"OP_ID": "OP_X", "reason": [["gnt:user", "r", 1]], "depends": null, "priority": null}]}`,
		`{"ops": [{"OP_ID": "OP_X", "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}`,
		`{"ops": [{"OP_ID": "OP_X", "\u0000": "\u0000"}, {"OP_ID": "OP_Y"}]}`,
		`{"ops": [{"OP_ID": "OP_X"}]} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		users := filepath.Join(dir, "users")
		if err := os.WriteFile(users, []byte(usersFile), 0o600); err != nil {
			t.Fatal(err)
		}
		qdir := filepath.Join(dir, "queue")
		q := openQueue(t, qdir)
		serve := func(q *queue.Queue, method, path string, body []byte) *httptest.ResponseRecorder {
			s := New(Config{Queue: q, UsersFile: users})
			defer s.Shutdown(context.Background())
			r := httptest.NewRequest(method, "https://rapi.test"+path, bytes.NewReader(body))
			if len(body) > 0 {
				r.Header.Set("Content-Type", "application/json")
			}
			r.SetBasicAuth("admin", "adminpw")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			return w
		}
		w := serve(q, "POST", "/2/jobs", body)
		if !utf8.Valid(w.Body.Bytes()) || !json.Valid(w.Body.Bytes()) {
			closeQueue(q)
			t.Fatalf("answer %d is not JSON in UTF-8: %q", w.Code, w.Body)
		}
		if w.Code != 200 {
			closeQueue(q)
			if ents, _ := filepath.Glob(filepath.Join(qdir, "job-*")); len(ents) > 0 {
				t.Fatalf("refused (%d %s), yet stored %v", w.Code, w.Body, ents)
			}
			return
		}
		// Accepted: the body held exactly what it says (Go's decoder
		// would turn invalid UTF-8 into U+FFFD and keep the last of two
		// members of one name, so what is stored would differ).
		if !jsontext.Value(bytes.TrimSpace(body)).IsValid() {
			closeQueue(q)
			t.Fatalf("accepted a body that is not strictly valid JSON: %q", body)
		}
		id, err := strconv.ParseInt(strings.TrimSpace(w.Body.String()), 10, 64)
		if err != nil {
			closeQueue(q)
			t.Fatalf("answer %q", w.Body)
		}
		before, err := q.QueryJobs([]int64{id}, []string{"ops"})
		if err != nil {
			closeQueue(q)
			t.Fatal(err)
		}
		got := serve(q, "GET", "/2/jobs/"+strconv.FormatInt(id, 10), nil)
		closeQueue(q)
		if got.Code != 200 || !utf8.Valid(got.Body.Bytes()) || !json.Valid(got.Body.Bytes()) {
			t.Fatalf("GET /2/jobs/%d: %d %q", id, got.Code, got.Body)
		}
		// Every member submitted is stored with its value.
		var sub struct{ Ops []map[string]json.RawMessage }
		var stored [][]map[string]json.RawMessage
		if err := json.Unmarshal(body, &sub); err != nil {
			t.Fatalf("accepted a body Go cannot decode: %v", err)
		}
		if err := json.Unmarshal(before[0], &stored); err != nil || len(stored) != 1 || len(stored[0]) != len(sub.Ops) {
			t.Fatalf("ops %s for %d submitted", before[0], len(sub.Ops))
		}
		for i, op := range sub.Ops {
			for k, v := range op {
				if k == "reason" || string(bytes.TrimSpace(v)) == "null" {
					continue
				}
				if !sameValue(v, stored[0][i][k]) {
					t.Fatalf("opcode %d member %q: stored %s, submitted %s", i, k, stored[0][i][k], v)
				}
			}
		}
		q = openQueue(t, qdir)
		after, err := q.QueryJobs([]int64{id}, []string{"ops"})
		closeQueue(q)
		if err != nil || !bytes.Equal(after[0], before[0]) {
			t.Fatalf("job %d after a restart: %s %v\nbefore: %s", id, after[0], err, before[0])
		}
		if ents, _ := os.ReadDir(filepath.Join(qdir, "quarantine")); len(ents) > 0 {
			t.Fatalf("quarantined: %v", ents)
		}
	})
}

// sameValue compares two JSON values as decoded with numbers kept as text.
func sameValue(a, b json.RawMessage) bool {
	dec := func(r json.RawMessage) (any, bool) {
		d := json.NewDecoder(bytes.NewReader(r))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, oka := dec(a)
	vb, okb := dec(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}
