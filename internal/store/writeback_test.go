package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// countFS counts the files the store writes.
type countFS struct {
	OSFS
	writes atomic.Int64
}

func (c *countFS) WriteFile(path string, data []byte, perm fs.FileMode) error {
	c.writes.Add(1)
	return c.OSFS.WriteFile(path, data, perm)
}

func openWB(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func write(name, data string) Change { return Change{Kind: "write", Name: name, Data: []byte(data)} }

func mustApply(t *testing.T, s *Store, cs ...Change) {
	t.Helper()
	if err := s.ApplyBatch(cs, false); err != nil {
		t.Fatal(err)
	}
}

func onDisk(t *testing.T, dir, name string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// Successive versions of a file, in one batch or several, are written
// once, when the buffer is flushed: by a read of that file.
func TestWriteBackCoalesces(t *testing.T) {
	dir := t.TempDir()
	c := &countFS{}
	s := openWB(t, dir, WithFS(c), WithFlushInterval(time.Hour))
	mustApply(t, s, write("job-1", "queued"), write("serial", "1\n"))
	mustApply(t, s, write("job-1", "running"))
	mustApply(t, s, write("job-1", "success"), write("job-2", "queued"), write("serial", "2\n"))
	if _, ok := onDisk(t, dir, "job-1"); ok || c.writes.Load() != 0 {
		t.Fatalf("written before a flush: %d files", c.writes.Load())
	}
	if st := s.FlushStats(); st.Applied != 6 || st.Waiting != 3 {
		t.Fatalf("stats before the flush: %+v", st)
	}
	// A read of a file with nothing waiting does not flush.
	if _, err := s.ReadFile("drain"); !errors.Is(err, fs.ErrNotExist) || c.writes.Load() != 0 {
		t.Fatalf("reading drain: %v, %d files written", err, c.writes.Load())
	}
	b, err := s.ReadJob(1)
	if err != nil || string(b) != "success" {
		t.Fatalf("ReadJob(1) = %q, %v", b, err)
	}
	if n := c.writes.Load(); n != 3 {
		t.Fatalf("%d files written for job-1, job-2 and serial", n)
	}
	if got, _ := onDisk(t, dir, "serial"); got != "2\n" {
		t.Fatalf("serial %q", got)
	}
	if st := s.FlushStats(); st.Written != 3 || st.Waiting != 0 || st.Flushes != 1 {
		t.Fatalf("stats after the flush: %+v", st)
	}
}

// Renames and removals keep their order relative to the writes of the
// same names.
func TestWriteBackOrder(t *testing.T) {
	dir := t.TempDir()
	s := openWB(t, dir, WithFlushInterval(time.Hour))
	mustApply(t, s,
		write("job-1", "v1"),
		Change{Kind: "rename", Name: "job-1", Dst: ArchiveName(1)}, // archive/0/job-1 = v1
		write("job-1", "v2"),                  // a new job-1 after the rename
		Change{Kind: "remove", Name: "job-2"}, // missing: no error
		write("job-2", "x"),
		Change{Kind: "remove", Name: "job-2"}, // replaces the write
		write("job-3", "a"),
		Change{Kind: "rename", Name: "job-3", Dst: "job-4"},
		Change{Kind: "remove", Name: "job-4"},
		write("job-4", "b"), // after the removal
	)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"job-1": "v2", ArchiveName(1): "v1", "job-4": "b"}
	for _, n := range []string{"job-1", ArchiveName(1), "job-2", "job-3", "job-4"} {
		got, ok := onDisk(t, dir, n)
		if w, wok := want[n]; ok != wok || got != w {
			t.Errorf("%s: %q (%v), want %q (%v)", n, got, ok, w, wok)
		}
	}
}

// Every way of reading the directory through the store flushes first.
func TestWriteBackFlushesBeforeReads(t *testing.T) {
	reads := map[string]func(s *Store) (string, error){
		"ReadJob": func(s *Store) (string, error) {
			b, err := s.ReadJob(7)
			return string(b), err
		},
		"JobIDs": func(s *Store) (string, error) {
			ids, err := s.JobIDs()
			if len(ids) == 1 && ids[0] == 7 {
				return "v", err
			}
			return "", err
		},
		"ReadSerial": func(s *Store) (string, error) {
			n, err := s.ReadSerial(0)
			if n == 9 {
				return "v", err
			}
			return "", err
		},
		"ReadArchived": func(s *Store) (string, error) {
			b, _, err := s.ReadArchived(8)
			return string(b), err
		},
		"ArchivedIDs": func(s *Store) (string, error) {
			ids, err := s.ArchivedIDs()
			if len(ids) == 1 && ids[0] == 8 {
				return "v", err
			}
			return "", err
		},
		"ArchiveStats": func(s *Store) (string, error) {
			st, err := s.ArchiveStats()
			if len(st) == 1 && st[0].ID == 8 {
				return "v", err
			}
			return "", err
		},
		"Drained": func(s *Store) (string, error) {
			if s.Drained() {
				return "v", nil
			}
			return "", nil
		},
		"Sync": func(s *Store) (string, error) {
			err := s.Sync()
			got, _ := os.ReadFile(filepath.Join(s.Dir(), "job-7"))
			return string(got), err
		},
		"Flush": func(s *Store) (string, error) {
			err := s.Flush()
			got, _ := os.ReadFile(filepath.Join(s.Dir(), "job-7"))
			return string(got), err
		},
		"Close": func(s *Store) (string, error) {
			err := s.Close()
			got, _ := os.ReadFile(filepath.Join(s.Dir(), "job-7"))
			return string(got), err
		},
		"MoveAside": func(s *Store) (string, error) {
			dst, err := s.MoveAside("job-7", "x")
			if err != nil {
				return "", err
			}
			got, err := os.ReadFile(filepath.Join(s.Dir(), dst))
			return string(got), err
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			s := openWB(t, t.TempDir(), WithFlushInterval(time.Hour))
			mustApply(t, s, write("job-7", "v"), write("serial", "9\n"), write("drain", ""),
				write("job-8", "v"), Change{Kind: "rename", Name: "job-8", Dst: ArchiveName(8)})
			got, err := read(s)
			if err != nil || got != "v" {
				t.Fatalf("%s read %q, %v", name, got, err)
			}
		})
	}
}

// The flusher writes by itself within the interval.
func TestWriteBackFlushesByItself(t *testing.T) {
	dir := t.TempDir()
	s := openWB(t, dir, WithFlushInterval(time.Millisecond))
	mustApply(t, s, write("job-1", "v"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, ok := onDisk(t, dir, "job-1"); ok && got == "v" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job-1 not written 10s after it was applied (interval 1ms): %+v", s.FlushStats())
		}
		time.Sleep(time.Millisecond)
	}
}

// failFS fails every file write while fail is set.
type failFS struct {
	OSFS
	fail atomic.Bool
}

func (f *failFS) WriteFile(path string, data []byte, perm fs.FileMode) error {
	if f.fail.Load() {
		return errors.New("no space left on device")
	}
	return f.OSFS.WriteFile(path, data, perm)
}

// A failed flush keeps its changes, in order, ahead of later ones; they
// are written once writes work again.
func TestWriteBackRetriesInOrder(t *testing.T) {
	dir := t.TempDir()
	f := &failFS{}
	s := openWB(t, dir, WithFS(f), WithFlushInterval(time.Hour))
	f.fail.Store(true)
	mustApply(t, s, write("job-1", "a"))
	if err := s.Flush(); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("flush with writes failing: %v", err)
	}
	if _, err := s.ReadJob(1); err == nil {
		t.Fatal("a read of a file whose change failed answered from the directory")
	}
	mustApply(t, s, Change{Kind: "rename", Name: "job-1", Dst: ArchiveName(1)}, write("job-1", "b"))
	f.fail.Store(false)
	if b, ok, err := s.ReadArchived(1); err != nil || !ok || string(b) != "a" {
		t.Fatalf("archived job-1 after the retry: %q %v %v", b, ok, err)
	}
	if got, _ := onDisk(t, dir, "job-1"); got != "b" {
		t.Fatalf("job-1 after the retry: %q", got)
	}
}

