package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/luxi"
)

func TestCannotConnect(t *testing.T) {
	dir := shortTempDir(t)
	missing := filepath.Join(dir, "nosuch")
	checkResult(t, run(t, missing, "list"), result{
		stderr: "Cannot connect to jobqd at socket '" + missing + "' (no such file or directory): start it with \"jobqd\", " +
			"or point jobq at a running jobqd with --socket, $JOBQ_SOCKET or --data-dir\n",
		code: 1,
	})

	// With --data-dir, the message names the data directory to start
	// jobqd with.
	got := runEnv(t, context.Background(), nil, "--data-dir", dir, "queue", "info")
	checkResult(t, got, result{
		stderr: "Cannot connect to jobqd at socket '" + filepath.Join(dir, "socket", "jobq-query") + "' (no such file or directory): " +
			"start it with \"jobqd --data-dir " + dir + "\", or point jobq at a running jobqd with --socket, $JOBQ_SOCKET or --data-dir\n",
		code: 1,
	})

	// A socket nobody listens on any more.
	stale := filepath.Join(dir, "stale")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	got = run(t, stale, "wait", "1")
	if got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, "'"+stale+"' (connection refused)") || strings.Count(got.stderr, "\n") != 1 {
		t.Errorf("stale socket: got %+v", got)
	}
}

func TestSocketResolution(t *testing.T) {
	dir := shortTempDir(t)
	f := startFakeAt(t, filepath.Join(dir, "socket", "jobq-query"))
	f.script("QueryConfigValues", `[false,"c","m"]`, `[false,"c","m"]`, `[false,"c","m"]`, `[false,"c","m"]`)
	bad := filepath.Join(dir, "nosuch")
	want := result{stdout: "The drain flag is unset\n"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"data-dir", nil, []string{"--data-dir", dir}},
		{"env", map[string]string{SocketEnv: f.path}, nil},
		{"socket beats env", map[string]string{SocketEnv: bad}, []string{"--socket", f.path}},
		{"data-dir beats env", map[string]string{SocketEnv: bad}, []string{"--data-dir", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkResult(t, runEnv(t, context.Background(), tc.env, append(tc.args, "queue", "info")...), want)
		})
	}
	// QueryConfigValues, then JobqHousekeeping (which the fake does not
	// know: the output is Ganeti's), four times.
	if n := len(f.getCalls()); n != 8 {
		t.Errorf("%d calls, want 8", n)
	}
}

func TestUnknownJob(t *testing.T) {
	f := startFake(t)
	// A job that never existed is not found (Ganeti: "Job with id N
	// lost" after printing watch's header), for watch and wait.
	const notFound = "Job 999999 not found: there is no such job in the queue or its archive ('jobq list --archived' lists the jobs)\n"
	f.script("WaitForJobChange", "null", "null")
	f.script("QueryJobs", `[null]`, `[null]`)
	checkResult(t, run(t, f.path, "watch", "999999"), result{stderr: notFound, code: 1})
	checkResult(t, run(t, f.path, "wait", "999999"), result{stderr: notFound, code: 1})
	f.checkCalls(t, `WaitForJobChange [999999,["status"],null,null,30]`, `QueryJobs [[999999],["status","opstatus","opresult"]]`,
		`WaitForJobChange [999999,["status"],null,null,30]`, `QueryJobs [[999999],["status","opstatus","opresult"]]`)

	// A job that goes away once seen is lost.
	lost := "Job 999999 failed: Error checking job status: Job with id 999999 lost\n"
	f.script("WaitForJobChange", `[["success"],[]]`)
	f.script("QueryJobs", `[null]`)
	checkResult(t, run(t, f.path, "wait", "999999"), result{stderr: lost, code: 1})
	f.script("WaitForJobChange", `[["running"],[]]`, "null")
	checkResult(t, run(t, f.path, "watch", "999999"), result{
		stdout: "Output from job 999999 follows\n------------------------------\n", stderr: lost, code: 1})

	// info and list name it on stderr and exit 1 (Ganeti: exit 0); the
	// jobs that exist are shown all the same.
	checkResult(t, run(t, f.path, "info", "999999"), result{stderr: notFound, code: 1})
	checkResult(t, run(t, f.path, "list", "999999"), result{stdout: "ID Status Summary\n", stderr: notFound, code: 1})
	f.addTestJobs("6040")
	got := run(t, f.path, "info", "6040", "999999")
	if got.code != 1 || got.stderr != notFound || !strings.HasPrefix(got.stdout, "- Job ID: 6040\n") {
		t.Errorf("info of a job and a missing one: %+v", got)
	}
	checkResult(t, run(t, f.path, "list", "--no-headers", "999999", "6040", "999999"), result{stdout: "6040 success TEST_DELAY(1.0e-2)\n", stderr: notFound, code: 1})
	checkResult(t, run(t, f.path, "list", "--no-headers", "-o", "id", "6040", "999999"), result{stdout: "6040\n", stderr: notFound, code: 1})
	// With a status filter, a job that is not listed is not an error.
	checkResult(t, run(t, f.path, "list", "--no-headers", "--running", "999999"), result{})
}

