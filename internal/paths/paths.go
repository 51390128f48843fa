// Package paths names where a jobq node keeps its state, for the daemon,
// the CLI and the Go client alike.
package paths

import (
	"os"
	"path/filepath"
)

// SocketPath is the LUXI socket of the jobqd whose data directory is
// dataDir.
func SocketPath(dataDir string) string {
	return filepath.Join(dataDir, "socket", "jobq-query")
}

// DefaultDataDir is jobqd's default data directory: /var/lib/jobq for
// root, else $XDG_STATE_HOME/jobq (~/.local/state/jobq when XDG_STATE_HOME
// is unset).
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/jobq"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "jobq")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "jobq")
	}
	return filepath.Join(home, ".local", "state", "jobq")
}
