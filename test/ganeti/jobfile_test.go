package ganeti_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
)

// ganetiLib is where Debian's Ganeti 3.0 keeps its Python package.
const ganetiLib = "/usr/share/ganeti/default"

// restoreScript loads a job file with Ganeti's own reader (the job
// process's _QueuedJob.Restore, which reads named members only) and
// prints what Ganeti makes of it.
const restoreScript = `
import sys
sys.path.insert(0, sys.argv[1])
from ganeti import jqueue, serializer
state = serializer.LoadJson(open(sys.argv[2]).read())
j = jqueue._QueuedJob.Restore(None, state, False, False)
print(j.id, j.CalcStatus(), j.CalcPriority(), j.received_timestamp, j.start_timestamp, j.end_timestamp)
for op in j.ops:
    print(op.input.OP_ID, op.status, op.priority, op.start_timestamp, op.exec_timestamp, op.end_timestamp, op.result)
`

// TestJobFilesWithTimingReadByGaneti: a job file with jobq's time members
// (the job's not_before and timeout, each opcode's timeout) reads in
// Ganeti's reader as the same file without them, for every job file of
// the reference queue.
func TestJobFilesWithTimingReadByGaneti(t *testing.T) {
	skipWithoutRefs(t)
	if _, err := os.Stat(filepath.Join(ganetiLib, "ganeti", "jqueue")); err != nil {
		t.Skipf("Ganeti's Python package is not installed (apt-get install -y --no-install-recommends ganeti-3.0): %v", err)
	}
	python, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Skipf("no /usr/bin/python3 for Ganeti's Python package: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(refDir, "queue", "job-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no reference job files in %s/queue (%v)", refDir, err)
	}
	dir := t.TempDir()
	restore := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(python, "-c", restoreScript, ganetiLib, p).CombinedOutput()
		if err != nil {
			t.Fatalf("Ganeti's reader refused %s: %v\n%s\nfile: %s", name, err, out, b)
		}
		return string(out)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		j, err := job.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		plain, err := j.Encode()
		if err != nil {
			t.Fatal(err)
		}
		nb := job.TS(time.Unix(1893456000, 250000000))
		j.SetTiming(job.Timing{NotBefore: &nb, Timeout: 90 * time.Second, OpTimeout: 1500 * time.Millisecond})
		timed, err := j.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for _, member := range []string{`"not_before":[1893456000,250000]`, `"timeout":90`, `"timeout":1.5`} {
			if !strings.Contains(string(timed), member) {
				t.Fatalf("%s: the encoded job lacks %s: %s", f, member, timed)
			}
		}
		want := restore("plain-"+filepath.Base(f), plain)
		if got := restore("timed-"+filepath.Base(f), timed); got != want {
			t.Errorf("%s: Ganeti reads the job with time members differently:\nwithout:\n%s\nwith:\n%s", f, want, got)
		}
	}
}