// Command-line mistakes: one sentence on stderr, exit code 2, and no call
// to jobqd.
func TestUsageErrors(t *testing.T) {
	f := startFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, `"jobq" needs a command: one of archive, autoarchive, cancel, change-priority, cluster, command, debug, filter, info, list, list-fields, locks, node, opcode, queue, schedule, submit, version, wait, watch (see "jobq --help")`},
		{[]string{"lst"}, `Unknown command "lst" for "jobq" (did you mean "list"?) (see "jobq --help")`},
		{[]string{"frobnicate"}, `Unknown command "frobnicate" for "jobq" (see "jobq --help")`},
		{[]string{"list", "--bogus"}, `Unknown flag: --bogus (see "jobq list --help")`},
		{[]string{"list", "-o"}, `Flag needs an argument: 'o' in -o (see "jobq list --help")`},
		{[]string{"list", "--pending", "--finished"}, `Give at most one of --pending, --running, --error and --finished (see "jobq list --help")`},
		{[]string{"list", "12x"}, `Invalid job ID "12x": job IDs are whole numbers such as 6040 (see "jobq list --help")`},
		{[]string{"show", "abc"}, `Invalid job ID "abc": job IDs are whole numbers such as 6040 (see "jobq info --help")`},
		{[]string{"watch"}, `"jobq watch" takes exactly one job ID, got 0 arguments (see "jobq watch --help")`},
		{[]string{"wait", "1", "2"}, `"jobq wait" takes exactly one job ID, got 2 arguments (see "jobq wait --help")`},
		{[]string{"cancel"}, `Give job IDs or one of --pending, --queued and --waiting (see "jobq cancel --help")`},
		{[]string{"archive", "1.5"}, `Invalid job ID "1.5": job IDs are whole numbers such as 6040 (see "jobq archive --help")`},
		{[]string{"archive", "1", "-5"}, `Invalid job ID "-5": job IDs are whole numbers, 0 or more, such as 6040 (see "jobq archive --help")`},
		{[]string{"info", "-1"}, `Invalid job ID "-1": job IDs are whole numbers, 0 or more, such as 6040 (see "jobq info --help")`},
		{[]string{"autoarchive", "-1"}, `"-1" is not an option, and no argument of "jobq autoarchive" may be negative (see "jobq autoarchive --help")`},
		{[]string{"info", "-x"}, `Unknown shorthand flag: 'x' in -x (see "jobq info --help")`},
		{[]string{"change-priority", "6050"}, `The --priority option must be given (see "jobq change-priority --help")`},
		{[]string{"autoarchive"}, `"jobq autoarchive" takes exactly one age (such as 1h) or "all", got 0 arguments (see "jobq autoarchive --help")`},
		{[]string{"queue"}, `"jobq queue" needs a command: one of drain, housekeeping, info, undrain (see "jobq queue --help")`},
		{[]string{"queue", "drian"}, `Unknown command "drian" for "jobq queue" (did you mean "drain"?) (see "jobq queue --help")`},
		{[]string{"queue", "flush"}, `Unknown command "flush" for "jobq queue"; its commands are drain, housekeeping, info, undrain (see "jobq queue --help")`},
		{[]string{"queue", "info", "now"}, `"jobq queue info" takes no arguments, got "now" (see "jobq queue info --help")`},
		{[]string{"debug"}, `"jobq debug" needs a command: one of delay (see "jobq debug --help")`},
		{[]string{"debug", "delay"}, `"jobq debug delay" takes exactly one duration (seconds, or such as 10s), got 0 arguments (see "jobq debug delay --help")`},
		{[]string{"debug", "delay", "soon"}, `Invalid duration "soon": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobq debug delay --help")`},
		{[]string{"debug", "delay", "inf"}, `Invalid duration "inf": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobq debug delay --help")`},
		{[]string{"debug", "delay", "--repeat=-1", "1"}, `Invalid argument "-1" for "-r, --repeat" flag: it must be a whole number, 0 or more (see "jobq debug delay --help")`},
		{[]string{"debug", "delay", "-r", "x", "1"}, `Invalid argument "x" for "-r, --repeat" flag: it must be a whole number, 0 or more (see "jobq debug delay --help")`},
		{[]string{"version", "1"}, `"jobq version" takes no arguments, got "1" (see "jobq version --help")`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			checkResult(t, run(t, f.path, tc.args...), result{stderr: tc.want + "\n", code: 2})
		})
	}
	f.checkCalls(t)
}

