package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/testbin"
	"github.com/jobq-dev/jobq/luxi"
)

// followers is among without the master m.
func followers(m *cnode, among ...*cnode) []*cnode {
	var out []*cnode
	for _, n := range among {
		if n != m {
			out = append(out, n)
		}
	}
	return out
}

// TestJobCallsOnAnyNode: a node that is not the master takes job calls on
// its own socket and hands them to the master (Ganeti's clients only talk
// to the local socket): submit, watch, query, cancel, change priority,
// archive, and jobq's list and info, with the master's answers, errors
// included.
func TestJobCallsOnAnyNode(t *testing.T) {
	nodes := startCluster(t, 3, "--max-running-jobs", "1")
	m := waitMaster(t, nodes...)
	f := followers(m, nodes...)[0]
	if f.runsQueue() {
		t.Fatalf("two nodes run the queue: %s and %s", m.name, f.name)
	}
	cf := f.client(t)
	ctx := context.Background()
	ids := submitAndFinish(t, cf, 5)
	for _, id := range ids {
		j, err := m.client(t).Job(ctx, id)
		if err != nil || j.Status != client.StatusSuccess {
			t.Fatalf("job %d submitted on follower %s, on the master %s: %+v %v", id, f.name, m.name, j, err)
		}
	}
	// A job that holds the only worker, and one queued behind it.
	long, err := cf.SubmitJob(ctx, delay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cf, long)
	queued, err := cf.SubmitJob(ctx, delay(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg, err := cf.ChangeJobPriority(ctx, queued, 10); err != nil || !ok {
		t.Fatalf("ChangeJobPriority on the follower: %v %q %v", ok, msg, err)
	}
	if ok, msg, err := cf.CancelJob(ctx, queued); err != nil || !ok {
		t.Fatalf("CancelJob on the follower: %v %q %v", ok, msg, err)
	}
	if st, err := cf.WatchJob(ctx, queued, func(client.LogEntry) error { return nil }); err != nil || st != client.StatusCanceled {
		t.Fatalf("the canceled job: %v %v", st, err)
	}
	if ok, err := cf.ArchiveJob(ctx, queued); err != nil || !ok {
		t.Fatalf("ArchiveJob on the follower: %v %v", ok, err)
	}
	if ok, _, err := cf.KillJob(ctx, long); err != nil || !ok {
		t.Fatalf("KillJob on the follower: %v %v", ok, err)
	}
	if st, err := cf.WatchJob(ctx, long, func(client.LogEntry) error { return nil }); err != nil || st == client.StatusRunning {
		t.Fatalf("the killed job: %v %v", st, err)
	}
	// The master's refusals come back as they are.
	if _, err := cf.Job(ctx, 999999); !errors.Is(err, client.ErrJobNotFound) {
		t.Fatalf("an unknown job on the follower: %v", err)
	}
	if err := cf.Call(ctx, nil, "NoSuchMethod"); err == nil || !strings.Contains(err.Error(), `Invalid string value for type LuxiReq: "NoSuchMethod"`) {
		t.Fatalf("an unknown method on the follower: %v", err)
	}
	// jobq on the follower.
	r := f.jobq(t, "list", "--no-headers", "-o", "id,status")
	if r.Code != 0 || !strings.Contains(r.Stdout, itoa(ids[0])+" success\n") || strings.Contains(r.Stdout, itoa(queued)+" ") {
		t.Fatalf("jobq list on the follower: %+v", r)
	}
	if r := f.jobq(t, "info", itoa(ids[0])); r.Code != 0 || !strings.Contains(r.Stdout, "Status: success") {
		t.Fatalf("jobq info on the follower: %+v", r)
	}
	// The follower names the caller (its socket's peer) to the master: a
	// job submitted and a job canceled there have their authors.
	me := fmt.Sprintf("jobq:luxi uid=%d", os.Getuid())
	if r := m.jobq(t, "list", "--no-headers", "-o", "id,author", itoa(ids[0])); r.Code != 0 || !strings.Contains(r.Stdout, me) {
		t.Fatalf("the author of job %d, submitted on the follower, on the master: %+v (want %q)", ids[0], r, me)
	}
	if r := m.jobq(t, "info", itoa(queued)); r.Code != 0 || !strings.Contains(r.Stdout, "Canceled by "+me) {
		t.Fatalf("who canceled job %d on the follower, on the master: %+v", queued, r)
	}
}

// TestWatchAcrossFailover: jobs watched on a follower's socket while the
// master is killed: the watches go on with the new master and see the
// running job end in error ("Unclean master shutdown") and the queued one
// run; a submission on the follower during the election is acknowledged
// once a master is elected.
func TestWatchAcrossFailover(t *testing.T) {
	nodes := startCluster(t, 3, "--max-running-jobs", "1")
	m := waitMaster(t, nodes...)
	f := followers(m, nodes...)[0]
	cf := f.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	long, err := cf.SubmitJob(ctx, delay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cf, long)
	queued, err := cf.SubmitJob(ctx, delay(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	waitInSync(t, m)
	type watched struct {
		id  int64
		st  client.Status
		err error
	}
	results := make(chan watched, 2)
	for _, id := range []int64{long, queued} {
		go func() {
			st, err := cf.WatchJob(ctx, id, func(client.LogEntry) error { return nil })
			results <- watched{id, st, err}
		}()
	}
	m.d.Kill()
	// Submitted on the follower while the others elect a master.
	next, err := cf.SubmitJob(ctx, delay(time.Millisecond))
	if err != nil {
		t.Fatalf("submission on follower %s during the election: %v", f.name, err)
	}
	for range 2 {
		var w watched
		select {
		case w = <-results:
		case <-ctx.Done():
			t.Fatalf("the watches on follower %s did not end after the master's kill", f.name)
		}
		want := client.StatusSuccess
		if w.id == long {
			want = client.StatusError
		}
		if w.err != nil || w.st != want {
			t.Errorf("watching job %d on %s across the failover: %v %v, want %v", w.id, f.name, w.st, w.err, want)
		}
	}
	if next <= queued {
		t.Errorf("job submitted during the election got id %d, after %d", next, queued)
	}
	if st, err := cf.WatchJob(ctx, next, func(client.LogEntry) error { return nil }); err != nil || st != client.StatusSuccess {
		t.Fatalf("job %d submitted during the election: %v %v", next, st, err)
	}
	j, err := cf.Job(ctx, long)
	if err != nil || len(j.OpResult) == 0 || !strings.Contains(string(j.OpResult[0]), "Unclean master shutdown") {
		t.Fatalf("the job running at the kill: %+v %v", j, err)
	}
}

// TestGracefulStopHandsOver: SIGTERM on the master lets its running
// opcode finish, hands the leadership to another voter and stops, while
// four clients submit on a follower's socket (none of their submissions
// may end with an unknown outcome at a hand-over); compared with a SIGKILL of
// the master, the longest time without an acknowledgement from the signal
// until the old master is gone and a submission sent after that is
// acknowledged is reported (not asserted: a speed goal, not a correctness
// one).
func TestGracefulStopHandsOver(t *testing.T) {
	nodes := startCluster(t, 3)
	waitVoters(t, nodes[0], "node1", "node2", "node3")

	// load submits on the socket of one node, four clients, until
	// stopped, and records when each submission was sent and acknowledged.
	type ack struct{ sent, at time.Time }
	type load struct {
		mu    sync.Mutex
		acks  []ack
		ids   []int64
		errs  []string
		errAt []time.Time
		ackCh chan struct{}
		stop  chan struct{}
		wg    sync.WaitGroup
	}
	run := func(at *cnode) *load {
		l := &load{stop: make(chan struct{}), ackCh: make(chan struct{}, 1)}
		for range 4 {
			c := at.client(t)
			l.wg.Go(func() {
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					sent := time.Now()
					id, err := c.SubmitJob(ctx, delay(time.Millisecond))
					cancel()
					now := time.Now()
					l.mu.Lock()
					if err != nil {
						l.errs = append(l.errs, err.Error())
						l.errAt = append(l.errAt, now)
					} else {
						l.acks = append(l.acks, ack{sent, now})
						l.ids = append(l.ids, id)
					}
					l.mu.Unlock()
					if err == nil {
						select {
						case l.ackCh <- struct{}{}:
						default:
						}
						continue
					}
					select {
					case <-l.stop:
						return
					case <-time.After(10 * time.Millisecond): // pace a failing client
					}
				}
			})
		}
		return l
	}
	// gap sends a signal, waits until the old master is gone (gone) and a
	// submission sent after that is acknowledged, and returns the longest
	// time without an acknowledgement from the signal on.
	gap := func(l *load, signal, gone func()) time.Duration {
		since := time.Now()
		signal()
		gone()
		goneAt := time.Now()
		deadline := time.After(60 * time.Second)
		for {
			l.mu.Lock()
			var ats []time.Time
			done := false
			for _, a := range l.acks {
				if a.at.After(since) {
					ats = append(ats, a.at)
				}
				done = done || a.sent.After(goneAt)
			}
			l.mu.Unlock()
			if done {
				slices.SortFunc(ats, func(a, b time.Time) int { return a.Compare(b) })
				longest, prev := time.Duration(0), since
				for _, at := range ats {
					longest = max(longest, at.Sub(prev))
					prev = at
				}
				return longest
			}
			select {
			case <-l.ackCh:
			case <-deadline:
				t.Fatal("no submission sent after the old master was gone was acknowledged within 60s")
			}
		}
	}

	m := waitMaster(t, nodes...)
	f := followers(m, nodes...)[0]
	cf := f.client(t)
	ctx := context.Background()
	// A job of two seconds runs on the master when it gets SIGTERM (the
	// test cluster's --shutdown-timeout is 5s): it must end in success.
	running, err := cf.SubmitJob(ctx, delay(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cf, running)
	l := run(f)
	var stopErr error
	termGap := gap(l, m.d.Terminate, func() { stopErr = m.d.Stop() })
	if stopErr != nil {
		t.Fatalf("%s after SIGTERM: %v\n%s", m.name, stopErr, m.d.Logs())
	}
	if !strings.Contains(m.d.Logs(), "handed the leadership over") {
		t.Errorf("%s did not hand the leadership over at SIGTERM:\n%s", m.name, m.d.Logs())
	}
	if st, err := cf.WatchJob(ctx, running, func(client.LogEntry) error { return nil }); err != nil || st != client.StatusSuccess {
		j, _ := cf.Job(ctx, running)
		t.Fatalf("the job running at SIGTERM: %v %v %+v", st, err, j)
	}
	m.start(t)
	waitVoters(t, waitMaster(t, nodes...), "node1", "node2", "node3")

	m = waitMaster(t, nodes...)
	if m == f {
		// The load runs on f: kill another master.
		makeMaster(t, followers(f, nodes...)[0], nodes...)
		m = waitMaster(t, nodes...)
	}
	killed := time.Now()
	killGap := gap(l, m.d.Kill, func() {})
	close(l.stop)
	l.wg.Wait()
	m.start(t)

	mm := waitMaster(t, nodes...)
	cm := mm.client(t)
	slices.Sort(l.ids)
	for i, id := range l.ids {
		if i > 0 && l.ids[i-1] == id {
			t.Errorf("id %d acknowledged twice", id)
		}
		if _, err := cm.WatchJob(ctx, id, func(client.LogEntry) error { return nil }); err != nil {
			t.Errorf("acknowledged job %d: %v", id, err)
		}
	}
	handOver := 0
	for i, at := range l.errAt {
		if at.Before(killed) {
			handOver++
			// A hand-over leaves no submission in doubt: the master
			// holds new ones and answers those under way before the
			// leadership moves, and a follower never sends a call on a
			// connection to a master's earlier process.
			if strings.Contains(l.errs[i], luxi.OutcomeUnknownPrefix) {
				t.Errorf("a submission's outcome is unknown at a graceful hand-over: %s", l.errs[i])
			}
		}
	}
	t.Logf("longest time without an acknowledgement on a follower's socket: SIGTERM of the master (hand-over) %v, SIGKILL (election) %v; %d jobs acknowledged, submissions refused: %d at the hand-over, %d at the kill",
		termGap.Round(time.Millisecond), killGap.Round(time.Millisecond), len(l.ids), handOver, len(l.errs)-handOver)
	for i, e := range l.errs {
		if i == 3 {
			break
		}
		t.Logf("refusal: %s", e)
	}
}

// TestMasterFailoverLetsJobsFinish: jobq cluster master-failover on a
// voter lets the master's running opcode finish before the master hands
// the leadership over (the test cluster's --shutdown-timeout is 5s): the
// job ends in success, and a job submitted meanwhile runs on the new
// master.
func TestMasterFailoverLetsJobsFinish(t *testing.T) {
	nodes := startCluster(t, 3)
	waitVoters(t, nodes[0], "node1", "node2", "node3")
	m := waitMaster(t, nodes...)
	f := followers(m, nodes...)[0]
	cf := f.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	running, err := cf.SubmitJob(ctx, delay(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cf, running)
	done := make(chan struct{})
	var r testbin.Result
	go func() {
		defer close(done)
		r = f.jobq(t, "cluster", "master-failover")
	}()
	if !m.d.WaitLog("handing the leadership over once the running opcodes finish") {
		t.Fatalf("%s was not asked to hand over:\n%s", m.name, m.d.Logs())
	}
	// Stored while the master waits for its running opcode; run by the
	// next master.
	queued, err := cf.SubmitJob(ctx, delay(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if r.Code != 0 || !strings.Contains(r.Stdout, f.name+" is now the master") {
		t.Fatalf("master-failover on %s: %+v", f.name, r)
	}
	if !f.runsQueue() {
		t.Fatalf("%s does not run the queue after master-failover", f.name)
	}
	for _, id := range []int64{running, queued} {
		if st, err := cf.WatchJob(ctx, id, nil); err != nil || st != client.StatusSuccess {
			j, _ := cf.Job(ctx, id)
			t.Fatalf("job %d across the graceful master-failover: %v %v %+v", id, st, err, j)
		}
	}
}

// TestGntJobOnFollower: Ganeti's own gnt-job, which only talks to the
// local socket, lists and shows jobs on a node that is not the master,
// and again after the master is killed.
func TestGntJobOnFollower(t *testing.T) {
	if os.Geteuid() != 0 {
		testbin.Missing(t, "root, for the private mount namespace that shows jobqd's socket where gnt-job looks (/var/run/ganeti/socket)")
	}
	for _, prog := range []string{"gnt-job", "unshare"} {
		if _, err := exec.LookPath(prog); err != nil {
			testbin.Missing(t, "%s (Ganeti's client, util-linux): %v", prog, err)
		}
	}
	if _, err := os.Stat("/var/run/ganeti/socket"); err != nil {
		testbin.Missing(t, "Ganeti's socket directory: %v", err)
	}
	nodes := startCluster(t, 3)
	m := waitMaster(t, nodes...)
	f := followers(m, nodes...)[0]
	ids := submitAndFinish(t, f.client(t), 2)
	sockDir := t.TempDir()
	if err := os.Symlink(f.d.Socket(), filepath.Join(sockDir, "ganeti-query")); err != nil {
		t.Fatal(err)
	}
	gnt := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", append([]string{"-m", "bash", "-c",
			`mount --bind "$0" /var/run/ganeti/socket && export PATH=/usr/sbin:/usr/bin:/sbin:/bin && exec "$@"`, sockDir}, args...)...)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	want := itoa(ids[0]) + " success\n" + itoa(ids[1]) + " success\n"
	if out, err := gnt("gnt-job", "list", "--no-headers", "-o", "id,status"); err != nil || !strings.Contains(out, want) {
		t.Fatalf("gnt-job list on follower %s: %v\n%s", f.name, err, out)
	}
	if out, err := gnt("gnt-job", "info", itoa(ids[1])); err != nil || !strings.Contains(out, "Status: success") {
		t.Fatalf("gnt-job info on follower %s: %v\n%s", f.name, err, out)
	}
	m.d.Kill()
	if out, err := gnt("gnt-job", "list", "--no-headers", "-o", "id,status"); err != nil || !strings.Contains(out, want) {
		t.Fatalf("gnt-job list on %s after the master's kill: %v\n%s", f.name, err, out)
	}
}
