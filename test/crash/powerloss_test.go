package crash

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/lossyfs"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// snapshotEnv makes jobqd take a snapshot every 40 entries and compact
// its log 10 entries behind it, so that within a round of a power-loss
// test the log drops entries whose files only the snapshot made durable.
var snapshotEnv = []string{"JOBQ_TEST_SNAPSHOT_ENTRIES=40", "JOBQ_TEST_TRAILING_ENTRIES=10"}

// envInt is a positive number from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q is not a positive number", name, s)
	}
	return n
}

// envSeed is JOBQ_POWERLOSS_SEED, or the time.
func envSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JOBQ_POWERLOSS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JOBQ_POWERLOSS_SEED=%q is not a number", s)
		}
		seed = n
	}
	t.Logf("seed %d (JOBQ_POWERLOSS_SEED=%d replays it)", seed, seed)
	return seed
}

// lossyDir mounts a lossy layer (internal/lossyfs) and returns it with
// the data directory dir/name, created durably on it.
func lossyDir(t *testing.T, name string) (*lossyfs.Layer, string) {
	t.Helper()
	if err := lossyfs.Available(); err != nil {
		testbin.Missing(t, "%v", err)
	}
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt, filepath.Join(backing, name)} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	l, err := lossyfs.Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("unmounting the lossy layer: %v", err)
		}
	})
	return l, filepath.Join(mnt, name)
}

// TestPowerLoss is TestCrashLoop with a power loss instead of a process
// death: jobqd's data directory (queue, settings, etcd's WAL and
// snapshots) is on a lossy layer, and after the SIGKILL at a random
// instant every write, creation, rename and removal not made durable is
// dropped (lossyfs.Layer.Crash). Then jobqd restarts: every
// acknowledged job is there (its file, and QueryJobs), no file torn,
// those running at the crash end in error, the others in success.
// JOBQ_POWERLOSS_ROUNDS rounds (default 4), JOBQ_POWERLOSS_SEED replays.
func TestPowerLoss(t *testing.T) {
	rounds := envInt(t, "JOBQ_POWERLOSS_ROUNDS", 4)
	layer, dir := lossyDir(t, "node1")
	rng := rand.New(rand.NewPCG(envSeed(t), 0x706f776572))
	opts := testbin.Options{Env: snapshotEnv}
	startNode := func() *daemon {
		return &daemon{Daemon: opts.Start(t, dir, "--node-name", "node1", "--rpc-addr", "127.0.0.1:0", "--rapi-addr", "127.0.0.1:0"), t: t}
	}
	d := startNode()
	var allAcked []int64
	mustFail := map[int64]bool{}
	canceled, maybeCanceled := map[int64]bool{}, map[int64]bool{}
	var lost, torn, runningAtCrash int
	start0 := time.Now()
	for round := 1; round <= rounds; round++ {
		target := 1 + rng.IntN(2*maxAcksBeforeKill)
		r := load(t, d, target, rng)
		if t.Failed() {
			t.Fatalf("round %d: the load failed\n%s", round, d.Logs())
		}
		if err := layer.Crash(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for id := range r.canceled {
			canceled[id] = true
		}
		for id := range r.tried {
			maybeCanceled[id] = true
		}
		var roundIDs []int64
		for _, ids := range r.acked {
			roundIDs = append(roundIDs, ids...)
		}
		allAcked = append(allAcked, roundIDs...)
		// Running at the crash is what the durable log says.
		for id, j := range logState(t, dir) {
			if st := j.CalcStatus(); st == job.StatusRunning || st == job.StatusCanceling {
				mustFail[id] = true
				runningAtCrash++
			}
		}

		d = startNode()
		onDisk, bad := scanQueue(t, dir)
		torn += len(bad)
		for _, b := range bad {
			t.Errorf("round %d: job file does not parse after the restart: %s", round, b)
		}
		archived := archivedIDs(t, dir)
		for _, id := range allAcked {
			if _, ok := onDisk[id]; !ok && !archived[id] {
				lost++
				t.Errorf("round %d: acknowledged job %d has no job file after the power loss and restart", round, id)
			}
		}
		if strings.Contains(d.Logs(), "corrupt") {
			t.Errorf("round %d: jobqd found corrupt job files after the power loss:\n%s", round, d.Logs())
		}
		c := d.client()
		for i, st := range query(t, c, allAcked) {
			if st == nil {
				lost++
				t.Errorf("round %d: acknowledged job %d unknown after the power loss", round, allAcked[i])
			}
		}
		for _, st := range query(t, c, nil) {
			if st != nil && !st.Status.Final() {
				waitFinal(t, c, st.ID)
			}
		}
		for _, st := range query(t, c, nil) {
			switch {
			case st == nil:
			case !st.Status.Final():
				t.Errorf("round %d: job %d is %s after waiting for it", round, st.ID, st.Status)
			case mustFail[st.ID]:
				if st.Status != job.StatusError || !strings.Contains(string(st.OpResult), uncleanShutdown) {
					t.Errorf("round %d: job %d was running at the crash and ended %s: %s", round, st.ID, st.Status, st.OpResult)
				}
			case canceled[st.ID]:
				if st.Status != job.StatusCanceled {
					t.Errorf("round %d: job %d, whose cancel was acknowledged, ended %s: %s", round, st.ID, st.Status, st.OpResult)
				}
			case maybeCanceled[st.ID] && st.Status == job.StatusCanceled:
			case st.Status != job.StatusSuccess:
				t.Errorf("round %d: job %d ended %s: %s", round, st.ID, st.Status, st.OpResult)
			}
		}
		// Archive the ended jobs, so that archiving (a rename into a
		// new directory) is crashed too.
		raw, err := c.Call(context.Background(), "AutoArchiveJobs", -1, 60)
		var res [2]int
		if err != nil || json.Unmarshal(raw, &res) != nil || res[1] != 0 {
			t.Errorf("round %d: AutoArchiveJobs: %s %v", round, raw, err)
		}
		c.Close()
		t.Logf("round %d: %d acknowledged before the crash (%d in all), %d running at it", round, len(roundIDs), len(allAcked), len(mustFail))
		if t.Failed() {
			t.Fatalf("round %d failed (target %d acknowledgements)\njobqd's log:\n%s", round, target, d.Logs())
		}
	}
	d.Kill()
	if lost != 0 || torn != 0 {
		t.Errorf("lost=%d torn=%d", lost, torn)
	}
	t.Logf("power loss: rounds=%d acked=%d lost=%d torn=%d running_at_crash=%d (all ended in error %q) elapsed=%s",
		rounds, len(allAcked), lost, torn, runningAtCrash, uncleanShutdown, time.Since(start0).Round(time.Millisecond))
}

// archivedIDs are the jobs in dir/queue/archive/*/job-N.
func archivedIDs(t *testing.T, dir string) map[int64]bool {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "queue", "archive", "*", "job-*"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int64]bool{}
	for _, n := range names {
		if id, err := strconv.ParseInt(strings.TrimPrefix(filepath.Base(n), "job-"), 10, 64); err == nil {
			ids[id] = true
		}
	}
	return ids
}