func TestBadAge(t *testing.T) {
	f := startFake(t)
	for _, age := range []string{"1y", "abc", "1.5d", "h", "", "99999999999999999999"} {
		got := run(t, f.path, "autoarchive", age)
		if got.code != 2 || got.stdout != "" || !strings.HasPrefix(got.stderr, "Invalid age ") || strings.Count(got.stderr, "\n") != 1 {
			t.Errorf("autoarchive %q: got %+v", age, got)
		}
	}
	f.checkCalls(t)
	// Valid ages are sent in seconds.
	// Valid ages are sent in seconds; they take every form of duration.
	f.script("AutoArchiveJobs", `[7,0]`, `[0,3]`, `[0,0]`)
	checkResult(t, run(t, f.path, "autoarchive", "2d"), result{stdout: "Archived 7 jobs, 0 unchecked left\n"})
	checkResult(t, run(t, f.path, "autoarchive", "90"), result{stdout: "Archived 0 jobs, 3 unchecked left\n"})
	checkResult(t, run(t, f.path, "autoarchive", "1h30m"), result{stdout: "Archived 0 jobs, 0 unchecked left\n"})
	f.checkCalls(t, `AutoArchiveJobs [172800,89]`, `AutoArchiveJobs [90,89]`, `AutoArchiveJobs [5400,89]`)
}

func TestBadPriority(t *testing.T) {
	f := startFake(t)
	const want = `Invalid priority %q: use high, normal, low or a number from -20 to 19 (see "jobq %s --help")` + "\n"
	for _, p := range []string{"urgent", "20", "-21", "1.5", ""} {
		checkResult(t, run(t, f.path, "change-priority", "--priority="+p, "6050"),
			result{stderr: fmt.Sprintf(want, p, "change-priority"), code: 2})
		checkResult(t, run(t, f.path, "debug", "delay", "--priority="+p, "1"),
			result{stderr: fmt.Sprintf(want, p, "debug delay"), code: 2})
	}
	f.checkCalls(t)
	f.script("ChangeJobPriority", `[true,"a"]`, `[true,"b"]`, `[false,"Job 3 had no pending opcodes"]`)
	checkResult(t, run(t, f.path, "change-priority", "--priority", "-15", "1"), result{stdout: "a\n"})
	checkResult(t, run(t, f.path, "change-priority", "--priority", "NORMAL", "2", "3"), result{stdout: "b\nJob 3 had no pending opcodes\n", code: 1})
	f.checkCalls(t, `ChangeJobPriority [1,-15]`, `ChangeJobPriority [2,0]`, `ChangeJobPriority [3,0]`)
}

