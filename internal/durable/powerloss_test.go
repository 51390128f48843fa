package durable

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jobq-dev/jobq/internal/lossyfs"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// TestPowerLoss: on a file system that keeps only what was synced
// (internal/lossyfs), what this package wrote survives a power loss:
// new directories (their entries synced in their parents: syncing a
// file inside, or the directory itself, does not make its name durable),
// files written, renamed and removed.
func TestPowerLoss(t *testing.T) {
	if err := lossyfs.Available(); err != nil {
		testbin.Missing(t, "%v", err)
	}
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := lossyfs.Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(MkdirAll(filepath.Join(mnt, "data/cluster/raft"), 0o750))
	must(WriteFile(filepath.Join(mnt, "data/cluster/cert.pem"), []byte("cert"), 0o640))
	must(WriteFile(filepath.Join(mnt, "data/cluster/old"), []byte("old"), 0o640))
	must(Rename(filepath.Join(mnt, "data/cluster/old"), filepath.Join(mnt, "data/cluster/raft/moved")))
	must(Create(filepath.Join(mnt, "data/mark"), 0o640))
	must(Remove(filepath.Join(mnt, "data/mark")))
	// Not through this package: lost.
	must(os.Mkdir(filepath.Join(mnt, "data/plain"), 0o750))
	must(WriteFile(filepath.Join(mnt, "data/plain/f"), []byte("f"), 0o640))
	must(SyncDir(filepath.Join(mnt, "data/plain")))
	must(l.Crash())
	for rel, want := range map[string]string{"data/cluster/cert.pem": "cert", "data/cluster/raft/moved": "moved"} {
		b, err := os.ReadFile(filepath.Join(mnt, rel))
		if want == "moved" {
			want = "old"
		}
		if err != nil || string(b) != want {
			t.Errorf("%s after the power loss: %q %v, want %q", rel, b, err, want)
		}
	}
	for _, rel := range []string{"data/cluster/old", "data/mark", "data/plain"} {
		if _, err := os.Stat(filepath.Join(mnt, rel)); !os.IsNotExist(err) {
			t.Errorf("%s after the power loss: %v, want it gone", rel, err)
		}
	}
}
