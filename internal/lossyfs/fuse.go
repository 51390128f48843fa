package lossyfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Layer is a mounted lossy file system: Dir is the mount point, the
// durable state lives in Backing.
type Layer struct {
	Backing, Dir string

	mu     sync.Mutex // guards t and dead, and every inode of t
	t      *tree
	dead   bool // crashed or closed: every call fails
	server *fuse.Server
}

// Available says why this machine cannot mount the layer (nil: it can):
// it needs /dev/fuse and root (the mount is made with mount(2), without
// fusermount).
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("lossyfs mounts a FUSE file system with mount(2), which needs root")
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("lossyfs needs /dev/fuse: %w", err)
	}
	return f.Close()
}

// Mount mounts a lossy layer over backing (a directory: its contents
// are the durable state at the start) on dir.
func Mount(backing, dir string) (*Layer, error) {
	l := &Layer{Backing: backing, Dir: dir}
	return l, l.mount()
}

func (l *Layer) mount() error {
	t, err := load(l.Backing)
	if err != nil {
		return fmt.Errorf("lossyfs: reading %s: %w", l.Backing, err)
	}
	l.mu.Lock()
	l.t, l.dead = t, false
	l.mu.Unlock()
	sec := time.Second
	root := &node{l: l, n: t.root}
	server, err := fs.Mount(l.Dir, root, &fs.Options{
		EntryTimeout: &sec, AttrTimeout: &sec, NegativeTimeout: &sec,
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			AllowOther:        true,
			FsName:            "lossyfs",
			Name:              "lossyfs",
			MaxBackground:     64,
		},
	})
	if err != nil {
		return fmt.Errorf("lossyfs: mounting %s: %w", l.Dir, err)
	}
	l.server = server
	return nil
}

// unmount stops the server; the caller has made the tree dead.
func (l *Layer) unmount() error {
	var err error
	for range 50 {
		if err = l.server.Unmount(); err == nil {
			l.server.Wait()
			return nil
		}
		time.Sleep(20 * time.Millisecond) // a process that was killed may still hold the mount for a moment
	}
	// Still busy: detach it, so that the next mount is not stacked on a
	// busy one.
	if derr := syscall.Unmount(l.Dir, syscall.MNT_DETACH); derr != nil {
		return fmt.Errorf("lossyfs: unmounting %s: %v, then %v", l.Dir, err, derr)
	}
	return nil
}

// Crash is a power loss: every write, creation, rename and removal not
// made durable is lost. Kill the processes using the mount first. The
// backing directory then holds exactly what survived, and a fresh layer
// is mounted over it.
func (l *Layer) Crash() error {
	l.mu.Lock()
	l.dead = true
	dt := l.t.durableTree()
	l.mu.Unlock()
	if err := l.unmount(); err != nil {
		return err
	}
	if err := dt.store(l.Backing); err != nil {
		return fmt.Errorf("lossyfs: writing the durable state to %s: %w", l.Backing, err)
	}
	return l.mount()
}

// Close unmounts the layer cleanly: everything is made durable first.
func (l *Layer) Close() error {
	l.mu.Lock()
	if l.dead && l.server == nil {
		l.mu.Unlock()
		return nil
	}
	l.t.syncAll()
	l.dead = true
	dt := l.t.durableTree()
	l.mu.Unlock()
	err := l.unmount()
	l.server = nil
	if err != nil {
		return err
	}
	return dt.store(l.Backing)
}

// node is the FUSE side of an inode.
type node struct {
	fs.Inode
	l *Layer
	n *inode
}

var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeSetattrer  = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeCreater    = (*node)(nil)
	_ fs.NodeReader     = (*node)(nil)
	_ fs.NodeWriter     = (*node)(nil)
	_ fs.NodeFsyncer    = (*node)(nil)
	_ fs.NodeFlusher    = (*node)(nil)
	_ fs.NodeAllocater  = (*node)(nil)
	_ fs.NodeMkdirer    = (*node)(nil)
	_ fs.NodeMknoder    = (*node)(nil)
	_ fs.NodeUnlinker   = (*node)(nil)
	_ fs.NodeRmdirer    = (*node)(nil)
	_ fs.NodeRenamer    = (*node)(nil)
	_ fs.NodeLinker     = (*node)(nil)
	_ fs.NodeSymlinker  = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

