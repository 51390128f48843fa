package crash

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
)

const (
	// clients is how many LUXI clients submit at once.
	clients = 4
	// maxAcksBeforeKill bounds the random number of acknowledged
	// submissions in a round before jobqd is killed.
	maxAcksBeforeKill = 150
	uncleanShutdown   = "Unclean master shutdown"
)

// delay is an OP_TEST_DELAY opcode input.
func delay(d float64, extra ...any) map[string]any {
	op := map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": d}
	for i := 0; i+1 < len(extra); i += 2 {
		op[extra[i].(string)] = extra[i+1]
	}
	return op
}

// submission is one random call of the load: SubmitJob with one or two
// opcodes, or SubmitManyJobs with three jobs.
func submission(rng *rand.Rand) (method string, ops any) {
	short := func() float64 { return float64(1+rng.IntN(20)) / 1000 }
	switch p := rng.IntN(100); {
	case p < 60:
		return "SubmitJob", []any{delay(short())}
	case p < 70: // logs as it goes (writes nobody waits for)
		return "SubmitJob", []any{delay(0.001, "repeat", 1+rng.IntN(4))}
	case p < 78: // long enough to be running at the kill
		return "SubmitJob", []any{delay(0.1 + rng.Float64()/4)}
	case p < 86:
		return "SubmitJob", []any{delay(short()), delay(short(), "repeat", 1)}
	case p < 93: // takes the node's lock exclusively
		return "SubmitJob", []any{delay(short(), "no_locks", false, "on_nodes", []string{"node1"})}
	default: // the second job waits for the first (a cancel may catch it)
		return "SubmitManyJobs", []any{[]any{delay(0.05 + rng.Float64()/5)},
			[]any{delay(short(), "depends", []any{[]any{-1, []string{"success", "error", "canceled"}}})},
			[]any{delay(short(), "priority", -10)}}
	}
}

