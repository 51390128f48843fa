package lossyfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

// TestFileContentsProperty: random writes, truncations, preallocations
// and fsyncs of one file through the mount, against a byte slice. Reads
// always see the running contents; after a crash the file holds exactly
// the contents of its last fsync (the page cache's copy-on-write after a
// sync, the pages cut off by a truncation, the zeros of a hole).
func TestFileContentsProperty(t *testing.T) {
	l := mount(t)
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		p := filepath.Join(l.Dir, "f"+strconv.Itoa(n))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			rt.Fatal(err)
		}
		defer f.Close()
		fsyncDir(t, l.Dir) // the name is durable; the contents are what is tested
		var running, synced []byte
		const maxOff = 3 * pageSize
		for range rapid.IntRange(1, 30).Draw(rt, "ops") {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				off := rapid.IntRange(0, maxOff).Draw(rt, "off")
				b := rapid.SliceOfN(rapid.Byte(), 1, pageSize+100).Draw(rt, "data")
				if _, err := f.WriteAt(b, int64(off)); err != nil {
					rt.Fatal(err)
				}
				if end := off + len(b); end > len(running) {
					running = append(running, make([]byte, end-len(running))...)
				}
				copy(running[off:], b)
			case 1:
				size := rapid.IntRange(0, maxOff).Draw(rt, "size")
				if err := f.Truncate(int64(size)); err != nil {
					rt.Fatal(err)
				}
				if size < len(running) {
					running = running[:size]
				} else {
					running = append(running, make([]byte, size-len(running))...)
				}
			case 2:
				if err := f.Sync(); err != nil {
					rt.Fatal(err)
				}
				synced = bytes.Clone(running)
			case 3:
				got := make([]byte, len(running)+10)
				k, _ := f.ReadAt(got, 0)
				if !bytes.Equal(got[:k], running) {
					rt.Fatalf("read %d bytes differing from the %d written", k, len(running))
				}
			}
		}
		if fi, err := f.Stat(); err != nil || fi.Size() != int64(len(running)) {
			rt.Fatalf("stat: %v %v, want size %d", fi, err, len(running))
		}
		f.Close()
		if err := l.Crash(); err != nil {
			rt.Fatal(err)
		}
		for _, root := range []string{l.Dir, l.Backing} {
			got, err := os.ReadFile(filepath.Join(root, filepath.Base(p)))
			if err != nil || !bytes.Equal(got, synced) {
				rt.Fatalf("after the crash, in %s: %d bytes %v, want the %d bytes of the last fsync", root, len(got), err, len(synced))
			}
		}
	})
}