// lock takes the layer's lock; ok is false once it crashed.
func (x *node) lock() bool {
	x.l.mu.Lock()
	if x.l.dead {
		x.l.mu.Unlock()
		return false
	}
	return true
}

func (x *node) unlock() { x.l.mu.Unlock() }

func attr(n *inode, out *fuse.Attr) {
	out.Ino = n.ino
	out.Mode = n.mode
	out.Nlink = uint32(max(1, len(n.vlinks)))
	if n.isDir() {
		out.Nlink = 2
	}
	if n.isReg() {
		out.Size = uint64(n.v.size)
		out.Blocks = uint64(len(n.v.pages)) * pageSize / 512
	}
	if n.mode&syscall.S_IFMT == syscall.S_IFLNK {
		out.Size = uint64(len(n.target))
	}
	out.Blksize = pageSize
	out.SetTimes(nil, &n.mtime, &n.mtime)
}

// child makes the FUSE inode of n, a child of x.
func (x *node) child(ctx context.Context, n *inode, out *fuse.EntryOut) *fs.Inode {
	attr(n, &out.Attr)
	return x.NewInode(ctx, &node{l: x.l, n: n}, fs.StableAttr{Mode: n.mode & syscall.S_IFMT, Ino: n.ino})
}

func (x *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !x.lock() {
		return nil, syscall.EIO
	}
	defer x.unlock()
	c := x.n.vkids[name]
	if c == nil {
		return nil, syscall.ENOENT
	}
	return x.child(ctx, c, out), 0
}

func (x *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if !x.lock() {
		return syscall.EIO
	}
	defer x.unlock()
	attr(x.n, &out.Attr)
	return 0
}

func (x *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if !x.lock() {
		return syscall.EIO
	}
	defer x.unlock()
	if sz, ok := in.GetSize(); ok {
		if !x.n.isReg() {
			return syscall.EINVAL
		}
		x.n.truncate(int64(sz))
	}
	if m, ok := in.GetMode(); ok {
		x.n.mode = x.n.mode&syscall.S_IFMT | m&0o7777
	}
	if mt, ok := in.GetMTime(); ok {
		x.n.mtime = mt
	}
	attr(x.n, &out.Attr)
	return 0
}

func (x *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if !x.lock() {
		return nil, 0, syscall.EIO
	}
	defer x.unlock()
	if flags&syscall.O_TRUNC != 0 && x.n.isReg() {
		x.n.truncate(0)
	}
	return nil, 0, 0
}

func (x *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if !x.lock() {
		return nil, nil, 0, syscall.EIO
	}
	defer x.unlock()
	c := x.n.vkids[name]
	switch {
	case c != nil && flags&syscall.O_EXCL != 0:
		return nil, nil, 0, syscall.EEXIST
	case c != nil && c.isDir():
		return nil, nil, 0, syscall.EISDIR
	case c != nil:
		if flags&syscall.O_TRUNC != 0 && c.isReg() {
			c.truncate(0)
		}
	default:
		c = x.l.t.newInode(syscall.S_IFREG | mode&0o7777)
		setV(x.n, name, c)
	}
	return x.child(ctx, c, out), nil, 0, 0
}

func (x *node) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if !x.lock() {
		return nil, syscall.EIO
	}
	defer x.unlock()
	return fuse.ReadResultData(dest[:x.n.read(dest, off)]), 0
}

func (x *node) Write(ctx context.Context, f fs.FileHandle, b []byte, off int64) (uint32, syscall.Errno) {
	if !x.lock() {
		return 0, syscall.EIO
	}
	defer x.unlock()
	x.n.write(b, off)
	return uint32(len(b)), 0
}

// Fsync is fsync and fdatasync of a file, and FSYNCDIR of a directory.
func (x *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if !x.lock() {
		return syscall.EIO
	}
	defer x.unlock()
	if x.n.isDir() {
		syncDir(x.n) // its entries, not its own name in its parent
		return 0
	}
	syncFile(x.n)
	return 0
}

// Flush is a close: it makes nothing durable.
func (x *node) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno { return 0 }

// falloc_fl_keep_size is FALLOC_FL_KEEP_SIZE.
const fallocKeepSize = 1

func (x *node) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if !x.lock() {
		return syscall.EIO
	}
	defer x.unlock()
	switch mode {
	case 0:
		if end := int64(off + size); end > x.n.v.size {
			x.n.v.size = end
			x.n.mtime = time.Now()
		}
		return 0
	case fallocKeepSize:
		return 0
	}
	return syscall.EOPNOTSUPP
}