// ack decodes a submission's answer into the acknowledged job ids.
func ack(method string, raw json.RawMessage) ([]int64, error) {
	if method == "SubmitJob" {
		var id int64
		if err := json.Unmarshal(raw, &id); err != nil {
			return nil, err
		}
		return []int64{id}, nil
	}
	var res [][2]json.RawMessage
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	var ids []int64
	for _, r := range res {
		var ok bool
		var id int64
		if json.Unmarshal(r[0], &ok) != nil || !ok || json.Unmarshal(r[1], &id) != nil {
			return nil, &json.UnsupportedValueError{Str: string(raw)}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// round is what one round's load was told: the acknowledged ids, per
// client in the order acknowledged, and the outcome of its cancels.
type round struct {
	acked [][]int64
	// canceled answered [true, ...]; tried got no answer (the kill).
	canceled, tried map[int64]bool
}

// load submits from several clients until the target number of
// acknowledgements, then kills jobqd at once (from the goroutine that got
// the last one). Now and then a client cancels one of its jobs. Replies
// that arrive while the kill is under way count too: jobqd only answers
// once the change is durable.
func load(t *testing.T, d *daemon, target int, rng *rand.Rand) round {
	var (
		mu      sync.Mutex
		total   int
		killing bool
		wg      sync.WaitGroup
	)
	r := round{acked: make([][]int64, clients), canceled: map[int64]bool{}, tried: map[int64]bool{}}
	kill := func() {
		mu.Lock()
		killing = true
		mu.Unlock()
		d.Kill()
	}
	stopping := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return killing
	}
	for i := range clients {
		crng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		c := d.client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			var waiting []int64 // jobs submitted to wait for another
			for {
				mu.Lock()
				mine := r.acked[i]
				mu.Unlock()
				if len(mine) > 0 && crng.IntN(8) == 0 {
					id := mine[len(mine)-1-crng.IntN(min(3, len(mine)))] // recent: maybe still queued
					if n := len(waiting); n > 0 {
						id, waiting = waiting[n-1], waiting[:n-1]
					}
					raw, err := c.Call(context.Background(), "CancelJob", id)
					var res [2]any
					switch {
					case err != nil && stopping():
						mu.Lock()
						r.tried[id] = true
						mu.Unlock()
						return
					case err != nil || json.Unmarshal(raw, &res) != nil:
						t.Errorf("client %d: CancelJob(%d): %s %v", i, id, raw, err)
						kill()
						return
					case res[0] == true:
						mu.Lock()
						r.canceled[id] = true
						mu.Unlock()
					}
					continue
				}
				method, ops := submission(crng)
				raw, err := c.Call(context.Background(), method, ops)
				if err != nil {
					if !stopping() {
						t.Errorf("client %d: %s failed before the kill: %v", i, method, err)
						kill()
					}
					return
				}
				ids, err := ack(method, raw)
				if err != nil {
					t.Errorf("client %d: %s answered %s", i, method, raw)
					kill()
					return
				}
				if method == "SubmitManyJobs" {
					waiting = append(waiting, ids[1])
				}
				mu.Lock()
				r.acked[i] = append(r.acked[i], ids...)
				total += len(ids)
				reached := total >= target && !killing
				mu.Unlock()
				if reached {
					kill()
				}
			}
		}()
	}
	wg.Wait()
	return r
}

// TestCrashLoop kills jobqd with SIGKILL at a random instant under load,
// restarts it and checks the queue, JOBQ_CRASH_ROUNDS times (default 10).
// JOBQ_CRASH_SEED replays a seed's choices of kill instants and load.
func TestCrashLoop(t *testing.T) {
	rounds := 10
	if s := os.Getenv("JOBQ_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("JOBQ_CRASH_ROUNDS=%q is not a positive number", s)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JOBQ_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JOBQ_CRASH_SEED=%q is not a number", s)
		}
		seed = n
	}
	t.Logf("seed %d (JOBQ_CRASH_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6a6f6271))

	dir := t.TempDir()
	d := start(t, dir)
	seen := map[int64]int{} // acknowledged id -> round
	var allAcked []int64
	var prevMax int64                 // highest id on disk or acknowledged before this round
	mustFail := map[int64]bool{}      // jobs running at a kill
	canceled := map[int64]bool{}      // cancels answered true
	maybeCanceled := map[int64]bool{} // cancels without an answer
	var lost, torn, runningAtKill, runningPerLog, totalAcked, archived, logOnly int
	start0 := time.Now()

	for round := 1; round <= rounds; round++ {
		target := 1 + rng.IntN(maxAcksBeforeKill)
		r := load(t, d, target, rng)
		for id := range r.canceled {
			canceled[id] = true
		}
		for id := range r.tried {
			maybeCanceled[id] = true
		}
		if t.Failed() {
			t.Fatalf("round %d: the load failed\n%s", round, d.Logs())
		}

		// What the crash left on disk, and in the log: the job files
		// follow the log within the write-back buffer's flush interval
		// (store.DefaultFlushInterval), so an acknowledged job may be in
		// the log only; the restart writes it.
		onDisk, bad := scanQueue(t, dir)
		perLog := logState(t, dir)
		torn += len(bad)
		for _, b := range bad {
			t.Errorf("round %d: job file does not parse: %s", round, b)
		}
		var roundIDs []int64
		for ci, ids := range r.acked {
			for k, id := range ids {
				if first, dup := seen[id]; dup {
					t.Errorf("round %d: id %d acknowledged again (first in round %d)", round, id, first)
				}
				seen[id] = round
				if id <= prevMax {
					t.Errorf("round %d: id %d acknowledged, but ids up to %d were handed out before", round, id, prevMax)
				}
				if k > 0 && id <= ids[k-1] {
					t.Errorf("round %d: client %d got id %d after %d", round, ci, id, ids[k-1])
				}
				_, file := onDisk[id]
				if _, logged := perLog[id]; !file && !logged {
					lost++
					t.Errorf("round %d: acknowledged job %d is neither in a job file nor in the log after the kill", round, id)
				} else if !file {
					logOnly++
				}
				roundIDs = append(roundIDs, id)
			}
		}
		totalAcked += len(roundIDs)
		allAcked = append(allAcked, roundIDs...)
		// Jobs whose opcode was running (or being canceled) when jobqd
		// died must end in error; those whose cancel was acknowledged,
		// canceled; the others run to success.
		// Running at the kill is what the log says (the queue files may
		// lag it by the entries agreed but not yet written; a restart
		// writes them).
		for id := range onDisk {
			prevMax = max(prevMax, id)
		}
		for id, j := range perLog {
			prevMax = max(prevMax, id)
			if st := j.CalcStatus(); st == job.StatusRunning || st == job.StatusCanceling {
				mustFail[id] = true
				runningAtKill++
				if f, ok := onDisk[id]; !ok || f.CalcStatus() != st {
					runningPerLog++
				}
			}
		}
		if len(roundIDs) > 0 {
			prevMax = max(prevMax, slices.Max(roundIDs))
		}

		d = start(t, dir)
		if strings.Contains(d.Logs(), "corrupt") {
			t.Errorf("round %d: jobqd found corrupt job files after the kill:\n%s", round, d.Logs())
		}
		c := d.client()
		// Every acknowledged job, of this round and before, is known.
		for i, st := range query(t, c, allAcked) {
			if st == nil {
				lost++
				t.Errorf("round %d: acknowledged job %d unknown after restart", round, allAcked[i])
			}
		}
		// The load has stopped: every job ends.
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
					t.Errorf("round %d: job %d was running at the kill and ended %s: %s", round, st.ID, st.Status, st.OpResult)
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
		// Archive them all, so that the queue stays short from round to
		// round; archived jobs are still found by id (checked above for
		// every acknowledged job, each round).
		raw, err := c.Call(context.Background(), "AutoArchiveJobs", -1, 60)
		var res [2]int
		if err != nil || json.Unmarshal(raw, &res) != nil || res[1] != 0 {
			t.Errorf("round %d: AutoArchiveJobs: %s %v", round, raw, err)
		}
		archived += res[0]
		c.Close()
		if t.Failed() {
			t.Fatalf("round %d failed (target %d acknowledgements)\njobqd's log:\n%s", round, target, d.Logs())
		}
	}

	// After the last restart the next id is still new.
	c := d.client()
	defer c.Close()
	raw, err := c.Call(context.Background(), "SubmitJob", []any{delay(0.001)})
	ids, aerr := ack("SubmitJob", raw)
	if err != nil || aerr != nil || ids[0] <= prevMax {
		t.Errorf("submission after the last restart: %s %v, want an id above %d", raw, err, prevMax)
	}
	if lost != 0 || torn != 0 {
		t.Errorf("lost=%d torn=%d", lost, torn)
	}
	t.Logf("crash loop: rounds=%d acked=%d lost=%d torn=%d running_at_kill=%d (all ended in error %q) running_per_log=%d (of those, not yet running in the files at the kill) log_only=%d (acknowledged, in the log but not yet in a file at the kill) canceled=%d archived=%d elapsed=%s",
		rounds, totalAcked, lost, torn, runningAtKill, uncleanShutdown, runningPerLog, logOnly, len(canceled), archived, time.Since(start0).Round(time.Millisecond))
}
