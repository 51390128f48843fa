package lossyfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/jobq-dev/jobq/internal/testbin"
)

// mount mounts a layer over a fresh backing directory for the test.
func mount(t *testing.T) *Layer {
	t.Helper()
	if err := Available(); err != nil {
		testbin.Missing(t, "%v", err)
	}
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func crash(t *testing.T, l *Layer) {
	t.Helper()
	if err := l.Crash(); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, s string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func fsyncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// want checks a file's contents through the mount ("" with missing:
// absent) and, after a crash, the same in the backing directory.
func want(t *testing.T, l *Layer, rel, contents string, present bool) {
	t.Helper()
	for _, root := range []string{l.Dir, l.Backing} {
		b, err := os.ReadFile(filepath.Join(root, rel))
		switch {
		case !present && !errors.Is(err, os.ErrNotExist):
			t.Errorf("%s in %s: want it gone, got %q %v", rel, root, b, err)
		case present && err != nil:
			t.Errorf("%s in %s: %v", rel, root, err)
		case present && string(b) != contents:
			t.Errorf("%s in %s: %q, want %q", rel, root, b, contents)
		}
	}
}

func TestUnsyncedDataIsLost(t *testing.T) {
	l := mount(t)
	write(t, filepath.Join(l.Dir, "synced"), "kept", true)
	write(t, filepath.Join(l.Dir, "unsynced"), "lost", false)
	fsyncDir(t, l.Dir)
	// Written and read back before the crash: the cache is seen.
	if b, _ := os.ReadFile(filepath.Join(l.Dir, "unsynced")); string(b) != "lost" {
		t.Fatalf("unsynced data not read back: %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(l.Dir, "unsynced")); fi.Size() != 4 {
		t.Fatalf("stat shows %d bytes, want the cached 4", fi.Size())
	}
	// Overwrite a synced file without syncing: the old contents survive.
	write(t, filepath.Join(l.Dir, "synced"), "newer and longer", false)
	crash(t, l)
	want(t, l, "synced", "kept", true)
	// Its name was synced (the directory), its data was not: empty.
	want(t, l, "unsynced", "", true)
}

func TestFsyncOfAFileMakesItsNameDurable(t *testing.T) {
	l := mount(t)
	write(t, filepath.Join(l.Dir, "a"), "A", true)
	write(t, filepath.Join(l.Dir, "b"), "B", false) // name and data unsynced
	crash(t, l)
	want(t, l, "a", "A", true)
	want(t, l, "b", "", false)
}

func TestNewDirectoryNeedsItsParentSynced(t *testing.T) {
	l := mount(t)
	for _, d := range []string{"d1", "d2"} {
		if err := os.Mkdir(filepath.Join(l.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(l.Dir, d, "f"), "x", true)
	}
	fsyncDir(t, filepath.Join(l.Dir)) // d1 and d2's entries
	if err := os.Mkdir(filepath.Join(l.Dir, "d3"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(l.Dir, "d3", "f"), "x", true) // d3 itself never synced in its parent
	fsyncDir(t, filepath.Join(l.Dir, "d3"))              // its entries, not its name
	crash(t, l)
	want(t, l, "d1/f", "x", true)
	want(t, l, "d3", "", false)
}

func TestRenameDurableWithItsDirectory(t *testing.T) {
	l := mount(t)
	write(t, filepath.Join(l.Dir, "job"), "old", true)
	write(t, filepath.Join(l.Dir, ".job.tmp"), "new", true)
	fsyncDir(t, l.Dir)
	// Renamed, the directory not synced: the old state.
	if err := os.Rename(filepath.Join(l.Dir, ".job.tmp"), filepath.Join(l.Dir, "job")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(l.Dir, "job")); err == nil {
		write(t, filepath.Join(l.Dir, "job"), "newer", true) // a new inode named job: its fsync syncs that name
	}
	crash(t, l)
	want(t, l, "job", "newer", true)
	want(t, l, ".job.tmp", "new", true) // the rename's source was never synced away

	write(t, filepath.Join(l.Dir, ".b.tmp"), "b", true)
	if err := os.Rename(filepath.Join(l.Dir, ".b.tmp"), filepath.Join(l.Dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(l.Dir, "job")); err != nil {
		t.Fatal(err)
	}
	crash(t, l)
	want(t, l, ".b.tmp", "b", true)
	want(t, l, "b", "", false)
	want(t, l, "job", "newer", true) // the unlink was not synced

	if err := os.Rename(filepath.Join(l.Dir, ".b.tmp"), filepath.Join(l.Dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(l.Dir, "job")); err != nil {
		t.Fatal(err)
	}
	fsyncDir(t, l.Dir)
	crash(t, l)
	want(t, l, ".b.tmp", "", false)
	want(t, l, "b", "b", true)
	want(t, l, "job", "", false)
}

func TestTruncateAndPreallocate(t *testing.T) {
	l := mount(t)
	p := filepath.Join(l.Dir, "f")
	big := strings.Repeat("0123456789", 5000) // several pages
	write(t, p, big, true)
	if err := os.Truncate(p, 7); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != big[:7] {
		t.Fatalf("after truncate: %d bytes", len(b))
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 1<<26); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 1<<27); err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != 1<<26 {
		t.Fatalf("size after fallocate: %d", fi.Size())
	}
	if _, err := f.WriteAt([]byte("tail"), 1<<26-4); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 20)
	if _, err := f.ReadAt(b, 1<<20); err != nil || !bytes.Equal(b, make([]byte, 20)) {
		t.Fatalf("preallocated space reads %q %v, want zeros", b, err)
	}
	// flock and O_EXCL, as etcd's WAL uses them.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, os.ErrExist) {
		t.Fatalf("O_EXCL over an existing file: %v", err)
	}
	f.Close()
	crash(t, l) // the truncate, the fallocate and the tail were not synced
	want(t, l, "f", big, true)

	f, err = os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	crash(t, l)
	want(t, l, "f", big[:3]+"\x00\x00\x00\x00\x00\x00\x00", true)
}

// TestSyncfsNotForwarded: the kernel sends FUSE_SYNCFS to virtiofs only,
// so syncfs(2) on a FUSE mount makes nothing durable. A program that
// relies on syncfs loses its data on such a file system.
func TestSyncfsNotForwarded(t *testing.T) {
	l := mount(t)
	write(t, filepath.Join(l.Dir, "f"), "x", false)
	d, err := os.Open(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		t.Fatal(err)
	}
	d.Close()
	crash(t, l)
	want(t, l, "f", "", false)
}

// TestEtcdWAL runs etcd's WAL (as internal/consensus uses it) on the
// layer: what it acknowledged as saved (Save with a hard state syncs)
// survives a crash, across segment cuts.
func TestEtcdWAL(t *testing.T) {
	l := mount(t)
	dir := filepath.Join(l.Dir, "wal")
	old := wal.SegmentSizeBytes
	wal.SegmentSizeBytes = 64 << 10 // cut segments often
	t.Cleanup(func() { wal.SegmentSizeBytes = old })
	w, err := wal.Create(zap.NewNop(), dir, []byte("meta"))
	if err != nil {
		t.Fatal(err)
	}
	var saved uint64
	for i := uint64(1); i <= 300; i++ {
		e := &raftpb.Entry{Index: new(i), Term: new(uint64(1)), Data: bytes.Repeat([]byte{byte(i)}, 700)}
		if err := w.Save(&raftpb.HardState{Term: new(uint64(1)), Commit: new(i)}, []*raftpb.Entry{e}); err != nil {
			t.Fatal(err)
		}
		saved = i
	}
	// Entries written without a sync (no hard state: Save does not sync).
	f, err := os.OpenFile(filepath.Join(dir, "extra"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	w.Close()
	crash(t, l)
	w, err = wal.Open(zap.NewNop(), dir, &walpb.Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	meta, hs, ents, err := w.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if string(meta) != "meta" || hs.GetCommit() != saved || uint64(len(ents)) != saved {
		t.Fatalf("after the crash: meta %q commit %d, %d entries; want %d", meta, hs.GetCommit(), len(ents), saved)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(names) < 3 {
		t.Errorf("want several segments, got %v", names)
	}
	if _, err := os.Stat(filepath.Join(dir, "extra")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unsynced creation survived: %v", err)
	}
}
