package cli

import (
	"testing"
)

func TestScheduleCommands(t *testing.T) {
	f := startFake(t)
	f.script("JobqScheduleAdd", "true")
	f.script("JobqScheduleSet", "true", "true")
	f.script("JobqScheduleRemove", "true")
	list := `[{"name":"nightly","cron":"0 3 * * *","timezone":"Europe/Zurich","ops":[{"OP_ID":"OP_TEST_DELAY","duration":1}],` +
		`"concurrency":"forbid","catch_up":"once","created":1795700000,"last_fire":1795748400,"next_fire":1795834800,` +
		`"last_job":12,"jobs":[7,12],"skipped":3,"last_skip":"the queue is drained"},` +
		`{"name":"tick","every":600,"ops":[{"OP_ID":"OP_TEST_DELAY","duration":1}],"paused":true,"concurrency":"allow","catch_up":"skip",` +
		`"created":1795700000,"last_fire":null,"next_fire":1795758600,"last_job":0,"jobs":[],"skipped":0,"last_skip":""}]`
	f.script("JobqScheduleList", list, list)
	checkResult(t, run(t, f.path, "schedule", "add", "nightly", "--cron", "0 3 * * *", "--timezone", "Europe/Zurich",
		"--concurrency", "forbid", "--catch-up", "once", "--", `{"OP_ID": "OP_TEST_DELAY", "duration": 1}`), result{})
	checkResult(t, run(t, f.path, "schedule", "list"), result{stdout: "" +
		"Name    When                           State  Next                Last                LastJob\n" +
		"nightly cron \"0 3 * * *\" Europe/Zurich active 2026-11-28 03:00:00 2026-11-27 03:00:00      12\n" +
		"tick    every 10m                      paused 2026-11-27 05:50:00 -                         -\n"})
	checkResult(t, run(t, f.path, "schedule", "info", "nightly"), result{stdout: "" +
		"Schedule: nightly\n  When: cron \"0 3 * * *\" Europe/Zurich\n  State: active\n  Concurrency: forbid\n  Catch-up: once\n" +
		"  Last fire: 2026-11-27 03:00:00\n  Next fire: 2026-11-28 03:00:00\n  Last fire time skipped: the queue is drained\n" +
		"  Fire times skipped: 3\n  Recent jobs: 7, 12\n  Opcodes:\n    - {\"OP_ID\":\"OP_TEST_DELAY\",\"duration\":1}\n"})
	checkResult(t, run(t, f.path, "schedule", "pause", "nightly"), result{})
	checkResult(t, run(t, f.path, "schedule", "resume", "nightly"), result{})
	checkResult(t, run(t, f.path, "schedule", "remove", "tick"), result{})
	f.checkCalls(t,
		`JobqScheduleAdd [{"name":"nightly","cron":"0 3 * * *","timezone":"Europe/Zurich","ops":[{"OP_ID":"OP_TEST_DELAY","duration":1}],"concurrency":"forbid","catch_up":"once","created":0}]`,
		`JobqScheduleList []`, `JobqScheduleList []`,
		`JobqScheduleSet ["nightly",{"paused":true}]`, `JobqScheduleSet ["nightly",{"paused":false}]`,
		`JobqScheduleRemove ["tick"]`)
}

func TestScheduleUsageErrors(t *testing.T) {
	f := startFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"schedule", "add", "x", "--every", "1h"}, `Give the job's opcodes after the name, each a JSON object such as '{"OP_ID": "OP_TEST_DELAY", "duration": 1}' (see "jobq schedule add --help")`},
		{[]string{"schedule", "add", "x", "--every", "1h", "--", "OP_TEST_DELAY"}, `Opcode 1 is not a JSON object; give one such as '{"OP_ID": "OP_TEST_DELAY", "duration": 1}' (see "jobq schedule add --help")`},
		{[]string{"schedule", "add", "x", "--", `{"OP_ID":"X"}`}, `Schedule x needs exactly one of an interval (--every 1h) and a cron expression (--cron "0 3 * * *") (see "jobq schedule add --help")`},
		{[]string{"schedule", "add", "x", "--cron", "0 3 * * *", "--timezone", "Nowhere/City", "--", `{"OP_ID":"X"}`}, `Schedule x: unknown time zone "Nowhere/City"; give one such as Europe/Zurich or UTC (see "jobq schedule add --help")`},
		{[]string{"schedule", "add", "x", "--every", "1h", "--concurrency", "maybe", "--", `{"OP_ID":"X"}`}, `Schedule x: the concurrency policy "maybe" is not one of allow, forbid, replace (see "jobq schedule add --help")`},
		{[]string{"schedule", "pause"}, `"jobq schedule pause" takes exactly one schedule name, got 0 arguments (see "jobq schedule pause --help")`},
	} {
		checkResult(t, run(t, f.path, tc.args...), result{stderr: tc.want + "\n", code: 2})
	}
	f.checkCalls(t)
}

func TestHousekeepingCommand(t *testing.T) {
	f := startFake(t)
	info := `{"policy":{"auto_archive":true,"archive_age":21600,"interval":300,"delete_age":0,"max_bytes":0},"running":true,` +
		`"paused_until":null,"last_run":1795758000,"next_run":1795758300,"archived":4,"deleted":0,"total_archived":9,"total_deleted":0,"last_error":""}`
	set := `{"policy":{"auto_archive":true,"archive_age":86400,"interval":300,"delete_age":2592000,"max_bytes":10737418240},"running":true,` +
		`"paused_until":1795761600,"last_run":null,"next_run":1795758300,"archived":0,"deleted":0,"total_archived":0,"total_deleted":0,"last_error":""}`
	f.script("JobqHousekeeping", info, info)
	f.script("JobqSetHousekeeping", set)
	checkResult(t, run(t, f.path, "queue", "housekeeping"), result{stdout: "" +
		"Auto-archive: jobs finished more than 6h ago, every 5m\n" +
		"Archive retention: off (archived jobs are kept)\n" +
		"Last run: 2026-11-27 05:40:00, 4 archived, 0 deleted from the archive\n" +
		"Next run: 2026-11-27 05:45:00\n"})
	checkResult(t, run(t, f.path, "queue", "housekeeping", "--archive-age", "1d", "--delete-age", "30d", "--max-size", "10G"), result{stdout: "" +
		"Auto-archive: jobs finished more than 1d ago, every 5m\n" +
		"Archive retention: jobs archived more than 30d ago are deleted; the oldest are deleted beyond 10G\n" +
		"Housekeeping paused until 2026-11-27 06:40:00 (watcher pause)\n" +
		"Next run: 2026-11-27 05:45:00\n"})
	checkResult(t, run(t, f.path, "queue", "housekeeping", "--max-size", "lots"), result{
		stderr: `--max-size: "lots" is not a size; give bytes or a number with K, M, G or T, such as 10G (0: no budget) (see "jobq queue housekeeping --help")` + "\n", code: 2})
	f.checkCalls(t, "JobqHousekeeping []", "JobqHousekeeping []",
		`JobqSetHousekeeping [{"auto_archive":true,"archive_age":86400,"interval":300,"delete_age":2592000,"max_bytes":10737418240}]`)
}
