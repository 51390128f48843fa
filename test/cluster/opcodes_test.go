package cluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/execute"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// Declared opcodes on a real three-node cluster (issue 15): the programs
// are shell scripts in a directory only root may write; every node runs
// on this machine, so the test sees each node's processes and files.

// writeProg writes an executable script (mode 0755) into dir.
func writeProg(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeDef(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// watchLines runs "jobq watch ID" on n and hands each line of its output
// to fn as it is printed; it returns when the job ends (jobq watch exits).
func watchLines(t *testing.T, n *cnode, id int64, fn func(line string)) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testbin.Build(t), "jobq"), "--data-dir", n.dir, "watch", strconv.FormatInt(id, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	timer := time.AfterFunc(2*time.Minute, func() {
		select {
		case <-done:
		default:
			t.Errorf("jobq watch %d did not end within 2 minutes", id)
			cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		fn(sc.Text())
	}
	close(done)
	_ = cmd.Wait()
}

func alivePid(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written within 30s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until none of pids lives (the kill is asynchronous to
// the job's end on the remote node only by the node RPC's teardown).
func waitGone(t *testing.T, what string, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left []int
		for _, p := range pids {
			if alivePid(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: processes %v still run 30s later", what, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// needCgroups: containment needs root and a writable cgroup v2.
func needCgroups(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testbin.Missing(t, "declared opcodes' containment (a cgroup per execution) needs root")
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if !strings.Contains(string(b), " - cgroup2 ") {
		testbin.Missing(t, "declared opcodes' containment needs a cgroup2 mount")
	}
}

const stepProg = `
# Runs on each node in turn: refuses to run beside another run (the node
# locks and the serial order forbid it), writes two lines and waits after
# each for the test to have seen it through jobq watch.
sync="$JOBQ_PARAM_SYNC"
if ! mkdir "$sync/running" 2>/dev/null; then echo "another run is in progress" >&2; exit 9; fi
for i in 1 2; do
  echo "line $i on $JOBQ_NODE"
  while [ ! -e "$sync/seen-$JOBQ_NODE-$i" ]; do sleep 0.01; done
done
rmdir "$sync/running"
echo "{\"node\": \"$JOBQ_NODE\", \"args\": \"$*\"}" >&3
`

const hangProg = `
# Starts a child in a session of its own (a process group misses it),
# records both pids, says it is ready and sleeps.
sync="$JOBQ_PARAM_SYNC"
setsid sh -c 'echo $$ > "$1/child-$2.tmp"; mv "$1/child-$2.tmp" "$1/child-$2"; trap "" TERM; while true; do sleep 1; done' sh "$sync" "$JOBQ_NODE" </dev/null >/dev/null 2>&1 &
while [ ! -e "$sync/child-$JOBQ_NODE" ]; do sleep 0.01; done
echo $$ > "$sync/parent-$JOBQ_NODE"
echo "ready on $JOBQ_NODE"
while true; do sleep 1; done
`

const onceProg = `
# Hangs at its first run (until its master is lost), succeeds at the next.
sync="$JOBQ_PARAM_SYNC"
if [ ! -e "$sync/once-ran" ]; then
  touch "$sync/once-ran"
  echo $$ > "$sync/once-pid.tmp"; mv "$sync/once-pid.tmp" "$sync/once-pid"
  echo "first run on $JOBQ_NODE"
  while true; do sleep 1; done
fi
echo "second run on $JOBQ_NODE"
echo '{"rerun": true}' >&3
`

const flakyProg = `
# Fails its first attempt, succeeds at the second.
sync="$JOBQ_PARAM_SYNC"
if [ ! -e "$sync/flaky-once" ]; then touch "$sync/flaky-once"; echo "attempt $JOBQ_ATTEMPT fails" >&2; exit 4; fi
echo "attempt $JOBQ_ATTEMPT works"
echo '{"ok": true}' >&3
`

func TestDeclaredOpcodes(t *testing.T) {
	needCgroups(t)
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	// The nodes' execution cgroups (jobqd-HASH of the data directory)
	// go with the test; a killed jobqd cannot remove its own.
	t.Cleanup(func() {
		for _, n := range nodes {
			sum := sha256.Sum256([]byte(n.dir))
			for _, pat := range []string{"/sys/fs/cgroup/jobqd-%s", "/sys/fs/cgroup/*/jobqd-%s"} {
				dirs, _ := filepath.Glob(fmt.Sprintf(pat, hex.EncodeToString(sum[:4])))
				for _, d := range dirs {
					// What a failed test left running goes too.
					os.WriteFile(d+"/cgroup.kill", []byte("1"), 0)
					kids, _ := filepath.Glob(d + "/*/cgroup.procs")
					for _, k := range kids {
						for deadline := time.Now().Add(10 * time.Second); execute.Populated(filepath.Dir(k)) && time.Now().Before(deadline); {
							time.Sleep(10 * time.Millisecond)
						}
						os.Remove(filepath.Dir(k))
					}
					os.Remove(d)
				}
			}
		}
	})
	progs := t.TempDir() // 0700, root's: the programs pass the ownership checks
	sync := t.TempDir()
	step := writeProg(t, progs, "step", stepProg)
	hang := writeProg(t, progs, "hang", hangProg)
	flaky := writeProg(t, progs, "flaky", flakyProg)
	once := writeProg(t, progs, "once", onceProg)
	defs := t.TempDir()
	for _, d := range []struct{ name, body string }{
		{"step", fmt.Sprintf(`id = "OP_STEP"
summary = "Step through nodes one after another"
[[param]]
name = "nodes"
type = "list"
required = true
[[param]]
name = "sync"
type = "string"
required = true
[[param]]
name = "tag"
type = "string"
default = "t1"
[run]
on = "param"
param = "nodes"
order = "serial"
[program]
path = %q
args = ["--tag", "{tag}"]
timeout = "2m"
[[lock]]
level = "node"
param = "nodes"
mode = "exclusive"
`, step)},
		{"hang", fmt.Sprintf(`id = "OP_HANG"
summary = "Hang on a node"
[[param]]
name = "node"
type = "string"
required = true
[[param]]
name = "sync"
type = "string"
required = true
[run]
on = "param"
param = "node"
[program]
path = %q
kill_grace = "500ms"
[[lock]]
level = "node"
param = "node"
mode = "exclusive"
`, hang)},
		{"once", fmt.Sprintf(`id = "OP_ONCE"
summary = "Hang at the first run"
idempotent = true
[[param]]
name = "node"
type = "string"
required = true
[[param]]
name = "sync"
type = "string"
required = true
[run]
on = "param"
param = "node"
[program]
path = %q
kill_grace = "500ms"
[retry]
attempts = 2
`, once)},
		{"flaky", fmt.Sprintf(`id = "OP_FLAKY"
summary = "Fail once"
idempotent = true
[[param]]
name = "node"
type = "string"
required = true
[[param]]
name = "sync"
type = "string"
required = true
[run]
on = "param"
param = "node"
[program]
path = %q
[retry]
attempts = 2
backoff = "10ms"
`, flaky)},
	} {
		if r := n1.jobq(t, "opcode", "add", writeDef(t, defs, d.name, d.body)); r.Code != 0 || !strings.Contains(r.Stdout, " version ") {
			t.Fatalf("opcode add %s: %+v", d.name, r)
		}
	}
	if r := n1.jobq(t, "opcode", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "OP_STEP") || !strings.Contains(r.Stdout, "nodes of nodes (serial, stop at the first failure)") {
		t.Fatalf("opcode list: %+v", r)
	}

	// 1. Serial on three nodes under node locks, each line seen through
	// jobq watch while the program waits for the test to see it.
	r := n1.jobq(t, "submit", "--submit", "OP_STEP", "nodes=node3,node1,node2", "sync="+sync)
	if r.Code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	id, _ := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(r.Stdout), "JobID: "), 10, 64)
	var seen []string
	watchLines(t, n1, id, func(line string) {
		for _, node := range []string{"node1", "node2", "node3"} {
			for _, i := range []string{"1", "2"} {
				if strings.HasSuffix(line, node+": line "+i+" on "+node) {
					seen = append(seen, node+"-"+i)
					if err := os.WriteFile(filepath.Join(sync, "seen-"+node+"-"+i), nil, 0o644); err != nil {
						t.Error(err)
					}
				}
			}
		}
	})
	if got := strings.Join(seen, " "); got != "node3-1 node3-2 node1-1 node1-2 node2-1 node2-2" {
		t.Fatalf("lines seen through watch, in order: %s", got)
	}
	var rows [][]any
	c := n1.client(t)
	if err := c.Call(context.Background(), &rows, "QueryJobs", []int64{id}, []string{"status", "opresult", "ops"}); err != nil {
		t.Fatal(err)
	}
	res, _ := json.Marshal(rows[0][1])
	if rows[0][0] != "success" || !strings.Contains(string(res), `"node2":{"args":"--tag t1","node":"node2"}`) {
		t.Fatalf("job %d: %v %s", id, rows[0][0], res)
	}
	if ops, _ := json.Marshal(rows[0][2]); !strings.Contains(string(ops), `"opcode_version":"`) || !strings.Contains(string(ops), `"tag":"t1"`) {
		t.Fatalf("the job does not record the version and defaults: %s", ops)
	}
	// The whole output is kept on each node that ran it, and jobq opcode
	// output gathers it from every node.
	if r := n1.jobq(t, "opcode", "output", strconv.FormatInt(id, 10)); r.Code != 0 ||
		!strings.Contains(r.Stdout, "==> node2:op0-attempt1.log <==\nstdout: line 1 on node2\nstdout: line 2 on node2\n") ||
		!strings.Contains(r.Stdout, "==> node3:op0-attempt1.log <==\nstdout: line 1 on node3\n") {
		t.Fatalf("opcode output: %+v", r)
	}
	// On disk:
	if b, err := os.ReadFile(filepath.Join(n3.dir, "output", fmt.Sprintf("job-%d", id), "op0-attempt1.log")); err != nil || !strings.Contains(string(b), "stdout: line 2 on node3") {
		t.Fatalf("node3's output file: %q %v", b, err)
	}

	// 2. Refusals before anything is stored, naming the parameter.
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"OP_NOPE"}, "unknown opcode OP_NOPE"},
		{[]string{"OP_STEP", "sync=/x"}, "parameter 'nodes' is missing"},
		{[]string{"OP_STEP", "nodes=node1", "sync=/x", "size=3"}, `"size" is not a parameter of OP_STEP`},
	} {
		r := n1.jobq(t, append([]string{"submit", "--submit"}, bad.args...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, bad.want) {
			t.Errorf("submit %v: %+v, want %q", bad.args, r, bad.want)
		}
	}
	if r := n1.jobq(t, "submit", "--", `{"OP_ID":"OP_STEP","nodes":"node1","sync":"/x"}`); r.Code == 0 || !strings.Contains(r.Stderr, "parameter 'nodes' must be a list of strings, got a string") {
		t.Errorf("raw submit of a mistyped parameter: %+v", r)
	}

	// 3. cancel --kill mid-run on node2: the program and its setsid child
	// are gone, and node2's execution cgroups are empty.
	r = n1.jobq(t, "submit", "--submit", "OP_HANG", "node=node2", "sync="+sync)
	id, _ = strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(r.Stdout), "JobID: "), 10, 64)
	parent := readPid(t, filepath.Join(sync, "parent-node2"))
	child := readPid(t, filepath.Join(sync, "child-node2"))
	if !alivePid(parent) || !alivePid(child) {
		t.Fatalf("hang's processes %d, %d do not run", parent, child)
	}
	if r := n1.jobq(t, "cancel", "--kill", strconv.FormatInt(id, 10)); r.Code != 0 {
		t.Fatalf("cancel --kill: %+v", r)
	}
	st, err := c.WatchJob(context.Background(), id, nil)
	if err != nil || st != client.StatusCanceled {
		t.Fatalf("killed job: %v %v", st, err)
	}
	waitGone(t, "cancel --kill", parent, child)

	// 4. An idempotent definition's failed attempt is retried, each
	// attempt logged.
	r = n1.jobq(t, "submit", "OP_FLAKY", "node=node3", "sync="+sync)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Attempt 1 of 2 failed: OP_FLAKY on node node3 exited with status 4; last lines of stderr: attempt 1 fails") ||
		!strings.Contains(r.Stdout, "Attempt 2 of 2 of OP_FLAKY on node node3") || !strings.Contains(r.Stdout, "attempt 2 works") || !strings.Contains(r.Stdout, `{"ok":true}`) {
		t.Fatalf("flaky: %+v", r)
	}

	// 5. The master is killed while its program runs on node3: the
	// program is stopped, the new master ends the opcode in error, and
	// the definitions are still there. An idempotent one running on
	// node2 meanwhile is run again by the new master.
	for _, f := range []string{"parent-node3", "child-node3"} {
		os.Remove(filepath.Join(sync, f))
	}
	r = n1.jobq(t, "submit", "--submit", "OP_HANG", "node=node3", "sync="+sync)
	id, _ = strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(r.Stdout), "JobID: "), 10, 64)
	parent = readPid(t, filepath.Join(sync, "parent-node3"))
	child = readPid(t, filepath.Join(sync, "child-node3"))
	r = n1.jobq(t, "submit", "--submit", "OP_ONCE", "node=node2", "sync="+sync)
	onceID, _ := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(r.Stdout), "JobID: "), 10, 64)
	if _, err := os.Stat(filepath.Join(sync, "once-pid")); err != nil {
		defer func() {
			if t.Failed() {
				t.Logf("OP_ONCE's job:\n%s", n1.jobq(t, "info", strconv.FormatInt(onceID, 10)).Stdout)
			}
		}()
	}
	oncePid := readPid(t, filepath.Join(sync, "once-pid"))
	waitInSync(t, n1)
	n1.d.Kill()
	waitGone(t, "the master's death", parent, child, oncePid)
	m := waitMaster(t, n2, n3)
	mc := m.client(t)
	st, err = mc.WatchJob(context.Background(), id, nil)
	if err != nil || st != client.StatusError {
		t.Fatalf("job %d after the master's death: %v %v", id, st, err)
	}
	if r := m.jobq(t, "opcode", "info", "OP_HANG"); r.Code != 0 || !strings.Contains(r.Stdout, "Runs on: node node") {
		t.Fatalf("opcode info on the new master %s: %+v", m.name, r)
	}
	var log []string
	st, err = mc.WatchJob(context.Background(), onceID, func(e client.LogEntry) error {
		log = append(log, e.Text())
		return nil
	})
	all := strings.Join(log, "\n")
	if err != nil || st != client.StatusSuccess || !strings.Contains(all, "first run on node2") ||
		!strings.Contains(all, "The master was lost while this opcode ran (1 time(s) now); the new master runs it again") ||
		!strings.Contains(all, "second run on node2") {
		t.Fatalf("idempotent job %d after the master's death: %v %v\n%s", onceID, st, err, all)
	}
}
