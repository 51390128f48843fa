package rapi

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testTLS is a self-signed certificate for 127.0.0.1 and a client
// configuration that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "rapi.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// served runs e's server on a loopback listener over TLS until the test
// ends, and returns its address and a client configuration.
func (e *env) served() (string, *tls.Config) {
	e.t.Helper()
	srvTLS, cliTLS := testTLS(e.t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.s.Serve(l, srvTLS) }()
	e.t.Cleanup(func() {
		e.s.Shutdown(context.Background())
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			e.t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String(), cliTLS
}

// rawTLS opens a TLS connection that the test drives by hand.
func rawTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// httpsGet answers GET path through a fresh client (its own connection).
func httpsGet(t *testing.T, addr string, cfg *tls.Config, path string) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// readsToEnd reads c until the server closes it and returns what came.
func readsToEnd(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	// A TLS connection closed without close_notify, or reset, ends in an
	// error: that is the end too.
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
		t.Logf("reading until the server closes: %v", err)
	}
	return string(b)
}

// TestSlowClientsAreServedAroundAndCut: clients that send their TLS
// handshake, headers or body slowly (slowloris) do not hold up others, and
// are disconnected once Config.ReadHeaderTimeout / BodyTimeout pass (here
// short, so that the test sees it happen).
func TestSlowClientsAreServedAroundAndCut(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.ReadHeaderTimeout, c.BodyTimeout = time.Second, time.Second })
	addr, cli := e.served()

	// Stuck before the TLS handshake, inside the headers, inside a body.
	noTLS, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer noTLS.Close()
	noTLS.Write([]byte{0x16})
	slowHeaders := rawTLS(t, addr, cli)
	slowHeaders.Write([]byte("GET /version HTTP/1.1\r\nHost: x\r\nX-Slow: a"))
	slowBody := rawTLS(t, addr, cli)
	// (A resource that takes a body: one that takes none refuses it at
	// once, TestBodiesAreNotReadWhereNoneIsTaken.)
	slowBody.Write([]byte("POST /2/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + b64("admin:adminpw") +
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\": "))

	for range 3 {
		if code, body := httpsGet(t, addr, cli, "/version"); code != 200 || body != "2\n" {
			t.Fatalf("GET /version beside slow clients: %d %q", code, body)
		}
	}

	// Each is cut: no answer to a handshake or headers that never end;
	// Ganeti's error body for a body that never ends.
	if got := readsToEnd(t, noTLS); got != "" {
		t.Errorf("half a TLS handshake was answered %q", got)
	}
	if got := readsToEnd(t, slowHeaders); got != "" {
		t.Errorf("unfinished headers were answered %q", got)
	}
	got := readsToEnd(t, slowBody)
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.HasSuffix(got,
		`{"code": 408, "message": "The request body did not arrive within 1s", "explain": "Request timed out; try again later"}`+"\n") {
		t.Errorf("unfinished body was answered %q", got)
	}
	if code, body := httpsGet(t, addr, cli, "/version"); code != 200 || body != "2\n" {
		t.Fatalf("GET /version after the slow clients: %d %q", code, body)
	}
}

// TestKeepAliveAfterBodyDeadline: the body's read deadline is lifted once
// the body is read, so a wait that lasts longer than BodyTimeout, and the
// next request on the same connection, are served.
func TestKeepAliveAfterBodyDeadline(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.BodyTimeout, c.WaitTimeout = 100*time.Millisecond, time.Second })
	addr, cli := e.served()
	hold := e.submit(`[{"OP_ID": "OP_TEST_HOLD"}]`)
	e.waitFor(hold, "running")
	c := rawTLS(t, addr, cli)
	br := bufio.NewReader(c)
	// Nothing changes: the wait answers null when WaitTimeout (ten times
	// BodyTimeout) has passed, unless a deadline left on the connection
	// ended the request first (503).
	body := `{"fields": ["status"], "previous_job_info": ["running"], "previous_log_serial": 1}`
	fmt.Fprintf(c, "GET /2/jobs/%d/wait HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		hold, b64("admin:adminpw"), len(body), body)
	for _, want := range []string{"null\n", "2\n"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("answer %d %q, want 200 %q", resp.StatusCode, b, want)
		}
		// The next request on the same connection.
		fmt.Fprintf(c, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
	}
}

