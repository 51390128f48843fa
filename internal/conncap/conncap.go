// Package conncap caps the connections open at once on a listener, so that
// clients flooding one listener (anyone may reach RAPI's and the node
// RPC's before TLS) cannot take the file descriptors the others need. A
// connection over the cap is closed at once, and a warning logged at most
// once a minute.
package conncap

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultMax is a quarter of the process's descriptor limit
// (RLIMIT_NOFILE), at least 16; 4096 when the limit is unknown or
// unlimited.
func DefaultMax() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 4096
	}
	return max(int(rl.Cur/4), 16)
}

// Listener is a net.Listener whose Accept closes the connections over
// Max's cap (read at each accept; 0 or less: no cap).
type Listener struct {
	net.Listener
	Max  func() int
	Log  *slog.Logger
	Name string // what listens, for the warning ("RAPI", "node RPC")

	open atomic.Int64

	mu       sync.Mutex
	lastWarn time.Time
}

// Open is how many accepted connections are open.
func (l *Listener) Open() int64 { return l.open.Load() }

// Accept returns the next connection under the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if limit := l.Max(); limit > 0 && l.open.Load() >= int64(limit) {
			l.mu.Lock()
			if time.Since(l.lastWarn) > time.Minute && l.Log != nil {
				l.lastWarn = time.Now()
				l.Log.Warn(l.Name+": connection cap reached; closing new connections (warned once a minute)",
					"cap", limit, "remote", c.RemoteAddr().String())
			}
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open.Add(1)
		return &conn{Conn: c, l: l}, nil
	}
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
