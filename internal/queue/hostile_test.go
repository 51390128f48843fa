package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
)

// jobFiles lists the job files in a queue directory.
func jobFiles(t interface{ Fatal(...any) }, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "job-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func noQuarantine(t interface{ Fatalf(string, ...any) }, dir string) {
	if ents, _ := os.ReadDir(filepath.Join(dir, "quarantine")); len(ents) > 0 {
		t.Fatalf("files were quarantined: %v", ents)
	}
}

// Issue 16, finding 1: an opcode with text that is not valid UTF-8 was
// acknowledged, then quarantined at the next start. It is refused now,
// with a clear error, and nothing is stored.
func TestSubmitRefusesInvalidUTF8(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, 1)
	bad := op("{\"OP_ID\":\"OP_TEST_DELAY\",\"duration\":0.001,\"comment\":\"caf\xe9\"}")
	res, err := h.q.Submit([][]json.RawMessage{{bad}, {op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"comment":"caf\u00e9"}`)}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "not valid UTF-8") || res[0].ID != 0 {
		t.Fatalf("invalid UTF-8: %+v, want an error saying so and no id", res[0])
	}
	if res[1].Err != nil || res[1].ID != 1 {
		t.Fatalf("the valid job beside it: %+v, want id 1", res[1])
	}
	h.waitFinal(1)
	if got := jobFiles(t, dir); len(got) != 1 || got[0] != "job-1" {
		t.Fatalf("job files %v, want only job-1", got)
	}
	h.close()
	h = newHarness(t, dir, 1)
	noQuarantine(t, dir)
	if v := h.fields(1, "status"); v[0] != "success" {
		t.Fatalf("job 1 after restart: %v", v)
	}
}

// A queue directory written by jobq before the check (invalid UTF-8 in an
// input, a log message, a result) loads: nothing is quarantined, the
// bytes are replaced by U+FFFD and the file is stored again.
func TestLoadRepairsWhatOlderVersionsWrote(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, 1)
	id := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"comment":"cafe"}`))
	h.waitFinal(id)
	h.close()
	path := filepath.Join(dir, store.JobFileName(id))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("cafe"), []byte("caf\xe9"), 1)
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	h = newHarness(t, dir, 1)
	noQuarantine(t, dir)
	v := h.fields(id, "status", "ops")
	if v[0] != "success" || !strings.Contains(fmt.Sprint(v[1]), "caf\uFFFD") {
		t.Fatalf("job %d after restart: %v", id, v)
	}
	// Stored again (before the queue opened), valid now.
	if b, err := os.ReadFile(path); err != nil || !jsontext.Value(b).IsValid() {
		t.Fatalf("job file not stored again as valid UTF-8: %q %v", b, err)
	}
}

// Issue 16, finding 3: limits on opcodes per job, job size and nesting
// refuse a job before anything is stored, naming the limit.
func TestSubmitLimits(t *testing.T) {
	dir := t.TempDir()
	h := newHarnessConfig(t, dir, Config{MaxRunning: 1, Limits: job.Limits{MaxOps: 5, MaxSize: 1000, MaxDepth: 8}})
	small := op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	many := make([]json.RawMessage, 6)
	for i := range many {
		many[i] = small
	}
	big := op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"comment":"` + strings.Repeat("x", 1000) + `"}`)
	deep := op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"x":` + strings.Repeat("[", 8) + strings.Repeat("]", 8) + `}`)
	res, err := h.q.Submit([][]json.RawMessage{many, {big}, {deep}, many[:5]}, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"max_ops_per_job", "max_job_size", "max_input_depth"} {
		var le *job.LimitError
		if !errors.As(res[i].Err, &le) || le.Limit != want || !strings.Contains(le.Error(), want) || res[i].ID != 0 {
			t.Errorf("job %d: %+v, want a refusal naming %s", i, res[i], want)
		}
	}
	if res[3].Err != nil || res[3].ID != 1 {
		t.Fatalf("a job at the limits: %+v", res[3])
	}
	h.waitFinal(1)
	if got := jobFiles(t, dir); len(got) != 1 {
		t.Fatalf("job files %v, want only job-1", got)
	}
}