// zeros is an endless body of spaces.
type zeros struct{}

var spaces = []byte(strings.Repeat(" ", 64<<10))

func (zeros) Read(p []byte) (int, error) { return copy(p, spaces), nil }

// TestOversizedBody: a body larger than MaxBodySize is refused with 413
// and Ganeti's error body, at once when its length is declared, at the
// limit when it is chunked.
func TestOversizedBody(t *testing.T) {
	e := newEnv(t, 1, nil)
	want := fmt.Sprintf(`{"code": 413, "message": "Request body larger than %d bytes", "explain": "Entity is too large"}`+"\n", MaxBodySize)
	for _, length := range []int64{MaxBodySize + 1, -1} {
		r, _ := http.NewRequest("POST", "https://rapi.test/2/jobs", io.LimitReader(zeros{}, MaxBodySize+1))
		r.ContentLength = length
		r.Header.Set("Content-Type", "application/json")
		r.SetBasicAuth("admin", "adminpw")
		w := newRecorder()
		e.s.ServeHTTP(w, r)
		if w.code != 413 || w.body.String() != want {
			t.Errorf("body of %d bytes (declared %d): %d %q", MaxBodySize+1, length, w.code, w.body.String())
		}
	}
}

// recorder is a minimal ResponseWriter (httptest.ResponseRecorder keeps
// what it is given; this one too, but says nothing about deadlines).
type recorder struct {
	hdr  http.Header
	code int
	body strings.Builder
}

func newRecorder() *recorder                    { return &recorder{hdr: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.hdr }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

// TestBufferedBodiesCap: request bodies being received at once are capped
// over all connections: a request whose body would go over gets 503 (and
// Retry-After), small requests are served, and once the first body is in
// the refused one goes through.
func TestBufferedBodiesCap(t *testing.T) {
	reserved := make(chan int64, 64)
	e := newEnv(t, 1, func(c *Config) {
		c.MaxBufferedBodies = 1 << 20
		c.testReserved = func(total int64) { reserved <- total }
	})
	body := `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001, "comment": "` + strings.Repeat("x", 700<<10) + `"}]}`
	post := func(r io.Reader, length int64) *recorder {
		req, _ := http.NewRequest("POST", "https://rapi.test/2/jobs", r)
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("admin", "adminpw")
		w := newRecorder()
		e.s.ServeHTTP(w, req)
		return w
	}
	// A's body arrives slowly: it holds its reservation meanwhile.
	pr, pw := io.Pipe()
	done := make(chan *recorder, 1)
	go func() { done <- post(pr, int64(len(body))) }()
	if got := wait(t, reserved, "A's reservation"); got != int64(len(body)) {
		t.Fatalf("reserved %d, want %d", got, len(body))
	}
	w := post(strings.NewReader(body), int64(len(body)))
	want := `{"code": 503, "message": "The server is receiving too many large request bodies at once; try again later", "explain": "The server cannot process the request due to a high load"}` + "\n"
	if w.code != 503 || w.body.String() != want || w.hdr.Get("Retry-After") == "" {
		t.Fatalf("B over the cap: %d %q %v", w.code, w.body.String(), w.hdr)
	}
	// A body without a declared length counts as MaxBodySize: refused too
	// while A holds most of the cap.
	if w := post(strings.NewReader(`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]}`), -1); w.code != 503 {
		t.Fatalf("small chunked request while A holds the cap: %d %q", w.code, w.body.String())
	}
	if w := post(strings.NewReader(`{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]}`), 55); w.code != 200 {
		t.Fatalf("small request while A holds the cap: %d %q", w.code, w.body.String())
	}
	if _, err := io.WriteString(pw, body); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if w := <-done; w.code != 200 {
		t.Fatalf("A: %d %q", w.code, w.body.String())
	}
	if got := wait(t, reserved, "A's release"); got != 0 {
		t.Fatalf("after A, %d bytes reserved", got)
	}
	if w := post(strings.NewReader(body), int64(len(body))); w.code != 200 {
		t.Fatalf("B after A: %d %q", w.code, w.body.String())
	}
}

// wait waits for ch, failing the test if it takes absurdly long (a hang).
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// countingBody is a request body of n bytes that counts what is read.
type countingBody struct {
	n    int64
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	left := b.n - b.read.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), left))
	clear(p[:n])
	b.read.Add(int64(n))
	return n, nil
}

