// Package testci says whether tests run in CI, where a missing capability
// fails a test instead of skipping it. It imports nothing of jobq's, so
// that every package's tests may use it (testbin.Missing is the same).
package testci

import (
	"fmt"
	"os"
)

// CIEnv are the environment variables that say a test runs in CI: CI (set
// by most CI services) or JOBQ_CI (exported by .ci/run).
var CIEnv = []string{"CI", "JOBQ_CI"}

// InCI reports whether the tests run in CI, and why.
func InCI() (bool, string) {
	for _, k := range CIEnv {
		if v := os.Getenv(k); v != "" && v != "0" && v != "false" {
			return true, k + "=" + v
		}
	}
	return false, ""
}

// TB is the part of testing.TB that Missing uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Missing ends a test that cannot run here because something it needs
// (root, iptables, a tmpfs mount) is missing: in CI it fails, since a
// test that skips there guards nothing; on a developer machine it skips,
// saying so.
func Missing(t TB, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	if ci, why := InCI(); ci {
		t.Fatalf("%s; this is CI (%s), where it must be available (.ci/run runs as root and installs it)", what, why)
		return
	}
	t.Skipf("%s; skipped on this developer machine (in CI, with CI or JOBQ_CI set, this fails)", what)
}
