package store

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func writeVersion(t *testing.T, dir, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte(v+"\n"), FileMode); err != nil {
		t.Fatal(err)
	}
}

func readVersionFile(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckFormat(t *testing.T) {
	dir := t.TempDir()
	if err := CheckFormat(dir); err != nil {
		t.Errorf("new queue: %v", err)
	}
	cur := strconv.Itoa(FormatVersion)
	for v, want := range map[string]string{
		cur:                             "",
		strconv.Itoa(FormatVersion + 1): `queue format version "` + strconv.Itoa(FormatVersion+1) + `" in ` + dir + `/version is newer than this jobqd's`,
		"0":                             `queue format version "0" in ` + dir + `/version is older than this jobqd's (` + cur + `), and this jobqd has no migration from it`,
		"x1":                            `queue format version "x1" in ` + dir + `/version is not a number`,
	} {
		writeVersion(t, dir, v)
		err := CheckFormat(dir)
		if want == "" {
			if err != nil {
				t.Errorf("version %s: %v", v, err)
			}
			continue
		}
		var ve *VersionError
		if !errors.As(err, &ve) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("version %s: %v, want %s...", v, err, want)
		}
	}
}

func TestUpgradeCurrentIsNoOp(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// While a store holds the lock, Upgrade refuses.
	if _, err := Upgrade(dir, nil); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "stop it before upgrading") {
		t.Errorf("Upgrade on an open queue: %v", err)
	}
	s.Close()
	from, err := Upgrade(dir, nil)
	if err != nil || from != FormatVersion {
		t.Fatalf("Upgrade = %d, %v", from, err)
	}
	if got := readVersionFile(t, dir); got != strconv.Itoa(FormatVersion)+"\n" {
		t.Errorf("version file %q", got)
	}
}

func TestUpgradeRefusesNewerAndUnknown(t *testing.T) {
	dir := t.TempDir()
	writeVersion(t, dir, strconv.Itoa(FormatVersion+1))
	var ve *VersionError
	if _, err := Upgrade(dir, nil); !errors.As(err, &ve) || !ve.Newer() {
		t.Errorf("Upgrade of a newer queue: %v", err)
	}
	writeVersion(t, dir, "0")
	if _, err := Upgrade(dir, nil); !errors.As(err, &ve) || ve.Upgradable() || !strings.Contains(err.Error(), "no migration") {
		t.Errorf("Upgrade without a migration: %v", err)
	}
	if _, err := Upgrade(filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "there is no queue directory") {
		t.Errorf("Upgrade of nothing: %v", err)
	}
}

// TestUpgradeRunsMigrations plugs in a migration from a format before the
// current one, as a future format change will, and checks that Upgrade
// applies it, records the new version, and that Open then accepts the
// queue.
func TestUpgradeRunsMigrations(t *testing.T) {
	old := FormatVersion - 1
	ran := 0
	migrations[old] = func(dir string, log *slog.Logger) error {
		ran++
		return os.WriteFile(filepath.Join(dir, "migrated"), nil, FileMode)
	}
	defer delete(migrations, old)

	dir := t.TempDir()
	writeVersion(t, dir, strconv.Itoa(old))
	err := CheckFormat(dir)
	var ve *VersionError
	if !errors.As(err, &ve) || !ve.Upgradable() || !strings.Contains(err.Error(), "must be upgraded") {
		t.Fatalf("CheckFormat of an old queue: %v", err)
	}
	if _, err := Open(dir, nil); err == nil {
		t.Fatal("Open accepted an old queue")
	}
	from, err := Upgrade(dir, nil)
	if err != nil || from != old || ran != 1 {
		t.Fatalf("Upgrade = %d, %v (ran %d)", from, err, ran)
	}
	if _, err := os.Stat(filepath.Join(dir, "migrated")); err != nil {
		t.Error(err)
	}
	if got := readVersionFile(t, dir); got != strconv.Itoa(FormatVersion)+"\n" {
		t.Errorf("version file %q", got)
	}
	if err := CheckFormat(dir); err != nil {
		t.Error(err)
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Again: nothing left to do.
	if from, err := Upgrade(dir, nil); err != nil || from != FormatVersion || ran != 1 {
		t.Errorf("second Upgrade = %d, %v (ran %d)", from, err, ran)
	}
}