// TestBodiesAreNotReadWhereNoneIsTaken (issue 16, finding 2): an anonymous
// GET /2/info with a 60 MB body was read and decoded, and raised jobqd's
// memory by 2.3 GB. A resource that takes no body refuses one (413)
// without reading a byte of it; credentials are checked before any body
// is read; the others read at most their own limit.
func TestBodiesAreNotReadWhereNoneIsTaken(t *testing.T) {
	e := newEnv(t, 1, nil)
	id := e.submit(`[{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]`)
	readAll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %v", len(b), err)
	})
	e.s.Handle("/extra", []string{AccessWrite}, readAll)
	e.s.HandlePrefix("/ui", readAll)
	const big = MaxBodySize + 1
	type tc struct {
		method, path, user string
		length             int64 // declared; -1 chunked
		code               int
		maxRead            int64
	}
	var cases []tc
	for _, user := range []string{"", "admin"} {
		for _, length := range []int64{big, -1} {
			for _, c := range []struct {
				method, path string
				anon, authed int // status without and with credentials
			}{
				{"GET", "/", 413, 413},
				{"GET", "/2", 413, 413},
				{"GET", "/version", 413, 413},
				{"GET", "/2/info", 413, 413},
				{"GET", "/2/features", 413, 413},
				{"GET", "/2/jobs", 413, 413},
				{"GET", fmt.Sprintf("/2/jobs/%d", id), 413, 413},
				{"DELETE", fmt.Sprintf("/2/jobs/%d", id), 401, 413},
				{"GET", fmt.Sprintf("/2/jobs/%d/wait", id), 401, 413},
				{"POST", "/2/jobs", 401, 413},
				{"GET", "/extra", 401, 413},
				{"GET", "/ui/login", 413, 413},
				{"GET", "/nosuch", 404, 404},
				{"PUT", "/2/jobs", 501, 501},
			} {
				want := c.anon
				if user != "" {
					want = c.authed
				}
				var maxRead int64
				if user != "" && length < 0 {
					// Chunked: nothing tells the size before it is read.
					switch c.path {
					case "/2/jobs":
						maxRead = MaxBodySize + 1 // (not refused at once: chunked)
					case fmt.Sprintf("/2/jobs/%d/wait", id), "/extra", "/ui/login":
						maxRead = SmallBodySize + 1
					}
				}
				if length < 0 && c.path == "/ui/login" {
					maxRead = SmallBodySize + 1 // the dashboard reads its forms before it knows the user
				}
				if length < 0 && maxRead > 0 {
					want = 0 // what the handler makes of a cut body: any answer but 200
				}
				cases = append(cases, tc{c.method, c.path, user, length, want, maxRead})
			}
		}
	}
	for _, c := range cases {
		body := &countingBody{n: big}
		r := httptest.NewRequest(c.method, "https://rapi.test"+c.path, body)
		r.ContentLength = c.length
		r.Header.Set("Content-Type", "application/json")
		if c.user != "" {
			r.SetBasicAuth("admin", "adminpw")
		}
		w := httptest.NewRecorder()
		e.s.ServeHTTP(w, r)
		name := fmt.Sprintf("%s %s user=%q length=%d", c.method, c.path, c.user, c.length)
		if got := body.read.Load(); got > c.maxRead {
			t.Errorf("%s: %d bytes of the body read, want at most %d", name, got, c.maxRead)
		}
		if c.code != 0 && w.Code != c.code || c.code == 0 && w.Code == 200 && !strings.Contains(w.Body.String(), "request body too large") {
			t.Errorf("%s: %d %q, want %d", name, w.Code, w.Body.String(), c.code)
		}
	}
	// A GET with an empty body (Ganeti's Python client sends one) is fine.
	r := httptest.NewRequest("GET", "https://rapi.test/2/info", strings.NewReader(""))
	r.ContentLength = 0
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("GET /2/info with an empty body: %d %q", w.Code, w.Body.String())
	}
}

