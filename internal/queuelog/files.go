package queuelog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/store"
)

// liveNames are the queue files besides job-N (and schedule-NAME) that
// replicate.
var liveNames = []string{"serial", "drain", "version"}

// Scan lists a queue directory's replicated files: the live ones (job-N,
// serial, drain, version) with their SHA-256, and, when archive is set,
// the archived jobs (hashed when hashArchive is set). Files that vanish
// while scanning are left out, and so are directories with a queue file's
// name.
func Scan(dir string, archive, hashArchive bool) (live, arch []noderpc.FileInfo, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if _, ok := store.ParseJobFileName(name); (!ok && !isLiveName(name)) || e.IsDir() {
			continue
		}
		fi, err := hashFile(filepath.Join(dir, name), name, true)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		live = append(live, fi)
	}
	if !archive {
		return live, nil, nil
	}
	buckets, err := os.ReadDir(filepath.Join(dir, "archive"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	for _, b := range buckets {
		if _, err := strconv.ParseUint(b.Name(), 10, 63); err != nil || !b.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, "archive", b.Name()))
		if err != nil {
			return nil, nil, err
		}
		for _, f := range files {
			id, ok := store.ParseJobFileName(f.Name())
			if !ok || f.IsDir() {
				continue
			}
			name := store.ArchiveName(id)
			if name != filepath.Join("archive", b.Name(), f.Name()) {
				continue // in the wrong bucket: not a queue file
			}
			var fi noderpc.FileInfo
			if hashArchive {
				fi, err = hashFile(filepath.Join(dir, name), name, true)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return nil, nil, err
				}
			} else {
				fi = noderpc.FileInfo{Name: name}
			}
			arch = append(arch, fi)
		}
	}
	sort.Slice(arch, func(i, j int) bool { return arch[i].Name < arch[j].Name })
	return live, arch, nil
}

func isLiveName(name string) bool {
	for _, n := range liveNames {
		if n == name {
			return true
		}
	}
	// A schedule's fire record (schedule-NAME) replicates as the job it
	// was written with: resyncs, snapshots and verify-queue carry it.
	return strings.HasPrefix(name, "schedule-") && noderpc.ValidQueueName(name) == nil
}

func hashFile(path, name string, hash bool) (noderpc.FileInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return noderpc.FileInfo{}, err
	}
	fi := noderpc.FileInfo{Name: name, Size: int64(len(b))}
	if hash {
		sum := sha256.Sum256(b)
		fi.SHA256 = hex.EncodeToString(sum[:])
	}
	return fi, nil
}

// Diff is what a replica must change to equal the reference.
type Diff struct {
	Write  []string // missing or different on the replica
	Remove []string // on the replica only
}

// Empty reports whether the replica equals the reference.
func (d Diff) Empty() bool { return len(d.Write) == 0 && len(d.Remove) == 0 }

// Compare compares a replica's files with the reference's. Files with a
// hash on both sides compare by hash, others by name.
func Compare(ref, rep []noderpc.FileInfo) Diff {
	var d Diff
	have := make(map[string]noderpc.FileInfo, len(rep))
	for _, f := range rep {
		have[f.Name] = f
	}
	for _, f := range ref {
		r, ok := have[f.Name]
		switch {
		case !ok:
			d.Write = append(d.Write, f.Name)
		case f.SHA256 != "" && r.SHA256 != "" && (f.SHA256 != r.SHA256 || f.Size != r.Size):
			d.Write = append(d.Write, f.Name)
		}
		delete(have, f.Name)
	}
	for n := range have {
		d.Remove = append(d.Remove, n)
	}
	sort.Strings(d.Remove)
	return d
}

// CompareQueues compares a replica's live files and archive with the
// reference's: what to write (live files first) and what to remove.
func CompareQueues(refLive, refArch, live, arch []noderpc.FileInfo) Diff {
	d := Compare(refLive, live)
	da := Compare(refArch, arch)
	d.Write = append(d.Write, da.Write...)
	d.Remove = append(d.Remove, da.Remove...)
	return d
}

// ReadFiles reads queue files by name for a fetch; missing files are left
// out.
func ReadFiles(dir string, names []string) ([]noderpc.Change, error) {
	out := make([]noderpc.Change, 0, len(names))
	for _, n := range names {
		if err := noderpc.ValidQueueName(n); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, noderpc.Change{Op: noderpc.OpWrite, Name: n, Data: b})
	}
	return out, nil
}
