package hostile

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFileModes starts jobqd with umask 0, the laxest, on a data
// directory it creates, and checks the mode of everything it made: data
// directory and every directory 0750, the socket 0660, job files (live,
// archived, quarantined) and every other file 0640, except the cluster
// certificate (0644, public), its key (0600) and the Raft log (0700
// directories, 0600 files).
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	laxStart := func() *daemon {
		old := syscall.Umask(0)
		defer syscall.Umask(old)
		return startBare(t, dir)
	}
	d := laxStart()
	c := d.client()
	served(t, c) // job 1
	if raw, err := c.Call(context.Background(), "ArchiveJob", 1); err != nil || string(raw) != "true" {
		t.Fatalf("ArchiveJob: %s %v", raw, err)
	}
	served(t, c) // job 2 stays live
	if raw, err := c.Call(context.Background(), "SetDrainFlag", true); err != nil || string(raw) != "true" {
		t.Fatalf("SetDrainFlag: %s %v", raw, err)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// A corrupt job file, quarantined at the next start.
	if err := os.WriteFile(filepath.Join(dir, "queue", "job-9"), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	d = laxStart()
	d.MustLine(t, "job file is corrupt; moved aside", "file=job-9")

	want := map[string]fs.FileMode{
		"cluster/cert.pem":      0o644,
		"cluster/key.pem":       0o600,
		"socket/jobq-query":     fs.ModeSocket | 0o660,
		"queue/job-2":           0o640,
		"queue/archive/0/job-1": 0o640,
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m := fi.Mode() & (fs.ModeType | fs.ModePerm)
		exp, named := want[rel]
		switch {
		case named:
		case rel == "cluster/raft" || strings.HasPrefix(rel, "cluster/raft/"):
			// The log (etcd's WAL and snapshots, which etcd makes for
			// its owner only): the jobs' contents, read by jobqd alone.
			exp = 0o600
			if fi.IsDir() {
				exp = fs.ModeDir | 0o700
			}
		case fi.IsDir():
			exp = fs.ModeDir | 0o750
		case fi.Mode().IsRegular():
			exp = 0o640
		default:
			exp = 0 // nothing else is expected
		}
		seen[rel] = true
		if m != exp {
			t.Errorf("%s: mode %v, want %v", rel, m, exp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".", "queue", "queue/archive", "queue/quarantine", "socket", "cluster", "queue/serial", "queue/version", "queue/lock", "queue/drain", "cluster/raft/wal", "cluster/settings/cluster.json", "cluster/group"} {
		want[p] = 0
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("%s was not created", p)
		}
	}
	t.Logf("checked the modes of %d paths", len(seen))
}
