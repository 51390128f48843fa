package rapi

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// get sends GET /2/jobs with Basic credentials from remote.
func (e *env) getFrom(remote, user, pass string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "https://rapi.test/2/jobs", nil)
	r.RemoteAddr = remote
	r.SetBasicAuth(user, pass)
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	return w
}

// TestPasswordGuessingBacksOff (issue 16, finding 7): 500 wrong
// passwords took 0.14 s and were not logged. After GuardFree failures
// from one address, attempts from it are refused (429, Retry-After)
// without checking the password, for a delay that doubles with each
// failure; the same per user, from any address; every failure is logged
// at WARN with the remote address; a success clears the count.
func TestPasswordGuessingBacksOff(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	var logs lockedBuffer
	e := newEnv(t, 1, func(c *Config) {
		c.Guard = NewGuard(clock.now)
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	const attacker = "198.51.100.7:4000"
	for i := range GuardFree {
		if w := e.getFrom(attacker, "admin", "guess"); w.Code != 401 {
			t.Fatalf("failure %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	// The free failures are used up: one more failure, then waiting.
	if w := e.getFrom(attacker, "mallory", "guess"); w.Code != 401 {
		t.Fatalf("failure %d: %d", GuardFree+1, w.Code)
	}
	w := e.getFrom(attacker, "admin", "adminpw") // even the right password
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" ||
		!strings.Contains(w.Body.String(), "Too many failed authentications from this address or for this user; try again in 1 seconds") {
		t.Fatalf("during the backoff: %d %v %s", w.Code, w.Header(), w.Body)
	}
	// Other addresses are not slowed for other users ...
	if w := e.getFrom("192.0.2.50:1", "reader", "readerpw"); w.Code != 200 {
		t.Fatalf("another address and user: %d %s", w.Code, w.Body)
	}
	// ... but admin's name had 5 failures (its own backoff has not begun:
	// the sixth was for mallory, an unknown name, which is not tracked).
	if w := e.getFrom("192.0.2.51:1", "admin", "adminpw"); w.Code != 200 {
		t.Fatalf("admin from elsewhere: %d %s", w.Code, w.Body)
	}
	clock.add(time.Second)
	if w := e.getFrom(attacker, "admin", "nope"); w.Code != 401 {
		t.Fatalf("after the delay: %d", w.Code)
	}
	if w := e.getFrom(attacker, "admin", "adminpw"); w.Code != 429 || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("the delay doubles: %d %v", w.Code, w.Header())
	}
	clock.add(2 * time.Second)
	if w := e.getFrom(attacker, "admin", "adminpw"); w.Code != 200 {
		t.Fatalf("right password after the delay: %d %s", w.Code, w.Body)
	}
	if w := e.getFrom(attacker, "admin", "nope"); w.Code != 401 {
		t.Fatalf("a success clears the count: %d", w.Code)
	}
	// Per user: failures for one user from many addresses.
	for i := range GuardFree + 1 {
		e.getFrom("203.0.113."+string(rune('1'+i))+":9", "reader", "guess")
	}
	if w := e.getFrom("192.0.2.99:1", "reader", "readerpw"); w.Code != 429 {
		t.Fatalf("per-user backoff from a fresh address: %d %s", w.Code, w.Body)
	}
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="RAPI: authentication failed" user=admin remote=198.51.100.7:4000`,
		`level=WARN msg="RAPI: authentication failed" user=mallory remote=198.51.100.7:4000 known_user=false`,
		`level=WARN msg="RAPI: authentication refused while failed attempts back off" user=admin remote=198.51.100.7:4000`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestNearMissPasswords (issue 16, finding 10): a check that accepted a
// prefix of the password, or a longer one, passed every test. Each near
// miss is refused, for cleartext and {HA1} passwords; the right one is
// accepted (which also clears the guard between tries).
func TestNearMissPasswords(t *testing.T) {
	e := newEnv(t, 1, nil)
	writeFile(t, e.users, usersFile+"alice "+HA1("alice", "wonderland")+" write\nbob {CLEARTEXT}builder write\n")
	for user, right := range map[string]string{"admin": "adminpw", "alice": "wonderland", "bob": "builder", "ro": "ropw"} {
		near := []string{right[:len(right)-1], right[:1], right + "x", right + right, "", strings.ToUpper(right),
			" " + right, right + " ", right + "\x00"}
		if user == "alice" {
			near = append(near, strings.TrimPrefix(HA1("alice", "wonderland"), "{HA1}"), HA1("alice", "wonderland"))
		}
		if user == "bob" {
			near = append(near, "{CLEARTEXT}builder")
		}
		for _, pw := range near {
			if w := e.getFrom("192.0.2.1:1", user, pw); w.Code != 401 {
				t.Errorf("%s with %q (near %q): %d, want 401", user, pw, right, w.Code)
			}
			if CheckPassword(user, pw, e.s.LookupUser(user).Password) {
				t.Errorf("CheckPassword(%s, %q) accepted a near miss of %q", user, pw, right)
			}
			if w := e.getFrom("192.0.2.1:1", user, right); w.Code != 200 {
				t.Fatalf("%s with the right password: %d %s", user, w.Code, w.Body)
			}
		}
	}
}