// Failure replies are printed as Ganeti's clients print them.
func TestServerErrors(t *testing.T) {
	f := startFake(t)
	f.fail("Query", luxiError("OpPrereqError", "This is not the master node, please connect to node n2", "wrong_state"))
	checkResult(t, run(t, f.path, "list"), result{
		stderr: "Failure: prerequisites not met for this operation:\nerror type: wrong_state, error details:\nThis is not the master node, please connect to node n2\n",
		code:   1,
	})
	f.fail("QueryConfigValues", luxi.UnknownMethod("QueryConfigValues"))
	checkResult(t, run(t, f.path, "queue", "info"), result{
		stderr: "Unhandled protocol error while talking to the master daemon:\n" +
			"Failed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: \"QueryConfigValues\"\n",
		code: 1,
	})
	f.fail("SetDrainFlag", luxiError("ConfigurationError", "broken"))
	checkResult(t, run(t, f.path, "queue", "drain"), result{stderr: "Corrupt configuration file: broken\nAborting.\n", code: 2})
	// A reply of the wrong shape.
	f.script("ArchiveJob", `"yes"`)
	got := run(t, f.path, "archive", "1")
	if got.code != 1 || !strings.HasPrefix(got.stderr, "jobqd's answer to ArchiveJob is not what jobq expects") {
		t.Errorf("bad reply: got %+v", got)
	}
}

// A daemon that drops the connection.
func TestConnectionLost(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var calls atomic.Int32
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// Read the request, then hang up without answering.
			bufio.NewReader(c).ReadBytes(0x03)
			calls.Add(1)
			c.Close()
		}
	}()
	// A read is sent again within the retry window, then given up.
	got := runEnv(t, context.Background(), map[string]string{RetryEnv: "1s"}, "--socket", path, "queue", "info")
	l.Close()
	<-done
	checkResult(t, got, result{
		stderr: "Lost the connection to jobqd at socket '" + path + "' during QueryConfigValues (jobqd closed the connection)\n",
		code:   1,
	})
	if n := calls.Load(); n < 2 {
		t.Errorf("QueryConfigValues was sent %d times within the retry window, want it sent again", n)
	}
	if got := runEnv(t, context.Background(), map[string]string{RetryEnv: "soon"}, "--socket", path, "queue", "info"); got.code == 0 || !strings.Contains(got.stderr, RetryEnv) {
		t.Errorf("a bad $%s: %+v", RetryEnv, got)
	}
}

// An interrupt while waiting aborts with Ganeti's message.
func TestInterrupt(t *testing.T) {
	f := startFake(t)
	entered := make(chan struct{})
	f.hook("WaitForJobChange", func(ctx context.Context, _ []json.RawMessage) (any, error) {
		close(entered)
		<-ctx.Done() // the client went away
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-entered
		cancel()
	}()
	got := runEnv(t, ctx, nil, "--socket", f.path, "watch", "5")
	checkResult(t, got, result{
		// watch's header comes with jobqd's first answer (a job that
		// does not exist gets none).
		stderr: abortedMsg + "\n",
		code:   1,
	})
}

// When a wait ends without any change, watch says once that the job is
// queued, then once that it waits for locks; wait says nothing.
func TestPollNotChanged(t *testing.T) {
	f := startFake(t)
	replies := []string{`[["queued"],[]]`, `[["queued"],[]]`, `[["queued"],[]]`, `[["waiting"],[]]`, `[["waiting"],[]]`, `[["waiting"],[]]`,
		`[["running"],[[1,[1795758426,180542],"message"," - INFO: step"]]]`, `[["running"],[]]`, `[["success"],[]]`}
	f.script("WaitForJobChange", replies...)
	f.script("QueryJobs", `[["success",["success"],[null]]]`)
	checkResult(t, run(t, f.path, "watch", "7"), result{
		stdout: "Output from job 7 follows\n-------------------------\nFri Nov 27 05:47:06 2026  - INFO: step\n",
		stderr: "Job 7 is waiting in queue\nJob 7 is trying to acquire all necessary locks\n",
	})
	calls := f.getCalls()
	if len(calls) != len(replies)+1 || calls[len(calls)-2] != `WaitForJobChange [7,["status"],["running"],1,30]` {
		t.Errorf("calls: %q", calls)
	}
	f.script("WaitForJobChange", replies...)
	f.script("QueryJobs", `[["success",["success"],[null]]]`)
	checkResult(t, run(t, f.path, "wait", "7"), result{})
}

func TestWaitFailures(t *testing.T) {
	f := startFake(t)
	for _, tc := range []struct{ status, opstatus, opresult, want string }{
		{"canceled", `["canceled"]`, `[null]`, "Job 3 failed: Unhandled Ganeti error: Job was canceled\n"},
		{"error", `["success","error"]`, `[null,"boom"]`, "Job 3 failed: Failure: command execution error:\npartial failure (opcode 1): boom\n"},
		{"error", `["error"]`, `[["OpExecError",["Unclean master shutdown"]]]`, "Job 3 failed: Failure: command execution error:\nUnclean master shutdown\n"},
	} {
		f.script("WaitForJobChange", `[["`+tc.status+`"],[]]`)
		f.script("QueryJobs", `[["`+tc.status+`",`+tc.opstatus+`,`+tc.opresult+`]]`)
		checkResult(t, run(t, f.path, "wait", "3"), result{stderr: tc.want, code: 1})
	}
}

func TestDelayOptions(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "12")
	checkResult(t, run(t, f.path, "debug", "delay", "--submit", "--no-master", "-n", "a", "--on-nodes=b", "-i", "-l",
		"--dry-run", "--priority", "high", "-r", "2", "5"), result{stdout: "JobID: 12\n"})
	f.checkCalls(t, `SubmitJob [[{"duration":5.0,"on_master":false,"on_nodes":["a","b"],"repeat":2,"interruptible":true,"no_locks":true,`+
		`"dry_run":true,"debug_level":0,"priority":-10,"depends":null,"comment":null,`+
		`"reason":[["gnt:client:jobq","delay",1795758421569201152]],"OP_ID":"OP_TEST_DELAY"}]]`)
}