// Issue 16, finding 3: a job keeps at most MaxLogEntries log entries, the
// last of which says so; the job still runs to its end.
func TestLogEntriesLimited(t *testing.T) {
	dir := t.TempDir()
	h := newHarnessConfig(t, dir, Config{MaxRunning: 1, MaxLogEntries: 10})
	id := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.0001,"repeat":50}`))
	if st := h.waitFinal(id); st != job.StatusSuccess {
		t.Fatalf("status %s", st)
	}
	j := h.fileJob(id)
	logs := j.Ops[0].Log
	if len(logs) != 10 {
		t.Fatalf("%d log entries in the file, want 10", len(logs))
	}
	if last := string(logs[9].Message); !strings.Contains(last, "max_log_entries") || logs[9].Serial != 10 {
		t.Fatalf("last entry %d %s, want the note naming max_log_entries", logs[9].Serial, last)
	}
}

// Issue 16, finding 3: a submission of many jobs releases the queue lock
// between chunks; another client's submission and query are served
// meanwhile (they would wait for the whole loop before).
func TestSubmitManyDoesNotHoldTheLock(t *testing.T) {
	dir := t.TempDir()
	var h *harness
	var once sync.Once
	served := make(chan error, 1)
	cfg := Config{MaxRunning: 1, testBetweenChunks: func() {
		once.Do(func() {
			done := make(chan error, 1)
			go func() {
				res, err := h.q.Submit([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)}}, false)
				if err == nil && res[0].Err != nil {
					err = res[0].Err
				}
				if err == nil {
					_, err = h.q.QueryJobs([]int64{res[0].ID}, []string{"id"})
				}
				done <- err
			}()
			select {
			case err := <-done:
				served <- err
			case <-time.After(30 * time.Second):
				served <- fmt.Errorf("another client's submission was not served within 30s while a large submission was in progress")
			}
		})
	}}
	h = newHarnessConfig(t, dir, cfg)
	jobs := make([][]json.RawMessage, 3*submitChunk)
	for i := range jobs {
		jobs[i] = []json.RawMessage{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)}
	}
	res, err := h.q.Submit(jobs, false)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("the queue lock was never released during a submission of %d jobs", len(jobs))
	}
	// Every job has an id; the other client's took one in between.
	seen := map[int64]bool{}
	for i, r := range res {
		if r.Err != nil || r.ID == 0 || seen[r.ID] {
			t.Fatalf("job %d: %+v", i, r)
		}
		seen[r.ID] = true
	}
	if res[submitChunk-1].ID != submitChunk || res[submitChunk].ID != submitChunk+2 {
		t.Fatalf("ids around the first chunk's end: %d, %d; want %d, %d (the other client's job in between)",
			res[submitChunk-1].ID, res[submitChunk].ID, submitChunk, submitChunk+2)
	}
}

// genJSON writes a random JSON-like value: mostly valid, sometimes with
// text that is not valid UTF-8, a member twice, or deep nesting.
func genJSON(t *rapid.T, b *bytes.Buffer, depth int, label string) {
	kind := rapid.IntRange(0, 7).Draw(t, label+"kind")
	if depth > 6 && kind >= 6 {
		kind = 0
	}
	ws := func() {
		if rapid.IntRange(0, 4).Draw(t, label+"ws") == 0 {
			b.WriteString(" \n\t")
		}
	}
	switch kind {
	case 0:
		b.WriteString(rapid.SampledFrom([]string{"0", "-0", "1.50", "1e3", "-12345678901234567890", "2.5E-3", "true", "false", "null"}).Draw(t, label+"lit"))
	case 1, 2:
		genString(t, b, label)
	case 3:
		// Deep: sometimes over the default depth limit.
		n := rapid.IntRange(1, 80).Draw(t, label+"deep")
		b.WriteString(strings.Repeat("[", n) + strings.Repeat("]", n))
	case 4, 5, 6:
		b.WriteByte('[')
		n := rapid.IntRange(0, 3).Draw(t, label+"n")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			ws()
			genJSON(t, b, depth+1, label+"a")
		}
		b.WriteByte(']')
	case 7:
		genObject(t, b, depth+1, label+"o", nil)
	}
}

func genString(t *rapid.T, b *bytes.Buffer, label string) {
	b.WriteByte('"')
	n := rapid.IntRange(0, 4).Draw(t, label+"parts")
	for range n {
		b.WriteString(rapid.SampledFrom([]string{
			"plain", "caf\u00e9", "\U0001F600", `\u00e9`, `\ud83d\ude00`, `\"`, `\\`, `\n`, "<script>&",
			"\xe9", "\xff", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", // not UTF-8
		}).Draw(t, label+"part"))
	}
	b.WriteByte('"')
}

func genObject(t *rapid.T, b *bytes.Buffer, depth int, label string, first []string) {
	b.WriteByte('{')
	names := append([]string(nil), first...)
	n := rapid.IntRange(0, 4).Draw(t, label+"members")
	for range n {
		names = append(names, rapid.SampledFrom([]string{"comment", "duration", "x", "y", "x", "caf\u00e9", "n\xe9"}).Draw(t, label+"name"))
	}
	for i, name := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		if i < len(first) {
			b.WriteString(name)
			continue
		}
		b.WriteString(`"` + name + `":`)
		genJSON(t, b, depth, label+"v")
	}
	b.WriteByte('}')
}

// validInput is the oracle: an input is accepted exactly when it is one
// JSON object (valid UTF-8, each member once per object) nested at most
// job.DefaultMaxDepth levels.
func validInput(in []byte) bool {
	if !jsontext.Value(in).IsValid() {
		return false
	}
	dec := jsontext.NewDecoder(bytes.NewReader(in))
	maxDepth := 0
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			break
		}
		if k := tok.Kind(); k == '{' || k == '[' {
			maxDepth = max(maxDepth, dec.StackDepth())
		}
	}
	return maxDepth <= job.DefaultMaxDepth
}

