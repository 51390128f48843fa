// Package ganeti_test runs Ganeti 3.0's own command-line clients (gnt-job,
// gnt-debug, gnt-cluster queue) against jobqd's LUXI socket and compares
// what they print with what they printed against a real Ganeti 3.0.2
// cluster (../../../shared/ganeti-reference/cli-*.txt). See README.md.
package ganeti_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// inNamespace runs one Ganeti client command against a socket directory,
// as ../shared/tools/with-ganeti-socket does: a private mount namespace
// binds the directory over /var/run/ganeti/socket, where Ganeti's clients
// look for ganeti-query.
const inNamespace = `mount --bind "$0" /var/run/ganeti/socket && export PATH=/usr/sbin:/usr/bin:/sbin:/bin && exec "$@"`

// The scenario's jobs, in submission order: jobqd numbers them from
// serialSeed+1, the reference numbered the job of the same step ref.
var scenarioJobs = []struct {
	name string
	ref  int
}{
	{"zero", 6039},    // cli-01 gnt-debug delay --submit 0
	{"submit", 6040},  // cli-03 gnt-debug delay --submit 0.01
	{"sync", 6041},    // cli-04 gnt-debug delay 0.1
	{"printid", 6042}, // cli-05 gnt-debug delay --print-jobid 0.1
	{"repeat", 6046},  // cli-11 gnt-debug delay --submit --repeat=3 0.3
	{"badnode", 6047}, // cli-15 gnt-debug delay -n no-such-node 0.01
	{"blocker", 6048}, // cli-17 gnt-debug delay --submit -n node1.ganeti.test 30 (reference: 2)
	{"queued1", 6049}, // cli-18 gnt-debug delay --submit -n node1.ganeti.test 0.01
	{"queued2", 6050}, // cli-19 gnt-debug delay --submit -n node1.ganeti.test 0.01
}

type scenario struct {
	t       *testing.T
	sockDir string
	ids     map[string]string // our job id -> the reference's
	ours    map[string]string // job name -> our job id
	ref     map[string]string // job name -> the reference's job id
	strict  bool
	known   []string // known incompatibilities seen
}

// gnt runs a Ganeti client command and returns its normalised transcript.
func (s *scenario) gnt(args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"-m", "bash", "-c", inNamespace, s.sockDir}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	rc := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !ee.Exited() || ctx.Err() != nil {
			s.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		rc = ee.ExitCode()
	}
	return normalise(transcript(args, out.String(), rc), s.ids)
}

// reference returns a normalised reference transcript with edits applied:
// pairs of old, new strings for what the test deliberately does
// differently; each must occur, so that no edit silently goes stale.
func (s *scenario) reference(name string, edits ...string) string {
	s.t.Helper()
	return s.edit(name, normalise(readRef(s.t, refDir, name), nil), edits...)
}

func (s *scenario) edit(name, text string, edits ...string) string {
	s.t.Helper()
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			s.t.Fatalf("edit of %s: %q does not occur in\n%s", name, edits[i], text)
		}
		text = strings.ReplaceAll(text, edits[i], edits[i+1])
	}
	return text
}

// table parses a reference listing.
func (s *scenario) table(name string) *refTable {
	s.t.Helper()
	tab, err := parseRefTable(normalise(readRef(s.t, refDir, name), nil))
	if err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	return tab
}