// A synchronous delay prints the job's log like watch, and its error like
// gnt-debug (without "Job N failed").
func TestDelaySync(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "8", "9")
	f.script("WaitForJobChange",
		`[["running"],[[1,[1795758426,180542],"message"," - INFO: Test delay iteration 0/1"],[2,[1795758427,0],"message"," - INFO: Test delay iteration 1/1"]]]`,
		`[["success"],[]]`,
		`[["error"],[]]`)
	f.script("QueryJobs", `[["success",["success"],[null]]]`, `[["error",["error"],[["OpExecError",["Timeout"]]]]]`)
	checkResult(t, run(t, f.path, "debug", "delay", "-r", "2", "0.5"), result{
		stdout: "Fri Nov 27 05:47:06 2026  - INFO: Test delay iteration 0/1\nFri Nov 27 05:47:07 2026  - INFO: Test delay iteration 1/1\n",
	})
	checkResult(t, run(t, f.path, "debug", "delay", "--print-jobid", "0.5"), result{
		stdout: "9\n",
		stderr: "Failure: command execution error:\nTimeout\n",
		code:   1,
	})
}

func TestCancelAndArchiveSeveral(t *testing.T) {
	f := startFake(t)
	f.script("CancelJob", `[true,"Dequeued job 1"]`, `[false,"Job 2 is no longer waiting in the queue"]`, `[true,"Job 3 will be canceled"]`)
	checkResult(t, run(t, f.path, "cancel", "1", "2"), result{stdout: "Dequeued job 1\nJob 2 is no longer waiting in the queue\n", code: 1})
	checkResult(t, run(t, f.path, "cancel", "--kill", "3"), result{stdout: "Job 3 will be canceled\n"})
	f.script("ArchiveJob", "true", "false", "true")
	checkResult(t, run(t, f.path, "archive", "4", "5", "6"), result{stderr: "Failed to archive job with ID '5': there is no such job in the queue or its archive\n", code: 1})
	f.checkCalls(t, `CancelJob [1,false]`, `CancelJob [2,false]`, `CancelJob [3,true]`, `ArchiveJob [4]`, `ArchiveJob [5]`,
		`QueryJobs [[5],["status","archived"]]`, `ArchiveJob [6]`)
	// The reason: not finished, or archived already.
	f.addTestJobs("6040", "6046")
	f.setJob(6046, map[string]any{"status": "running"})
	f.setJob(6040, map[string]any{"archived": true})
	f.script("ArchiveJob", "false", "false")
	checkResult(t, run(t, f.path, "archive", "6046", "6040"), result{stderr: "Failed to archive job with ID '6046': it has not finished (it is running); wait for it with 'jobq wait 6046', or cancel it first\n" +
		"Failed to archive job with ID '6040': it is archived already\n", code: 1})
}

