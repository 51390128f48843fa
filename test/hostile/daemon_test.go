// Package hostile attacks the real jobqd: oversized and deeply nested
// messages, slow and idle clients on the LUXI socket and on RAPI's HTTPS,
// oversized RAPI bodies, and checks the modes of what it creates. Other
// clients must be served throughout and memory must stay bounded.
package hostile

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/testbin"
	"github.com/jobq-dev/jobq/luxi"
)

// TestMain fails a run that leaves goroutines behind: the attacking
// connections and their writers must end with the tests.
func TestMain(m *testing.M) { testbin.MainCheckLeaks(m) }

const (
	adminUser, adminPassword = "admin", "secret"
)

// daemon is a running jobqd named node1.
type daemon struct {
	*testbin.Daemon
	t *testing.T
}

// start starts jobqd on dir (with a RAPI user admin, write access) and
// returns once it logged "jobqd ready".
func start(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	users := filepath.Join(dir, "rapi", "users")
	if err := os.MkdirAll(filepath.Dir(users), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, []byte(adminUser+" "+adminPassword+" write\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startBare(t, dir, extra...)
}

// startBare is start without creating anything in dir first. jobqd is
// built without the race detector, unlike for the other tests of the
// real binary: these tests measure jobqd's memory, and the race
// detector's shadow memory would multiply what a 64 MiB message costs by
// ten.
func startBare(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"--node-name", "node1", "--rpc-addr", "127.0.0.1:0", "--rapi-addr", "127.0.0.1:0"}, extra...)
	return &daemon{Daemon: testbin.Options{NoRace: true}.Start(t, dir, args...), t: t}
}

// alive fails the test if jobqd has exited.
func (d *daemon) alive() {
	d.t.Helper()
	if !d.Running() {
		d.t.Fatalf("jobqd exited: %v\n%s", d.ExitErr(), d.Logs())
	}
}

func (d *daemon) client() *luxi.Client {
	d.t.Helper()
	c, err := luxi.Dial(d.Socket())
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close() })
	return c
}

// rss is jobqd's resident memory in bytes (VmRSS).
func (d *daemon) rss() int64 {
	d.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid()))
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				d.t.Fatalf("VmRSS line %q", line)
			}
			return kb << 10
		}
	}
	d.t.Fatalf("no VmRSS in /proc/%d/status", d.Pid())
	return 0
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

var rapiAddrRe = regexp.MustCompile(`msg="RAPI listening" addr=(\S+)`)

// rapi returns RAPI's address and a TLS configuration that trusts the
// cluster certificate.
func (d *daemon) rapi() (string, *tls.Config) {
	d.t.Helper()
	m := rapiAddrRe.FindStringSubmatch(d.MustLine(d.t, `msg="RAPI listening"`))
	pem, err := os.ReadFile(filepath.Join(d.Dir, "cluster", "cert.pem"))
	if err != nil {
		d.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		d.t.Fatal("cluster certificate does not parse")
	}
	return m[1], &tls.Config{RootCAs: pool}
}

// https sends one request on a connection of its own and returns the
// status and body.
func https(t *testing.T, addr string, cfg *tls.Config, method, path string, body io.Reader, length int64) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, "https://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(adminUser, adminPassword)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// rawConn is a LUXI connection driven byte by byte.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (d *daemon) dialRaw() *rawConn {
	d.t.Helper()
	nc, err := net.Dial("unix", d.Socket())
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { nc.Close() })
	return &rawConn{t: d.t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message without its terminator.
func (c *rawConn) read() ([]byte, error) {
	b, err := c.br.ReadBytes(0x03)
	if err != nil {
		return b, err
	}
	return b[:len(b)-1], nil
}

func (c *rawConn) mustRead() string {
	c.t.Helper()
	b, err := c.read()
	if err != nil {
		c.t.Fatalf("reading a reply: %v (after %q)", err, b)
	}
	return string(b)
}

// served checks that c (a client like any other) is served: a job is
// submitted, runs to success and is listed.
func served(t *testing.T, c *luxi.Client) {
	t.Helper()
	ctx := context.Background()
	raw, err := c.Call(ctx, "SubmitJob", []any{map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}})
	if err != nil {
		t.Fatalf("SubmitJob: %v", err)
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil {
		t.Fatalf("SubmitJob answered %s", raw)
	}
	var prev any
	for {
		raw, err := c.Call(ctx, "WaitForJobChange", id, []string{"status"}, prev, nil, 30)
		if err != nil {
			t.Fatalf("WaitForJobChange: %v", err)
		}
		var res []json.RawMessage
		var vals []job.Status
		if json.Unmarshal(raw, &res) != nil || len(res) != 2 || json.Unmarshal(res[0], &vals) != nil || len(vals) != 1 {
			t.Fatalf("WaitForJobChange answered %s", raw)
		}
		if vals[0].Final() {
			if vals[0] != job.StatusSuccess {
				t.Fatalf("job %d ended %s", id, vals[0])
			}
			break
		}
		prev = vals
	}
	raw, err = c.Call(ctx, "QueryJobs", []int64{id}, []string{"id", "status"})
	if err != nil || string(raw) != fmt.Sprintf(`[[%d,"success"]]`, id) {
		t.Fatalf("QueryJobs: %s %v", raw, err)
	}
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }
