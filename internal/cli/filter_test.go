package cli

import (
	"testing"
)

// jobq list takes a filter in Ganeti's query language, with -F or when
// its one argument looks like one, as gnt-job list does.
func TestListFilter(t *testing.T) {
	f := startFake(t)
	f.jobs[3] = map[string]any{"id": 3, "status": "queued", "priority": 10, "summary": []any{"TEST_DELAY(1.0)"}}
	f.jobs[4] = map[string]any{"id": 4, "status": "running", "priority": 0, "summary": []any{"TEST_DELAY(2.0)"}}
	f.jobs[5] = map[string]any{"id": 5, "status": "error", "priority": 0, "summary": []any{"TEST_JQUEUE"}}
	checkResult(t, run(t, f.path, "list", "--no-headers", `status == "running" or "TEST_JQUEUE" in summary`),
		result{stdout: "4 running TEST_DELAY(2.0)\n5 error   TEST_JQUEUE\n"})
	checkResult(t, run(t, f.path, "list", "--no-headers", "-F", "priority==10"),
		result{stdout: "3 queued TEST_DELAY(1.0)\n"})
	checkResult(t, run(t, f.path, "list", "--no-headers", "--filter", "not id < 5", "--error", "-o", "id"),
		result{stdout: "5\n"})
	var calls []string
	calls = append(calls,
		`Query ["job",["id","status","summary"],["|",["==","status","running"],["=[]","summary","TEST_JQUEUE"]]]`,
		`Query ["job",["id","status","summary"],["==","priority",10]]`,
		`Query ["job",["id"],["&",["!",["<","id",5]],["|",["==","status","error"]]]]`)
	f.checkCalls(t, calls...)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "-F", "1", "2"}, `With -F/--filter give exactly one argument, the filter (quote it) (see "jobq list --help")`},
		{[]string{"list", `status == "running`}, `Invalid filter "status == \"running": cannot parse the filter at character 11: the string has no closing " (see "jobq list --help")`},
		{[]string{"list", "-F", "12x"}, `Invalid filter "12x": cannot parse the filter at character 3: expected "in" or "not in" after the value 12 (see "jobq list --help")`},
	} {
		checkResult(t, run(t, f.path, tc.args...), result{stderr: tc.want + "\n", code: 2})
	}
	f.checkCalls(t, calls...)
}