func TestListFilters(t *testing.T) {
	f := startFake(t)
	f.addTestJobs("6040", "6046", "6049", "6050", "5028", "6031", "6033", "6043")
	f.setJob(6046, map[string]any{"status": "running"})
	for _, tc := range []struct {
		args   []string
		filter string
		out    string
	}{
		{[]string{"--running"}, `["|",["==","status","running"]]`, "  ID Status  Summary\n6046 running TEST_DELAY(0.3)\n"},
		{[]string{"--finished", "--no-headers", "6033", "6050"}, `["&",["|",["==","id",6033],["==","id",6050]],["|",["==","status","canceled"],["==","status","success"],["==","status","error"]]]`,
			"6033 canceled TEST_DELAY(1.0e-2)\n"},
		{[]string{"--error", "-o", "+priority", "--separator="}, `["|",["==","status","error"]]`, "IDStatusSummaryPriority\n5028errorTEST_DELAY(0.0)0\n"},
		{[]string{"--pending", "-o", "id,opstart,opexec,opend"}, `["|",["==","status","queued"],["==","status","waiting"],["==","status","canceling"]]`,
			"  ID OpCode_start                   OpCode_exec OpCode_end\n6050 ['2026-11-27 05:47:10.239608'] ['?']       ['?']\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			before := len(f.getCalls())
			checkResult(t, run(t, f.path, append([]string{"list"}, tc.args...)...), result{stdout: tc.out})
			calls := f.getCalls()
			if len(calls) != before+1 || !strings.HasSuffix(calls[before], ","+tc.filter+"]") {
				t.Errorf("calls: %q, want filter %s", calls[before:], tc.filter)
			}
		})
	}
}

func TestListUnknownField(t *testing.T) {
	f := startFake(t)
	f.addTestJobs("6040")
	checkResult(t, run(t, f.path, "list", "-o", "id,foo,bar"), result{
		stdout: "  ID foo bar\n6040 ??  ??\n",
		stderr: "Warning: Queried for unknown fields foo, bar\n",
		code:   14,
	})
	checkResult(t, run(t, f.path, "list-fields", "--no-headers", "status", "foo"), result{
		stdout: "status Text    Status Job status\nfoo    Unknown foo    Unknown field 'foo'\n",
		stderr: "Warning: Queried for unknown fields foo\n",
		code:   14,
	})
}

func TestJSON(t *testing.T) {
	f := startFake(t)
	f.addTestJobs("6040", "6033")
	f.setJob(6040, map[string]any{"archived": true})
	f.script("QueryConfigValues", `[true,"cluster1","node1"]`)

	checkResult(t, run(t, f.path, "list", "--json", "--archived", "-o", "id,start_ts,summary,nosuch", "6033", "6040", "7"), result{
		stdout: `[
  {
    "id": 6033,
    "start_ts": null,
    "summary": [
      "TEST_DELAY(1.0e-2)"
    ],
    "nosuch": null,
    "archived": false
  },
  {
    "id": 6040,
    "start_ts": [
      1795758422,
      321059
    ],
    "summary": [
      "TEST_DELAY(1.0e-2)"
    ],
    "nosuch": null,
    "archived": true
  }
]
`,
		stderr: "Warning: Queried for unknown fields nosuch\n" +
			"Job 7 not found: there is no such job in the queue or its archive ('jobq list --archived' lists the jobs)\n",
		code: 1,
	})
	checkResult(t, run(t, f.path, "list", "--json", "--running"), result{stdout: "[]\n"})
	checkResult(t, run(t, f.path, "list-fields", "--json", "id"), result{
		stdout: "[\n  {\n    \"name\": \"id\",\n    \"title\": \"ID\",\n    \"kind\": \"number\",\n    \"doc\": \"Job ID\"\n  }\n]\n",
	})
	checkResult(t, run(t, f.path, "queue", "info", "--json"), result{
		stdout: "{\n  \"drain_flag\": true,\n  \"cluster_name\": \"cluster1\",\n  \"master_node\": \"node1\"\n}\n",
	})

	got := run(t, f.path, "info", "--json", "6040", "999999")
	if got.code != 1 || got.stderr != "Job 999999 not found: there is no such job in the queue or its archive ('jobq list --archived' lists the jobs)\n" {
		t.Fatalf("info --json: %+v", got)
	}
	var jobs []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(got.stdout), &jobs); err != nil {
		t.Fatalf("info --json: %v\n%s", err, got.stdout)
	}
	if len(jobs) != 1 || string(jobs[0]["id"]) != "6040" || string(jobs[0]["status"]) != `"success"` ||
		!strings.Contains(string(jobs[0]["ops"]), `"duration": 1.0e-2`) || len(jobs[0]) != 12 {
		t.Errorf("info --json:\n%s", got.stdout)
	}
}

