package store

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// recordFS records what each Sync was asked to make durable.
type recordFS struct {
	OSFS
	mu    sync.Mutex
	calls [][2][]string
}

func (r *recordFS) Sync(files, dirs []string) error {
	r.mu.Lock()
	r.calls = append(r.calls, [2][]string{slices.Clone(files), slices.Clone(dirs)})
	r.mu.Unlock()
	return r.OSFS.Sync(files, dirs)
}

// TestSyncNamesWhatChanged: batches applied without syncs (the log's
// way) are made durable by Sync with an fsync of every file written and
// every directory changed, new directories' parents included, and
// nothing else; not with syncfs(2), which a FUSE file system never
// receives (internal/lossyfs's TestSyncfsNotForwarded).
func TestSyncNamesWhatChanged(t *testing.T) {
	dir := t.TempDir()
	rec := &recordFS{}
	s, err := Open(dir, nil, WithFS(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.ApplyBatch([]Change{{Kind: "write", Name: "job-1", Data: []byte("{}")}, {Kind: "write", Name: "job-2", Data: []byte("{}")}, {Kind: "write", Name: "job-3", Data: []byte("{}")}}, false))
	must(s.ApplyBatch([]Change{{Kind: "rename", Name: "job-1", Dst: "archive/0/job-1"}, {Kind: "remove", Name: "job-3"}}, false))
	if len(rec.calls) != 0 {
		t.Fatalf("batches without sync synced: %v", rec.calls)
	}
	must(s.Sync())
	must(s.Sync()) // nothing changed since
	q := func(rel string) string { return filepath.Join(dir, rel) }
	want := [][2][]string{
		{{q("archive/0/job-1"), q("job-2")}, {dir, q("archive"), q("archive/0")}},
		{nil, nil},
	}
	if diff := cmp.Diff(want, rec.calls, cmp.Transformer("nil", func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	})); diff != "" {
		t.Errorf("Sync calls (-want +got):\n%s", diff)
	}
}

// BenchmarkSync: the cost of making 2,000 job files written without
// syncs durable, as a snapshot does: the store's Sync (one syncfs, then
// an fsync of each file and directory, 16 at a time) against one
// syncfs(2) alone, which it replaced because FUSE drops it.
func BenchmarkSync(b *testing.B) {
	const files = 2000
	data := bytes.Repeat([]byte("x"), 2048)
	for _, mode := range []string{"fsync-each", "syncfs"} {
		b.Run(mode, func(b *testing.B) {
			s, err := Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for b.Loop() {
				b.StopTimer()
				var cs []Change
				for i := range files {
					cs = append(cs, Change{Kind: "write", Name: "job-" + strconv.Itoa(i), Data: data})
				}
				if err := s.ApplyBatch(cs, false); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if mode == "syncfs" {
					s.applyMu.Lock()
					clear(s.dirtyFiles)
					clear(s.dirtyDirs)
					s.applyMu.Unlock()
					d, err := os.Open(s.Dir())
					if err != nil {
						b.Fatal(err)
					}
					err = unix.Syncfs(int(d.Fd()))
					d.Close()
					if err != nil {
						b.Fatal(err)
					}
					continue
				}
				if err := s.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
