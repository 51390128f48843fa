package integration

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var rapiAddrRe = regexp.MustCompile(`msg="RAPI listening" addr=(\S+)`)

// TestRAPIWithBinary starts the real jobqd with --rapi-addr and talks
// HTTPS to it, verifying the cluster certificate it created.
func TestRAPIWithBinary(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "rapi"), 0o750)
	if err := os.WriteFile(filepath.Join(dir, "rapi", "users"), []byte("admin secret write\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, dir, "--rapi-addr", "127.0.0.1:0")
	m := rapiAddrRe.FindStringSubmatch(n.Logs())
	if m == nil {
		t.Fatalf("no RAPI address in the log:\n%s", n.Logs())
	}
	pem, err := os.ReadFile(filepath.Join(dir, "cluster", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+m[1]+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.SetBasicAuth("admin", "secret")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("GET", "/version", ""); code != 200 || body != "2\n" {
		t.Fatalf("GET /version: %d %q", code, body)
	}
	if code, body := do("POST", "/2/jobs", `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.01}]}`); code != 200 || body != "1\n" {
		t.Fatalf("POST /2/jobs: %d %q", code, body)
	}
	if st := waitFor(t, n.client(), 1, final); st != "success" {
		t.Fatalf("job 1: %s", st)
	}
	if code, body := do("GET", "/2/jobs/1", ""); code != 200 || !strings.Contains(body, `"status": "success"`) {
		t.Fatalf("GET /2/jobs/1: %d %q", code, body)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, n.Logs())
	}

	// --rapi-addr off: no RAPI.
	n = startNode(t, dir, "--rapi-addr", "off")
	if !strings.Contains(n.Logs(), "RAPI is off") || rapiAddrRe.MatchString(n.Logs()) {
		t.Fatalf("with --rapi-addr off:\n%s", n.Logs())
	}
}
