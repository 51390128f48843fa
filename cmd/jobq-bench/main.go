// Command jobq-bench drives a running jobqd through its LUXI socket and
// reports throughput, latency and watcher notification latency, next to the
// disk's own limit for durable file replaces measured in the same run. It
// starts no daemon itself.
//
//	jobq-bench --socket DIR/socket/jobq-query --jobs 5000 --clients 4
//
// With --populate DIR it instead writes a data directory full of finished
// jobs, for scale measurements of a daemon started on it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/luxi"
)

type options struct {
	socket    string
	jobs      int
	clients   int
	batch     int
	duration  float64
	samples   int
	watchers  int
	diskDir   string
	diskTime  time.Duration
	workloads map[string]bool
	// declaredOp is the opcode the throughput of the "declared" workload
	// submits (nil: OP_TEST_DELAY).
	declaredOp map[string]any
	// delayed and schedules are loaded into the node before the
	// workloads (jobs in time's cost): jobs due in a day, and schedules
	// that fire once a year.
	delayed, schedules int
	// filters are job filter rules installed before the workloads (a
	// filter's cost): rules that match no job but that the scheduler must
	// evaluate for every job, deleted at the end.
	filters int
}

func main() {
	var o options
	flag.StringVar(&o.socket, "socket", os.Getenv("JOBQ_SOCKET"), "LUXI socket of the node to drive (default $JOBQ_SOCKET)")
	flag.IntVar(&o.jobs, "jobs", 5000, "throughput: jobs to submit")
	flag.IntVar(&o.clients, "clients", 4, "throughput: concurrent clients")
	flag.IntVar(&o.batch, "batch", 50, "throughput: jobs per SubmitManyJobs call")
	flag.Float64Var(&o.duration, "duration", 0.001, "OP_TEST_DELAY duration of the throughput and latency jobs, in seconds")
	flag.IntVar(&o.samples, "latency-samples", 200, "latency: sequential submit→success runs")
	flag.IntVar(&o.watchers, "watchers", 1000, "watchers: concurrent WaitForJobChange calls on one job")
	flag.StringVar(&o.diskDir, "disk-dir", "", "where to measure the disk's durable replace rate (default: the node's data directory, from the socket path)")
	flag.DurationVar(&o.diskTime, "disk-time", 2*time.Second, "how long to measure the disk")
	flag.IntVar(&o.delayed, "delayed", 0, "first submit this many delayed jobs (due in a day) to the node")
	flag.IntVar(&o.schedules, "schedules", 0, "first add this many schedules (firing once a year) to the node")
	flag.IntVar(&o.filters, "filters", 0, "first add this many job filter rules (PAUSE, matching no job's opcode, evaluated for every job) to the node; deleted at the end")
	which := flag.String("workloads", "disk,throughput,latency,watchers", "workloads to run, comma-separated")
	populateDir := flag.String("populate", "", "instead of driving a node: write a data directory DIR with --live finished jobs and --archived archived ones (no daemon may use it)")
	live := flag.Int("live", 100000, "with --populate: live jobs to write")
	archived := flag.Int("archived", 0, "with --populate: archived jobs to write")
	fanout := flag.String("fanout-server", "", "internal: run the bare server that the watchers workload measures as its floor, on this socket")
	flag.Parse()
	if *fanout != "" {
		if err := fanoutServer(*fanout, o.watchers); err != nil {
			fmt.Fprintln(os.Stderr, "jobq-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *populateDir != "" {
		if err := populate(*populateDir, *live, *archived); err != nil {
			fmt.Fprintln(os.Stderr, "jobq-bench:", err)
			os.Exit(1)
		}
		return
	}
	if o.socket == "" {
		fmt.Fprintln(os.Stderr, "jobq-bench: give the node's socket with --socket or $JOBQ_SOCKET")
		os.Exit(2)
	}
	o.workloads = map[string]bool{}
	for _, w := range strings.Split(*which, ",") {
		switch w {
		case "disk", "throughput", "latency", "watchers", "declared":
			o.workloads[w] = true
		default:
			fmt.Fprintf(os.Stderr, "jobq-bench: unknown workload %q (disk, throughput, latency, watchers, declared)\n", w)
			os.Exit(2)
		}
	}
	if o.diskDir == "" {
		// DIR/socket/jobq-query -> DIR
		o.diskDir = filepath.Dir(filepath.Dir(o.socket))
	}
	if err := run(o); err != nil {
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
		var st []job.Status
		json.Unmarshal(res[0], &st)
		if len(st) == 1 && st[0].Final() {
			return string(st[0]), nil
		}
		prev = st
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func run(o options) error {
	ctx := context.Background()
	c, err := luxi.Dial(o.socket)
	if err != nil {
		return err
	}
	defer c.Close()
	out := map[string]any{}
	var human []string
	epoch0, master0, epochErr := masterEpoch(ctx, c)
	if o.delayed > 0 || o.schedules > 0 {
		if err := loadTimed(ctx, c, o.delayed, o.schedules); err != nil {
			return err
		}
		out["delayed_jobs"], out["schedules"] = o.delayed, o.schedules
		human = append(human, fmt.Sprintf("loaded first: %d delayed jobs (due in a day), %d schedules (yearly)", o.delayed, o.schedules))
	}
	if o.filters > 0 {
		uuids, err := addFilters(ctx, c, o.filters)
		defer func() {
			for _, u := range uuids {
				if _, err := c.Call(ctx, "DeleteFilter", u); err != nil {
					fmt.Fprintf(os.Stderr, "jobq-bench: deleting filter %s: %v\n", u, err)
				}
			}
		}()
		if err != nil {
			return err
		}
		out["filters"] = o.filters
		human = append(human, fmt.Sprintf("loaded first: %d filter rules (PAUSE on an opcode no job has)", o.filters))
	}

	if o.workloads["disk"] {
		rate, err := diskRate(o.diskDir, o.diskTime)
		if err != nil {
			return err
		}
		out["disk_replaces_per_s"] = rate
		out["disk_limit_jobs_per_s"] = rate / writesPerJob
		human = append(human, fmt.Sprintf("disk (%s): %.0f durable file replaces/s when batched under one sync; at %d writes a job that caps jobq near %.0f jobs/s",
			o.diskDir, rate, writesPerJob, rate/writesPerJob))
	}
	if o.workloads["throughput"] {
		rate, bad, total, err := throughput(ctx, c, o)
		if err != nil {
			return err
		}
		out["jobs"], out["clients"], out["batch"], out["duration_s"] = o.jobs, o.clients, o.batch, o.duration
		out["jobs_per_s"], out["not_success"], out["total_s"] = rate, bad, total.Seconds()
		line := fmt.Sprintf("throughput: %d jobs (%d clients, SubmitManyJobs of %d, OP_TEST_DELAY %gs): %.0f jobs/s submit→all final in %.2fs; %d not successful",
			o.jobs, o.clients, o.batch, o.duration, rate, total.Seconds(), bad)
		if lim, ok := out["disk_limit_jobs_per_s"].(float64); ok && lim > 0 {
			out["fraction_of_disk_limit"] = rate / lim
			line += fmt.Sprintf(" = %.0f%% of the disk's limit", 100*rate/lim)
		}
		human = append(human, line)
	}
	if o.workloads["declared"] {
		if err := addTrueOpcode(ctx, c); err != nil {
			return err
		}
		od := o
		od.declaredOp = map[string]any{"OP_ID": benchTrueID}
		rate, bad, total, err := throughput(ctx, c, od)
		if err != nil {
			return err
		}
		out["declared_jobs_per_s"], out["declared_not_success"], out["declared_total_s"] = rate, bad, total.Seconds()
		human = append(human, fmt.Sprintf("declared: %d jobs of %s (a declared opcode running /bin/true on the master; %d clients, SubmitManyJobs of %d): %.0f jobs/s submit→all final in %.2fs; %d not successful",
			o.jobs, benchTrueID, o.clients, o.batch, rate, total.Seconds(), bad))
		// Right after, so that both see the same load.
		if floor, err := execFloor(o.jobs); err != nil {
			out["declared_floor_error"] = err.Error()
			human = append(human, "declared's floor: not measured: "+err.Error())
		} else {
			out["exec_floor_per_s"] = floor
			out["declared_fraction_of_floor"] = rate / floor
			human = append(human, fmt.Sprintf("declared's floor: %d executions of /bin/true from a bare Go program, %d at once, no queue, cgroup or pipes (this machine's cost of fork and exec alone, now): %.0f/s; the declared rate is %.0f%% of it",
				o.jobs, execFloorParallel, floor, 100*rate/floor))
		}
	}
	if o.workloads["latency"] {
		lat, err := latency(ctx, c, o)
		if err != nil {
			return err
		}
		p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
		out["latency_p50_ms"], out["latency_p99_ms"] = ms(p50), ms(p99)
		human = append(human, fmt.Sprintf("latency: one job at a time, submit→success over %d jobs: p50 %.2f ms, p99 %.2f ms", len(lat), ms(p50), ms(p99)))
	}
	if o.workloads["watchers"] {
		lat, err := watchers(ctx, c, o)
		if err != nil {
			return err
		}
		p50, p99, worst := percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 1)
		out["watchers"], out["watch_p50_ms"], out["watch_p99_ms"], out["watch_max_ms"] = len(lat), ms(p50), ms(p99), ms(worst)
		human = append(human, fmt.Sprintf("watchers: %d concurrent WaitForJobChange on one job, notified after its end: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
			len(lat), ms(p50), ms(p99), ms(worst)))
		if floor, err := watchFloor(o.watchers); err != nil {
			// jobq's own numbers stand without it.
			out["watch_floor_error"] = err.Error()
			human = append(human, "watchers' floor: not measured: "+err.Error())
		} else {
			fp50, fp99 := percentile(floor, 0.5), percentile(floor, 0.99)
			out["watch_floor_p50_ms"], out["watch_floor_p99_ms"] = ms(fp50), ms(fp99)
			human = append(human, fmt.Sprintf("watchers' floor: the same %d connections answered at once by a bare server with no queue (this machine's cost of the fan-out alone): p50 %.2f ms, p99 %.2f ms",
				len(floor), ms(fp50), ms(fp99)))
		}
	}
	// Elections during the run: each one ends the running jobs of the
	// master it replaces.
	if epoch1, master1, err := masterEpoch(ctx, c); epochErr == nil && err == nil {
		out["master_epoch_before"], out["master_epoch_after"] = epoch0, epoch1
		out["elections"] = epoch1 - epoch0
		human = append(human, fmt.Sprintf("master: %s (epoch %d) before, %s (epoch %d) after: %d elections during the run", master0, epoch0, master1, epoch1, epoch1-epoch0))
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	for _, h := range human {
		fmt.Println(h)
	}
	return nil
}

func throughput(ctx context.Context, c *luxi.Client, o options) (float64, int64, time.Duration, error) {
	var next, failed atomic.Int64
	ids := make(chan int64, o.jobs)
	errs := make(chan error, o.clients)
	start := time.Now()
	var wg sync.WaitGroup
	for range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(int64(o.batch))) - o.batch
				if n >= o.jobs {
					return
				}
				many := make([][]map[string]any, min(o.batch, o.jobs-n))
				for i := range many {
					if o.declaredOp != nil {
						many[i] = []map[string]any{o.declaredOp}
					} else {
						many[i] = []map[string]any{op(o.duration)}
					}
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
	select {
	case err := <-errs:
		return 0, 0, 0, err
	default:
	}
	work := make(chan int64, o.jobs)
	n := 0
	for id := range ids {
		work <- id
		n++
	}
	close(work)
	var bad atomic.Int64
	for range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if st, err := waitFinal(ctx, c, id); err != nil || st != "success" {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	total := time.Since(start)
	return float64(n) / total.Seconds(), bad.Load() + failed.Load(), total, nil
}

func latency(ctx context.Context, c *luxi.Client, o options) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, o.samples)
	for range o.samples {
		t0 := time.Now()
		raw, err := c.Call(ctx, "SubmitJob", []map[string]any{op(o.duration)})
		if err != nil {
			return nil, err
		}
		var id int64
		if err := json.Unmarshal(raw, &id); err != nil {
			return nil, fmt.Errorf("SubmitJob answered %s", raw)
		}
		if _, err := waitFinal(ctx, c, id); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// watchers starts o.watchers WaitForJobChange calls, each on its own
// connection, on one running job, and measures how long after the job's
// end (its end timestamp, same machine clock) each learns that it ended.
func watchers(ctx context.Context, c *luxi.Client, o options) ([]time.Duration, error) {
	raw, err := c.Call(ctx, "SubmitJob", []map[string]any{op(1)})
	if err != nil {
		return nil, err
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil {
		return nil, fmt.Errorf("SubmitJob answered %s", raw)
	}
	// Wait until it runs, so that every watcher waits for the end.
	prev := any(nil)
	for {
		raw, err := c.Call(ctx, "WaitForJobChange", id, []string{"status"}, prev, nil, 60)
		if err != nil {
			return nil, err
		}
		var res [2]json.RawMessage
		json.Unmarshal(raw, &res)
		var st []string
		json.Unmarshal(res[0], &st)
		if st[0] == "running" {
			break
		}
		prev = st
	}
	// Each watcher is a bare connection that sends its request and notes
	// the time its answer's first bytes arrive, so that the client's own
	// work does not count.
	req, err := json.Marshal(map[string]any{"method": "WaitForJobChange",
		"args": []any{id, []string{"status"}, []string{"running"}, nil, 60}, "version": luxi.ProtocolVersion})
	if err != nil {
		return nil, err
	}
	req = append(req, 0x03)
	var allSent time.Time
	recv, replies, err := watchAll(o.socket, req, o.watchers, func() { allSent = time.Now() })
	if err != nil {
		return nil, err
	}
	for i, r := range replies {
		if !bytes.Contains(r, []byte(`"success"]`)) {
			return nil, fmt.Errorf("watcher %d was answered %q, not the job's success", i, r)
		}
	}
	raw, err = c.Call(ctx, "QueryJobs", []int64{id}, []string{"end_ts"})
	if err != nil {
		return nil, err
	}
	var rows [][]job.Timestamp
	if err := json.Unmarshal(raw, &rows); err != nil || len(rows) != 1 {
		return nil, fmt.Errorf("QueryJobs answered %s", raw)
	}
	end := rows[0][0].Time()
	if end.Before(allSent) {
		return nil, fmt.Errorf("the watched job (1 s) ended before all %d watchers were waiting; use fewer --watchers", o.watchers)
	}
	lat := make([]time.Duration, len(recv))
	for i, t := range recv {
		lat[i] = t.Sub(end)
	}
	return lat, nil
}

// watchAll opens n connections to socket at once, sends req on each and
// returns when each has its answer: the time the first bytes of each
// answer arrived, and the answers. allSent, if not nil, is called once
// every request is sent. The connections are closed only once every
// answer is in, so that the server's work for closed connections does not
// delay the answers still on their way.
func watchAll(socket string, req []byte, n int, allSent func()) ([]time.Time, [][]byte, error) {
	recv := make([]time.Time, n)
	conns := make([]net.Conn, n)
	replies := make([][]byte, n)
	errs := make(chan error, n)
	sent := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ten thousand connections at once overflow the listen
			// backlog: retry those the kernel turns away.
			conn, err := net.Dial("unix", socket)
			for try := 0; err != nil && errors.Is(err, syscall.EAGAIN) && try < 1000; try++ {
				time.Sleep(time.Millisecond)
				conn, err = net.Dial("unix", socket)
			}
			if err != nil {
				errs <- err
				sent <- struct{}{}
				return
			}
			conns[i] = conn
			_, err = conn.Write(req)
			sent <- struct{}{}
			if err != nil {
				errs <- err
				return
			}
			buf := make([]byte, 0, 256)
			chunk := make([]byte, 256)
			for {
				n, err := conn.Read(chunk)
				if n > 0 && len(buf) == 0 {
					recv[i] = time.Now()
				}
				buf = append(buf, chunk[:n]...)
				if bytes.IndexByte(buf, 0x03) >= 0 {
					replies[i] = buf
					return
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range n {
		<-sent
	}
	if allSent != nil {
		allSent()
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	close(errs)
	for err := range errs {
		return nil, nil, fmt.Errorf("watcher: %w", err)
	}
	return recv, replies, nil
}

// loadTimed submits delayed jobs (not before a day from now) and adds
// schedules that fire on January 1st only.
func loadTimed(ctx context.Context, c *luxi.Client, delayed, schedules int) error {
	timing := map[string]any{"not_before": time.Now().Add(24 * time.Hour).Unix()}
	for done := 0; done < delayed; {
		n := min(1000, delayed-done)
		jobs := make([][]any, n)
		for i := range jobs {
			jobs[i] = []any{op(0.001)}
		}
		if _, err := c.Call(ctx, "SubmitManyJobs", jobs, timing); err != nil {
			return fmt.Errorf("submitting delayed jobs: %w", err)
		}
		done += n
	}
	for i := range schedules {
		spec := map[string]any{"name": fmt.Sprintf("bench-%d", i), "cron": "0 0 1 1 *", "ops": []any{op(0.001)}}
		if _, err := c.Call(ctx, "JobqScheduleAdd", spec); err != nil {
			return fmt.Errorf("adding schedules: %w", err)
		}
	}
	return nil
}

// addFilters adds n filter rules that match no job: PAUSE when an opcode's
// OP_ID is OP_BENCH_NEVER_i. Every rule's predicate is evaluated against
// every opcode of every job the scheduler decides on. It returns the uuids
// added, also when it fails part way.
func addFilters(ctx context.Context, c *luxi.Client, n int) ([]string, error) {
	var uuids []string
	reason := [][]any{{"gnt:user", "jobq-bench", time.Now().UnixNano()}}
	for i := range n {
		preds := []any{[]any{"opcode", []any{"=", "OP_ID", fmt.Sprintf("OP_BENCH_NEVER_%d", i)}}}
		raw, err := c.Call(ctx, "ReplaceFilter", nil, i, preds, "PAUSE", reason)
		if err != nil {
			return uuids, fmt.Errorf("adding filter %d: %w", i, err)
		}
		var u string
		if err := json.Unmarshal(raw, &u); err != nil {
			return uuids, fmt.Errorf("ReplaceFilter answered %s, not a uuid", raw)
		}
		uuids = append(uuids, u)
	}
	return uuids, nil
}

// masterEpoch is the master and its epoch (Raft term) as the node's
// cluster info says: a new master takes office with a new epoch.
func masterEpoch(ctx context.Context, c *luxi.Client) (int64, string, error) {
	raw, err := c.Call(ctx, "JobqClusterInfo")
	if err != nil {
		return 0, "", err
	}
	var info struct {
		Master string `json:"master"`
		Epoch  int64  `json:"epoch"`
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		return 0, "", err
	}
	return info.Epoch, info.Master, nil
}

// benchTrueID is the declared opcode of the "declared" workload.
const benchTrueID = "OP_BENCH_TRUE"

// addTrueOpcode declares OP_BENCH_TRUE (/bin/true on the master, no
// parameters, no locks) unless the node has it.
func addTrueOpcode(ctx context.Context, c *luxi.Client) error {
	if _, err := c.Call(ctx, "JobqOpcodeInfo", benchTrueID); err == nil {
		return nil
	}
	def := `id = "OP_BENCH_TRUE"
summary = "jobq-bench: run /bin/true on the master"
[program]
path = "/bin/true"
`
	if _, err := c.Call(ctx, "JobqOpcodeAdd", def, "add"); err != nil {
		return fmt.Errorf("cannot declare %s: %w", benchTrueID, err)
	}
	return nil
}
