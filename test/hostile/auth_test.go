package hostile

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// request sends one request with the given credentials (user "" for
// none) on a connection of its own.
func request(t *testing.T, addr string, cfg *tls.Config, method, path, user, password string) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, "https://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRAPIRequireAuth (issue 16, finding 4): an anonymous GET /2/jobs/N
// returned a job's output. With --rapi-require-auth every request needs
// a user; without it reads stay anonymous, as in Ganeti.
func TestRAPIRequireAuth(t *testing.T) {
	for _, require := range []bool{true, false} {
		var extra []string
		if require {
			extra = []string{"--rapi-require-auth"}
		}
		d := start(t, t.TempDir(), extra...)
		addr, cfg := d.rapi()
		id := submitRAPI(t, addr, cfg)
		for _, path := range []string{"/version", "/2/info", "/2/jobs", fmt.Sprintf("/2/jobs/%d", id)} {
			code, body := request(t, addr, cfg, "GET", path, "", "")
			if require && (code != 401 || !strings.Contains(body, `"message": "Unauthorized"`)) {
				t.Errorf("--rapi-require-auth: anonymous GET %s: %d %q, want 401", path, code, body)
			}
			if !require && code != 200 {
				t.Errorf("anonymous GET %s: %d %q, want 200 (reads need no user by default)", path, code, body)
			}
			if code, body := request(t, addr, cfg, "GET", path, adminUser, adminPassword); code != 200 {
				t.Errorf("require=%v: GET %s as %s: %d %q", require, path, adminUser, code, body)
			}
		}
		d.Stop()
	}
}
