package testci

import (
	"fmt"
	"testing"
)

type fakeTB struct{ failed, skipped string }

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.skipped = fmt.Sprintf(format, args...) }

// TestMissingFailsInCI (issue 16, finding 10): the partition tests and
// TestFullDisk skipped when iptables or a tmpfs mount was missing, in CI
// too, where they then guarded nothing.
func TestMissingFailsInCI(t *testing.T) {
	for _, c := range []struct {
		ci, jobqCI string
		fail       bool
	}{
		{"", "", false}, {"true", "", true}, {"", "1", true}, {"0", "", false}, {"false", "false", false},
	} {
		t.Setenv("CI", c.ci)
		t.Setenv("JOBQ_CI", c.jobqCI)
		var f fakeTB
		Missing(&f, "needs %s", "iptables")
		if c.fail && (f.failed == "" || f.skipped != "") {
			t.Errorf("CI=%q JOBQ_CI=%q: failed %q skipped %q, want a failure", c.ci, c.jobqCI, f.failed, f.skipped)
		}
		if !c.fail && (f.skipped == "" || f.failed != "") {
			t.Errorf("CI=%q JOBQ_CI=%q: failed %q skipped %q, want a skip", c.ci, c.jobqCI, f.failed, f.skipped)
		}
	}
}
