package lossyfs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// load reads the backing directory into a tree whose running and
// durable states are the same (all of it is on disk). Zero pages are
// not kept, so preallocated files cost no memory.
func load(dir string) (*tree, error) {
	t := &tree{}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	t.root = t.newInode(syscall.S_IFDIR | uint32(fi.Mode().Perm()))
	byIno := map[uint64]*inode{} // backing inode -> ours (hard links)
	zero := make([]byte, pageSize)
	var walk func(path string, dir *inode) error
	walk = func(path string, dir *inode) error {
		ents, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := filepath.Join(path, e.Name())
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				return err
			}
			if n := byIno[st.Ino]; n != nil && n.isReg() {
				setV(dir, e.Name(), n)
				setD(dir, e.Name(), n)
				continue
			}
			n := t.newInode(st.Mode)
			byIno[st.Ino] = n
			switch {
			case n.isDir():
				if err := walk(p, n); err != nil {
					return err
				}
			case n.isReg():
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				buf := make([]byte, pageSize)
				for pg := int64(0); ; pg++ {
					k, err := io.ReadFull(f, buf)
					if k > 0 && !bytes.Equal(buf[:k], zero[:k]) {
						n.d.pages[pg] = bytes.Clone(buf[:pageSize])
						clear(n.d.pages[pg][k:])
					}
					if err != nil {
						break
					}
				}
				f.Close()
				n.d.size = st.Size
				n.v = data{pages: map[int64][]byte{}, size: st.Size}
				for pg, b := range n.d.pages {
					n.v.pages[pg] = b
				}
			case n.mode&syscall.S_IFMT == syscall.S_IFLNK:
				if n.target, err = os.Readlink(p); err != nil {
					return err
				}
			default:
				continue // sockets and the like do not survive a power loss
			}
			setV(dir, e.Name(), n)
			setD(dir, e.Name(), n)
		}
		return nil
	}
	return t, walk(dir, t.root)
}

// store replaces the backing directory's contents with t's durable
// state.
func (t *tree) store(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	written := map[*inode]string{}
	var walk func(path string, n *inode) error
	walk = func(path string, n *inode) error {
		for name, k := range n.dkids {
			p := filepath.Join(path, name)
			if prev, ok := written[k]; ok {
				if k.isDir() {
					continue // a directory under two names: the first wins
				}
				if err := os.Link(prev, p); err != nil {
					return err
				}
				continue
			}
			written[k] = p
			perm := os.FileMode(k.mode & 0o7777)
			switch {
			case k.isDir():
				if err := os.Mkdir(p, perm); err != nil {
					return err
				}
				if err := walk(p, k); err != nil {
					return err
				}
			case k.isReg():
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
				if err != nil {
					return err
				}
				for pg, b := range k.d.pages {
					off := pg * pageSize
					if off >= k.d.size {
						continue
					}
					if _, err := f.WriteAt(b[:min(int64(len(b)), k.d.size-off)], off); err != nil {
						f.Close()
						return err
					}
				}
				err = f.Truncate(k.d.size)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
			case k.mode&syscall.S_IFMT == syscall.S_IFLNK:
				if err := os.Symlink(k.target, p); err != nil {
					return err
				}
			default: // sockets and fifos do not survive a power loss
			}
		}
		return nil
	}
	return walk(dir, t.root)
}
