package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/rapi"
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

// TestLoginGuessingBacksOff (issue 16, finding 7): 500 wrong passwords
// on the dashboard took 0.20 s. After rapi.GuardFree failures the login
// form (and Basic login) refuse (429, Retry-After) without checking the
// password until the delay has passed; failures are logged at WARN with
// the remote address.
func TestLoginGuessingBacksOff(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	var logs lockedBuffer
	e := newEnv(t, 1, Config{Guard: rapi.NewGuard(clock.now), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := e.anon()
	login := func(pw string) response {
		return c.do("POST", "/ui/login", url.Values{"user": {"admin"}, "password": {pw}})
	}
	for range rapi.GuardFree + 1 {
		wantStatus(t, "wrong password", login("guess"), http.StatusUnauthorized, "Wrong user name or password.")
	}
	r := login("adminpw")
	wantStatus(t, "right password during the backoff", r, http.StatusTooManyRequests,
		"Too many failed logins from this address or for this user; try again in 1 seconds.")
	if r.header.Get("Retry-After") != "1" || r.header.Get("Set-Cookie") != "" {
		t.Fatalf("during the backoff: %v", r.header)
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/ui/login?basic=1", nil)
	req.SetBasicAuth("admin", "adminpw")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("Basic login during the backoff: %d", resp.StatusCode)
	}
	clock.add(time.Second)
	r = login("adminpw")
	if r.status != http.StatusSeeOther || !strings.Contains(r.header.Get("Set-Cookie"), CookieName+"=") {
		t.Fatalf("right password after the delay: %d %v", r.status, r.header)
	}
	for _, want := range []string{`level=WARN msg="web: failed login" user=admin remote=127.0.0.1:`,
		`level=WARN msg="web: login refused while failed attempts back off" user=admin remote=127.0.0.1:`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestLoginNearMissPasswords (issue 16, finding 10): a password check
// that accepted a prefix of the password passed every dashboard test.
// Every near miss is refused, for cleartext and {HA1} passwords, by the
// form and by Basic login; the right password then logs in (and clears
// the guard).
func TestLoginNearMissPasswords(t *testing.T) {
	e := newEnv(t, 1, Config{})
	e.users.set(testUsers + "alice " + rapi.HA1("alice", "wonderland") + " write\nbob {CLEARTEXT}builder read\n")
	for user, right := range map[string]string{"admin": "adminpw", "alice": "wonderland", "bob": "builder"} {
		near := []string{right[:len(right)-1], right[:1], right + "x", right + right, "", strings.ToUpper(right), " " + right}
		if user == "alice" {
			near = append(near, rapi.HA1("alice", "wonderland"), strings.TrimPrefix(rapi.HA1("alice", "wonderland"), "{HA1}"))
		}
		if user == "bob" {
			near = append(near, "{CLEARTEXT}builder")
		}
		for _, pw := range near {
			c := e.anon()
			r := c.do("POST", "/ui/login", url.Values{"user": {user}, "password": {pw}})
			if r.status != http.StatusUnauthorized || r.header.Get("Set-Cookie") != "" {
				t.Errorf("form login %s with %q (near %q): %d", user, pw, right, r.status)
			}
			req, _ := http.NewRequest("GET", e.ts.URL+"/ui/login?basic=1", nil)
			req.SetBasicAuth(user, pw)
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("Basic login %s with %q (near %q): %d", user, pw, right, resp.StatusCode)
			}
			if r := c.do("POST", "/ui/login", url.Values{"user": {user}, "password": {right}}); r.status != http.StatusSeeOther {
				t.Fatalf("%s with the right password: %d", user, r.status)
			}
		}
	}
}
