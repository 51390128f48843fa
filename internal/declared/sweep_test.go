package declared

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestStaleOutputs(t *testing.T) {
	now := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	old, young := now.Add(-OutputGrace), now.Add(-OutputGrace+time.Second)
	held := map[int64]bool{1: true, 7: true}
	holds := func(id int64) bool { return held[id] }
	entries := []OutputEntry{
		{"job-1", old},                    // held: kept
		{"job-2", old},                    // gone from the queue, old enough: removed
		{"job-3", young},                  // gone, but changed within the grace: kept
		{"job-7", old},                    // held (archived, say): kept
		{"job-02", old},                   // not a name the queue writes: kept
		{"job-", old},                     // likewise
		{"job--4", old},                   // likewise
		{"job-9x", old},                   // likewise
		{"notes", old},                    // an operator's: kept
		{"job-0", old},                    // not a job ID
		{"job-1234567", old},              // gone: removed
		{"job-99999999999999999999", old}, // overflows: kept
	}
	got := StaleOutputs(entries, holds, now, OutputGrace)
	want := []string{"job-2", "job-1234567"}
	if !slices.Equal(got, want) {
		t.Fatalf("StaleOutputs = %q, want %q", got, want)
	}
}

func TestSweepOutput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "output")
	if n, err := SweepOutput(dir, func(int64) bool { return false }, time.Now(), OutputGrace); n != 0 || err != nil {
		t.Fatalf("missing directory: %d, %v", n, err)
	}
	for _, name := range []string{"job-5", "job-6", "keep-me"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "op0-attempt1.log"), []byte("out\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// A file named like a job's directory is not one.
	if err := os.WriteFile(filepath.Join(dir, "job-8"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * OutputGrace)
	n, err := SweepOutput(dir, func(id int64) bool { return id == 6 }, later, OutputGrace)
	if n != 1 || err != nil {
		t.Fatalf("SweepOutput = %d, %v; want 1 removed", n, err)
	}
	for name, want := range map[string]bool{"job-5": false, "job-6": true, "keep-me": true, "job-8": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", name, err == nil, want)
		}
	}
	// Within the grace nothing goes.
	if n, err := SweepOutput(dir, func(int64) bool { return false }, time.Now(), OutputGrace); n != 0 || err != nil {
		t.Fatalf("within the grace: %d, %v", n, err)
	}
}
