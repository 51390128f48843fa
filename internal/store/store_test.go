package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenCreatesLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	open(t, dir)
	if got := read(t, filepath.Join(dir, "version")); got != "1\n" {
		t.Fatalf("version %q", got)
	}
	for _, p := range []string{"lock", "archive"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != DirMode {
		t.Fatalf("queue dir mode %v", fi.Mode().Perm())
	}
}

func TestWriteRenameRemove(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Write("job-1", []byte("one")).Wait(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "job-1"))
	if fi.Mode().Perm() != FileMode {
		t.Fatalf("job file mode %v", fi.Mode().Perm())
	}
	if err := s.Rename("job-1", ArchiveName(1)).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "archive", "0", "job-1")); got != "one" {
		t.Fatalf("archived %q", got)
	}
	b, ok, err := s.ReadArchived(1)
	if !ok || err != nil || string(b) != "one" {
		t.Fatalf("ReadArchived: %q %v %v", b, ok, err)
	}
	if _, ok, _ := s.ReadArchived(2); ok {
		t.Fatal("archived job 2 found")
	}
	if ids, _ := s.ArchivedIDs(); fmt.Sprint(ids) != "[1]" {
		t.Fatal(ids)
	}
	if err := s.SetDrain(true); err != nil || !s.Drained() {
		t.Fatalf("drain: %v", err)
	}
	if err := s.SetDrain(false); err != nil || s.Drained() {
		t.Fatalf("undrain: %v", err)
	}
	if err := s.SetDrain(false); err != nil {
		t.Fatalf("undrain twice: %v", err)
	}
}

func TestGroupCommitSharesSyncsAndLatestWins(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	const writers, per = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				name := JobFileName(int64(w + 1))
				if err := s.Write(name, []byte(fmt.Sprint(i))).Wait(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.Batches >= writers*per {
		t.Fatalf("%d writes took %d batches: no group commit", writers*per, st.Batches)
	}
	for w := range writers {
		if got := read(t, filepath.Join(dir, JobFileName(int64(w+1)))); got != fmt.Sprint(per-1) {
			t.Fatalf("job-%d holds %q, want the last write", w+1, got)
		}
	}
}

func TestLatestContentWinsWithinBatch(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	// Hold the committer on a first batch so the next writes accumulate.
	s.mu.Lock()
	t1 := s.addLocked(op{kind: opWrite, name: "job-1", data: []byte("a")})
	t2 := s.addLocked(op{kind: opWrite, name: "job-1", data: []byte("b")})
	n := len(s.pending.ops)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("two writes of one file made %d ops", n)
	}
	if err := t1.Wait(); err != nil {
		t.Fatal(err)
	}
	t2.Wait()
	if got := read(t, filepath.Join(dir, "job-1")); got != "b" {
		t.Fatalf("job-1 = %q", got)
	}
}

