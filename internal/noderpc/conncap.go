package noderpc

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SetMaxConns caps the connections open at once on each listener of s
// (node-to-node calls and the consensus streams count alike), so that
// clients flooding the node RPC port, which anyone may reach before TLS,
// cannot take the descriptors LUXI and RAPI need. A connection over the
// cap is closed at once, before its TLS handshake. 0 means a quarter of
// the process's descriptor limit (read at each accept), at least 16;
// negative means no cap. Set it before Serve.
func (s *Server) SetMaxConns(n int) { s.maxConns.Store(int64(n)) }

func (s *Server) connCap() int {
	switch n := s.maxConns.Load(); {
	case n > 0:
		return int(n)
	case n < 0:
		return 0
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 4096
	}
	return max(int(rl.Cur/4), 16)
}

// capListener closes the connections accepted over its server's cap.
type capListener struct {
	net.Listener
	s    *Server
	open atomic.Int64

	mu       sync.Mutex
	lastWarn time.Time
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if limit := l.s.connCap(); limit > 0 && l.open.Load() >= int64(limit) {
			l.mu.Lock()
			if time.Since(l.lastWarn) > time.Minute {
				l.lastWarn = time.Now()
				l.s.log.Warn("node RPC: connection cap reached; closing new connections (warned once a minute)",
					"cap", limit, "remote", c.RemoteAddr().String())
			}
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open.Add(1)
		return &capConn{Conn: c, l: l}, nil
	}
}

type capConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *capConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
