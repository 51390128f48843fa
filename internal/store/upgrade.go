package store

// The queue format guard and its migrations (jobqd --upgrade-queue).
//
// DIR/queue/version holds the format a queue directory is written in. A
// jobqd reads only FormatVersion: on an older queue it refuses to start and
// names the command that migrates it; on a newer one it refuses too (it
// cannot know what a newer jobqd wrote). A future format N+1 plugs in by
// raising FormatVersion and adding migrations[N], the step from N to N+1:
// Upgrade applies the steps in order, recording each finished one in the
// version file, so an interrupted upgrade resumes where it stopped.

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// migrations[v] rewrites a locked queue directory from format v to v+1.
// It must be safe to run again after a crash halfway (the version file
// still says v then). There are none yet: format 1 is the first.
var migrations = map[int]func(dir string, log *slog.Logger) error{}

// VersionError is a queue directory whose format is not FormatVersion.
type VersionError struct {
	Path    string // the version file
	Found   string // its contents, without surrounding white space
	Version int    // Found as a number, -1 when it is not one
}

func (e *VersionError) Error() string {
	switch {
	case e.Version < 0:
		return fmt.Sprintf("queue format version %q in %s is not a number: the file is damaged (this jobqd writes %d)", e.Found, e.Path, FormatVersion)
	case e.Newer():
		return fmt.Sprintf("queue format version %q in %s is newer than this jobqd's (%d): a newer jobqd wrote it, and this one cannot read it", e.Found, e.Path, FormatVersion)
	case e.Upgradable():
		return fmt.Sprintf("queue format version %q in %s is older than this jobqd's (%d): the queue must be upgraded before this jobqd can use it", e.Found, e.Path, FormatVersion)
	}
	return fmt.Sprintf("queue format version %q in %s is older than this jobqd's (%d), and this jobqd has no migration from it", e.Found, e.Path, FormatVersion)
}

// Newer reports whether a newer jobq wrote the queue.
func (e *VersionError) Newer() bool { return e.Version > FormatVersion }

// Upgradable reports whether Upgrade can migrate the queue to
// FormatVersion.
func (e *VersionError) Upgradable() bool {
	if e.Version < 0 || e.Version >= FormatVersion {
		return false
	}
	for v := e.Version; v < FormatVersion; v++ {
		if migrations[v] == nil {
			return false
		}
	}
	return true
}

// readVersion returns the format of queue directory dir, 0 and found false
// when it has no version file (a queue that was never opened), or a
// *VersionError when the file does not hold a number.
func readVersion(dir string) (v int, found bool, err error) {
	p := filepath.Join(dir, "version")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cannot read queue version: %w", err)
	}
	s := strings.TrimSpace(string(b))
	v, err = strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, true, &VersionError{Path: p, Found: s, Version: -1}
	}
	return v, true, nil
}

// CheckFormat tells whether this jobq can open queue directory dir as it
// is: nil when its format is FormatVersion or it has none yet (a new
// queue), a *VersionError when it needs an upgrade or is newer. It takes no
// lock; Open checks again.
func CheckFormat(dir string) error {
	v, found, err := readVersion(dir)
	if err != nil || !found || v == FormatVersion {
		return err
	}
	return &VersionError{Path: filepath.Join(dir, "version"), Found: strconv.Itoa(v), Version: v}
}

// Upgrade migrates queue directory dir to FormatVersion and returns the
// format it found. It takes the queue lock, so it fails while a jobqd uses
// the directory. A queue already at FormatVersion is left alone (from ==
// FormatVersion); a newer or damaged one is a *VersionError.
func Upgrade(dir string, log *slog.Logger) (from int, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return 0, fmt.Errorf("there is no queue directory at %s", dir)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return 0, fmt.Errorf("cannot open queue lock: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return 0, fmt.Errorf("%w: %s is held by a running jobqd; stop it before upgrading the queue", ErrLocked, filepath.Join(dir, "lock"))
		}
		return 0, fmt.Errorf("cannot lock queue: %w", err)
	}
	v, found, err := readVersion(dir)
	if err != nil {
		return 0, err
	}
	if !found {
		// Never opened: the first start writes the current version.
		return FormatVersion, nil
	}
	from = v
	if v > FormatVersion {
		return from, &VersionError{Path: filepath.Join(dir, "version"), Found: strconv.Itoa(v), Version: v}
	}
	if v < FormatVersion {
		if ve := (&VersionError{Path: filepath.Join(dir, "version"), Found: strconv.Itoa(v), Version: v}); !ve.Upgradable() {
			return from, ve
		}
	}
	for ; v < FormatVersion; v++ {
		log.Info("upgrading the queue", "dir", dir, "from", v, "to", v+1)
		if err := migrations[v](dir, log); err != nil {
			return from, fmt.Errorf("upgrading the queue from format %d to %d: %w", v, v+1, err)
		}
		if err := writeFileDurable(dir, "version", []byte(strconv.Itoa(v+1)+"\n")); err != nil {
			return from, fmt.Errorf("cannot record queue format %d: %w", v+1, err)
		}
	}
	return from, nil
}
