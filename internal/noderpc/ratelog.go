package noderpc

import (
	"log/slog"
	"sync"
	"time"
)

// Calls refused for their client certificate (none, or not the
// cluster's) are logged at WARN at most refusalBurst times per
// refusalWindow: whoever can reach the node RPC port, certificate or not,
// would otherwise decide how much the log grows. The first line after a
// window in which lines were left out says how many.
const (
	refusalBurst  = 10
	refusalWindow = time.Minute
)

type rateLog struct {
	mu         sync.Mutex
	now        func() time.Time
	start      time.Time // of the current window
	logged     int       // lines in the current window
	suppressed int       // lines left out since the last one logged
}

// warn logs msg at WARN unless the window's lines are used up.
func (l *rateLog) warn(log *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	if now.Sub(l.start) >= refusalWindow {
		l.start, l.logged = now, 0
	}
	if l.logged >= refusalBurst {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.logged++
	if l.suppressed > 0 {
		args = append(args, "suppressed_since_last", l.suppressed)
		l.suppressed = 0
	}
	l.mu.Unlock()
	log.Warn(msg, args...)
}
