package rapi

import (
	"net"
	"sync"
	"time"
)

// Guard slows password guessing down: after a few failures from one
// address, or for one user, every further attempt from that address or
// for that user is refused without checking the password until a delay
// has passed, doubling with each failure (1s, 2s, 4s, ... up to a cap).
// A success clears the address and the user. RAPI and the dashboard share
// one Guard, so guesses on one count for the other.
type Guard struct {
	now func() time.Time

	mu    sync.Mutex
	addrs map[string]*strikes
	users map[string]*strikes
}

type strikes struct {
	fails int
	until time.Time // refused before this
	last  time.Time
}

// Guard's settings: failures that cost nothing, the cap of the delay per
// address and per user (smaller: anyone may fail for a user, and lock
// them out while it lasts), and how long failures are remembered.
const (
	GuardFree        = 5
	GuardMaxAddr     = 5 * time.Minute
	GuardMaxUser     = 30 * time.Second
	guardForget      = 15 * time.Minute
	guardPruneAtSize = 4096
)

// NewGuard returns a Guard reading the time from now (nil: time.Now).
func NewGuard(now func() time.Time) *Guard {
	if now == nil {
		now = time.Now
	}
	return &Guard{now: now, addrs: map[string]*strikes{}, users: map[string]*strikes{}}
}

// host is the address part of a remote address ("ip:port").
func host(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// Wait reports how long an attempt from remote for user must still wait;
// 0 means go ahead.
func (g *Guard) Wait(remote, user string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var wait time.Duration
	for _, s := range []*strikes{g.addrs[host(remote)], g.users[user]} {
		if s != nil && s.until.After(now) {
			wait = max(wait, s.until.Sub(now))
		}
	}
	return wait
}

// Failed records a wrong password from remote; knownUser says whether
// user exists (only existing users are tracked by name, so that made-up
// names cannot fill memory).
func (g *Guard) Failed(remote, user string, knownUser bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.strikeLocked(g.addrs, host(remote), now, GuardMaxAddr)
	if knownUser {
		g.strikeLocked(g.users, user, now, GuardMaxUser)
	}
}

func (g *Guard) strikeLocked(m map[string]*strikes, key string, now time.Time, maxDelay time.Duration) {
	if len(m) >= guardPruneAtSize {
		for k, s := range m {
			if now.Sub(s.last) > guardForget {
				delete(m, k)
			}
		}
	}
	s := m[key]
	if s == nil || now.Sub(s.last) > guardForget {
		s = &strikes{}
		m[key] = s
	}
	s.fails++
	s.last = now
	if n := s.fails - GuardFree; n > 0 {
		d := maxDelay
		if n <= 20 {
			d = min(time.Second<<(n-1), maxDelay)
		}
		s.until = now.Add(d)
	}
}

// Succeeded clears what was recorded for remote and user.
func (g *Guard) Succeeded(remote, user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.addrs, host(remote))
	delete(g.users, user)
}
