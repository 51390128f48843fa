package rapi

import (
	"strings"
	"testing"
)

// TestIdempotencyKeyAndAuthor: POST /2/jobs with an idempotency key
// answers the first job's id to a retry of the same body (whatever the
// time in the reason entries RAPI adds), refuses another body and a bad
// key; the job records its RAPI user; an administrative opcode needs the
// admin option.
func TestIdempotencyKeyAndAuthor(t *testing.T) {
	e := newEnv(t, 1, nil)
	body := `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0}], "idempotency_key": "k-1"}`
	first := e.do("POST", "/2/jobs", "writer", "writerpw", body)
	if first.code != 200 {
		t.Fatalf("first: %d %s", first.code, first.body)
	}
	again := e.do("POST", "/2/jobs", "writer", "writerpw", `{"idempotency_key": "k-1", "ops": [{"duration": 0, "OP_ID": "OP_TEST_DELAY"}]}`)
	if again.code != 200 || again.body != first.body {
		t.Fatalf("retry: %d %s, want %s", again.code, again.body, first.body)
	}
	for _, c := range []struct{ body, want string }{
		{`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 1}], "idempotency_key": "k-1"}`, `idempotency key &quot;k-1&quot; was used`},
		{`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0}], "idempotency_key": "a b"}`, "printable ASCII"},
		{`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0}], "idempotency_key": 7}`, "must be a string"},
		{`{"ops": [{"OP_ID": "OP_RESTRICTED_COMMAND", "command": "x", "nodes": ["node1"]}]}`, "administrative call"},
	} {
		if r := e.do("POST", "/2/jobs", "writer", "writerpw", c.body); r.code != 400 || !strings.Contains(r.body, c.want) {
			t.Errorf("%s: %d %s, want 400 with %q", c.body, r.code, r.body, c.want)
		}
	}
	id := strings.TrimSpace(strings.Trim(strings.TrimSpace(first.body), `"`))
	if r := e.do("GET", "/2/jobs/"+id, "", "", ""); !strings.Contains(r.body, `["jobq:rapi", "writer",`) {
		t.Errorf("job %s lacks its author: %s", id, r.body)
	}
	if r := e.do("POST", "/2/jobs", "admin", "adminpw", `{"ops": [{"OP_ID": "OP_RESTRICTED_COMMAND", "command": "x", "nodes": ["node1"]}]}`); r.code != 200 {
		t.Errorf("an admin's restricted command: %d %s", r.code, r.body)
	}
}
