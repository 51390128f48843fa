package queue

import (
	"testing"

	"github.com/jobq-dev/jobq/internal/job"
)

// max_running_jobs changes at run time: raised, queued jobs start at once;
// lowered, running jobs go on and no new one starts until fewer run.
func TestSetMaxRunning(t *testing.T) {
	h := newHarness(t, t.TempDir(), 1)
	a := h.submit(gate("a"))
	b := h.submit(gate("b"))
	c := h.submit(gate("c"))
	h.staysQueued(b, "a")
	h.q.SetMaxRunning(3)
	if got := h.q.MaxRunning(); got != 3 {
		t.Fatalf("MaxRunning() = %d", got)
	}
	for _, n := range []string{"b", "c"} {
		s, _ := h.g.get(n)
		await(t, s, "job "+n+" to start once three may run")
	}
	h.q.SetMaxRunning(1)
	d := h.submit(gate("d"))
	for _, n := range []string{"a", "b"} {
		_, r := h.g.get(n)
		close(r)
	}
	h.waitFinal(a)
	h.waitFinal(b)
	// c still runs: d waits although two of three slots freed.
	if st := h.status(d); st != job.StatusQueued {
		t.Fatalf("job beyond the lowered limit is %s", st)
	}
	_, r := h.g.get("c")
	close(r)
	h.waitFinal(c)
	s, r := h.g.get("d")
	await(t, s, "job d to start once c ended")
	close(r)
	h.waitFinal(d)
	h.q.SetMaxRunning(0)
	if got := h.q.MaxRunning(); got != DefaultMaxRunning {
		t.Fatalf("MaxRunning() after 0 = %d", got)
	}
}
