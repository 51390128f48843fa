package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// faultFS is the real file system with one fault armed at a time: the
// next call that matches fails with err instead of reaching the disk.
type faultFS struct {
	OSFS
	mu sync.Mutex
	// writeData fails the WriteFile whose data is this; renameTo fails
	// the Rename onto a path ending in this name; syncAt fails the
	// syncfs call with this number (1 = the next one).
	writeData []byte
	renameTo  string
	syncAt    int
	err       error
	fired     int
}

func (f *faultFS) WriteFile(path string, data []byte, perm fs.FileMode) error {
	f.mu.Lock()
	hit := f.writeData != nil && bytes.Equal(data, f.writeData)
	if hit {
		f.writeData = nil
		f.fired++
	}
	f.mu.Unlock()
	if hit {
		// As a real failed write may: the temporary file exists, with
		// part of the data.
		_ = os.WriteFile(path, data[:len(data)/2], perm)
		return &fs.PathError{Op: "write", Path: path, Err: f.err}
	}
	return f.OSFS.WriteFile(path, data, perm)
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	f.mu.Lock()
	hit := f.renameTo != "" && filepath.Base(newpath) == f.renameTo
	if hit {
		f.renameTo = ""
		f.fired++
	}
	f.mu.Unlock()
	if hit {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: f.err}
	}
	return f.OSFS.Rename(oldpath, newpath)
}

func (f *faultFS) Sync(files, dirs []string) error {
	f.mu.Lock()
	hit := false
	if f.syncAt > 0 {
		f.syncAt--
		if hit = f.syncAt == 0; hit {
			f.fired++
		}
	}
	f.mu.Unlock()
	if hit {
		return &fs.PathError{Op: "fsync", Path: "queue", Err: f.err}
	}
	return f.OSFS.Sync(files, dirs)
}

func (f *faultFS) arm(set func(f *faultFS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fired = 0
	set(f)
}

func (f *faultFS) firedOnce(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fired != 1 {
		t.Fatalf("the armed fault fired %d times, want once", f.fired)
	}
}

// batchOf submits writes (name -> content) as one batch and returns their
// tickets by name.
func batchOf(s *Store, writes ...[2]string) map[string]Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Ticket{}
	for _, w := range writes {
		out[w[0]] = s.addLocked(op{kind: opWrite, name: w[0], data: []byte(w[1])})
	}
	return out
}

// checkDir checks that the queue directory holds exactly want (name ->
// content) besides the store's own files, and no temporary file.
func checkDir(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range ents {
		switch n := e.Name(); {
		case isTemp(n) || strings.Contains(n, ".tmp"):
			t.Errorf("temporary file %s left behind", n)
		case n == "lock" || n == "version" || n == "archive":
		default:
			got[n] = read(t, filepath.Join(dir, n))
		}
	}
	if len(got) != len(want) {
		t.Errorf("queue directory holds %v, want %v", got, want)
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s holds %q, want %q (torn or lost)", n, got[n], w)
		}
	}
}

