package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFileReplacesWithModeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, content := range []string{"first", "second, longer"} {
		if err := WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v despite the umask, want 0644", st.Mode().Perm())
	}
	if _, err := os.Stat(TempName(p)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	// A temporary file left by a crash is replaced, not an error.
	os.WriteFile(TempName(p), []byte("torn"), 0o600)
	if err := WriteFile(p, []byte("third"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "third" {
		t.Fatalf("after a leftover temp: %q", got)
	}
}

func TestWriteFileFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cfg")
	if err := WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "cfg"), []byte("x"), 0o600); err == nil {
		t.Fatal("a write into a missing directory succeeded")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("the old file changed: %q", got)
	}
}

func TestRenameRemoveCreate(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "sub", "b")
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	if err := Create(a, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Rename(a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b); err != nil {
		t.Fatal(err)
	}
	if err := Remove(b); err != nil {
		t.Fatal(err)
	}
	if err := Remove(b); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
}

// TestMkdirAllNamesTheComponent: a file where a directory should be is
// named in the error, as os.MkdirAll names it (jobqd's message about an
// uncreatable data directory shows it).
func TestMkdirAllNamesTheComponent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := MkdirAll(filepath.Join(file, "a", "b"), 0o755)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != file || !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("MkdirAll under a file: %v", err)
	}
	if err := MkdirAll(file, 0o755); err == nil || !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("MkdirAll of a file: %v", err)
	}
	d := filepath.Join(t.TempDir(), "x", "y")
	if err := MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(d, 0o755); err != nil {
		t.Fatalf("again: %v", err)
	}
}