// Every command has help text, and --help prints it.
func TestHelp(t *testing.T) {
	a := &app{env: Env{}.withDefaults()}
	var walk func(c *cobra.Command)
	var paths [][]string
	walk = func(c *cobra.Command) {
		if c.Short == "" || c.Long == "" {
			t.Errorf("%q has no Short or Long help", c.CommandPath())
		}
		if c != a.root && c.Example == "" && !c.HasSubCommands() && c.Name() != "version" && c.Name() != "drain" && c.Name() != "undrain" {
			t.Errorf("%q has no example", c.CommandPath())
		}
		paths = append(paths, strings.Fields(c.CommandPath())[1:])
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.newRoot())
	for _, p := range paths {
		got := runEnv(t, context.Background(), nil, append(p, "--help")...)
		if got.code != 0 || got.stderr != "" || !strings.Contains(got.stdout, "Usage:") {
			t.Errorf("jobq %s --help: %+v", strings.Join(p, " "), got)
		}
	}
	got := runEnv(t, context.Background(), nil, "help", "queue", "info")
	if got.code != 0 || got.stderr != "" || !strings.Contains(got.stdout, "jobq queue info [flags]") {
		t.Errorf("jobq help queue info: %+v", got)
	}
	checkResult(t, runEnv(t, context.Background(), nil, "help", "queue", "flush"),
		result{stderr: `Unknown help topic "queue flush" (see "jobq help --help")` + "\n", code: 2})
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		got := runEnv(t, context.Background(), nil, args...)
		if got.code != 0 || got.stderr != "" || got.stdout != Version()+"\n" || !strings.HasPrefix(got.stdout, "jobq ") {
			t.Errorf("jobq %s: %+v", args[0], got)
		}
	}
}

// A zero Env means the process's streams, environment and clock.
func TestEnvDefaults(t *testing.T) {
	e := Env{}.withDefaults()
	if e.Stdout != os.Stdout || e.Stderr != os.Stderr || e.Getenv == nil || e.Location == nil || e.Now == nil {
		t.Errorf("defaults not set: %+v", e)
	}
}

func TestLocks(t *testing.T) {
	reply := `{"fields":[{"name":"name","title":"Name","kind":"text","doc":"Lock name"},` +
		`{"name":"mode","title":"Mode","kind":"other","doc":"m"},{"name":"owner","title":"Owner","kind":"other","doc":"o"},` +
		`{"name":"pending","title":"Pending","kind":"other","doc":"p"}],"data":[` +
		`[[0,"cluster/BGL"],[0,"shared"],[0,["job/1","job/2"]],[0,[]]],` +
		`[[0,"node/node1"],[0,"exclusive"],[0,["job/1"]],[0,[["exclusive",["job/2","job/3"]],["shared",["job/4"]]]]],` +
		`[[0,"node/node2"],[0,null],[0,[]],[0,[]]]]}`
	out := formatLocksForTest(t, reply)
	want := "Name        Mode      Owner       Pending\n" +
		"cluster/BGL shared    job/1,job/2 -\n" +
		"node/node1  exclusive job/1       exclusive:job/2,job/3 shared:job/4\n" +
		"node/node2  -         -           -\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}

func formatLocksForTest(t *testing.T, reply string) string {
	t.Helper()
	f := startFake(t)
	f.script("Query", reply)
	r := run(t, f.path, "locks")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("jobq locks: exit %d, %q", r.code, r.stderr)
	}
	f.checkCalls(t, `Query ["lock",["name","mode","owner","pending"],null]`)
	return r.stdout
}