// TestSubmitRefusesWhatWouldNotReadBack (issue 16, findings 1 and 9): Go's
// decoder turns text that is not valid UTF-8 into U+FFFD and keeps the
// last of two members of one name, so a job was stored that differed
// from what was sent; JSON nested thousands deep was stored. Each is
// refused with 400 now, and nothing is stored.
func TestSubmitRefusesWhatWouldNotReadBack(t *testing.T) {
	e := newEnv(t, 1, nil)
	for _, c := range []struct{ name, body, msg string }{
		{"invalid UTF-8", "{\"ops\": [{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 0.001, \"comment\": \"caf\xe9\"}]}",
			`Unable to parse JSON data: text that is not valid UTF-8 (in /ops/0/comment, at byte 70); send text as UTF-8`},
		{"a member twice", `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001, "duration": 100}]}`,
			`Unable to parse JSON data: the member /ops/0/duration twice in one object`},
		{"deep body", `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001, "x": ` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}]}`,
			`Unable to parse JSON data: arrays and objects nested more than 100 levels deep`},
		{"deep opcode", `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001, "x": ` + strings.Repeat("[", 80) + strings.Repeat("]", 80) + `}]}`,
			`opcode 0 nests arrays and objects more than 64 levels deep (max_input_depth)`},
	} {
		r := e.do("POST", "/2/jobs", "admin", "adminpw", c.body)
		if r.code != 400 || !strings.Contains(r.body, `"message": "`+c.msg) {
			t.Errorf("%s: %d %s, want 400 %q", c.name, r.code, r.body, c.msg)
		}
	}
	if rows, err := e.q.QueryJobs(nil, []string{"id"}); err != nil || len(rows) != 0 {
		t.Fatalf("jobs stored: %s %v", rows, err)
	}
}

// TestTLSAEADOnly (issue 16, finding 9): RAPI accepted TLS 1.2 CBC-SHA1
// suites. A client offering only those cannot connect; AEAD suites and
// TLS 1.3 can.
func TestTLSAEADOnly(t *testing.T) {
	e := newEnv(t, 1, nil)
	addr, cli := e.served()
	for _, c := range []struct {
		suite uint16
		ok    bool
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
	} {
		cfg := cli.Clone()
		cfg.MaxVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{c.suite}
		conn, err := tls.Dial("tcp", addr, cfg)
		if conn != nil {
			conn.Close()
		}
		if (err == nil) != c.ok {
			t.Errorf("TLS 1.2 with only %s: err %v, want ok=%v", tls.CipherSuiteName(c.suite), err, c.ok)
		}
	}
	conn, err := tls.Dial("tcp", addr, cli)
	if err != nil {
		t.Fatalf("default client: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("default client: version %x, want TLS 1.3", v)
	}
	conn.Close()
}

// TestConnectionCap (issue 16, finding 6): connections over
// Config.MaxConns are closed at once, those under it are served, and a
// closed one makes room.
func TestConnectionCap(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxConns = 3 })
	addr, cli := e.served()
	var held []*tls.Conn
	for range 3 {
		c := rawTLS(t, addr, cli) // the handshake completes: accepted
		held = append(held, c)
	}
	// The fourth is closed by the server: no answer.
	if code, body, err := tryGet(addr, cli, "/version"); err == nil {
		t.Fatalf("a connection over the cap was served: %d %q", code, body)
	}
	held[0].Close()
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, err := tryGet(addr, cli, "/version")
		if err == nil && code == 200 && body == "2\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request served within a minute after a connection closed: %d %q %v", code, body, err)
		}
	}
}

// tryGet is httpsGet that reports errors instead of failing.
func tryGet(addr string, cli *tls.Config, path string) (int, string, error) {
	tr := &http.Transport{TLSClientConfig: cli, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Get("https://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