// Issue 16, finding 1 (the property): whatever a submission the queue
// accepts holds reads back identical after a restart, with no file
// quarantined; what it refuses leaves nothing on disk; and it accepts
// exactly the inputs the strict job file decoder reads.
func TestPropertyAcceptedReadsBackAfterRestart(t *testing.T) {
	base := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(base, "q")
		if err != nil {
			rt.Fatal(err)
		}
		h := newHarnessConfig(t, dir, Config{MaxRunning: 1})
		defer h.close()
		var inputs [][]byte
		njobs := rapid.IntRange(1, 4).Draw(rt, "jobs")
		var jobs [][]json.RawMessage
		for range njobs {
			var b bytes.Buffer
			// An opcode nobody registered: it fails at once, its input
			// stays as stored.
			genObject(rt, &b, 1, "in", []string{`"OP_ID":"OP_PROPERTY_UNKNOWN"`})
			inputs = append(inputs, b.Bytes())
			jobs = append(jobs, []json.RawMessage{b.Bytes()})
		}
		res, err := h.q.Submit(jobs, false)
		if err != nil {
			rt.Fatal(err)
		}
		before := map[int64]json.RawMessage{}
		for i, r := range res {
			if ok := validInput(inputs[i]); (r.Err == nil) != ok {
				rt.Fatalf("input %q: accepted=%v (err %v), want accepted=%v", inputs[i], r.Err == nil, r.Err, ok)
			}
			if r.Err != nil {
				continue
			}
			rows, err := h.q.QueryJobs([]int64{r.ID}, []string{"ops"})
			if err != nil {
				rt.Fatal(err)
			}
			before[r.ID] = rows[0]
			// Every member submitted is stored with its value (null
			// members are left out, reason gets the queue's entry).
			var sub, got map[string]any
			var stored [][]json.RawMessage
			if err := json.Unmarshal(rows[0], &stored); err != nil || len(stored) != 1 || len(stored[0]) != 1 {
				rt.Fatalf("ops of job %d: %s", r.ID, rows[0])
			}
			decodeNumbers(rt, inputs[i], &sub)
			decodeNumbers(rt, stored[0][0], &got)
			for k, v := range sub {
				if k == "reason" || v == nil {
					continue
				}
				if !reflect.DeepEqual(got[k], v) {
					rt.Fatalf("member %q of job %d: stored %#v, submitted %#v\ninput %q", k, r.ID, got[k], v, inputs[i])
				}
			}
		}
		if got := jobFiles(rt, dir); len(got) != len(before) {
			rt.Fatalf("job files %v for %d accepted jobs", got, len(before))
		}
		h.close()
		h = newHarnessConfig(t, dir, Config{MaxRunning: 1})
		noQuarantine(rt, dir)
		for id, b := range before {
			rows, err := h.q.QueryJobs([]int64{id}, []string{"ops"})
			if err != nil {
				rt.Fatal(err)
			}
			if !bytes.Equal(rows[0], b) {
				rt.Fatalf("job %d after restart:\n%s\nbefore:\n%s", id, rows[0], b)
			}
		}
	})
}

func decodeNumbers(t *rapid.T, b []byte, v any) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
}

// Issue 16, finding 3: every log line rewrote the whole job file. Log
// lines now wait up to LogFlushDelay for the job's next write (watchers
// see them at once); the job's later writes carry them.
func TestLogLinesShareWrites(t *testing.T) {
	dir := t.TempDir()
	h := newHarnessConfig(t, dir, Config{MaxRunning: 1, LogFlushDelay: time.Hour})
	id := h.submit(gate("g"))
	started, release := h.g.get("g")
	await(t, started, "the gate opcode to start")
	// Shown at once.
	r, err := h.q.WaitForJobChange(context.Background(), id, []string{"status"}, op(`["running"]`), 0, waitTimeout)
	if err != nil || len(r.Logs) != 1 {
		t.Fatalf("watcher: %+v %v, want the log line", r, err)
	}
	// Another job's submission is acknowledged once durable: what the
	// store had before is on disk by then.
	h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	if j := h.fileJob(id); len(j.Ops[0].Log) != 0 {
		t.Fatalf("the log line was written on its own: %+v", j.Ops[0].Log)
	}
	close(release)
	h.waitFinal(id)
	if j := h.fileJob(id); len(j.Ops[0].Log) != 1 || !strings.Contains(string(j.Ops[0].Log[0].Message), "gate g reached") {
		t.Fatalf("the final write lacks the log line: %+v", j.Ops[0].Log)
	}
}

// The log lines of a job that writes nothing else reach its file after
// LogFlushDelay.
func TestLogLinesFlushedAfterTheDelay(t *testing.T) {
	dir := t.TempDir()
	h := newHarnessConfig(t, dir, Config{MaxRunning: 1, LogFlushDelay: time.Millisecond})
	id := h.submit(gate("g"))
	started, release := h.g.get("g")
	defer close(release)
	await(t, started, "the gate opcode to start")
	deadline := time.Now().Add(waitTimeout)
	for len(h.fileJob(id).Ops[0].Log) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the log line of a running job is not in its file after %s", waitTimeout)
		}
		// A barrier: acknowledged once the store's earlier writes are on disk.
		h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	}
}