// tree is a directory's files and contents (the store's lock and
// temporary files left out).
func tree(t *rapid.T, dir string) map[string]string {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "lock" {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			t.Fatalf("temporary file %s left", rel)
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The property: a store with the write-back buffer (flushed at random
// moments, by itself or by reads) ends with byte-identical files to one
// that writes every batch when applied, and every read through it
// answers what the other's directory holds at that moment.
func TestWriteBackEqualsWriteThrough(t *testing.T) {
	base := t.TempDir()
	names := []string{"job-1", "job-2", "job-3", "serial", "drain", ArchiveName(1), ArchiveName(2), ArchiveName(10003)}
	rapid.Check(t, func(t *rapid.T) {
		refDir, _ := os.MkdirTemp(base, "ref")
		bufDir, _ := os.MkdirTemp(base, "buf")
		ref, err := Open(refDir, nil, WithFlushInterval(-1))
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		interval := rapid.SampledFrom([]time.Duration{time.Hour, time.Millisecond}).Draw(t, "interval")
		buf, err := Open(bufDir, nil, WithFlushInterval(interval))
		if err != nil {
			t.Fatal(err)
		}
		defer buf.Close()
		exists := map[string]bool{}
		version := 0
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 9).Draw(t, "action") {
			case 0, 1, 2, 3, 4, 5: // a batch
				var cs []Change
				for range rapid.IntRange(1, 5).Draw(t, "changes") {
					var c Change
					var live []string
					for _, n := range names {
						if exists[n] {
							live = append(live, n)
						}
					}
					kind := rapid.SampledFrom([]string{"write", "write", "rename", "remove"}).Draw(t, "kind")
					if kind == "rename" && len(live) == 0 {
						kind = "write"
					}
					switch kind {
					case "write":
						version++
						c = Change{Kind: "write", Name: rapid.SampledFrom(names).Draw(t, "name"), Data: []byte(strings.Repeat("v", version))}
						exists[c.Name] = true
					case "rename":
						src := rapid.SampledFrom(live).Draw(t, "src")
						dst := rapid.SampledFrom(names).Filter(func(n string) bool { return n != src }).Draw(t, "dst")
						c = Change{Kind: "rename", Name: src, Dst: dst}
						exists[src], exists[dst] = false, true
					case "remove":
						c = Change{Kind: "remove", Name: rapid.SampledFrom(names).Draw(t, "name")}
						exists[c.Name] = false
					}
					cs = append(cs, c)
				}
				if err := ref.ApplyBatch(cs, false); err != nil {
					t.Fatalf("write-through: %v", err)
				}
				if err := buf.ApplyBatch(cs, false); err != nil {
					t.Fatalf("buffered: %v", err)
				}
			case 6: // read one file
				n := rapid.SampledFrom(names).Draw(t, "read")
				want, werr := os.ReadFile(filepath.Join(refDir, n))
				got, gerr := buf.ReadFile(n)
				if string(got) != string(want) || errors.Is(werr, fs.ErrNotExist) != errors.Is(gerr, fs.ErrNotExist) {
					t.Fatalf("ReadFile(%s) = %q, %v; the write-through store holds %q, %v", n, got, gerr, want, werr)
				}
			case 7:
				want, _ := ref.JobIDs()
				got, err := buf.JobIDs()
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("JobIDs = %v, %v; want %v", got, err, want)
				}
			case 8:
				want, _ := ref.ArchivedIDs()
				got, err := buf.ArchivedIDs()
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("ArchivedIDs = %v, %v; want %v", got, err, want)
				}
			case 9:
				if err := buf.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := buf.Flush(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tree(t, refDir), tree(t, bufDir)); diff != "" {
			t.Fatalf("directories differ (-write-through +buffered):\n%s", diff)
		}
		if st := buf.FlushStats(); st.Written > st.Applied {
			t.Fatalf("wrote more changes than were applied: %+v", st)
		}
	})
}

// Concurrent applies, reads and flushes (for the race detector).
func TestWriteBackConcurrent(t *testing.T) {
	s := openWB(t, t.TempDir(), WithFlushInterval(time.Millisecond))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.JobIDs(); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.ReadFile("job-1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 500 {
		mustApply(t, s, write("job-1", strings.Repeat("x", i)), write("serial", "1\n"))
	}
	close(stop)
	wg.Wait()
	if b, err := s.ReadJob(1); err != nil || len(b) != 499 {
		t.Fatalf("job-1 at the end: %d bytes, %v", len(b), err)
	}
}

// BenchmarkApplyJobs: 500 jobs' lives as the log applies them (a batch
// submitting 50 jobs with the serial, then each job's running and
// success states, 20 at a time), written through the write-back buffer
// (one flush at the end, as within one interval) or batch by batch.
func BenchmarkApplyJobs(b *testing.B) {
	data := []byte(strings.Repeat("x", 2500))
	var batches [][]Change
	for first := 1; first <= 500; first += 50 {
		var sub []Change
		for id := first; id < first+50; id++ {
			sub = append(sub, Change{Kind: "write", Name: JobFileName(int64(id)), Data: data})
		}
		batches = append(batches, append(sub, write("serial", "1\n")))
		for id := first; id < first+50; id += 20 {
			for range 2 { // running, success
				var cs []Change
				for j := id; j < min(id+20, first+50); j++ {
					cs = append(cs, Change{Kind: "write", Name: JobFileName(int64(j)), Data: data})
				}
				batches = append(batches, cs)
			}
		}
	}
	for _, mode := range []struct {
		name     string
		interval time.Duration
	}{{"write-through", -1}, {"write-back", time.Hour}} {
		b.Run(mode.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), nil, WithFlushInterval(mode.interval))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for b.Loop() {
				for _, cs := range batches {
					if err := s.ApplyBatch(cs, false); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*500), "µs/job")
		})
	}
}