func (s *scenario) rows(tab *refTable, ids ...string) [][]string {
	s.t.Helper()
	r, err := tab.pick(ids...)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// lineDiff is cmp.Diff of the two texts' lines (each with its "\n"), so
// that every difference shows as whole -/+ lines, trailing spaces quoted.
func lineDiff(want, got string) string {
	return cmp.Diff(strings.SplitAfter(want, "\n"), strings.SplitAfter(got, "\n"))
}

// check compares jobq's transcript with the expected one.
func (s *scenario) check(step, want, got string) {
	s.t.Helper()
	if diff := lineDiff(want, got); diff != "" {
		s.t.Errorf("%s: Ganeti's client printed something else against jobqd than against Ganeti\n(-Ganeti reference +jobqd, one line per element, after normalisation):\n%s", step, diff)
	}
}

// checkKnown is check for a step where jobqd has a known, reported
// incompatibility: the reference is still what is expected, but while
// jobqd prints exactly the known deviation the test only logs it (set
// JOBQ_GANETI_STRICT=1 to fail on it). Any other output fails.
func (s *scenario) checkKnown(step, want, got, deviation, why string) {
	s.t.Helper()
	if got == deviation && got != want && !s.strict {
		s.known = append(s.known, step+": "+why)
		s.t.Logf("KNOWN INCOMPATIBILITY %s: %s\n(-Ganeti reference +jobqd):\n%s", step, why, lineDiff(want, got))
		return
	}
	s.check(step, want, got)
}

func TestGanetiClients(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test bind-mounts jobqd's socket directory over /var/run/ganeti/socket in a private mount namespace")
	}
	if _, err := os.Stat("/usr/sbin/gnt-job"); err != nil {
		t.Skipf("Ganeti's clients are not installed (apt-get install -y --no-install-recommends ganeti-3.0): %v", err)
	}
	if err := os.MkdirAll("/var/run/ganeti/socket", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/var/lib/ganeti", 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bin := buildJobqd(t)
	t.Logf("built jobqd (race=%v) in %v", raceEnabled(), time.Since(start).Round(time.Millisecond))
	sockDir := startJobqd(t, bin)
	sock := filepath.Join(sockDir, "ganeti-query")

	s := &scenario{t: t, sockDir: sockDir, ids: map[string]string{},
		ours: map[string]string{}, ref: map[string]string{}, strict: os.Getenv("JOBQ_GANETI_STRICT") == "1"}
	for i, j := range scenarioJobs {
		our := strconv.Itoa(serialSeed + 1 + i)
		s.ids[our] = strconv.Itoa(j.ref)
		s.ours[j.name] = our
		s.ref[j.name] = strconv.Itoa(j.ref)
	}
	id := func(name string) string { return s.ours[name] }
	ref := func(name string) string { return s.ref[name] }

	// cli-01: gnt-debug delay --submit 0. The first job must be 6039, one
	// after the seeded serial, or nothing below lines up.
	if got, want := s.gnt("gnt-debug", "delay", "--submit", "0"), s.reference("cli-01-delay-submit-zero.txt"); got != want {
		t.Fatalf("cli-01: jobqd did not number its first job %d after the seeded queue/serial %d (-reference +jobqd):\n%s",
			serialSeed+1, serialSeed, lineDiff(want, got))
	}
	// cli-02: gnt-job wait on the failed job: rc 1, the OpPrereqError.
	s.check("cli-02", s.reference("cli-02-job-wait-zero.txt"), s.gnt("gnt-job", "wait", id("zero")))
	// cli-03: gnt-debug delay --submit 0.01.
	s.check("cli-03", s.reference("cli-03-delay-submit.txt"), s.gnt("gnt-debug", "delay", "--submit", "0.01"))
	// cli-04: gnt-debug delay 0.1, synchronous: prints nothing.
	s.check("cli-04", s.reference("cli-04-delay-sync.txt"), s.gnt("gnt-debug", "delay", "0.1"))
	// cli-05: gnt-debug delay --print-jobid 0.1.
	s.check("cli-05", s.reference("cli-05-delay-print-jobid.txt"), s.gnt("gnt-debug", "delay", "--print-jobid", "0.1"))
	// cli-11: gnt-debug delay --submit --repeat=3 0.3.
	s.check("cli-11", s.reference("cli-11-delay-submit-repeat.txt"), s.gnt("gnt-debug", "delay", "--submit", "--repeat=3", "0.3"))
	// cli-12: gnt-job watch while it runs: the three log lines.
	s.check("cli-12", s.reference("cli-12-job-watch-running.txt"), s.gnt("gnt-job", "watch", id("repeat")))
	// cli-13: gnt-job wait on the finished job.
	s.check("cli-13", s.reference("cli-13-job-wait.txt"), s.gnt("gnt-job", "wait", id("repeat")))
	// cli-14: gnt-job info: timestamps, input fields, reason trail, log.
	s.check("cli-14", s.reference("cli-14-job-info-repeat.txt"), s.gnt("gnt-job", "info", id("repeat")))
	// cli-15: gnt-debug delay -n no-such-node 0.01: the job's
	// OpPrereqError with its error type, rc 1.
	s.check("cli-15", s.reference("cli-15-delay-fail.txt"), s.gnt("gnt-debug", "delay", "-n", "no-such-node", "0.01"))

	// cli-06 (rows 6039-6042) and cli-38 (6046, 6047, captured later):
	// gnt-job list. The reference lists a thousand other jobs, so the
	// expected table is the reference's header and our jobs' rows laid out
	// by Ganeti's rules (the Status column is narrower without "canceled").
	list06, list38 := s.table("cli-06-job-list.txt"), s.table("cli-38-job-list-after-autoarchive.txt")
	listRows := append(s.rows(list06, ref("zero"), ref("submit"), ref("sync"), ref("printid")),
		s.rows(list38, ref("repeat"), ref("badnode"))...)
	s.check("cli-06", list06.command+"\n"+renderTable(list06.header, listRows)+list06.rc+"\n",
		s.gnt("gnt-job", "list"))
	// cli-16: gnt-job list --error (both our failed jobs are in it).
	list16 := s.table("cli-16-job-list-error.txt")
	s.check("cli-16", list16.command+"\n"+renderTable(list16.header, s.rows(list16, ref("zero"), ref("badnode")))+list16.rc+"\n",
		s.gnt("gnt-job", "list", "--error"))
	// cli-07: gnt-job list-fields, byte for byte.
	s.check("cli-07", s.reference("cli-07-job-list-fields.txt"), s.gnt("gnt-job", "list-fields"))

	// cli-08: gnt-job list --no-headers --separator=| -o ...: the rows of
	// 6039-6042 from the reference; the capture predates 6046 and 6047, so
	// their rows are written out here in the same format (the log entry
	// layout as the reference's 6043 row, the messages as cli-12, the
	// error as cli-15's job, Python's repr of a string holding ' as "...").
	custom := []string{"gnt-job", "list", "--no-headers", "--separator=|",
		"-o", "id,status,priority,summary,received_ts,start_ts,end_ts,oplog,opstatus,opresult"}
	ref08 := strings.Split(s.reference("cli-08-job-list-custom.txt"), "\n")
	want08 := ref08[0] + "\n"
	for _, j := range []string{"zero", "submit", "sync", "printid"} {
		found := false
		for _, l := range ref08 {
			if strings.HasPrefix(l, ref(j)+"|") {
				want08 += l + "\n"
				found = true
			}
		}
		if !found {
			t.Fatalf("cli-08 has no row for job %s", ref(j))
		}
	}
	want08 += ref("repeat") + "|success|0|TEST_DELAY(0.3)|[<TS>]|[<TS>]|[<TS>]|[[" +
		"[1, [<TS>], 'message', ' - INFO: Test delay iteration 0/2'], " +
		"[2, [<TS>], 'message', ' - INFO: Test delay iteration 1/2'], " +
		"[3, [<TS>], 'message', ' - INFO: Test delay iteration 2/2']]]|['success']|[None]\n"
	want08 += ref("badnode") + "|error|0|TEST_DELAY(1.0e-2)|[<TS>]|[<TS>]|[<TS>]|[[]]|['error']|" +
		`[['OpPrereqError', ["Node 'no-such-node' not known", 'unknown_entity']]]` + "\n"
	want08 += "[rc=0]\n"
	s.check("cli-08", want08, s.gnt(custom...))

	// cli-09: gnt-job info of a finished job, before it is archived.
	s.check("cli-09", s.reference("cli-09-job-info.txt"), s.gnt("gnt-job", "info", id("submit")))
	// cli-10: gnt-job watch of a finished job without log messages.
	s.check("cli-10", s.reference("cli-10-job-watch.txt"), s.gnt("gnt-job", "watch", id("submit")))

	// cli-17: the blocker. Ganeti's jobs were held by a node lock; jobqd
	// runs one job at a time here (--max-running-jobs 1), so a 30 s delay
	// keeps the next two queued until the test kills it.
	s.check("cli-17", s.reference("cli-17-delay-hold.txt", "node1.ganeti.test 2\n", "node1.ganeti.test 30\n"),
		s.gnt("gnt-debug", "delay", "--submit", "-n", nodeName, "30"))
	blocker, _ := strconv.ParseInt(id("blocker"), 10, 64)
	t.Cleanup(func() { _ = killJob(sock, blocker) }) // should the test stop before it kills the blocker
	waitForStatus(t, sock, blocker, "running")
	blockerRunning := time.Now()
	// cli-18, cli-19: two jobs that stay queued behind the blocker.
	s.check("cli-18", s.reference("cli-18-delay-wait1.txt"), s.gnt("gnt-debug", "delay", "--submit", "-n", nodeName, "0.01"))
	s.check("cli-19", s.reference("cli-19-delay-wait2.txt"), s.gnt("gnt-debug", "delay", "--submit", "-n", nodeName, "0.01"))

	// cli-20: gnt-job list --pending: the two held jobs, "queued" where
	// Ganeti's lock waiters were "waiting"; the running blocker is not
	// pending.
	list20 := s.table("cli-20-job-list-pending.txt")
	rows20 := s.rows(list20, ref("queued1"), ref("queued2"))
	for _, r := range rows20 {
		r[1] = "queued"
	}
	s.check("cli-20", list20.command+"\n"+renderTable(list20.header, rows20)+list20.rc+"\n",
		s.gnt("gnt-job", "list", "--pending", "-o", "id,status,priority,summary"))

	// cli-21: gnt-job change-priority --priority=low on a queued job. The
	// reference's job was waiting (its process was signalled: "Job 6050
	// with pid 918 signaled"); for a queued job Ganeti's luxid answers as
	// in luxi-ChangeJobPriority-queued.txt, and gnt-job prints that.
	s.check("cli-21", s.reference("cli-21-change-priority.txt",
		"Job 6050 with pid 918 signaled", "Priorities of pending opcodes for job 6050 have been changed to 10"),
		s.gnt("gnt-job", "change-priority", "--priority=low", id("queued2")))
	// luxi-QueryJobs-after-prio.txt: the queued job's priority and its
	// opcode's are now 10 ([27,"queued",10,[10]]), laid out as gnt-job list.
	s.check("luxi-QueryJobs-after-prio",
		"$ gnt-job list -o id,status,priority,oppriority "+ref("queued2")+"\n"+
			renderTable([]string{"ID", "Status", "Priority", "OpCode_prio"}, [][]string{{ref("queued2"), "queued", "10", "[10]"}})+"[rc=0]\n",
		s.gnt("gnt-job", "list", "-o", "id,status,priority,oppriority", id("queued2")))
	// cli-23: gnt-job info of that job. As a queued (not waiting) job it
	// has no processing start yet; the input's priority stays 0.
	s.check("cli-23", s.reference("cli-23-job-info-after-prio.txt",
		"\n  Status: waiting\n", "\n  Status: queued\n",
		"\n  Processing start: <DATE> (delta <SECONDS>s)\n", "\n  Processing start: unknown (None)\n",
		"\n      Status: waiting\n", "\n      Status: queued\n",
		"\n      Processing start: <DATE>\n", "\n      Processing start: N/A\n"),
		s.gnt("gnt-job", "info", id("queued2")))

	// cli-24: gnt-job cancel on a queued job succeeds. The reference's
	// job was waiting and finished first; for a queued one luxid answers
	// [true, "Dequeued job N"] (luxi-CancelJob-queued.txt).
	s.check("cli-24", s.reference("cli-24-cancel-waiting.txt",
		"Job exited before it could have been canceled, status JOB_STATUS_SUCCESS\n[rc=1]", "Dequeued job 6049\n[rc=0]"),
		s.gnt("gnt-job", "cancel", id("queued1")))
	// cli-30: gnt-job cancel on a finished job: rc 1, "not found in queue"
	// (luxi-CancelJob-finished.txt).
	s.checkKnown("cli-30", s.reference("cli-30-cancel-finished.txt"), s.gnt("gnt-job", "cancel", id("submit")),
		s.reference("cli-30-cancel-finished.txt", "Job 6040 not found in queue", "Job 6040 is no longer waiting in the queue"),
		`CancelJob on a finished job answers [false, "Job N is no longer waiting in the queue"] (SPEC §3's wording), Ganeti [false, "Job N not found in queue"]`)
	// cli-31: gnt-job cancel 999999.
	s.check("cli-31", s.reference("cli-31-cancel-unknown.txt"), s.gnt("gnt-job", "cancel", "999999"))

	// Kill the blocker: gnt-job cancel --kill --yes-do-it (Ganeti 3.0's
	// client sends CancelJob [id, true]). No Ganeti capture exists for
	// it, so only the exit code is Ganeti's contract here.
	if got := s.gnt("gnt-job", "cancel", "--kill", "--yes-do-it", id("blocker")); !strings.HasSuffix(got, "\n[rc=0]\n") {
		t.Errorf("gnt-job cancel --kill --yes-do-it on the running blocker did not succeed:\n%s", got)
	}
	if d := time.Since(blockerRunning); d > 25*time.Second {
		t.Errorf("the steps while the 30 s blocker ran took %v: it may have ended by itself, so cli-20 to cli-31 did not test a held queue", d.Round(time.Millisecond))
	}
	// cli-29: gnt-job wait on the second held job, which can only run
	// once the blocker is gone (one worker).
	s.check("cli-29", s.reference("cli-29-job-wait-w2.txt"), s.gnt("gnt-job", "wait", id("queued2")))
	// cli-26: gnt-job list -o id,status,priority,summary of the three:
	// here the blocker was killed and the first held job dequeued (in the
	// reference all three succeeded), and the blocker slept 30 s, not 2.
	list26 := s.table("cli-26-job-list-after-cancel.txt")
	rows26 := s.rows(list26, ref("blocker"), ref("queued1"), ref("queued2"))
	rows26[0][1], rows26[0][3] = "canceled", "TEST_DELAY(30.0)"
	rows26[1][1] = "canceled"
	s.check("cli-26", list26.command+"\n"+renderTable(list26.header, rows26)+list26.rc+"\n",
		s.gnt("gnt-job", "list", "-o", "id,status,priority,summary", id("blocker"), id("queued1"), id("queued2")))

	// cli-32: gnt-job archive of a finished job.
	s.check("cli-32", s.reference("cli-32-job-archive.txt"), s.gnt("gnt-job", "archive", id("submit")))
	// cli-33: gnt-job info still finds it, unchanged.
	s.check("cli-33", s.reference("cli-33-job-info-archived.txt"), s.gnt("gnt-job", "info", id("submit")))
	// cli-34: gnt-job list --archived shows it with Archived Y.
	s.check("cli-34", s.reference("cli-34-job-list-archived.txt"),
		s.gnt("gnt-job", "list", "--archived", "-o", "id,status,summary", id("submit")))
	// luxi-ArchiveJob-again.txt: archiving it again answers false, which
	// gnt-job prints as cli-35 does.
	s.check("luxi-ArchiveJob-again", s.reference("cli-35-job-archive-unknown.txt", "999999", "6040"),
		s.gnt("gnt-job", "archive", id("submit")))
	// cli-35: gnt-job archive 999999.
	s.check("cli-35", s.reference("cli-35-job-archive-unknown.txt"), s.gnt("gnt-job", "archive", "999999"))
	// cli-36: gnt-job autoarchive 1h: every job is younger.
	s.check("cli-36", s.reference("cli-36-job-autoarchive-1h.txt"), s.gnt("gnt-job", "autoarchive", "1h"))
	// cli-37: gnt-job autoarchive all. Ganeti 3.0 archives nothing (a bug,
	// SPEC §10); jobqd archives every final job: all but the one already
	// archived.
	s.check("cli-37", s.reference("cli-37-job-autoarchive-all.txt", "Archived 0 jobs",
		"Archived "+strconv.Itoa(len(scenarioJobs)-1)+" jobs"), s.gnt("gnt-job", "autoarchive", "all"))
	// cli-38: gnt-job list: with every job archived, only the header
	// (Ganeti's layout of an empty table).
	s.check("cli-38", list38.command+"\n"+renderTable(list38.header, nil)+list38.rc+"\n", s.gnt("gnt-job", "list"))
	// cli-34 again, for every job: all are archived and still found.
	list34 := s.table("cli-34-job-list-archived.txt")
	var all [][]string // in id order: the rows of cli-06/cli-38, then cli-26's
	for _, r := range append(append([][]string(nil), listRows...), rows26...) {
		all = append(all, []string{r[0], r[1], r[len(r)-1], "Y"}) // ID Status Summary Archived
	}
	s.check("cli-34 (all jobs after autoarchive all)",
		"$ gnt-job list --archived -o id,status,summary\n"+renderTable(list34.header, all)+"[rc=0]\n",
		s.gnt("gnt-job", "list", "--archived", "-o", "id,status,summary"))
	// cli-39: gnt-job info 999999.
	s.check("cli-39", s.reference("cli-39-job-info-nonexistent.txt"), s.gnt("gnt-job", "info", "999999"))

	// cli-firstrun-29..34: gnt-cluster queue info|drain|info, a submission
	// refused while drained, undrain, info.
	s.check("cli-firstrun-29", s.reference("cli-firstrun-29-queue-info.txt"), s.gnt("gnt-cluster", "queue", "info"))
	s.check("cli-firstrun-30", s.reference("cli-firstrun-30-queue-drain.txt"), s.gnt("gnt-cluster", "queue", "drain"))
	s.check("cli-firstrun-31", s.reference("cli-firstrun-31-queue-info-drained.txt"), s.gnt("gnt-cluster", "queue", "info"))
	s.check("cli-firstrun-32", s.reference("cli-firstrun-32-delay-while-drained.txt"), s.gnt("gnt-debug", "delay", "--submit", "0"))
	s.check("cli-firstrun-33", s.reference("cli-firstrun-33-queue-undrain.txt"), s.gnt("gnt-cluster", "queue", "undrain"))
	s.check("cli-firstrun-34", s.reference("cli-firstrun-34-queue-info-undrained.txt"), s.gnt("gnt-cluster", "queue", "info"))

	// gnt-cluster watcher info|pause|continue (no capture: Ganeti's
	// wording, from its gnt_cluster.py): the pause is jobqd's setting and
	// pauses its built-in housekeeping.
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"watcher", "info"}, "The watcher is not paused.\n[rc=0]\n"},
		{[]string{"watcher", "pause", "1h"}, "The watcher is paused until "},
		{[]string{"watcher", "info"}, "The watcher is paused until "},
		{[]string{"watcher", "continue"}, "The watcher is no longer paused.\n[rc=0]\n"},
		{[]string{"watcher", "info"}, "The watcher is not paused.\n[rc=0]\n"},
	} {
		if out := s.gnt(append([]string{"gnt-cluster"}, step.args...)...); !strings.Contains(out, step.want) {
			t.Errorf("gnt-cluster %s printed\n%s\nwant it to hold %q", strings.Join(step.args, " "), out, step.want)
		}
	}

	if len(s.known) > 0 {
		t.Logf("known incompatibilities (JOBQ_GANETI_STRICT=1 fails on them):\n  %s", strings.Join(s.known, "\n  "))
	}
	t.Logf("scenario ran in %v", time.Since(start).Round(time.Millisecond))
}