func TestFailuresAreReportedPerChange(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	// A directory where job-2 should be: replacing it fails.
	if err := os.MkdirAll(filepath.Join(dir, "job-2", "x"), 0o750); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	good := s.addLocked(op{kind: opWrite, name: "job-1", data: []byte("x")})
	noDir := s.addLocked(op{kind: opWrite, name: "job-2", data: []byte("x")})
	noSrc := s.addLocked(op{kind: opRename, name: "job-9", dst: ArchiveName(9)})
	newDir := s.addLocked(op{kind: opWrite, name: "archive/7/job-70000", data: []byte("x")})
	s.mu.Unlock()
	if err := good.Wait(); err != nil {
		t.Fatalf("good write failed: %v", err)
	}
	if err := noDir.Wait(); err == nil || !strings.Contains(err.Error(), "cannot update job-2") {
		t.Fatalf("write over a directory: %v", err)
	}
	if err := newDir.Wait(); err != nil {
		t.Fatalf("a write into a new directory: %v", err)
	}
	if err := noSrc.Wait(); err == nil {
		t.Fatal("renaming a missing file succeeded")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if isTemp(e.Name()) {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestClosedStoreRefuses(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Write("job-1", nil).Wait(); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLockedAndVersion(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	os.WriteFile(filepath.Join(dir, "version"), []byte("garbage"), 0o640)
	if _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("garbage version: %v", err)
	}
}

func TestSerialAndLeftovers(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "archive", "3"), 0o750)
	os.WriteFile(filepath.Join(dir, "archive", "3", "job-30007"), []byte("{}"), 0o640)
	os.WriteFile(filepath.Join(dir, "serial"), []byte("12\n"), 0o640)
	os.WriteFile(filepath.Join(dir, ".job-5.tmp17"), []byte("torn"), 0o640)
	s := open(t, dir)
	if _, err := os.Stat(filepath.Join(dir, ".job-5.tmp17")); err == nil {
		t.Fatal("temporary file from a crash was not removed")
	}
	if n, err := s.ReadSerial(0); n != 30007 || err != nil {
		t.Fatalf("serial with an archive: %d %v", n, err)
	}
	if n, _ := s.ReadSerial(40000); n != 40000 {
		t.Fatalf("serial below a live job: %d", n)
	}
	os.WriteFile(filepath.Join(dir, "serial"), []byte("x\n"), 0o640)
	if _, err := s.ReadSerial(0); err == nil {
		t.Fatal("corrupt serial accepted")
	}
}

func TestParseJobFileName(t *testing.T) {
	for name, want := range map[string]int64{"job-1": 1, "job-10000": 10000, "job-0": 0, "job-01": 0,
		"job-": 0, "job-x": 0, "job--1": 0, "serial": 0, ".job-1.tmp3": 0} {
		id, ok := ParseJobFileName(name)
		if id != want || ok != (want > 0) {
			t.Errorf("%q: %d %v", name, id, ok)
		}
	}
	if ArchiveName(123456) != "archive/12/job-123456" {
		t.Fatal(ArchiveName(123456))
	}
}

func BenchmarkGroupCommit(b *testing.B) {
	s, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := []byte(strings.Repeat("x", 800))
	var n int64
	var mu sync.Mutex
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			id := n
			mu.Unlock()
			if err := s.Write(JobFileName(id), data).Wait(); err != nil {
				b.Error(err)
			}
		}
	})
	st := s.Stats()
	b.ReportMetric(float64(st.Ops)/float64(max(st.Batches, 1)), "writes/batch")
}

// TestWriteAfter: a conditional write is made only when the changes it
// depends on succeeded, in the same batch or an earlier one; the changes
// a replicator adds to a batch are made only if the whole batch was.
func TestWriteAfter(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := os.MkdirAll(filepath.Join(dir, "job-2", "x"), 0o750); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	ok1 := s.addLocked(op{kind: opWrite, name: "job-1", data: []byte("1")})
	bad := s.addLocked(op{kind: opWrite, name: "job-2", data: []byte("2")})
	afterBad := s.addLocked(op{kind: opWrite, name: "pos-a", data: []byte("a"), deps: []Ticket{ok1, bad}})
	afterOK := s.addLocked(op{kind: opWrite, name: "pos-b", data: []byte("b"), deps: []Ticket{ok1}})
	all := s.addLocked(op{kind: opWrite, name: "pos-c", data: []byte("c"), afterAll: true})
	s.mu.Unlock()
	if err := afterBad.Wait(); !errors.Is(err, ErrDependency) {
		t.Errorf("write after a failed change: %v", err)
	}
	if err := afterOK.Wait(); err != nil {
		t.Errorf("write after a good change: %v", err)
	}
	if err := all.Wait(); !errors.Is(err, ErrDependency) {
		t.Errorf("write after a batch with a failure: %v", err)
	}
	for name, want := range map[string]bool{"pos-a": false, "pos-b": true, "pos-c": false} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", name, err == nil, want)
		}
	}
	// A dependency in an earlier, finished batch.
	if err := s.WriteAfter("pos-d", []byte("d"), ok1).Wait(); err != nil {
		t.Errorf("write after an earlier batch's change: %v", err)
	}
	if err := s.WriteAfter("pos-e", []byte("e"), bad).Wait(); !errors.Is(err, ErrDependency) {
		t.Errorf("write after an earlier batch's failed change: %v", err)
	}
}
