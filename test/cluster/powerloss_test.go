package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/lossyfs"
	"github.com/jobq-dev/jobq/internal/member"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// TestPowerLossMajority: three nodes, each with its data directory
// (queue, settings, etcd's WAL and snapshots) on its own lossy layer
// (internal/lossyfs). Four clients submit to the master; at a random
// moment two of the three nodes (a majority, at random, the master
// among them or not) or all three lose power at once: SIGKILL, then
// every write, creation, rename and removal not made durable is
// dropped. They restart; a master is elected and knows every
// acknowledged job, each with its file on disk; every job ends, in
// success or in error "Unclean master shutdown"; when the master was
// among the crashed nodes, those running at the crash (per a majority's
// durable logs, and ended in none) in error, never run again to
// success; the queues converge byte for byte.
// JOBQ_POWERLOSS_ROUNDS rounds (default 2), JOBQ_POWERLOSS_SEED replays.
func TestPowerLossMajority(t *testing.T) {
	if err := lossyfs.Available(); err != nil {
		testbin.Missing(t, "%v", err)
	}
	rounds := 2 // CI's time: test/cluster is the longest package
	if s := os.Getenv("JOBQ_POWERLOSS_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("JOBQ_POWERLOSS_ROUNDS=%q is not a positive number", s)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JOBQ_POWERLOSS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JOBQ_POWERLOSS_SEED=%q is not a number", s)
		}
		seed = n
	}
	t.Logf("seed %d (JOBQ_POWERLOSS_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6d616a6f72))

	// Snapshots every 40 entries, the log compacted 10 behind: the
	// queue files must be durable by then.
	opts := testbin.Options{Env: []string{"JOBQ_TEST_SNAPSHOT_ENTRIES=40", "JOBQ_TEST_TRAILING_ENTRIES=10"}}
	base := t.TempDir()
	var nodes []*cnode
	layers := map[*cnode]*lossyfs.Layer{}
	for i := 1; i <= 3; i++ {
		name := "node" + strconv.Itoa(i)
		backing, mnt := filepath.Join(base, name+"-backing"), filepath.Join(base, name)
		for _, d := range []string{backing, mnt, filepath.Join(backing, "data")} {
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
				t.Errorf("unmounting %s's lossy layer: %v", name, err)
			}
		})
		n := &cnode{name: name, addr: testbin.FreePort(t, "127.0.0."+strconv.Itoa(i)), dir: filepath.Join(mnt, "data")}
		layers[n] = l
		nodes = append(nodes, n)
	}
	start := func(n *cnode, extra ...string) {
		t.Helper()
		n.d = opts.Start(t, n.dir, append(n.args(), extra...)...)
	}
	start(nodes[0])
	for _, n := range nodes[1:] {
		tok := nodes[0].jobq(t, "cluster", "join-token")
		if tok.Code != 0 {
			t.Fatalf("join-token: %+v", tok)
		}
		start(n, "--join", nodes[0].addr, "--token", strings.TrimSpace(tok.Stdout))
	}
	waitVoters(t, nodes[0], "node1", "node2", "node3")

	var allAcked []int64
	mustFail := map[int64]bool{} // running at a crash in a majority's durable logs
	var lost, crashedNodes, runningAtCrash int
	start0 := time.Now()
	for round := 1; round <= rounds; round++ {
		master := waitMaster(t, nodes...)
		was := master.name
		crash := nodes
		if rng.IntN(2) == 0 { // a majority: two of three
			skip := rng.IntN(3)
			crash = nil
			for i, n := range nodes {
				if i != skip {
					crash = append(crash, n)
				}
			}
		}
		target := 1 + rng.IntN(150)
		acked := submitUntil(t, master, target, rng, func() {
			var wg sync.WaitGroup
			for _, n := range crash {
				wg.Go(n.d.Kill)
			}
			wg.Wait()
		})
		if t.Failed() {
			t.FailNow()
		}
		var names []string
		running := map[int64]int{} // in how many crashed nodes' durable logs job id runs
		ended := map[int64]bool{}  // ended in at least one of them
		for _, n := range crash {
			names = append(names, n.name)
			if err := layers[n].Crash(); err != nil {
				t.Fatalf("round %d: power loss of %s: %v", round, n.name, err)
			}
			for id, j := range durableLogState(t, filepath.Join(layers[n].Backing, "data")) {
				switch st := j.CalcStatus(); {
				case st == job.StatusRunning || st == job.StatusCanceling:
					running[id]++
				case st.Final():
					ended[id] = true // its end may be committed by the next master
				}
			}
		}
		crashedNodes += len(crash)
		// A master that kept its power may keep its place (its
		// followers back before it stepped down) and finish its running
		// jobs; one that lost it cannot: its running jobs end in error.
		masterCrashed := slices.Contains(crash, master)
		for id, k := range running {
			if masterCrashed && k >= 2 && !ended[id] && !mustFail[id] {
				mustFail[id] = true
				runningAtCrash++
			}
		}
		allAcked = append(allAcked, acked...)
		for _, n := range crash {
			start(n)
		}
		master = waitMaster(t, nodes...)
		c := master.client(t)
		ctx := context.Background()
		rows, err := c.QueryJobs(ctx, allAcked, "id", "status", "opresult")
		if err != nil {
			t.Fatalf("round %d: QueryJobs on %s: %v", round, master.name, err)
		}
		for i, r := range rows {
			if r == nil {
				lost++
				t.Errorf("round %d: acknowledged job %d unknown to the new master %s after the power loss of %v", round, allAcked[i], master.name, names)
			}
		}
		// Every live job ends.
		live, err := c.QueryJobs(ctx, nil, "id")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range live {
			var id int64
			if json.Unmarshal(r[0], &id) != nil {
				t.Fatalf("QueryJobs row %s", r[0])
			}
			if _, err := c.WatchJob(ctx, id, func(client.LogEntry) error { return nil }); err != nil {
				t.Fatalf("round %d: waiting for job %d: %v", round, id, err)
			}
		}
		rows, err = c.QueryJobs(ctx, allAcked, "id", "status", "opresult")
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			if r == nil {
				continue
			}
			var st job.Status
			_ = json.Unmarshal(r[1], &st)
			id := allAcked[i]
			unclean := st == job.StatusError && strings.Contains(string(r[2]), "Unclean master shutdown")
			switch {
			case mustFail[id] && !unclean:
				t.Errorf("round %d: job %d was running at a power loss and ended %s: %s", round, id, st, r[2])
			case !mustFail[id] && st != job.StatusSuccess && !unclean:
				t.Errorf("round %d: job %d ended %s: %s", round, id, st, r[2])
			}
		}
		// Each acknowledged job has its file on the master's disk, and
		// every node converges to the same files.
		files := queueFiles(t, master.dir)
		for _, id := range allAcked {
			if _, ok := files["job-"+strconv.FormatInt(id, 10)]; !ok {
				lost++
				t.Errorf("round %d: acknowledged job %d has no file on the master %s", round, id, master.name)
			}
		}
		waitInSync(t, master)
		sameFiles(t, nodes...)
		t.Logf("round %d: power loss of %v (master was %s): %d acknowledged (%d in all), new master %s", round, names, was, len(acked), len(allAcked), master.name)
		if t.Failed() {
			var logs strings.Builder
			for _, n := range nodes {
				fmt.Fprintf(&logs, "--- %s:\n%s", n.name, n.d.Logs())
			}
			t.Fatalf("round %d failed\n%s", round, logs.String())
		}
	}
	if lost != 0 {
		t.Errorf("lost=%d", lost)
	}
	t.Logf("power loss, three nodes: rounds=%d nodes_crashed=%d acked=%d lost=%d running_at_crash=%d (all ended in error) elapsed=%s",
		rounds, crashedNodes, len(allAcked), lost, runningAtCrash, time.Since(start0).Round(time.Millisecond))
}

