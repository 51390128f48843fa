package luxi

import (
	"context"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Peer is the process at the other end of a LUXI connection, as the
// kernel reports it when the connection is accepted (SO_PEERCRED on a
// Unix socket): not anything the client says about itself.
type Peer struct {
	UID, GID uint32
	PID      int32
	// Groups are the peer's supplementary groups when the kernel tells
	// them (SO_PEERGROUPS, Linux 4.13 and later); nil otherwise.
	Groups []uint32
}

type peerKey struct{}

// PeerFromContext returns the peer of the connection a call came on; ok is
// false when it is not known (a connection other than a Unix socket, or
// SO_PEERCRED failed).
func PeerFromContext(ctx context.Context) (p Peer, ok bool) {
	p, ok = ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// WithPeer returns ctx carrying p, as the server gives its handler (for
// tests of handlers).
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// peerCred reads the credentials of a Unix socket's peer.
func peerCred(nc net.Conn) (Peer, bool) {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return Peer{}, false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, false
	}
	var cred *unix.Ucred
	var groups []uint32
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		groups = peerGroups(fd)
	}); err != nil || serr != nil || cred == nil {
		return Peer{}, false
	}
	return Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid, Groups: groups}, true
}

// soPeerGroups is SO_PEERGROUPS (asm-generic; golang.org/x/sys/unix does
// not name it).
const soPeerGroups = 59

// peerGroups reads the peer's supplementary groups; nil when the kernel
// cannot tell.
func peerGroups(fd uintptr) []uint32 {
	buf := make([]uint32, 32)
	for range 3 {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, soPeerGroups,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == unix.ERANGE && int(size/4) > len(buf):
			buf = make([]uint32, size/4)
			continue
		case errno != 0:
			return nil
		}
		return buf[: size/4 : size/4]
	}
	return nil
}
