// Package lossyfs is a file system that loses, at a simulated power
// loss, everything that was not made durable: a FUSE mount over a
// backing directory, for tests that run real processes (jobqd, and
// etcd's WAL inside it) and then cut the power.
//
// The model (after LazyFS, stricter on metadata):
//
//   - File data written is held in memory (pages over the inode's
//     durable contents); it becomes durable only when that file is
//     fsynced (fsync, fdatasync; the kernel turns an O_SYNC write into
//     a write and an fsync). A close
//     (FLUSH, RELEASE) makes nothing durable. Reads and stat see the
//     unsynced data and size. Truncation and fallocate's new size are
//     data too: durable at the file's fsync.
//   - Directory entries (create, mkdir, symlink, link, unlink, rmdir,
//     rename) are applied to the running tree at once and made durable
//     only by an fsync of the directory holding them (FSYNCDIR: every
//     entry of that directory), or by an fsync of a file for the entries
//     that name it or named it (its creation, its renames, its links),
//     as ext4, XFS and btrfs commit a new file's name with its data. A
//     new directory's own entry needs its parent's fsync (an fsync of
//     the directory itself makes its entries durable, not its name). A
//     rename between two directories is made durable side by side (each
//     directory's fsync carries its own side): a crash may show the
//     file under both names or, if only the source was synced, under
//     neither — stricter than a journal, which commits both sides.
//   - Permission bits and times are durable at once (nothing here
//     depends on a chmod surviving). Sockets and fifos (a unix socket's
//     bind) live in the running tree only.
//   - syncfs(2) does not reach a FUSE server: the kernel sends
//     FUSE_SYNCFS only to virtiofs. On this layer, as on any FUSE file
//     system, syncfs makes nothing durable (TestSyncfsNotForwarded).
//   - Locks (flock, fcntl) are the kernel's local locks.
//
// Crash (after the processes using the mount were killed) drops the
// volatile state, writes the durable image into the backing directory
// (which is then, byte for byte, what survived) and mounts a fresh layer
// over it.
package lossyfs

import (
	"maps"
	"slices"
	"syscall"
	"time"
)

// pageSize is the unit of the page cache over a file's contents.
const pageSize = 16 << 10

// data is a file's contents: pages by index (a missing page reads as
// zeros, so preallocated space costs nothing) and the size.
type data struct {
	pages map[int64][]byte
	size  int64
}

// dirent names an entry: a directory and a name in it.
type dirent struct {
	dir  *inode
	name string
}

// inode is one file, directory or symlink, with its running
// (volatile) state and what a power loss would leave of it (durable).
type inode struct {
	ino  uint64
	mode uint32 // type and permission bits
	// regular files
	v, d  data
	dirty map[int64]bool // pages of v not yet in d (written, or cut off)
	// directories
	vkids, dkids map[string]*inode
	// the entries naming this inode, running and durable
	vlinks, dlinks map[dirent]bool
	target         string // symlinks
	mtime          time.Time
}

func (n *inode) isDir() bool { return n.mode&syscall.S_IFMT == syscall.S_IFDIR }
func (n *inode) isReg() bool { return n.mode&syscall.S_IFMT == syscall.S_IFREG }

// tree is the file system's whole state. Its methods are called with
// the Layer's lock held.
type tree struct {
	root    *inode
	nextIno uint64
}

func (t *tree) newInode(mode uint32) *inode {
	t.nextIno++
	n := &inode{ino: t.nextIno, mode: mode, vlinks: map[dirent]bool{}, dlinks: map[dirent]bool{}, mtime: time.Now()}
	if n.isDir() {
		n.vkids, n.dkids = map[string]*inode{}, map[string]*inode{}
	}
	if n.isReg() {
		n.v.pages, n.d.pages, n.dirty = map[int64][]byte{}, map[int64][]byte{}, map[int64]bool{}
	}
	return n
}

// setV changes the running entry dir/name to n (nil: removes it).
func setV(dir *inode, name string, n *inode) {
	if old := dir.vkids[name]; old != nil {
		delete(old.vlinks, dirent{dir, name})
	}
	if n == nil {
		delete(dir.vkids, name)
		return
	}
	dir.vkids[name] = n
	n.vlinks[dirent{dir, name}] = true
	dir.mtime = time.Now()
}

// setD makes the durable entry dir/name n (nil: none).
func setD(dir *inode, name string, n *inode) {
	if old := dir.dkids[name]; old != nil {
		delete(old.dlinks, dirent{dir, name})
	}
	if n == nil {
		delete(dir.dkids, name)
		return
	}
	dir.dkids[name] = n
	n.dlinks[dirent{dir, name}] = true
}

