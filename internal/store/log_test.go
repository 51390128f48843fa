package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// fakeLog agrees on every batch at once and applies it to the stores of
// every "node", as the consensus log does.
type fakeLog struct {
	mu      sync.Mutex
	nodes   []*Store
	batches [][]Change
	fail    error
}

func (l *fakeLog) Commit(changes []Change) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	l.batches = append(l.batches, changes)
	for _, st := range l.nodes {
		if err := st.ApplyBatch(changes, true); err != nil {
			return err
		}
	}
	return nil
}

func TestLogModeWritesOnlyThroughTheLog(t *testing.T) {
	leader, follower := open(t, t.TempDir()), open(t, t.TempDir())
	l := &fakeLog{nodes: []*Store{leader, follower}}
	leader.SetLog(l)
	if err := leader.Write("job-1", []byte("v1")).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Write("job-1", []byte("v2")).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Rename("job-1", ArchiveName(1)).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*Store{leader, follower} {
		if got := read(t, filepath.Join(st.Dir(), ArchiveName(1))); got != "v2" {
			t.Fatalf("%s: archived job-1 is %q", st.Dir(), got)
		}
		if _, err := os.Stat(filepath.Join(st.Dir(), "job-1")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: job-1 still there: %v", st.Dir(), err)
		}
	}
	// Replaying every batch again, in order, leaves the same files.
	for _, b := range l.batches {
		if err := follower.ApplyBatch(b, false); err != nil {
			t.Fatalf("replay: %v", err)
		}
	}
	if got := read(t, filepath.Join(follower.Dir(), ArchiveName(1))); got != "v2" {
		t.Fatalf("after replay archived job-1 is %q", got)
	}
	if _, err := os.Stat(filepath.Join(follower.Dir(), "job-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after replay job-1 is back: %v", err)
	}
	// A batch the log refuses is written nowhere and its tickets fail
	// with the log's reason.
	l.fail = errors.New("no majority")
	if err := leader.Write("job-2", []byte("x")).Wait(); err == nil || err.Error() != "no majority" {
		t.Fatalf("write refused by the log: %v", err)
	}
	if _, err := os.Stat(filepath.Join(leader.Dir(), "job-2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused batch was written: %v", err)
	}
	// Without the log, the store writes by itself again.
	leader.SetLog(nil)
	if err := leader.Write("job-3", []byte("y")).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(leader.Dir(), "job-3")); got != "y" {
		t.Fatalf("job-3 is %q", got)
	}
}