func (x *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !x.lock() {
		return nil, syscall.EIO
	}
	defer x.unlock()
	if x.n.vkids[name] != nil {
		return nil, syscall.EEXIST
	}
	c := x.l.t.newInode(syscall.S_IFDIR | mode&0o7777)
	setV(x.n, name, c)
	return x.child(ctx, c, out), 0
}

// Mknod makes sockets and fifos (a unix socket's bind): they live in
// the running tree only and never survive a crash.
func (x *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !x.lock() {
		return nil, syscall.EIO
	}
	defer x.unlock()
	if t := mode & syscall.S_IFMT; t != syscall.S_IFSOCK && t != syscall.S_IFIFO {
		return nil, syscall.EPERM
	}
	if x.n.vkids[name] != nil {
		return nil, syscall.EEXIST
	}
	c := x.l.t.newInode(mode)
	setV(x.n, name, c)
	return x.child(ctx, c, out), 0
}

func (x *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !x.lock() {
		return nil, syscall.EIO
	}
	defer x.unlock()
	if x.n.vkids[name] != nil {
		return nil, syscall.EEXIST
	}
	c := x.l.t.newInode(syscall.S_IFLNK | 0o777)
	c.target = target
	setV(x.n, name, c)
	return x.child(ctx, c, out), 0
}

func (x *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if !x.lock() {
		return nil, syscall.EIO
	}
	defer x.unlock()
	return []byte(x.n.target), 0
}

func (x *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !x.lock() {
		return nil, syscall.EIO
	}
	defer x.unlock()
	t, ok := target.(*node)
	switch {
	case !ok:
		return nil, syscall.EXDEV
	case t.n.isDir():
		return nil, syscall.EPERM
	case x.n.vkids[name] != nil:
		return nil, syscall.EEXIST
	}
	setV(x.n, name, t.n)
	return x.child(ctx, t.n, out), 0
}

func (x *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if !x.lock() {
		return syscall.EIO
	}
	defer x.unlock()
	c := x.n.vkids[name]
	switch {
	case c == nil:
		return syscall.ENOENT
	case c.isDir():
		return syscall.EISDIR
	}
	setV(x.n, name, nil)
	return 0
}

func (x *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if !x.lock() {
		return syscall.EIO
	}
	defer x.unlock()
	c := x.n.vkids[name]
	switch {
	case c == nil:
		return syscall.ENOENT
	case !c.isDir():
		return syscall.ENOTDIR
	case len(c.vkids) > 0:
		return syscall.ENOTEMPTY
	}
	setV(x.n, name, nil)
	return 0
}

// renameNoreplace is RENAME_NOREPLACE.
const renameNoreplace = 1

func (x *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if !x.lock() {
		return syscall.EIO
	}
	defer x.unlock()
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags&^renameNoreplace != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE, RENAME_WHITEOUT: not needed here
	}
	c := x.n.vkids[name]
	if c == nil {
		return syscall.ENOENT
	}
	old := np.n.vkids[newName]
	switch {
	case old == c:
		return 0
	case old != nil && flags&renameNoreplace != 0:
		return syscall.EEXIST
	case old != nil && old.isDir() && !c.isDir():
		return syscall.EISDIR
	case old != nil && !old.isDir() && c.isDir():
		return syscall.ENOTDIR
	case old != nil && old.isDir() && len(old.vkids) > 0:
		return syscall.ENOTEMPTY
	}
	for d := np.n; c.isDir() && d != nil; d = parentOf(d) {
		if d == c {
			return syscall.EINVAL // into itself
		}
	}
	setV(x.n, name, nil)
	setV(np.n, newName, c)
	return 0
}

// parentOf is a directory's running parent (nil for the root).
func parentOf(d *inode) *inode {
	for de := range d.vlinks {
		return de.dir
	}
	return nil
}

func (x *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if !x.lock() {
		return nil, syscall.EIO
	}
	defer x.unlock()
	var ents []fuse.DirEntry
	for name, c := range x.n.vkids {
		ents = append(ents, fuse.DirEntry{Name: name, Ino: c.ino, Mode: c.mode})
	}
	slices.SortFunc(ents, func(a, b fuse.DirEntry) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return fs.NewListDirStream(ents), 0
}

// Statfs reports the backing file system's room (jobq refuses a batch
// the disk has no room for).
func (x *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(x.l.Backing, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&st)
	return 0
}
