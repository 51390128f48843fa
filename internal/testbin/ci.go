package testbin

import "github.com/jobq-dev/jobq/internal/testci"

// TB is the part of testing.TB that Missing uses.
type TB = testci.TB

// Missing ends a test that cannot run here because something it needs
// (root, iptables, a tmpfs mount) is missing: in CI it fails, on a
// developer machine it skips, saying so (testci.Missing).
func Missing(t TB, format string, args ...any) {
	t.Helper()
	testci.Missing(t, format, args...)
}
