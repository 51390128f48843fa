package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
)

// Jobs in time through a real daemon: RAPI's POST /2/jobs and LUXI's
// SubmitJob take a timing; the job stays queued and shows its
// not-before time; cancel works; bad timings are refused in a sentence.
func TestTimingOverRAPIAndLUXI(t *testing.T) {
	n := startRAPINode(t, "", 2, rapiUsers)
	nb := time.Now().Add(time.Hour).Unix()
	r := n.do("POST", "/2/jobs", "admin", "adminpw",
		fmt.Sprintf(`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}], "not_before": %d, "timeout": 30, "op_timeout": 1.5}`, nb))
	var id int64
	if r.code != 200 || json.Unmarshal([]byte(r.body), &id) != nil {
		t.Fatalf("POST /2/jobs with a timing: %d %s", r.code, r.body)
	}
	r = n.do("GET", fmt.Sprintf("/2/jobs/%d", id), "", "", "")
	var dict map[string]any
	if err := json.Unmarshal([]byte(r.body), &dict); err != nil {
		t.Fatalf("GET /2/jobs/%d: %d %s", id, r.code, r.body)
	}
	nbJSON, _ := json.Marshal(dict["not_before"])
	if dict["status"] != "queued" || string(nbJSON) != fmt.Sprintf("[%d,0]", nb) ||
		dict["timeout"] != 30.0 || fmt.Sprint(dict["optimeout"]) != "[1.5]" {
		t.Fatalf("GET /2/jobs/%d: %s; want it queued with not_before [%d, 0], timeout 30, optimeout [1.5]", id, r.body, nb)
	}
	// A job without a timing has no such members (Ganeti's dict).
	plain := n.submit(`[{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]`)
	n.waitStatus(plain, is("success"))
	r = n.do("GET", fmt.Sprintf("/2/jobs/%d", plain), "", "", "")
	if strings.Contains(r.body, "not_before") || strings.Contains(r.body, "timeout") {
		t.Fatalf("GET /2/jobs/%d of a job without a timing: %s", plain, r.body)
	}
	for body, want := range map[string]string{
		`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 1}], "not_before": "soon"}`: `not_before "soon" is not a time; send seconds since the epoch or [seconds, microseconds]`,
		`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 1}], "timeout": -1}`:        `the job time limit -1s is negative; give a positive duration such as 10m`,
		`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 1}], "when": 5}`:            `Unknown parameter 'when'; the body is {"ops": [opcode, ...]} with optional not_before, timeout, op_timeout, op_timeouts`,
	} {
		r := n.do("POST", "/2/jobs", "admin", "adminpw", body)
		// The message is HTML-escaped, as Ganeti's.
		if r.code != 400 || !strings.Contains(html.UnescapeString(r.body), want) {
			t.Errorf("POST /2/jobs %s: %d %s, want 400 saying %s", body, r.code, r.body, want)
		}
	}

	// LUXI, through the Go client.
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c, err := client.Dial(ctx, SocketPath(n.dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	at := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	lid, err := c.SubmitJobTimed(ctx, client.Timing{NotBefore: at}, client.OpTestDelay{Duration: time.Millisecond})
	if err != nil {
		t.Fatalf("SubmitJobTimed: %v", err)
	}
	rows, err := c.QueryJobs(ctx, []int64{lid}, "status", "not_before")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`["queued",[%d,%d]]`, at.Unix(), at.Nanosecond()/1000); fmt.Sprintf("[%s,%s]", rows[0][0], rows[0][1]) != want {
		t.Fatalf("QueryJobs of the delayed job: %s, want %s", rows[0], want)
	}
	if _, err := c.SubmitJobTimed(ctx, client.Timing{Timeout: -time.Second}, client.OpTestDelay{Duration: time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "give a positive duration") {
		t.Fatalf("SubmitJobTimed with a negative limit: %v, want a refusal saying what to give", err)
	}
	if err := c.Call(ctx, nil, "SubmitJob", []any{map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 1}}, map[string]any{"at": 5}); err == nil ||
		!strings.Contains(err.Error(), `unknown submission option "at"; the options are not_before, timeout, op_timeout, op_timeouts`) {
		t.Fatalf("SubmitJob with an unknown option: %v", err)
	}
	res, err := c.SubmitManyJobsTimed(ctx, client.Timing{NotBefore: at}, []client.Opcode{client.OpTestDelay{Duration: time.Millisecond}})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("SubmitManyJobsTimed: %v %v", res, err)
	}
	ok, _, err := c.CancelJob(ctx, lid)
	if err != nil || !ok {
		t.Fatalf("cancel the delayed job: %v %v", ok, err)
	}
	if st, err := c.QueryJobs(ctx, []int64{lid}, "status"); err != nil || string(st[0][0]) != `"canceled"` {
		t.Fatalf("the canceled delayed job: %s %v", st, err)
	}

	// The file keeps the timing for a restart: stop and start again.
	n.stop()
	b, err := os.ReadFile(filepath.Join(n.dir, "queue", store.JobFileName(id)))
	if err != nil {
		t.Fatal(err)
	}
	j, err := job.Decode(b)
	if err != nil || j.NotBefore == nil || j.NotBefore[0] != nb || j.Timeout != 30 || j.Ops[0].Timeout != 1.5 {
		t.Fatalf("job file after stop: %s (%v)", b, err)
	}
	n2 := startRAPINode(t, n.dir, 2, "")
	r = n2.do("GET", fmt.Sprintf("/2/jobs/%d", id), "", "", "")
	if err := json.Unmarshal([]byte(r.body), &dict); err != nil || dict["status"] != "queued" || dict["not_before"] == nil {
		t.Fatalf("GET /2/jobs/%d after a restart: %d %s", id, r.code, r.body)
	}
}
