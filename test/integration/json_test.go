package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

// jsonLines decodes one JSON object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("not one JSON object per line (%v):\n%s", err, out)
		}
		objs = append(objs, o)
	}
	return objs
}

// watch, wait and debug delay with --json, against real jobqd (issue 17
// item 9): log entries as lines of JSON, then the finished job.
func TestWatchWaitDelayJSON(t *testing.T) {
	n := startNode(t, t.TempDir())
	out, errOut, code := n.jobq("debug", "delay", "--json", "--repeat", "2", "0.01")
	if code != 0 || errOut != "" {
		t.Fatalf("debug delay --json: exit %d, stderr %q", code, errOut)
	}
	objs := jsonLines(t, out)
	if len(objs) != 3 || objs[0]["message"] != " - INFO: Test delay iteration 0/1" || objs[0]["type"] != "message" ||
		objs[1]["serial"] != 2.0 || objs[2]["status"] != "success" || objs[2]["job"] != objs[0]["job"] {
		t.Fatalf("debug delay --json:\n%s", out)
	}
	id := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(n.mustJobq("debug", "delay", "--submit", "--json", "0.01"), `{"id":`), "}\n"))
	if _, err := json.Number(id).Int64(); err != nil {
		t.Fatalf("debug delay --submit --json printed no {\"id\": N}: %q", id)
	}
	if objs := jsonLines(t, n.mustJobq("wait", "--json", id)); len(objs) != 1 || objs[0]["status"] != "success" || objs[0]["opresult"] == nil {
		t.Fatalf("wait --json: %v", objs)
	}
	if objs := jsonLines(t, n.mustJobq("watch", "--json", id)); len(objs) != 1 || objs[0]["status"] != "success" {
		t.Fatalf("watch --json of a finished job without log: %v", objs)
	}
	out, errOut, code = n.jobq("debug", "delay", "--json", "0")
	if objs := jsonLines(t, out); code != 1 || len(objs) != 1 || objs[0]["status"] != "error" ||
		!strings.Contains(errOut, "Duration must be greater than zero") {
		t.Fatalf("debug delay --json 0: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
