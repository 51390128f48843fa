package declared

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/jobq-dev/jobq/internal/store"
)

// The whole output of the programs a node ran stays in
// DATA_DIR/output/job-N/ for as long as the node's queue holds job N (live
// or archived); each node sweeps its own output directory (SweepOutput),
// since every node holds the whole queue.

// OutputGrace is how long an output directory is kept after its last
// change even when the queue does not hold its job: a node may run a
// program for a job it has not applied yet (a non-voter behind the log),
// and a job may be on its way to the archive.
const OutputGrace = time.Hour

// OutputEntry is one directory of an output directory.
type OutputEntry struct {
	Name    string    // "job-N", or anything else found there
	ModTime time.Time // its last change
}

// StaleOutputs decides which entries of an output directory go: the
// "job-N" directories of jobs the queue does not hold (holds(N) is false)
// that have not changed for grace. Names that are not "job-N" (with N a
// job ID as the queue writes it, store.ParseJobFileName) are never
// removed: jobq did not make them.
func StaleOutputs(entries []OutputEntry, holds func(id int64) bool, now time.Time, grace time.Duration) []string {
	var out []string
	for _, e := range entries {
		id, ok := store.ParseJobFileName(e.Name)
		if !ok || now.Sub(e.ModTime) < grace || holds(id) {
			continue
		}
		out = append(out, e.Name)
	}
	return out
}

// SweepOutput removes the output directories under outDir whose jobs the
// queue no longer holds (StaleOutputs) and reports how many it removed.
// A missing outDir is nothing to do.
func SweepOutput(outDir string, holds func(id int64) bool, now time.Time, grace time.Duration) (int, error) {
	ents, err := os.ReadDir(outDir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	entries := make([]OutputEntry, 0, len(ents))
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		entries = append(entries, OutputEntry{Name: e.Name(), ModTime: fi.ModTime()})
	}
	removed := 0
	var errs []error
	for _, name := range StaleOutputs(entries, holds, now, grace) {
		if err := os.RemoveAll(filepath.Join(outDir, name)); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}
