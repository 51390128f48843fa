package cli

import (
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
