package rapi

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// capListener closes connections accepted over a cap of open ones, so
// that clients flooding RAPI with connections cannot take the descriptors
// the other listeners (LUXI, node RPC) need.
type capListener struct {
	net.Listener
	max  func() int
	log  *slog.Logger
	open atomic.Int64

	mu       sync.Mutex
	lastWarn time.Time
}

// defaultMaxConns is a quarter of the process's descriptor limit, read at
// each accept, at least 16 (as LUXI's listeners).
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 4096
	}
	return max(int(rl.Cur/4), 16)
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if limit := l.max(); limit > 0 && l.open.Load() >= int64(limit) {
			l.mu.Lock()
			if time.Since(l.lastWarn) > time.Minute {
				l.lastWarn = time.Now()
				l.log.Warn("RAPI: connection cap reached; closing new connections (warned once a minute)", "cap", limit)
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
