package daemon

// Integration tests of RAPI: a real daemon (Run) serving HTTPS with its
// cluster certificate, driven by net/http clients that verify it.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/rapi"
	"github.com/jobq-dev/jobq/opcodes"
)

// stepsOp is OP_TEST_STEPS {"steps": N}: for each step it logs "step i"
// and then waits until the test lets it go on (a send on next, or next
// closed).
type stepsOp struct {
	next  <-chan struct{}
	Steps int `json:"steps"`
}

func (p *stepsOp) Validate() error { return nil }

func (p *stepsOp) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	for i := range p.Steps {
		env.Log(fmt.Sprintf("step %d", i))
		select {
		case <-p.next:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, nil
}

// rapiUsers is the users file of the RAPI tests: admin can write, reader
// can only read, alice writes with an {HA1} password ("wonderland").
var rapiUsers = "# RAPI users\n" +
	"admin adminpw write,admin\n" +
	"reader readerpw read\n" +
	"alice " + rapi.HA1("alice", "wonderland") + " write\n"

// rapiNode is a daemon with RAPI on 127.0.0.1, and an HTTP/1.1 client that
// trusts its cluster certificate.
type rapiNode struct {
	tb      testing.TB
	dir     string
	addr    string
	base    string
	tr      *http.Transport
	hc      *http.Client
	next    chan struct{}
	closeMu sync.Once
	stop    func()
}

// startRAPINode runs Run on dir (a fresh directory if empty) with RAPI on
// a free port; users, if not empty, is written to the users file first.
func startRAPINode(tb testing.TB, dir string, maxRunning int, users string) *rapiNode {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	if users != "" {
		writeUsers(tb, dir, users)
	}
	n := &rapiNode{tb: tb, dir: dir, next: make(chan struct{})}
	reg := opcodes.Builtin()
	if err := reg.Register(opcodes.Definition{ID: "OP_TEST_STEPS",
		New: func() opcodes.Params { return &stepsOp{next: n.next} }}); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	var addr net.Addr
	go func() {
		done <- Run(ctx, Options{
			DataDir:         dir,
			NodeName:        "node1.jobq.test",
			RAPIAddr:        "127.0.0.1:0",
			MaxRunning:      maxRunning,
			ShutdownTimeout: 5 * time.Second,
			Registry:        reg,
			Logger:          slog.New(slog.DiscardHandler),
			RAPIReady:       func(a net.Addr) { addr = a },
			Ready:           func() { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		tb.Fatalf("Run returned before it was ready: %v", err)
	}
	n.addr = addr.String()
	n.base = "https://" + n.addr
	certPEM, err := os.ReadFile(filepath.Join(dir, "cluster", "cert.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		tb.Fatal("cluster/cert.pem holds no certificate")
	}
	// A custom TLS configuration and no ForceAttemptHTTP2: HTTP/1.1.
	n.tr = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxConnsPerHost: 1}
	n.hc = &http.Client{Transport: n.tr}
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		n.closeMu.Do(func() { close(n.next) })
		n.tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	}
	tb.Cleanup(n.stop)
	return n
}

func writeUsers(tb testing.TB, dir, users string) {
	tb.Helper()
	p := RAPIUsersFile(dir)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		tb.Fatal(err)
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(users), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		tb.Fatal(err)
	}
}

type rapiReply struct {
	code   int
	header http.Header
	body   string
	reused bool
}

// do sends one request; user "" sends no credentials; a body goes as
// application/json.
func (n *rapiNode) do(method, path, user, pass, body string) rapiReply {
	n.tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var reused bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.base+path, rd)
	if err != nil {
		n.tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		n.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		n.tb.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return rapiReply{code: resp.StatusCode, header: resp.Header, body: string(b), reused: reused}
}

// submit posts a job as admin and returns its id.
func (n *rapiNode) submit(ops string) int64 {
	n.tb.Helper()
	r := n.do("POST", "/2/jobs", "admin", "adminpw", `{"ops": `+ops+`}`)
	var id int64
	if r.code != 200 || json.Unmarshal([]byte(r.body), &id) != nil {
		n.tb.Fatalf("submit %s: %d %s", ops, r.code, r.body)
	}
	return id
}

// waitChange is one GET /2/jobs/N/wait; nil when nothing changed.
type waitAnswer struct {
	JobInfo    []json.RawMessage `json:"job_info"`
	LogEntries [][]any           `json:"log_entries"`
}

func (n *rapiNode) wait(id int64, fields []string, prev []json.RawMessage, serial *int64) *waitAnswer {
	n.tb.Helper()
	body, _ := json.Marshal(map[string]any{"fields": fields, "previous_job_info": prev, "previous_log_serial": serial})
	r := n.do("GET", fmt.Sprintf("/2/jobs/%d/wait", id), "admin", "adminpw", string(body))
	if r.code != 200 {
		n.tb.Fatalf("wait %d: %d %s", id, r.code, r.body)
	}
	if r.body == "null\n" {
		return nil
	}
	var a waitAnswer
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		n.tb.Fatalf("wait %d: %s", id, r.body)
	}
	return &a
}

// waitStatus waits (through RAPI) until job id's status satisfies ok.
func (n *rapiNode) waitStatus(id int64, ok func(string) bool) string {
	n.tb.Helper()
	var prev []json.RawMessage
	for {
		a := n.wait(id, []string{"status"}, prev, nil)
		if a == nil {
			continue
		}
		var st string
		json.Unmarshal(a.JobInfo[0], &st)
		if ok(st) {
			return st
		}
		prev = a.JobInfo
	}
}

// waitLogged waits (through RAPI) until job id has logged something.
func (n *rapiNode) waitLogged(id int64) {
	n.tb.Helper()
	zero := int64(0)
	for {
		a := n.wait(id, []string{"id"}, []json.RawMessage{json.RawMessage(fmt.Sprint(id))}, &zero)
		if a != nil && len(a.LogEntries) > 0 {
			return
		}
	}
}

func is(s string) func(string) bool { return func(t string) bool { return s == t } }

func TestRAPIEndpoints(t *testing.T) {
	n := startRAPINode(t, "", 1, rapiUsers)

	for path, want := range map[string]string{
		"/version":    "2\n",
		"/2/features": `["jobs-submit"]` + "\n",
		"/2/jobs":     "[]\n",
	} {
		if r := n.do("GET", path, "", "", ""); r.code != 200 || r.body != want || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %q %v, want %q", path, r.code, r.body, r.header, want)
		}
	}
	r := n.do("GET", "/2/info", "", "", "")
	var info map[string]any
	if err := json.Unmarshal([]byte(r.body), &info); err != nil || info["name"] != "node1.jobq.test" ||
		info["master"] != "node1.jobq.test" || info["max_running_jobs"] != 1.0 || info["protocol_version"] != 3e6 {
		t.Errorf("GET /2/info: %d %s", r.code, r.body)
	}

	// POST /2/jobs; a job that holds the only worker, and one behind it.
	hold := n.submit(`[{"OP_ID": "OP_TEST_STEPS", "steps": 1}]`)
	queued := n.submit(`[{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]`)
	n.waitStatus(hold, is("running"))

	r = n.do("GET", "/2/jobs", "", "", "")
	if want := fmt.Sprintf(`[{"id": %d, "uri": "/2/jobs/%d"}, {"id": %d, "uri": "/2/jobs/%d"}]`+"\n", hold, hold, queued, queued); r.body != want {
		t.Errorf("GET /2/jobs: %q, want %q", r.body, want)
	}
	r = n.do("GET", "/2/jobs?bulk=1", "", "", "")
	var bulk []map[string]any
	if err := json.Unmarshal([]byte(r.body), &bulk); err != nil || len(bulk) != 2 ||
		bulk[0]["status"] != "running" || bulk[1]["status"] != "queued" || len(bulk[0]) != 8 {
		t.Errorf("GET /2/jobs?bulk=1: %s", r.body)
	}
	r = n.do("GET", fmt.Sprintf("/2/jobs/%d", queued), "", "", "")
	var j map[string]any
	if err := json.Unmarshal([]byte(r.body), &j); err != nil || j["status"] != "queued" ||
		fmt.Sprint(j["summary"]) != "[TEST_DELAY(1.0e-3)]" || len(j) != 10 {
		t.Errorf("GET /2/jobs/%d: %s", queued, r.body)
	}

	// DELETE: the queued job is canceled, the running one is not.
	if r := n.do("DELETE", fmt.Sprintf("/2/jobs/%d", queued), "admin", "adminpw", ""); r.body != fmt.Sprintf(`[true, "Dequeued job %d"]`+"\n", queued) {
		t.Errorf("cancel queued: %d %s", r.code, r.body)
	}
	if r := n.do("DELETE", fmt.Sprintf("/2/jobs/%d", hold), "admin", "adminpw", ""); r.body != `[false, "Job no longer waiting, can't cancel (informed it anyway)"]`+"\n" {
		t.Errorf("cancel running: %d %s", r.code, r.body)
	}

	// Wait: once the held job has logged, the first call answers at once
	// with everything.
	n.waitLogged(hold)
	a := n.wait(hold, []string{"status", "opstatus"}, nil, nil)
	if a == nil || string(a.JobInfo[0]) != `"running"` || string(a.JobInfo[1]) != `["running"]` ||
		len(a.LogEntries) != 1 || a.LogEntries[0][3] != "step 0" {
		t.Errorf("wait: %+v", a)
	}
	n.next <- struct{}{}
	n.waitStatus(hold, is("success"))

	// Unknown job: 404; malformed body: 400 with a message.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/2/jobs/4242", ""},
		{"DELETE", "/2/jobs/4242", ""},
		{"GET", "/2/jobs/4242/wait", `{"fields": ["status"]}`},
	} {
		if r := n.do(c.method, c.path, "admin", "adminpw", c.body); r.code != 404 || !strings.Contains(r.body, `"message": "Job 4242 not found"`) {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
	for _, body := range []string{`{"ops": [`, `{"ops": "x"}`, `{"ops": []}`, `[]`} {
		if r := n.do("POST", "/2/jobs", "admin", "adminpw", body); r.code != 400 || !strings.Contains(r.body, `"code": 400, "message": "`) {
			t.Errorf("POST %s: %d %s", body, r.code, r.body)
		}
	}
	if r := n.do("GET", "/2/jobs/1/wait", "admin", "adminpw", `{"fields": 7}`); r.code != 400 ||
		!strings.Contains(r.body, "The &#x27;fields&#x27; parameter should be a list") {
		t.Errorf("wait with a bad body: %d %s", r.code, r.body)
	}
	if r := n.do("PUT", "/2/jobs", "admin", "adminpw", ""); r.code != 501 {
		t.Errorf("PUT /2/jobs: %d %s", r.code, r.body)
	}
}

func TestRAPIAuthFailures(t *testing.T) {
	n := startRAPINode(t, "", 0, rapiUsers)
	ops := `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`
	unauthorized := `{"code": 401, "message": "Unauthorized", "explain": "No permission -- see authorization schemes"}` + "\n"
	for _, c := range []struct {
		name, user, pass string
		code             int
	}{
		{"no credentials", "", "", 401},
		{"wrong password", "admin", "wrong", 401},
		{"unknown user", "nobody", "adminpw", 401},
		{"read-only user writing", "reader", "readerpw", 403},
		{"write user", "admin", "adminpw", 200},
		{"{HA1} password", "alice", "wonderland", 200},
		{"{HA1} wrong password", "alice", "Wonderland", 401},
	} {
		r := n.do("POST", "/2/jobs", c.user, c.pass, ops)
		if r.code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, r.code, r.body, c.code)
			continue
		}
		if c.code == 401 && (r.body != unauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="Ganeti Remote API"`) {
			t.Errorf("%s: %q %v", c.name, r.body, r.header)
		}
		if c.code == 403 && !strings.Contains(r.body, `"code": 403, "message": "Forbidden"`) {
			t.Errorf("%s: %q", c.name, r.body)
		}
	}
	// A wrong password fails reads too (credentials sent are checked);
	// reads without credentials are allowed, as in Ganeti.
	if r := n.do("GET", "/2/jobs", "admin", "wrong", ""); r.code != 401 {
		t.Errorf("read with a wrong password: %d", r.code)
	}
	if r := n.do("GET", "/2/jobs/1", "reader", "readerpw", ""); r.code != 200 {
		t.Errorf("read as reader: %d %s", r.code, r.body)
	}
	// Waiting needs write access, as in Ganeti.
	if r := n.do("GET", "/2/jobs/1/wait", "reader", "readerpw", `{"fields": ["status"]}`); r.code != 403 {
		t.Errorf("wait as reader: %d %s", r.code, r.body)
	}

	// The users file changes: the next request sees it.
	writeUsers(t, n.dir, "admin newpw write\nreader readerpw read,write\n")
	for _, c := range []struct {
		user, pass string
		code       int
	}{
		{"admin", "adminpw", 401},
		{"admin", "newpw", 200},
		{"reader", "readerpw", 200},
		{"alice", "wonderland", 401},
	} {
		if r := n.do("POST", "/2/jobs", c.user, c.pass, ops); r.code != c.code {
			t.Errorf("after the users file changed, %s/%s: %d %s, want %d", c.user, c.pass, r.code, r.body, c.code)
		}
	}
}

// A waiter gets each log entry as it appears: the job logs its next entry
// only after the waiter has received the previous one.
func TestRAPIWaiterStreamsLogEntries(t *testing.T) {
	n := startRAPINode(t, "", 0, rapiUsers)
	const steps = 4
	id := n.submit(fmt.Sprintf(`[{"OP_ID": "OP_TEST_STEPS", "steps": %d}]`, steps))
	var (
		prev   []json.RawMessage
		serial *int64
		got    []string
	)
	for {
		a := n.wait(id, []string{"status"}, prev, serial)
		if a == nil {
			continue // nothing within the wait window
		}
		for _, e := range a.LogEntries {
			s := int64(e[0].(float64))
			serial = &s
			got = append(got, e[3].(string))
		}
		if len(a.LogEntries) > 1 {
			t.Errorf("entries arrived together: %v", a.LogEntries)
		}
		if len(a.LogEntries) == 1 {
			n.next <- struct{}{} // the job may log the next one
		}
		if string(a.JobInfo[0]) == `"success"` {
			break
		}
		prev = a.JobInfo
	}
	want := []string{"step 0", "step 1", "step 2", "step 3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("log entries %v, want %v", got, want)
	}
}

func TestRAPIKeepAlive(t *testing.T) {
	n := startRAPINode(t, "", 0, rapiUsers)
	var connects int
	var mu sync.Mutex
	n.tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		connects++
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	const rounds = 20
	for i := range rounds {
		for _, c := range []struct {
			method, path, user, pass, body string
			code                           int
		}{
			{"GET", "/version", "", "", "", 200},
			{"POST", "/2/jobs", "admin", "adminpw", `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`, 200},
			{"GET", "/2/jobs/1", "", "", "", 200},
			{"POST", "/2/jobs", "admin", "wrong", `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`, 401},
			{"POST", "/2/jobs", "reader", "readerpw", `{"ops": []}`, 403},
			{"GET", "/2/jobs/999", "", "", "", 404},
			{"POST", "/2/jobs", "admin", "adminpw", `{"ops": [`, 400},
		} {
			r := n.do(c.method, c.path, c.user, c.pass, c.body)
			if r.code != c.code {
				t.Fatalf("%s %s: %d %s", c.method, c.path, r.code, r.body)
			}
			if r.header.Get("Connection") != "" {
				t.Errorf("%s %s: Connection: %s", c.method, c.path, r.header.Get("Connection"))
			}
			if first := i == 0 && c.path == "/version"; r.reused == first {
				t.Errorf("round %d %s %s: connection reused = %v", i, c.method, c.path, r.reused)
			}
		}
	}
	if connects != 1 {
		t.Errorf("%d connections for %d requests, want 1", connects, rounds*7)
	}
}

func TestRAPIClusterCertificate(t *testing.T) {
	dir := t.TempDir()
	n := startRAPINode(t, dir, 0, "")
	certFile, keyFile := ClusterCertPaths(dir)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() || !cert.IsCA || cert.CheckSignatureFrom(cert) != nil {
		t.Errorf("certificate: %T CA=%v", cert.PublicKey, cert.IsCA)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	sort.Strings(ips)
	if !reflect.DeepEqual(cert.DNSNames, []string{"node1.jobq.test", "localhost"}) || !reflect.DeepEqual(ips, []string{"127.0.0.1", "::1"}) {
		t.Errorf("names %v %v", cert.DNSNames, ips)
	}
	// It is what RAPI serves, verified for each name.
	for _, name := range []string{"node1.jobq.test", "localhost", "127.0.0.1"} {
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		conn, err := tls.Dial("tcp", n.addr, &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Errorf("TLS as %s: %v", name, err)
			continue
		}
		if !conn.ConnectionState().PeerCertificates[0].Equal(cert) {
			t.Errorf("served another certificate")
		}
		conn.Close()
	}
	// A restart keeps it.
	n.stop()
	n2 := startRAPINode(t, dir, 0, "")
	again, _ := os.ReadFile(certFile)
	if string(again) != string(certPEM) {
		t.Error("the certificate changed at restart")
	}
	if r := n2.do("GET", "/version", "", "", ""); r.code != 200 {
		t.Errorf("after restart: %d", r.code)
	}
}

func TestRAPIOffAndListenFailure(t *testing.T) {
	// Off: no RAPI, but the certificate is created all the same.
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{DataDir: dir, NodeName: "n1", RAPIAddr: RAPIOff, ShutdownTimeout: time.Second,
			Logger: slog.New(slog.DiscardHandler),
			Ready:  cancel, RAPIReady: func(net.Addr) { t.Error("RAPIReady called with RAPI off") }})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cluster", "cert.pem")); err != nil {
		t.Error(err)
	}

	// A taken address: Run fails with a clear message.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = Run(context.Background(), Options{DataDir: t.TempDir(), NodeName: "n1", RAPIAddr: l.Addr().String(),
		Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "cannot listen for RAPI on "+l.Addr().String()) {
		t.Errorf("Run on a taken RAPI address: %v", err)
	}
}

func TestClusterCertificateHalfPresent(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateClusterCert(dir, "n1", nil); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := ClusterCertPaths(dir)
	os.Remove(certFile)
	if _, err := LoadOrCreateClusterCert(dir, "n1", nil); err == nil || !strings.Contains(err.Error(), "exists but its certificate") {
		t.Errorf("key without certificate: %v", err)
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Errorf("the key was removed: %v", err)
	}
}

// BenchmarkRAPISubmit measures submissions over one keep-alive HTTPS
// connection, one after the other (each acknowledged once the job is
// durable). Ganeti's RAPI manages about 20/s, closing every connection.
func BenchmarkRAPISubmit(b *testing.B) {
	n := startRAPINode(b, "", 0, rapiUsers)
	body := `{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`
	n.do("GET", "/version", "", "", "") // connect
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		r := n.do("POST", "/2/jobs", "admin", "adminpw", body)
		if r.code != 200 || !r.reused {
			b.Fatalf("submit: %d %s reused=%v", r.code, r.body, r.reused)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "submits/s")
}

// BenchmarkRAPISubmitH2 is BenchmarkRAPISubmit with many submissions at
// a time multiplexed over one HTTP/2 connection: the queue stores
// concurrent submissions together (group commit).
func BenchmarkRAPISubmitH2(b *testing.B) {
	n := startRAPINode(b, "", 0, rapiUsers)
	var dials atomic.Int32
	tr := &http.Transport{TLSClientConfig: n.tr.TLSClientConfig.Clone(), ForceAttemptHTTP2: true, MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	post := func() error {
		req, _ := http.NewRequest("POST", n.base+"/2/jobs", strings.NewReader(`{"ops": [{"OP_ID": "OP_TEST_JQUEUE"}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("admin", "adminpw")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			return fmt.Errorf("%s %s", resp.Proto, resp.Status)
		}
		return nil
	}
	if err := post(); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16) // 16 × GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := post(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "submits/s")
	if d := dials.Load(); d != 1 {
		b.Errorf("%d connections, want 1", d)
	}
}
