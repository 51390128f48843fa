package execute

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/testci"
)

func sh(script string) Spec {
	return Spec{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"PATH=/usr/bin:/bin", "X=1"}}
}

type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) add(stream, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, stream+":"+text)
}

func TestRunLinesResultExit(t *testing.T) {
	var l lines
	sp := sh(`echo one; echo two >&2; read x; echo "in=$x"; echo "env=$X"; echo '{"ok": true}' >&3; exit 3`)
	sp.Stdin = []byte(`{"a":1}` + "\n")
	var out strings.Builder
	sp.Output = &out
	res, err := Run(context.Background(), sp, l.add)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.Success() {
		t.Fatalf("exit %d success %v, want 3 false", res.ExitCode, res.Success())
	}
	if string(res.Result) != `{"ok": true}` {
		t.Fatalf("result %q", res.Result)
	}
	want := map[string]bool{"stdout:one": true, "stderr:two": true, `stdout:in={"a":1}`: true, "stdout:env=1": true}
	for _, g := range l.got {
		delete(want, g)
	}
	if len(want) != 0 || res.Lines != 4 {
		t.Fatalf("lines %q (%d), missing %v", l.got, res.Lines, want)
	}
	if len(res.StderrTail) != 1 || res.StderrTail[0] != "two" {
		t.Fatalf("stderr tail %q", res.StderrTail)
	}
	if !strings.Contains(out.String(), "stderr: two\n") {
		t.Fatalf("output file %q", out.String())
	}
	if d := res.Describe(time.Second); d != "exited with status 3" {
		t.Fatal(d)
	}
}

