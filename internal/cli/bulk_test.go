package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// runStdin runs jobq against sock with stdin as the user's answers.
func runStdin(t *testing.T, sock, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), append([]string{"--socket", sock}, args...), Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(string) string { return "" }, Location: time.UTC, Now: func() time.Time { return testNow },
	})
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// cancel and change-priority by status, as gnt-job's: the jobs are listed
// and the user asked, unless --force; IDs and a status never together.
func TestBulkByStatus(t *testing.T) {
	f := startFake(t)
	f.jobs[3] = map[string]any{"status": "queued", "summary": []any{"TEST_DELAY(1.0)"}}
	f.jobs[4] = map[string]any{"status": "running", "summary": []any{"TEST_DELAY(2.0)"}}
	f.jobs[5] = map[string]any{"status": "waiting", "summary": []any{"TEST_DELAY(3.0)"}}
	var calls []string
	expect := func(more ...string) {
		t.Helper()
		calls = append(calls, more...)
		f.checkCalls(t, calls...)
	}
	table := "ID Status  Summary\n 3 queued  TEST_DELAY(1.0)\n 5 waiting TEST_DELAY(3.0)\n"

	checkResult(t, runStdin(t, f.path, "n\n", "cancel", "--pending"), result{
		stdout: table + "Cancel job(s) listed above? y/[n]: ",
		stderr: "Nothing done: not confirmed (add --force to act without asking).\n", code: 13})
	expect(`Query ["job",["id","status","summary"],["|",["==","status","queued"],["==","status","waiting"],["==","status","canceling"]]]`)

	f.script("CancelJob", `[true,"Dequeued job 3"]`, `[true,"Job 5 will be canceled"]`)
	checkResult(t, runStdin(t, f.path, "y\n", "cancel", "--pending"), result{
		stdout: table + "Cancel job(s) listed above? y/[n]: Dequeued job 3\nJob 5 will be canceled\n"})
	expect(`Query ["job",["id","status","summary"],["|",["==","status","queued"],["==","status","waiting"],["==","status","canceling"]]]`,
		`CancelJob [3,false]`, `CancelJob [5,false]`)

	f.script("ChangeJobPriority", `[true,"changed"]`)
	checkResult(t, run(t, f.path, "change-priority", "--priority", "high", "--waiting", "--force"), result{stdout: "changed\n"})
	expect(`Query ["job",["id","status","summary"],["|",["==","status","waiting"]]]`, `ChangeJobPriority [5,-10]`)

	f.script("CancelJob", `[true,"Dequeued job 3"]`)
	checkResult(t, run(t, f.path, "cancel", "--queued", "--force", "--kill", "--yes-do-it"), result{stdout: "Dequeued job 3\n"})
	expect(`Query ["job",["id","status","summary"],["|",["==","status","queued"]]]`, `CancelJob [3,true]`)

	delete(f.jobs, 3)
	checkResult(t, run(t, f.path, "cancel", "--queued", "--force"), result{
		stderr: "No jobs with the requested status have been found\n", code: 1})
	expect(`Query ["job",["id","status","summary"],["|",["==","status","queued"]]]`)

	for _, args := range [][]string{{"cancel"}, {"cancel", "--queued", "3"}, {"cancel", "--queued", "--waiting"},
		{"cancel", "--force", "3"}, {"change-priority", "--priority", "low"}} {
		if got := run(t, f.path, args...); got.code != 2 || got.stdout != "" || !strings.Contains(got.stderr, "--pending, --queued") && !strings.Contains(got.stderr, "--force only") {
			t.Errorf("jobq %s: %+v", strings.Join(args, " "), got)
		}
	}
	expect()
}