// syncDir makes every entry of dir durable as it runs now (FSYNCDIR).
func syncDir(dir *inode) {
	for _, name := range slices.Collect(maps.Keys(dir.dkids)) {
		if dir.vkids[name] == nil {
			setD(dir, name, nil)
		}
	}
	for name, n := range dir.vkids {
		setD(dir, name, n)
	}
}

// syncFile makes n's contents durable, and the entries that name it or
// named it (fsync, fdatasync).
func syncFile(n *inode) {
	if n.isReg() {
		for p := range n.dirty {
			if pg, ok := n.v.pages[p]; ok {
				n.d.pages[p] = pg // shared: the next write copies it
			} else {
				delete(n.d.pages, p)
			}
		}
		clear(n.dirty)
		n.d.size = n.v.size
	}
	for de := range maps.Clone(n.dlinks) {
		if !n.vlinks[de] {
			setD(de.dir, de.name, de.dir.vkids[de.name])
		}
	}
	for de := range n.vlinks {
		setD(de.dir, de.name, n)
	}
}

// syncAll makes everything durable (a clean unmount).
func (t *tree) syncAll() {
	seen := map[*inode]bool{}
	var walk func(n *inode)
	walk = func(n *inode) {
		if seen[n] {
			return
		}
		seen[n] = true
		syncFile(n)
		if n.isDir() {
			syncDir(n)
			for _, c := range n.vkids {
				walk(c)
			}
		}
	}
	walk(t.root)
}

// read copies n's running contents at off into dest.
func (n *inode) read(dest []byte, off int64) int {
	if off >= n.v.size {
		return 0
	}
	end := min(off+int64(len(dest)), n.v.size)
	for pos := off; pos < end; {
		p, in := pos/pageSize, pos%pageSize
		k := min(pageSize-in, end-pos)
		out := dest[pos-off : pos-off+k]
		if pg, ok := n.v.pages[p]; ok {
			copy(out, pg[in:in+k])
		} else {
			clear(out)
		}
		pos += k
	}
	return int(end - off)
}

// page returns page p of n's running contents, private to it (a page
// shared with the durable contents is copied first).
func (n *inode) page(p int64) []byte {
	pg, ok := n.v.pages[p]
	switch {
	case !ok:
		pg = make([]byte, pageSize)
	case !n.dirty[p]:
		pg = slices.Clone(pg)
	default:
		return pg
	}
	n.v.pages[p] = pg
	n.dirty[p] = true
	return pg
}

func (n *inode) write(b []byte, off int64) {
	for pos := off; pos < off+int64(len(b)); {
		p, in := pos/pageSize, pos%pageSize
		k := min(pageSize-in, off+int64(len(b))-pos)
		copy(n.page(p)[in:], b[pos-off:pos-off+k])
		pos += k
	}
	n.v.size = max(n.v.size, off+int64(len(b)))
	n.mtime = time.Now()
}

// truncate sets n's running size; the bytes beyond it are zeros if it
// grows again.
func (n *inode) truncate(size int64) {
	if size < n.v.size {
		last := (size + pageSize - 1) / pageSize // first page wholly cut off
		for p := range n.v.pages {
			if p >= last {
				delete(n.v.pages, p)
				n.dirty[p] = true
			}
		}
		if in := size % pageSize; in != 0 {
			if _, ok := n.v.pages[size/pageSize]; ok {
				clear(n.page(size / pageSize)[in:])
			}
		}
	}
	n.v.size = size
	n.mtime = time.Now()
}

// durableTree is the tree a power loss leaves: the durable entries and
// contents, as a new running tree.
func (t *tree) durableTree() *tree {
	nt := &tree{nextIno: t.nextIno}
	copies := map[*inode]*inode{}
	var cp func(n *inode) *inode
	cp = func(n *inode) *inode {
		if c, ok := copies[n]; ok {
			return c
		}
		c := &inode{ino: n.ino, mode: n.mode, target: n.target, mtime: n.mtime, vlinks: map[dirent]bool{}, dlinks: map[dirent]bool{}}
		copies[n] = c
		if n.isReg() {
			c.d = data{pages: maps.Clone(n.d.pages), size: n.d.size}
			c.v = data{pages: maps.Clone(n.d.pages), size: n.d.size}
			c.dirty = map[int64]bool{}
		}
		if n.isDir() {
			c.vkids, c.dkids = map[string]*inode{}, map[string]*inode{}
			for name, k := range n.dkids {
				kc := cp(k)
				setV(c, name, kc)
				setD(c, name, kc)
			}
		}
		return c
	}
	nt.root = cp(t.root)
	return nt
}