// submitUntil submits from four clients to master until target jobs are
// acknowledged, then calls kill and stops them; it returns every id
// acknowledged, those answered while kill ran included.
func submitUntil(t *testing.T, master *cnode, target int, rng *rand.Rand, kill func()) []int64 {
	t.Helper()
	var (
		mu      sync.Mutex
		acked   []int64
		killing bool
		killed  = make(chan struct{})
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 4 {
		crng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		c, err := client.Dial(ctx, master.d.Socket())
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			for {
				var op client.Opcode
				switch p := crng.IntN(10); {
				case p < 6:
					op = client.OpTestDelay{Duration: time.Duration(1+crng.IntN(20)) * time.Millisecond, NoLocks: true}
				case p < 9: // long enough to be running at the crash
					op = client.OpTestDelay{Duration: time.Duration(100+crng.IntN(300)) * time.Millisecond, NoLocks: true}
				default:
					op = client.OpTestDelay{Duration: time.Duration(1+crng.IntN(20)) * time.Millisecond}
				}
				id, err := c.SubmitJob(ctx, op)
				mu.Lock()
				stopping := killing
				if err == nil {
					acked = append(acked, id)
				}
				reached := err == nil && len(acked) >= target && !killing
				if reached {
					killing = true
				}
				mu.Unlock()
				switch {
				case err != nil && !stopping:
					t.Errorf("submission to %s failed before the power loss: %v", master.name, err)
					return
				case err != nil || stopping:
					return
				case reached:
					kill()
					close(killed)
					cancel() // a surviving master without a majority answers no more
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Errorf("the load ended before the power loss")
	}
	return acked
}

// durableLogState is the queue a node's durable data directory (its
// lossy layer's backing directory after a crash) holds with every entry
// of its log applied, on a copy.
func durableLogState(t *testing.T, dir string) map[int64]*job.Job {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		to := filepath.Join(cp, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o750)
		case !d.Type().IsRegular() || filepath.Base(p) == "lock":
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(cp, "queue"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := member.ApplyLog(member.Config{Dir: filepath.Join(cp, "cluster"), Store: st}); err != nil {
		t.Fatalf("applying the log of %s: %v", dir, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	jobs := map[int64]*job.Job{}
	ents, err := os.ReadDir(filepath.Join(cp, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		id, err := strconv.ParseInt(strings.TrimPrefix(e.Name(), "job-"), 10, 64)
		if err != nil || !strings.HasPrefix(e.Name(), "job-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(cp, "queue", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		j, err := job.Decode(b)
		if err != nil {
			t.Errorf("%s in %s's durable log state: %v", e.Name(), dir, err)
			continue
		}
		jobs[id] = j
	}
	return jobs
}
