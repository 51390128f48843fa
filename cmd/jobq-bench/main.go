// Command jobq-bench drives a running jobqd through its LUXI socket and
// reports throughput and latency. It starts nothing itself.
//
//	jobq-bench --socket DIR/socket/jobq-query --jobs 5000 --clients 4
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

func main() {
	socket := flag.String("socket", os.Getenv("JOBQ_SOCKET"), "LUXI socket of the node to drive")
	jobs := flag.Int("jobs", 5000, "jobs to submit in the throughput run")
	clients := flag.Int("clients", 4, "concurrent clients")
	batch := flag.Int("batch", 50, "jobs per SubmitManyJobs call")
	duration := flag.Float64("duration", 0.001, "OP_TEST_DELAY duration in seconds")
	samples := flag.Int("latency-samples", 200, "sequential submit→success runs for the latency figure")
	populateDir := flag.String("populate", "", "instead of driving a node: write a data directory DIR with --live finished jobs and --archived archived ones (no daemon may use it)")
	live := flag.Int("live", 100000, "with --populate: live jobs to write")
	archived := flag.Int("archived", 0, "with --populate: archived jobs to write")
	flag.Parse()
	if *populateDir != "" {
		if err := populate(*populateDir, *live, *archived); err != nil {
			fmt.Fprintln(os.Stderr, "jobq-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "jobq-bench: give the node's socket with --socket or $JOBQ_SOCKET")
		os.Exit(2)
	}
	if err := run(*socket, *jobs, *clients, *batch, *duration, *samples); err != nil {
		fmt.Fprintln(os.Stderr, "jobq-bench:", err)
		os.Exit(1)
	}
}

func op(d float64) map[string]any {
	return map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": d, "on_master": true}
}

// waitFinal loops WaitForJobChange until the job is final.
func waitFinal(ctx context.Context, c *luxi.Client, id int64) (string, error) {
	var prev any
	for {
		raw, err := c.Call(ctx, "WaitForJobChange", id, []string{"status"}, prev, nil, 60)
		if err != nil {
			return "", err
		}
		var res [2]json.RawMessage
		if err := json.Unmarshal(raw, &res); err != nil {
			return "", fmt.Errorf("job %d: WaitForJobChange answered %s", id, raw)
		}
		var st []string
		json.Unmarshal(res[0], &st)
		switch st[0] {
		case "success", "error", "canceled":
			return st[0], nil
		}
		prev = st
	}
}

func run(socket string, jobs, clients, batch int, d float64, samples int) error {
	ctx := context.Background()
	c, err := luxi.Dial(socket)
	if err != nil {
		return err
	}
	defer c.Close()

	// Throughput: clients submit batches, then wait for their jobs.
	var next atomic.Int64
	var failed atomic.Int64
	ids := make(chan int64, jobs)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(int64(batch))) - batch
				if n >= jobs {
					return
				}
				k := min(batch, jobs-n)
				many := make([][]map[string]any, k)
				for i := range many {
					many[i] = []map[string]any{op(d)}
				}
				raw, err := c.Call(ctx, "SubmitManyJobs", many)
				if err != nil {
					errs <- err
					return
				}
				var res [][2]json.RawMessage
				json.Unmarshal(raw, &res)
				for _, r := range res {
					var id int64
					if string(r[0]) == "true" && json.Unmarshal(r[1], &id) == nil {
						ids <- id
					} else {
						failed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(ids)
	submitted := time.Since(start)
	select {
	case err := <-errs:
		return err
	default:
	}
	var all []int64
	for id := range ids {
		all = append(all, id)
	}
	// Wait for every job from `clients` watchers.
	var bad atomic.Int64
	work := make(chan int64, len(all))
	for _, id := range all {
		work <- id
	}
	close(work)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				st, err := waitFinal(ctx, c, id)
				if err != nil || st != "success" {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	total := time.Since(start)
	rate := float64(len(all)) / total.Seconds()

	// Latency: one job at a time, submit → success.
	lat := make([]time.Duration, 0, samples)
	for range samples {
		t0 := time.Now()
		raw, err := c.Call(ctx, "SubmitJob", []map[string]any{op(d)})
		if err != nil {
			return err
		}
		var id int64
		json.Unmarshal(raw, &id)
		if _, err := waitFinal(ctx, c, id); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	out := map[string]any{
		"jobs": len(all), "clients": clients, "batch": batch, "duration_s": d,
		"submit_s": submitted.Seconds(), "total_s": total.Seconds(), "jobs_per_s": rate,
		"not_success": bad.Load(), "submit_failed": failed.Load(),
		"latency_p50_ms": float64(pct(0.5).Microseconds()) / 1000,
		"latency_p99_ms": float64(pct(0.99).Microseconds()) / 1000,
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	fmt.Printf("%d jobs (%d clients, batches of %d, OP_TEST_DELAY %gs): %.0f jobs/s end to end (submitted in %.2fs, all final in %.2fs); %d not successful\n",
		len(all), clients, batch, d, rate, submitted.Seconds(), total.Seconds(), bad.Load()+failed.Load())
	fmt.Printf("sequential submit→success over %d jobs: p50 %.2f ms, p99 %.2f ms\n", len(lat),
		float64(pct(0.5).Microseconds())/1000, float64(pct(0.99).Microseconds())/1000)
	return nil
}
