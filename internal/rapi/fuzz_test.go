package rapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
)

// fakeQueue answers at once and never blocks: even ids are unknown jobs,
// odd ones exist.
type fakeQueue struct{}

func (fakeQueue) Submit(jobs [][]json.RawMessage, ignoreDrain bool) ([]queue.SubmitResult, error) {
	res := make([]queue.SubmitResult, len(jobs))
	for i := range jobs {
		res[i].ID = int64(i + 1)
	}
	return res, nil
}

func (f fakeQueue) SubmitTimed(jobs [][]json.RawMessage, ignoreDrain bool, _ job.Timing) ([]queue.SubmitResult, error) {
	return f.Submit(jobs, ignoreDrain)
}

func (f fakeQueue) SubmitWith(jobs [][]json.RawMessage, o queue.SubmitOptions) ([]queue.SubmitResult, error) {
	return f.Submit(jobs, o.IgnoreDrain)
}

func (f fakeQueue) CancelJobBy(id int64, kill bool, _ author.Actor) (bool, string, error) {
	return f.CancelJob(id, kill)
}

func (fakeQueue) Schedules() []queue.ScheduleState { return nil }

func (fakeQueue) row(id int64, fields []string) json.RawMessage {
	vals := make([]any, len(fields))
	for i, f := range fields {
		switch f {
		case "id":
			vals[i] = id
		case "status":
			vals[i] = "queued"
		case "end_ts":
			vals[i] = nil
		default:
			vals[i] = []any{nil, "x", 1.5}
		}
	}
	b, _ := json.Marshal(vals)
	return b
}

func (q fakeQueue) QueryJobs(ids []int64, fields []string) ([]json.RawMessage, error) {
	if ids == nil {
		return []json.RawMessage{q.row(1, fields), q.row(3, fields)}, nil
	}
	out := make([]json.RawMessage, len(ids))
	for i, id := range ids {
		out[i] = json.RawMessage("null")
		if id%2 != 0 {
			out[i] = q.row(id, fields)
		}
	}
	return out, nil
}

func (q fakeQueue) WaitForJobChange(ctx context.Context, id int64, fields []string, prevInfo json.RawMessage,
	prevLogSerial int64, timeout time.Duration) (*queue.WaitResult, error) {
	if id%2 == 0 {
		return nil, nil
	}
	for _, f := range fields {
		if f != "id" && f != "status" && f != "end_ts" && f != "oplog" && f != "opresult" {
			return nil, &queue.Error{Class: "OpPrereqError", Args: []any{"Unknown output fields selected: " + f}}
		}
	}
	return &queue.WaitResult{Values: q.row(id, fields)}, nil
}

func (fakeQueue) CancelJob(id int64, kill bool) (bool, string, error) {
	return id%4 == 1, fmt.Sprintf("Job %d", id), nil
}

// captureSeeds returns the requests of the Ganeti RAPI captures
// (method, target, body) and their answers' bodies, for the fuzz seeds.
func captureSeeds(tb testing.TB) (reqs [][3]string, answers []string) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "ganeti-reference", "rapi-*.txt"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no RAPI captures: %v", err)
	}
	url := regexp.MustCompile(`https://[^/ ]+(/\S*)`)
	method := regexp.MustCompile(`-X (\w+)`)
	data := regexp.MustCompile(`-d '([^']*)'|-d (\{\S*\})`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, ex := range strings.Split("\n"+string(b), "\n$ ")[1:] {
			cmd, rest, _ := strings.Cut(ex, "\n")
			u := url.FindStringSubmatch(cmd)
			if u == nil {
				continue
			}
			m := "GET"
			if mm := method.FindStringSubmatch(cmd); mm != nil {
				m = mm[1]
			}
			body := ""
			if d := data.FindStringSubmatch(cmd); d != nil {
				body = d[1] + d[2]
			}
			reqs = append(reqs, [3]string{m, u[1], body})
			if _, ans, ok := strings.Cut(rest, "\r\n\r\n"); ok {
				answers = append(answers, strings.TrimSpace(ans))
			} else if _, ans, ok := strings.Cut(rest, "\n\n"); ok {
				answers = append(answers, strings.TrimSpace(ans))
			}
		}
	}
	return reqs, answers
}