// TestInjectedIOErrors fails one write, one rename and each of a batch's
// two syncs with EIO through the file-system seam: exactly the affected
// changes fail, with an error that names the file and the cause; no
// temporary file is left; no target is torn; later changes succeed.
func TestInjectedIOErrors(t *testing.T) {
	dir := t.TempDir()
	ffs := &faultFS{err: syscall.EIO}
	s, err := Open(dir, nil, WithFS(ffs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write("job-1", []byte("one v1")).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write("job-2", []byte("two v1")).Wait(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"job-1": "one v1", "job-2": "two v1"}
	checkDir(t, dir, want)

	isEIO := func(t *testing.T, err error, prefix string) {
		t.Helper()
		if err == nil || !errors.Is(err, syscall.EIO) || !strings.HasPrefix(err.Error(), prefix) ||
			!strings.Contains(err.Error(), "input/output error") {
			t.Fatalf("error %v, want %q... wrapping EIO", err, prefix)
		}
	}

	t.Run("write", func(t *testing.T) {
		ffs.arm(func(f *faultFS) { f.writeData = []byte("two v2") })
		tk := batchOf(s, [2]string{"job-1", "one v2"}, [2]string{"job-2", "two v2"}, [2]string{"job-3", "three v1"})
		isEIO(t, tk["job-2"].Wait(), "cannot write job-2: ")
		for _, n := range []string{"job-1", "job-3"} {
			if err := tk[n].Wait(); err != nil {
				t.Fatalf("%s, in the same batch, failed: %v", n, err)
			}
		}
		ffs.firedOnce(t)
		want["job-1"], want["job-3"] = "one v2", "three v1"
		checkDir(t, dir, want)
	})

	t.Run("rename", func(t *testing.T) {
		ffs.arm(func(f *faultFS) { f.renameTo = "job-1" })
		tk := batchOf(s, [2]string{"job-1", "one v3"}, [2]string{"job-2", "two v3"})
		isEIO(t, tk["job-1"].Wait(), "cannot update job-1: ")
		if err := tk["job-2"].Wait(); err != nil {
			t.Fatalf("job-2, in the same batch, failed: %v", err)
		}
		ffs.firedOnce(t)
		want["job-2"] = "two v3"
		checkDir(t, dir, want)
	})

	t.Run("sync before renames", func(t *testing.T) {
		// Nothing has been renamed yet: every change of the batch fails
		// and no target changes.
		ffs.arm(func(f *faultFS) { f.syncAt = 1 })
		tk := batchOf(s, [2]string{"job-1", "one v4"}, [2]string{"job-4", "four v1"})
		for _, n := range []string{"job-1", "job-4"} {
			isEIO(t, tk[n].Wait(), "cannot sync queue: ")
		}
		ffs.firedOnce(t)
		checkDir(t, dir, want)
	})

	t.Run("sync after renames", func(t *testing.T) {
		// The renames are done but not known to be durable: every change
		// of the batch fails; each target holds its old or its new
		// content, whole.
		ffs.arm(func(f *faultFS) { f.syncAt = 2 })
		tk := batchOf(s, [2]string{"job-2", "two v4"}, [2]string{"job-5", "five v1"})
		for _, n := range []string{"job-2", "job-5"} {
			isEIO(t, tk[n].Wait(), "cannot sync queue: ")
		}
		ffs.firedOnce(t)
		want["job-2"], want["job-5"] = "two v4", "five v1"
		checkDir(t, dir, want)
	})

	t.Run("ENOSPC", func(t *testing.T) {
		ffs.arm(func(f *faultFS) { f.writeData, f.err = []byte("six v1"), syscall.ENOSPC })
		err := s.Write("job-6", []byte("six v1")).Wait()
		if !errors.Is(err, syscall.ENOSPC) || err.Error() != "cannot write job-6: write "+filepath.Join(dir, ".tmp0")+": no space left on device" {
			t.Fatalf("full disk: %v", err)
		}
		ffs.firedOnce(t)
		checkDir(t, dir, want)
	})

	// The store keeps working: every file can be written again.
	for _, n := range []string{"job-1", "job-2", "job-3", "job-4", "job-5", "job-6"} {
		if err := s.Write(n, []byte(n+" final")).Wait(); err != nil {
			t.Fatalf("%s after the faults: %v", n, err)
		}
		want[n] = n + " final"
	}
	if err := s.Rename("job-6", ArchiveName(6)).Wait(); err != nil {
		t.Fatal(err)
	}
	delete(want, "job-6")
	checkDir(t, dir, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What is on disk is what a restart reads.
	s2 := open(t, dir)
	ids, err := s2.JobIDs()
	if err != nil || len(ids) != 5 {
		t.Fatalf("job ids after reopening: %v %v", ids, err)
	}
}

// TestDefaultFSIsOS checks that Open without options uses the real file
// system.
func TestDefaultFSIsOS(t *testing.T) {
	s := open(t, t.TempDir())
	if _, ok := s.fs.(OSFS); !ok {
		t.Fatalf("default FS is %T", s.fs)
	}
}
