package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// WriteTogether's writes share one batch, and the later ones are not
// made when the first fails.
func TestWriteTogether(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := s.WriteTogether(FileWrite{"job-1", []byte("job")}, FileWrite{"serial", []byte("1\n")}, FileWrite{"schedule-a", []byte("rec")})
	for i, tk := range ts {
		if err := tk.Wait(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if tk.b != ts[0].b {
			t.Fatalf("write %d is in another batch than the first", i)
		}
	}
	for name, want := range map[string]string{"job-1": "job", "serial": "1\n", "schedule-a": "rec"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Fatalf("%s: %q %v", name, b, err)
		}
	}
	// The first write fails (its directory is a file, serial): the
	// others are not made.
	ts = s.WriteTogether(FileWrite{"serial/job-2", []byte("x")}, FileWrite{"schedule-a", []byte("rec2")})
	if err := ts[0].Wait(); err == nil {
		t.Fatal("a write under a file succeeded")
	}
	if err := ts[1].Wait(); !errors.Is(err, ErrDependency) {
		t.Fatalf("the dependent write: %v, want ErrDependency", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "schedule-a")); string(b) != "rec" {
		t.Fatalf("schedule-a changed to %q after its first write failed", b)
	}
}