func TestRunBadResult(t *testing.T) {
	res, err := Run(context.Background(), sh(`echo 'not json' >&3`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success() || res.Result != nil || !strings.Contains(res.ResultError, "not valid JSON") {
		t.Fatalf("%+v", res)
	}
}

func TestRunNotStarted(t *testing.T) {
	for _, p := range []string{"relative/prog", "/nonexistent/prog"} {
		_, err := Run(context.Background(), Spec{Path: p}, nil)
		if err == nil || !strings.Contains(err.Error(), "not started") {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// TestLineByLine: each line reaches the callback while the program still
// runs: the program waits for a file the callback creates.
func TestLineByLine(t *testing.T) {
	dir := t.TempDir()
	sp := sh(fmt.Sprintf(`for i in 1 2 3; do echo "line $i"; while [ ! -e %s/seen-$i ]; do sleep 0.01; done; done`, dir))
	seen := 0
	res, err := Run(context.Background(), sp, func(stream, text string) {
		seen++
		if text != fmt.Sprintf("line %d", seen) {
			t.Errorf("line %d is %q", seen, text)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("seen-%d", seen)), nil, 0o644)
	})
	if err != nil || !res.Success() || seen != 3 {
		t.Fatalf("%v %+v seen %d", err, res, seen)
	}
}

func cgroups(t *testing.T) Cgroups {
	t.Helper()
	if os.Geteuid() != 0 {
		testci.Missing(t, "containing executions in a cgroup needs root")
	}
	cg, err := FindCgroups("jobq-execute-test")
	if err != nil {
		testci.Missing(t, "no usable cgroup v2: %v", err)
	}
	t.Cleanup(func() {
		cg.KillLeftovers()
		cg.Close()
		if _, err := os.Stat(cg.Parent); err == nil {
			t.Errorf("Close left %s", cg.Parent)
		}
	})
	return cg
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// startsEscapee runs a program that starts a child in a new session
// (setsid) and writes its pid, then sleeps.
func escapee(dir string) Spec {
	return sh(fmt.Sprintf(`setsid sh -c 'echo $$ > %s/child; trap "" TERM; sleep 600' & echo started; sleep 600`, dir))
}

func waitFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written within 20s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCancelKillsSetsidChild: a cancel kills the setsid child too, in a
// cgroup (a process group alone would miss it).
func TestCancelKillsSetsidChild(t *testing.T) {
	cg := cgroups(t)
	dir := t.TempDir()
	sp := escapee(dir)
	sp.Cgroup, sp.Name, sp.KillGrace = cg, "cancel", 200*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Result, 1)
	go func() {
		res, err := Run(ctx, sp, nil)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	child := waitFile(t, filepath.Join(dir, "child"))
	if !alive(child) {
		t.Fatalf("child %d is not running", child)
	}
	cancel()
	var res *Result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of the cancel")
	}
	if !res.Canceled || !res.Contained || res.Success() {
		t.Fatalf("%+v", res)
	}
	if alive(child) {
		t.Fatalf("the setsid child %d survived the cancel", child)
	}
	ents, _ := os.ReadDir(cg.Parent)
	for _, e := range ents {
		// An empty one is kept for the next execution.
		if e.IsDir() && Populated(filepath.Join(cg.Parent, e.Name())) {
			t.Fatalf("cgroup left with processes: %s", e.Name())
		}
	}
}

func TestTimeoutKillsEverything(t *testing.T) {
	cg := cgroups(t)
	dir := t.TempDir()
	sp := escapee(dir)
	sp.Cgroup, sp.Timeout, sp.KillGrace = cg, 300*time.Millisecond, 100*time.Millisecond
	res, err := Run(context.Background(), sp, nil)
	if err != nil {
		t.Fatal(err)
	}
	child := waitFile(t, filepath.Join(dir, "child"))
	if !res.TimedOut || alive(child) {
		t.Fatalf("%+v, child alive %v", res, alive(child))
	}
	if d := res.Describe(sp.Timeout); !strings.Contains(d, "timed out after 300ms") {
		t.Fatal(d)
	}
}

// TestExitKillsLeftovers: a program that exits leaves nothing running.
func TestExitKillsLeftovers(t *testing.T) {
	cg := cgroups(t)
	dir := t.TempDir()
	sp := sh(fmt.Sprintf(`setsid sh -c 'echo $$ > %s/child; exec sleep 600' </dev/null >/dev/null 2>&1 & while [ ! -s %s/child ]; do sleep 0.01; done; exit 0`, dir, dir))
	sp.Cgroup = cg
	res, err := Run(context.Background(), sp, nil)
	if err != nil || !res.Success() {
		t.Fatalf("%v %+v", err, res)
	}
	if child := waitFile(t, filepath.Join(dir, "child")); alive(child) {
		t.Fatalf("the child %d outlived the execution", child)
	}
}

// TestSIGTERMFirst: a program that handles SIGTERM gets to end by itself
// within the grace period.
func TestSIGTERMFirst(t *testing.T) {
	dir := t.TempDir()
	sp := sh(fmt.Sprintf(`trap 'echo got-term; exit 7' TERM; touch %s/ready; while true; do sleep 0.01; done`, dir))
	sp.KillGrace = 20 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFile0(t, filepath.Join(dir, "ready"))
		cancel()
	}()
	var l lines
	res, err := Run(ctx, sp, l.add)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Canceled || res.ExitCode != 7 || !slices.Contains(l.got, "stdout:got-term") {
		t.Fatalf("%+v %q", res, l.got)
	}
}

func waitFile0(t *testing.T, path string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%s did not appear within 20s", path)
}

// BenchmarkTrue: one execution of /bin/true, contained in a cgroup when
// it can be (root), else in a process group; "parallel" runs 20 at once
// (the queue's default of running jobs). Besides the wall time per
// execution it reports the CPU time per execution of this process
// (cpu-self-us/op) and of the programs it ran (cpu-children-us/op).
func BenchmarkTrue(b *testing.B) {
	var cg Cgroups
	if os.Geteuid() == 0 && os.Getenv("JOBQ_BENCH_NO_CGROUP") == "" {
		if c, err := FindCgroups("jobq-execute-bench"); err == nil {
			cg = c
			defer c.Close()
		}
	}
	run := func(b *testing.B) {
		res, err := Run(context.Background(), Spec{Path: "/bin/true", Cgroup: cg, Name: "bench"}, nil)
		if err != nil || !res.Success() {
			b.Fatal(err, res)
		}
	}
	b.Run("serial", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			run(b)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		defer cpuPerOp(b)()
		b.SetParallelism(max(1, 20/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				run(b)
			}
		})
	})
}

// cpuPerOp reports, when the returned function is called, the CPU time
// (user and system) per operation of this process and of its children.
func cpuPerOp(b *testing.B) func() {
	cpu := func(who int) time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(who, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	self, children := cpu(syscall.RUSAGE_SELF), cpu(syscall.RUSAGE_CHILDREN)
	return func() {
		if b.N == 0 {
			return
		}
		n := float64(b.N)
		b.ReportMetric(float64((cpu(syscall.RUSAGE_SELF)-self).Microseconds())/n, "cpu-self-us/op")
		b.ReportMetric(float64((cpu(syscall.RUSAGE_CHILDREN)-children).Microseconds())/n, "cpu-children-us/op")
	}
}

// TestCgroupReuse: an execution after a killed one (its cgroup not
// reused) and after a clean one (reused) runs normally.
func TestCgroupReuse(t *testing.T) {
	cg := cgroups(t)
	dir := t.TempDir()
	sp := escapee(dir)
	sp.Cgroup, sp.Timeout, sp.KillGrace = cg, 200*time.Millisecond, 50*time.Millisecond
	if res, err := Run(context.Background(), sp, nil); err != nil || !res.TimedOut {
		t.Fatalf("%v %+v", err, res)
	}
	for i := range 3 {
		res, err := Run(context.Background(), Spec{Path: "/bin/sh", Args: []string{"-c", "echo ok"}, Cgroup: cg}, nil)
		if err != nil || !res.Success() || !res.Contained {
			t.Fatalf("run %d after a kill: %v %+v", i, err, res)
		}
	}
}

// TestStdin: stdin reaches the program whole, then its end: empty, small
// (written before the start) and larger than a pipe holds (written while
// the program reads it), in a cgroup and without.
func TestStdin(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16) // 300 KiB: more than a pipe holds
	for _, contained := range []bool{false, true} {
		for _, in := range [][]byte{nil, []byte("{\"a\": 1}\n"), big} {
			sp := Spec{Path: "/bin/sh", Args: []string{"-c", "wc -c; cksum"}, Stdin: in}
			if contained {
				sp.Cgroup = cgroups(t)
				sp.Args[1] = "cat >/dev/null; echo done"
			}
			var l lines
			res, err := Run(context.Background(), sp, l.add)
			if err != nil || !res.Success() {
				t.Fatalf("contained %v, %d bytes: %v %+v", contained, len(in), err, res)
			}
			if contained {
				if !slices.Equal(l.got, []string{"stdout:done"}) {
					t.Fatalf("contained, %d bytes: %q", len(in), l.got)
				}
				continue
			}
			// wc reads it all; cksum then finds the end at once.
			if len(l.got) != 2 || strings.TrimSpace(strings.TrimPrefix(l.got[0], "stdout:")) != strconv.Itoa(len(in)) ||
				l.got[1] != "stdout:4294967295 0" {
				t.Fatalf("%d bytes: %q", len(in), l.got)
			}
		}
	}
}

// TestProgramDescriptorsBlock: the program's stdin, stdout, stderr and
// fd 3 are blocking (only jobqd's ends of the pipes are non-blocking: a
// program given a non-blocking stdout fails with EAGAIN when its reader
// lags).
func TestProgramDescriptorsBlock(t *testing.T) {
	var l lines
	res, err := Run(context.Background(), Spec{Path: "/bin/sh", Args: []string{"-c", "for f in 0 1 2 3; do echo $f $(grep flags /proc/self/fdinfo/$f); done"}, Stdin: []byte("x")}, l.add)
	if err != nil || !res.Success() || len(l.got) != 4 {
		t.Fatalf("%v %+v %q", err, res, l.got)
	}
	for _, g := range l.got {
		f := strings.Fields(g)
		flags, err := strconv.ParseInt(f[len(f)-1], 8, 64)
		if err != nil || flags&syscall.O_NONBLOCK != 0 {
			t.Errorf("the program's descriptor is non-blocking: %q", g)
		}
	}
}

// TestNoDescriptorLeak: executions leave no descriptor open here beyond
// the kept cgroups' two each.
func TestNoDescriptorLeak(t *testing.T) {
	cg := cgroups(t)
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	run := func(sp Spec) {
		sp.Cgroup = cg
		if _, err := Run(context.Background(), sp, nil); err != nil {
			t.Fatal(err)
		}
	}
	run(Spec{Path: "/bin/true"})
	before := count()
	for range 20 {
		run(Spec{Path: "/bin/true", Stdin: []byte("x")})
		run(Spec{Path: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2; echo 1 >&3; exit 2"}, Stdin: bytes.Repeat([]byte("x"), 200<<10)})
	}
	if after := count(); after != before {
		t.Fatalf("%d descriptors open before, %d after 40 executions", before, after)
	}
}
