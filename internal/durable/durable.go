// Package durable is jobq's one home for changing a file so that the
// change survives a crash or a power loss: write a temporary file beside
// the target, sync it, rename it over the target, sync the directory. A
// reader sees the old file or the new one, never a part.
//
// The queue's group commit (package store) makes many changes durable
// together instead (an fsync of each file and directory a batch changed,
// concurrently); it uses this package for the files it writes alone
// (the format version) and its directories.
package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// TempName is the temporary file WriteFile uses for path: ".NAME.tmp" in
// the same directory (a dot file, so that listings of job files and
// store.Open's cleanup of temporary files recognise it).
func TempName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
}

// WriteFile atomically and durably replaces path with data; the file has
// mode (whatever the umask) before any byte is written.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	tmp := TempName(path)
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err = f.Chmod(mode); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Rename moves from to to and makes the move durable.
func Rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if err := SyncDir(filepath.Dir(to)); err != nil {
		return err
	}
	if filepath.Dir(from) != filepath.Dir(to) {
		return SyncDir(filepath.Dir(from))
	}
	return nil
}

// Remove deletes path (a missing file is no error) and makes the removal
// durable.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Create makes an empty file at path, durably (a mark).
func Create(path string, mode fs.FileMode) error { return WriteFile(path, nil, mode) }

// MkdirAll creates dir and its missing parents with mode perm (less the
// umask) and makes each one's entry durable in its parent; dir's own
// entry is synced even when dir was there already (a process killed
// after its mkdir left it in the page cache, not on disk). A new
// directory's entry is not made durable by syncing the directory
// itself: its parent must be synced.
func MkdirAll(dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	case err != nil:
		// As os.MkdirAll: the parent first, so that an error names the
		// component at fault (a file where a directory should be).
		if parent := filepath.Dir(dir); parent != dir {
			if err := MkdirAll(parent, perm); err != nil {
				return err
			}
		}
		if err := os.Mkdir(dir, perm); err != nil {
			if fi, lerr := os.Lstat(dir); lerr != nil || !fi.IsDir() {
				return err
			}
		}
	}
	if parent := filepath.Dir(dir); parent != dir {
		return SyncDir(parent)
	}
	return nil
}

// SyncDir makes the entries of dir (creations, renames, removals)
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
