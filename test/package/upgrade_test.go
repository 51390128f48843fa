package pkgtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// TestUpgradeKeepsQueue follows the upgrade runbook (docs/operations.md) on
// one node, with a job still running when the node stops: a queue with
// finished jobs, a long running job and queued jobs behind it (one worker)
// is drained and stopped; "jobqd --upgrade-queue" of the new version finds
// nothing to do; the new jobqd starts on it, and everything is still there:
// the finished jobs, the drain flag, the queued jobs (which then run), the
// interrupted job (ended in error), and the job ids continue after undrain.
func TestUpgradeKeepsQueue(t *testing.T) {
	bins := t.TempDir()
	oldBin, newBin := filepath.Join(bins, "old"), filepath.Join(bins, "new")
	buildPrograms(t, oldBin, "1.0.0")
	buildPrograms(t, newBin, "1.0.1")
	dir := t.TempDir()
	// No configuration file: the test must not depend on the machine's.
	common := []string{"--config", "", "--data-dir", dir, "--node-name", "upgrade-test", "--rpc-addr", "127.0.0.1:0", "--rapi-addr", "off"}
	jobq := func(bin string, args ...string) output {
		t.Helper()
		return run(t, nil, filepath.Join(bin, "jobq"), append([]string{"--data-dir", dir}, args...)...)
	}
	mustJobq := func(bin string, args ...string) string {
		t.Helper()
		o := jobq(bin, args...)
		if o.code != 0 {
			t.Fatalf("jobq %s: %s", strings.Join(args, " "), o)
		}
		return o.stdout
	}

	// The old version: one worker, no grace at stop (the long job is
	// interrupted, as one that outlives --shutdown-timeout is).
	old := startDaemon(t, filepath.Join(oldBin, "jobqd"), append(common, "--max-running-jobs", "1", "--shutdown-timeout", "0s")...)
	if v := mustJobq(oldBin, "version"); !strings.HasPrefix(v, "jobq 1.0.0 ") {
		t.Fatalf("old jobq version: %q", v)
	}
	mustJobq(oldBin, "debug", "delay", "0.01")                  // job 1: success
	mustJobq(oldBin, "debug", "delay", "--repeat", "2", "0.01") // job 2: success, with log entries
	mustJobq(oldBin, "debug", "delay", "--submit", "3600")      // job 3: runs for an hour
	c, err := client.Dial(context.Background(), filepath.Join(dir, "socket", "jobq-query"))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, 3, "running")
	c.Close()
	mustJobq(oldBin, "debug", "delay", "--submit", "0.01") // job 4: queued behind job 3
	mustJobq(oldBin, "debug", "delay", "--submit", "0.01") // job 5: queued
	before := mustJobq(oldBin, "list", "--no-headers", "-o", "id,status")
	if got := strings.Join(strings.Fields(before), " "); got != "1 success 2 success 3 running 4 queued 5 queued" {
		t.Fatalf("before the upgrade: %q", got)
	}
	info2 := mustJobq(oldBin, "info", "2")

	// Runbook: drain (new jobs refused), stop.
	mustJobq(oldBin, "queue", "drain")
	if o := jobq(oldBin, "debug", "delay", "--submit", "1"); o.code == 0 || !strings.Contains(o.stderr, "The queue is drained: new jobs are refused") {
		t.Errorf("submit while drained: %s", o)
	}
	old.stop()

	// On disk: the queued jobs are still queued.
	for id, want := range map[string]string{"1": "success", "2": "success", "4": "queued", "5": "queued"} {
		if got := jobFileStatus(t, dir, id); got != want {
			t.Errorf("job-%s on disk after the stop: %s, want %s", id, got, want)
		}
	}

	// The new version checks the queue format: nothing to upgrade.
	up := run(t, nil, filepath.Join(newBin, "jobqd"), append(common, "--upgrade-queue")...)
	if up.code != 0 || up.stdout != "The queue in "+dir+"/queue is at format version 1, the one this jobqd reads: nothing to upgrade.\n" {
		t.Errorf("jobqd --upgrade-queue: %s", up)
	}

	// Start the new version.
	nw := startDaemon(t, filepath.Join(newBin, "jobqd"), common...)
	if v := mustJobq(newBin, "version"); !strings.HasPrefix(v, "jobq 1.0.1 ") {
		t.Errorf("new jobq version: %q", v)
	}
	if out := mustJobq(newBin, "queue", "info"); !strings.HasPrefix(out, "The drain flag is set\n") {
		t.Errorf("queue info after the restart: %q", out)
	}
	// The queued jobs run (the queue is drained for new jobs only).
	mustJobq(newBin, "wait", "4")
	mustJobq(newBin, "wait", "5")
	after := strings.Join(strings.Fields(mustJobq(newBin, "list", "--no-headers", "-o", "id,status")), " ")
	if after != "1 success 2 success 3 error 4 success 5 success" {
		t.Errorf("after the upgrade: %q", after)
	}
	if got := mustJobq(newBin, "info", "2"); got != info2 {
		t.Errorf("job 2 changed across the upgrade:\n%s\nwas:\n%s", got, info2)
	}

	// Undrain: new jobs are taken again, with the next id.
	mustJobq(newBin, "queue", "undrain")
	if out := mustJobq(newBin, "debug", "delay", "--submit", "0.01"); out != "JobID: 6\n" {
		t.Errorf("first job after the upgrade: %q", out)
	}
	mustJobq(newBin, "wait", "6")
	nw.stop()
}

// waitStatus waits until job id's status is want.
func waitStatus(t *testing.T, c *client.Client, id int64, want string) {
	t.Helper()
	var prev []json.RawMessage
	for {
		ch, err := c.WaitForJobChange(context.Background(), id, []string{"status"}, prev, -1, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		json.Unmarshal(ch.Info[0], &s)
		if s == want {
			return
		}
		prev = ch.Info
	}
}

// jobFileStatus reads a job's status from its file, as Ganeti's tools do.
func jobFileStatus(t *testing.T, dir, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "queue", "job-"+id))
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Ops []struct {
			Status string `json:"status"`
		} `json:"ops"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("job-%s: %v", id, err)
	}
	// A job's status follows from its opcodes': all queued is queued, all
	// success is success.
	st := ""
	for _, op := range j.Ops {
		if st == "" || op.Status != st {
			if st != "" {
				return "mixed"
			}
			st = op.Status
		}
	}
	return st
}
