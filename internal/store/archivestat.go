package store

import (
	"os"
	"path/filepath"
	"sort"
	"time"
)

// ArchivedFile is an archived job file as housekeeping sees it.
type ArchivedFile struct {
	ID       int64
	Size     int64
	Archived time.Time // the file's modification time: when it was archived
}

// ArchiveStats lists every archived job file with its size and time, in
// id order. It reads the whole archive directory (no file contents): for
// the archive's retention, every few minutes.
func (s *Store) ArchiveStats() ([]ArchivedFile, error) {
	if err := s.Flush(); err != nil {
		return nil, err
	}
	root := filepath.Join(s.dir, "archive")
	dirs, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []ArchivedFile
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			id, ok := ParseJobFileName(f.Name())
			if !ok {
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out = append(out, ArchivedFile{ID: id, Size: info.Size(), Archived: info.ModTime()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
