package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// writesPerJob is how many durable writes a short job costs: queued before
// the submission is acknowledged, running before its opcode executes,
// final.
const writesPerJob = 3

// diskRate measures the file system's durable atomic replaces per second
// when they are batched under one sync, the way the queue store writes:
// temporary files, syncfs, renames over existing files, syncfs. It works in
// a temporary directory under dir, replacing a set of 1,000 files, and
// removes it.
func diskRate(dir string, d time.Duration) (float64, error) {
	tmp, err := os.MkdirTemp(dir, ".jobq-bench-disk-")
	if err != nil {
		return 0, fmt.Errorf("cannot measure the disk in %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	df, err := os.Open(tmp)
	if err != nil {
		return 0, err
	}
	defer df.Close()
	const batch, files = 64, 1000
	data := []byte(strings.Repeat("x", 800)) // about a job file
	for i := range files {
		if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("job-%d", i)), data, 0o640); err != nil {
			return 0, err
		}
	}
	if err := unix.Syncfs(int(df.Fd())); err != nil {
		return 0, err
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		for i := range batch {
			if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf(".tmp%d", i)), data, 0o640); err != nil {
				return 0, err
			}
		}
		if err := unix.Syncfs(int(df.Fd())); err != nil {
			return 0, err
		}
		for i := range batch {
			target := filepath.Join(tmp, fmt.Sprintf("job-%d", (n+i)%files))
			if err := os.Rename(filepath.Join(tmp, fmt.Sprintf(".tmp%d", i)), target); err != nil {
				return 0, err
			}
		}
		if err := unix.Syncfs(int(df.Fd())); err != nil {
			return 0, err
		}
		n += batch
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
