package cli

import (
	"strings"
	"testing"
)

// jobq cluster watcher prints what gnt-cluster watcher prints
// (filters/cli-filters.txt) and sends what it sends
// (luxi-filters-socat-v.txt).
func TestWatcherCommands(t *testing.T) {
	f := startFake(t)
	f.script("SetWatcherPause", "1795758481.569201", "null")
	f.script("QueryConfigValues", "[1795758481]", "[null]", "[1795758481]")
	checkResult(t, run(t, f.path, "cluster", "watcher", "pause", "60"),
		result{stdout: "The watcher is paused until Fri Nov 27 05:48:01 2026.\n"})
	checkResult(t, run(t, f.path, "cluster", "watcher", "info"),
		result{stdout: "The watcher is paused until Fri Nov 27 05:48:01 2026.\n"})
	checkResult(t, run(t, f.path, "cluster", "watcher", "continue"), result{stdout: "The watcher is no longer paused.\n"})
	checkResult(t, run(t, f.path, "cluster", "watcher", "info"), result{stdout: "The watcher is not paused.\n"})
	checkResult(t, run(t, f.path, "cluster", "watcher", "info", "--json"), result{stdout: "{\n  \"paused_until\": 1795758481\n}\n"})
	f.checkCalls(t,
		`SetWatcherPause [1795758481.569201]`,
		`QueryConfigValues [["watcher_pause"]]`,
		`SetWatcherPause [null]`,
		`QueryConfigValues [["watcher_pause"]]`,
		`QueryConfigValues [["watcher_pause"]]`,
	)
	checkResult(t, run(t, f.path, "cluster", "watcher", "pause"), result{code: 2,
		stderr: `"jobq cluster watcher pause" takes exactly one duration (seconds, or such as 1h), got 0 arguments (see "jobq cluster watcher pause --help")` + "\n"})
	checkResult(t, run(t, f.path, "cluster", "watcher", "pause", "soon"), result{code: 2,
		stderr: `Invalid duration "soon": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobq cluster watcher pause --help")` + "\n"})
}

// jobq cluster modify submits OP_CLUSTER_SET_PARAMS with the given
// parameters only and waits for it, as gnt-cluster modify.
func TestClusterModify(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "8", "9", "10")
	f.script("WaitForJobChange", `[["success"],[]]`, `[["error"],[]]`, `[["success"],[]]`)
	f.script("QueryJobs", `[["success",["success"],[null]]]`,
		`[["error",["error"],[["OpPrereqError",["max_running_jobs must be between 1 and 1048576, got 2000000","wrong_input"]]]]]`,
		`[["success",["success"],[null]]]`)
	checkResult(t, run(t, f.path, "cluster", "modify", "--max-running-jobs=40", "--max-tracked-jobs", "50"), result{})
	checkResult(t, run(t, f.path, "cluster", "modify", "--max-running-jobs=2000000"), result{code: 1,
		stderr: "Failure: prerequisites not met for this operation:\nerror type: wrong_input, error details:\nmax_running_jobs must be between 1 and 1048576, got 2000000\n"})
	checkResult(t, run(t, f.path, "cluster", "modify", "--idempotency-window", "2h"), result{})
	calls := f.getCalls()
	if len(calls) < 1 || calls[0] != `SubmitJob [[{"OP_ID":"OP_CLUSTER_SET_PARAMS","max_running_jobs":40,"max_tracked_jobs":50,"reason":[["gnt:client:jobq","modify",1795758421569201152]]}]]` {
		t.Errorf("calls %q", calls)
	}
	var windowCall string
	for _, c := range calls {
		if strings.Contains(c, "idempotency_window") {
			windowCall = c
		}
	}
	if windowCall != `SubmitJob [[{"OP_ID":"OP_CLUSTER_SET_PARAMS","idempotency_window":7200,"reason":[["gnt:client:jobq","modify",1795758421569201152]]}]]` {
		t.Errorf("--idempotency-window 2h sent %q", windowCall)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "modify"}, `Give --max-running-jobs, --max-tracked-jobs, --candidate-pool-size or --idempotency-window (see "jobq cluster modify --help")`},
		{[]string{"cluster", "modify", "--idempotency-window=30s"}, `--idempotency-window must be whole seconds from 1m to 30d, got 30s (see "jobq cluster modify --help")`},
		{[]string{"cluster", "modify", "--max-running-jobs=0"}, `--max-running-jobs must be 1 or more, got 0 (see "jobq cluster modify --help")`},
	} {
		checkResult(t, run(t, f.path, tc.args...), result{stderr: tc.want + "\n", code: 2})
	}
}