// FuzzRequest sends arbitrary requests (method, target, JSON body, as
// which user) through net/http's request parser to the RAPI handler, in
// front of a queue that answers at once. Whatever comes in, the handler
// does not panic and answers one of its statuses with Python-style JSON
// of the right length, errors in Ganeti's shape. CI runs the seeds: the
// Ganeti captures' requests, and their answers sent as bodies.
func FuzzRequest(f *testing.F) {
	reqs, answers := captureSeeds(f)
	for _, r := range reqs {
		f.Add(r[0], r[1], []byte(r[2]), uint8(1))
	}
	targets := []string{"/2/jobs", "/2/jobs/1/wait", "/2/jobs/3", "/2/jobs?bulk=1"}
	for i, a := range answers {
		f.Add("POST", targets[i%len(targets)], []byte(a), uint8(1))
		f.Add("GET", "/2/jobs/1/wait", []byte(a), uint8(1))
	}
	for _, s := range [][4]string{
		{"POST", "/2/jobs?reason=x&reason=y", `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 1, "reason": [["a", "b", 1]]}]}`, "1"},
		{"POST", "/2/jobs", `{"ops": [{"OP_ID": ""}, 1, null]}`, "1"},
		{"POST", "/2/jobs", `{"ops": [{"OP_ID": "X", "reason": "r"}], "extra": 1}`, "2"},
		{"GET", "/2/jobs/1/wait", `{"fields": ["status", "nosuch"], "previous_job_info": ["queued"], "previous_log_serial": 1e999}`, "1"},
		{"GET", "/2/jobs/1/wait", `{"fields": [1], "previous_job_info": {}, "previous_log_serial": "x"}`, "1"},
		{"GET", "/2/jobs/1/wait", `[]`, "1"},
		{"DELETE", "/2/jobs/5", ``, "1"},
		{"DELETE", "/2/jobs/9223372036854775808", ``, "1"},
		{"GET", "/2/jobs?bulk=1&bulk=x", ``, "0"},
		{"GET", "/2/info", `{"a": 1} {}`, "3"},
		{"PUT", "/2/features", ``, "0"},
		{"GET", "/%2e%2e/2/jobs", ``, "0"},
		{"GET", "/2/jobs/1/wait/", ``, "1"},
		{"GET", "/2/jobs/-1", ``, "0"},
		{"POST", "/2/jobs", strings.Repeat("[", 20000), "1"},
		{"POST", "/2/jobs", `{"ops": [{"OP_ID": "OP_TEST_DELAY", "comment": "\ud800<&>\u2028"}]}`, "1"},
	} {
		u, _ := strconv.Atoi(s[3])
		f.Add(s[0], s[1], []byte(s[2]), uint8(u))
	}

	users := filepath.Join(f.TempDir(), "users")
	if err := os.WriteFile(users, []byte(usersFile), 0o600); err != nil {
		f.Fatal(err)
	}
	s := New(Config{Queue: fakeQueue{}, UsersFile: users,
		Cluster: func() ClusterInfo { return ClusterInfo{Name: "c1", Master: "node1", MaxRunningJobs: 1} }})
	defer s.Shutdown(context.Background())
	creds := []string{"", "admin:adminpw", "ro:ropw", "admin:wrong"}

	f.Fuzz(func(t *testing.T, method, target string, body []byte, user uint8) {
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: rapi.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, target, len(body))
		if c := creds[int(user)%len(creds)]; c != "" {
			fmt.Fprintf(&raw, "Authorization: Basic %s\r\n", b64(c))
		}
		raw.WriteString("\r\n")
		raw.Write(body)
		r, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil {
			return // net/http answers such requests itself
		}
		w := newRecorder()
		s.ServeHTTP(w, r)

		out := w.body.String()
		if _, known := statusText[w.code]; !known && w.code != http.StatusOK {
			t.Fatalf("%s %s %q: status %d", method, target, body, w.code)
		}
		if got := w.hdr.Get("Content-Length"); got != strconv.Itoa(len(out)) {
			t.Fatalf("%s %s %q: Content-Length %s for %d bytes", method, target, body, got, len(out))
		}
		if !strings.HasSuffix(out, "\n") || !json.Valid([]byte(out)) {
			t.Fatalf("%s %s %q: answer is not one JSON value and a newline: %q", method, target, body, out)
		}
		if w.code == http.StatusOK {
			return
		}
		if w.code == http.StatusUnauthorized && w.hdr.Get("WWW-Authenticate") == "" {
			t.Fatalf("401 without WWW-Authenticate")
		}
		if keys := keyOrder(t, out); strings.Join(keys, ",") != "code,message,explain" {
			t.Fatalf("%s %s %q: error body %q", method, target, body, out)
		}
		var e struct {
			Code    int
			Message string
		}
		if err := json.Unmarshal([]byte(out), &e); err != nil || e.Code != w.code || e.Message == "" {
			t.Fatalf("%s %s %q: error body %q for status %d", method, target, body, out, w.code)
		}
	})
}
