package noderpc

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRoundTrip makes every call once and checks that the handler got the
// request and the client the reply, field for field.
func TestRoundTrip(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, _ := startServer(t, cert, h)
	c := newTestClient(t, cert)
	ctx := context.Background()

	check := func(t *testing.T, call string, sent, got, want any) {
		t.Helper()
		if r := h.lastRequest(call); !reflect.DeepEqual(r, sent) {
			t.Errorf("handler got %+v, want %+v", r, sent)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("reply %+v, want %+v", got, want)
		}
	}

	t.Run("State", func(t *testing.T) {
		req := &StateRequest{Archive: true, HashArchive: true}
		rep, err := c.State(ctx, addr, req)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := newFakeHandler().State(ctx, req)
		check(t, "state", req, rep, want)
	})
	t.Run("Fetch", func(t *testing.T) {
		req := &FetchRequest{Names: []string{"job-1", "version", "archive/0/job-2"}}
		rep, err := c.Fetch(ctx, addr, req)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := newFakeHandler().Fetch(ctx, req)
		check(t, "fetch", req, rep, want)
	})
	t.Run("Join", func(t *testing.T) {
		req := &JoinRequest{Token: "secret", Node: "node3", Address: "192.0.2.3:1811"}
		rep, err := c.Join(ctx, addr, req)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := newFakeHandler().Join(ctx, req)
		check(t, "join", req, rep, want)
	})
	t.Run("Command", func(t *testing.T) {
		req := &CommandRequest{Command: "restart-foo"}
		rep, err := c.Command(ctx, addr, req)
		if err != nil {
			t.Fatal(err)
		}
		check(t, "command", req, rep, &CommandReply{Success: true, Output: "ran restart-foo"})
	})
	t.Run("Delay", func(t *testing.T) {
		req := &DelayRequest{Seconds: 0.001}
		if err := c.Delay(ctx, addr, req); err != nil {
			t.Fatal(err)
		}
		check(t, "delay", req, nil, nil)
	})
	t.Run("Crypto", func(t *testing.T) {
		req := &CryptoRequest{Master: "node1", Epoch: 4, Phase: CryptoFinish, Fingerprint: strings.Repeat("ab", 32)}
		if err := c.Crypto(ctx, addr, req); err != nil {
			t.Fatal(err)
		}
		check(t, "crypto", req, nil, nil)
		for _, bad := range []*CryptoRequest{
			{Phase: "rotate", Fingerprint: strings.Repeat("ab", 32)},
			{Phase: CryptoStage, Fingerprint: strings.Repeat("ab", 32)},
			{Phase: CryptoSwitch, Fingerprint: "ab"},
		} {
			var e *Error
			if err := c.Crypto(ctx, addr, bad); !errors.As(err, &e) || e.Code != CodeBadRequest {
				t.Errorf("%+v: %v, want bad_request", bad, err)
			}
		}
	})
}

// TestServerRefusesNoClientCertificate: a TLS client that presents no
// certificate gets 403 on every call but join, and the handler is never
// called.
func TestServerRefusesNoClientCertificate(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, logs := startServer(t, cert, h)
	for path := range endpoints {
		if path == pathJoin {
			continue
		}
		status, e := rawPost(t, "https://"+addr+path, `{}`)
		if status != http.StatusForbidden || e == nil || e.Code != CodeRefused || e.Message != "client certificate required" {
			t.Errorf("%s: got %d %+v, want 403 refused", path, status, e)
		}
	}
	// An unknown call is refused the same way.
	if status, e := rawPost(t, "https://"+addr+"/v1/nothing", `{}`); status != http.StatusForbidden || e == nil || e.Code != CodeRefused {
		t.Errorf("/v1/nothing: got %d %+v, want 403 refused", status, e)
	}
	if n := h.total(); n != 0 {
		t.Errorf("the handler was called %d times", n)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "client certificate required") || !strings.Contains(l, "remote=127.0.0.1:") {
		t.Errorf("the refusal was not logged as a warning with the remote address:\n%s", l)
	}
}

// TestServerRefusesForeignCertificate: a client presenting another
// self-signed certificate gets 403.
func TestServerRefusesForeignCertificate(t *testing.T) {
	cert := newTestCert(t, "node1")
	foreign := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, logs := startServer(t, cert, h)
	for path := range endpoints {
		if path == pathJoin {
			continue
		}
		status, e := rawPost(t, "https://"+addr+path, `{}`, foreign)
		if status != http.StatusForbidden || e == nil || e.Code != CodeRefused || e.Message != "unknown client certificate" {
			t.Errorf("%s: got %d %+v, want 403 refused", path, status, e)
		}
	}
	if n := h.total(); n != 0 {
		t.Errorf("the handler was called %d times", n)
	}
	if l := logs.String(); !strings.Contains(l, "unknown client certificate") || !strings.Contains(l, "remote=127.0.0.1:") {
		t.Errorf("the refusal was not logged with the remote address:\n%s", l)
	}
	// The same client with the cluster certificate gets through.
	if status, e := rawPost(t, "https://"+addr+pathState, `{}`, cert); status != http.StatusOK {
		t.Errorf("with the cluster certificate: got %d %+v, want 200", status, e)
	}
}

// TestServerRefusesPlainHTTP: plain HTTP to the TLS port never reaches a
// handler.
func TestServerRefusesPlainHTTP(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, _ := startServer(t, cert, h)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for path := range endpoints {
		resp, err := (&http.Client{Transport: tr}).Post("http://"+addr+path, "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s over plain HTTP: got %s, want an error or 400", path, resp.Status)
			}
		}
	}
	if n := h.total(); n != 0 {
		t.Errorf("the handler was called %d times", n)
	}
}

// TestClientRefusesForeignServer: a client does not talk to a server
// presenting another certificate than the cluster's.
func TestClientRefusesForeignServer(t *testing.T) {
	cert := newTestCert(t, "node1")
	foreign := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, _ := startServer(t, foreign, h)
	c := newTestClient(t, cert)
	_, err := c.State(context.Background(), addr, &StateRequest{})
	if err == nil {
		t.Fatal("the client accepted a foreign server")
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("got the answered error %v, want a transport failure", err)
	}
	if !errors.Is(err, errForeignServer) || !strings.HasPrefix(err.Error(), "cannot reach node at "+addr+": ") {
		t.Errorf("got %q, want cannot reach node at %s: %v", err, addr, errForeignServer)
	}
	if n := h.total(); n != 0 {
		t.Errorf("the handler was called %d times", n)
	}
}

// TestJoin: a join client, without a certificate, joins a server whose
// fingerprint it has, refuses one whose fingerprint differs, and can make
// no other call.
func TestJoin(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, _ := startServer(t, cert, h)
	ctx := context.Background()
	req := &JoinRequest{Token: "secret", Node: "node3", Address: "192.0.2.3:1811"}

	t.Run("right fingerprint", func(t *testing.T) {
		c := NewJoinClient(Fingerprint(cert.Certificate[0]))
		defer c.Close()
		rep, err := c.Join(ctx, addr, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rep.Config.Node("node3"); !ok || string(rep.CertPEM) != "cert for secret" {
			t.Errorf("got %+v", rep)
		}
	})
	t.Run("wrong fingerprint", func(t *testing.T) {
		before := h.total()
		c := NewJoinClient(Fingerprint(newTestCert(t, "node1").Certificate[0]))
		defer c.Close()
		_, err := c.Join(ctx, addr, req)
		if !errors.Is(err, errWrongFingerprint) || !strings.Contains(err.Error(), addr) {
			t.Errorf("got %v, want %v naming %s", err, errWrongFingerprint, addr)
		}
		if n := h.total() - before; n != 0 {
			t.Errorf("the handler was called %d times", n)
		}
	})
	t.Run("only join", func(t *testing.T) {
		before := h.total()
		c := NewJoinClient(Fingerprint(cert.Certificate[0]))
		defer c.Close()
		// An address that cannot be dialled: no network I/O is attempted.
		const nowhere = "192.0.2.1:0"
		calls := map[string]error{}
		_, calls["state"] = c.State(ctx, nowhere, &StateRequest{})
		_, calls["fetch"] = c.Fetch(ctx, nowhere, &FetchRequest{})
		_, calls["command"] = c.Command(ctx, nowhere, &CommandRequest{})
		calls["delay"] = c.Delay(ctx, nowhere, &DelayRequest{})
		calls["crypto"] = c.Crypto(ctx, nowhere, &CryptoRequest{})
		for call, err := range calls {
			want := "a join client cannot make the " + call + " call to node at " + nowhere + ": it may only join"
			if err == nil || err.Error() != want {
				t.Errorf("%s: got %v, want %q", call, err, want)
			}
		}
		if n := h.total() - before; n != 0 {
			t.Errorf("the handler was called %d times", n)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		before := h.total()
		c := NewJoinClient(Fingerprint(cert.Certificate[0]))
		defer c.Close()
		_, err := c.Join(ctx, addr, &JoinRequest{Token: strings.Repeat("x", maxJoinBody)})
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadRequest {
			t.Errorf("got %v, want a bad_request *Error", err)
		}
		if n := h.total() - before; n != 0 {
			t.Errorf("the handler was called %d times", n)
		}
	})
}

// TestBadNamesRefused: fetch requests naming anything but queue files
// are answered bad_request and never reach the handler, nor do malformed
// requests of the other calls that check theirs (crypto).
func TestBadNamesRefused(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, logs := startServer(t, cert, h)
	c := newTestClient(t, cert)
	ctx := context.Background()
	for _, bad := range []string{
		"../etc/passwd", "/etc/passwd", "lock", "", "..", "../job-1",
		"job-1/../../x", "archive/x/job-1", "archive/1/job-1", "queue/job-1",
		"job-1\x00", "job-01", "job-0", "job--1", "job-1/", "archive/0/job-1/x",
	} {
		_, err := c.Fetch(ctx, addr, &FetchRequest{Names: []string{"job-1", bad}})
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadRequest || !strings.Contains(e.Message, "is not a queue file name") {
			t.Errorf("fetch %q: got %v, want a bad_request *Error", bad, err)
		}
		// The refused name need not come after a good one.
		_, err = c.Fetch(ctx, addr, &FetchRequest{Names: []string{bad, "serial"}})
		if !errors.As(err, &e) || e.Code != CodeBadRequest {
			t.Errorf("fetch %q first: got %v, want a bad_request *Error", bad, err)
		}
	}
	// A malformed request of a call with a check is refused and logged
	// as such, not as a refused name.
	err := c.Crypto(ctx, addr, &CryptoRequest{Phase: "chmod", Fingerprint: strings.Repeat("ab", 32)})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeBadRequest {
		t.Errorf("crypto with an unknown phase: got %v, want a bad_request *Error", err)
	}
	if n := h.total(); n != 0 {
		t.Errorf("the handler was called %d times", n)
	}
	l := logs.String()
	for _, want := range []string{
		`level=WARN msg="refused queue file name" name=../etc/passwd remote=127.0.0.1:`,
		`name=archive/x/job-1`,
		`call=/v1/fetch`,
		`level=WARN msg="refused a malformed node RPC request" remote=127.0.0.1:`,
		`unknown certificate renewal phase`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("the log lacks %q:\n%s", want, l)
		}
	}
}

// TestClientRefusesBadFetchedNames: a fetch reply with a name that is not
// a queue file is an error for the client.
func TestClientRefusesBadFetchedNames(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	h.fetchExtra = []Change{{Op: OpWrite, Name: "../../etc/cron.d/x", Data: []byte("x")}}
	_, addr, _ := startServer(t, cert, h)
	c := newTestClient(t, cert)
	_, err := c.Fetch(context.Background(), addr, &FetchRequest{Names: []string{"job-1"}})
	if err == nil || !strings.Contains(err.Error(), "node at "+addr+" sent a file that is not a queue file") {
		t.Errorf("got %v, want a refusal of the fetched name", err)
	}
}

// TestHandlerErrors: an *Error from the handler reaches the client with
// its code and epoch, and the HTTP status of its code; other errors become
// internal.
func TestHandlerErrors(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, _ := startServer(t, cert, h)
	c := newTestClient(t, cert)
	for _, tc := range []struct {
		name string
		err  error
		want Error
	}{
		{"bad request", &Error{Code: CodeBadRequest, Message: "no such restricted command"},
			Error{Code: CodeBadRequest, Message: "no such restricted command"}},
		{"stale epoch", &Error{Code: CodeStaleEpoch, Message: "epoch 2 is older than 5", Epoch: 5},
			Error{Code: CodeStaleEpoch, Message: "epoch 2 is older than 5", Epoch: 5}},
		{"wrapped", errors.Join(&Error{Code: CodeRefused, Message: "bad token"}),
			Error{Code: CodeRefused, Message: "bad token"}},
		{"no code", &Error{Message: "oops", Epoch: 1},
			Error{Code: CodeInternal, Message: "oops", Epoch: 1}},
		{"plain", errors.New("disk full"),
			Error{Code: CodeInternal, Message: "disk full"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.err = tc.err
			_, err := c.Command(context.Background(), addr, &CommandRequest{Command: "restart-foo"})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if !reflect.DeepEqual(*e, tc.want) {
				t.Errorf("got %+v, want %+v", *e, tc.want)
			}
			// The same over a raw request: the status of the code.
			status, raw := rawPost(t, "https://"+addr+pathState, `{}`, cert)
			if status != statusOf(tc.want.Code) || raw == nil || !reflect.DeepEqual(*raw, tc.want) {
				t.Errorf("state: got %d %+v, want %d %+v", status, raw, statusOf(tc.want.Code), tc.want)
			}
		})
	}
}

// TestDelayCancelled: cancelling a call's context ends it at once on both
// sides.
func TestDelayCancelled(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	h.delayStarted = make(chan struct{}, 1)
	h.delayEnded = make(chan error, 1)
	_, addr, _ := startServer(t, cert, h)
	c := newTestClient(t, cert)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.delayStarted
		cancel()
	}()
	err := c.Delay(ctx, addr, &DelayRequest{Seconds: 3600})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), addr) {
		t.Errorf("got %v, want context.Canceled naming %s", err, addr)
	}
	if err := <-h.delayEnded; !errors.Is(err, context.Canceled) {
		t.Errorf("the handler's Delay returned %v, want context.Canceled", err)
	}
}

// TestShutdownEndsCalls: Shutdown cancels the calls being served and
// returns once they have answered.
func TestShutdownEndsCalls(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	h.delayStarted = make(chan struct{}, 1)
	h.delayEnded = make(chan error, 1)
	s, addr, _ := startServer(t, cert, h)
	c := newTestClient(t, cert)
	done := make(chan error, 1)
	go func() { done <- c.Delay(context.Background(), addr, &DelayRequest{Seconds: 3600}) }()
	<-h.delayStarted
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-h.delayEnded; !errors.Is(err, context.Canceled) {
		t.Errorf("the handler's Delay returned %v, want context.Canceled", err)
	}
	if err := <-done; err == nil {
		t.Error("the Delay call succeeded although the server shut down")
	}
	// Serving after Shutdown closes the listener at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("the listener is still open")
	}
}

// TestUnreachableNode: a transport failure names the address and is no
// *Error.
func TestUnreachableNode(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newTestClient(t, newTestCert(t, "node1"))
	_, err = c.State(context.Background(), addr, &StateRequest{})
	var e *Error
	if err == nil || errors.As(err, &e) || !strings.HasPrefix(err.Error(), "cannot reach node at "+addr+": ") {
		t.Errorf("got %v, want cannot reach node at %s: ...", err, addr)
	}
}

// TestUnknownCallAndMethod: a cluster member gets 404 for an unknown call
// and 405 for a method other than POST.
func TestUnknownCallAndMethod(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := newFakeHandler()
	_, addr, _ := startServer(t, cert, h)
	if status, e := rawPost(t, "https://"+addr+"/v1/format-disk", `{}`, cert); status != http.StatusNotFound || e == nil || e.Code != CodeBadRequest {
		t.Errorf("unknown call: got %d %+v, want 404 bad_request", status, e)
	}
	if status, e := rawDo(t, http.MethodGet, "https://"+addr+pathState, "", cert); status != http.StatusMethodNotAllowed || e == nil || e.Code != CodeBadRequest {
		t.Errorf("GET: got %d %+v, want 405 bad_request", status, e)
	}
	if status, e := rawPost(t, "https://"+addr+pathState, `{"archive": tru`, cert); status != http.StatusBadRequest || e == nil || e.Code != CodeBadRequest {
		t.Errorf("malformed JSON: got %d %+v, want 400 bad_request", status, e)
	}
	if n := h.total(); n != 0 {
		t.Errorf("the handler was called %d times", n)
	}
}

// TestClientKeepsConnectionsAlive: consecutive calls to a node share one
// connection.
func TestClientKeepsConnectionsAlive(t *testing.T) {
	cert := newTestCert(t, "node1")
	_, addr, _ := startServer(t, cert, newFakeHandler())
	c := newTestClient(t, cert)
	var reused []bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = append(reused, info.Reused) },
	})
	for range 3 {
		if _, err := c.State(ctx, addr, &StateRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(reused, []bool{false, true, true}) {
		t.Errorf("connections reused: %v, want [false true true]", reused)
	}
}

// TestClientFrom: a client made with NewClientFrom connects from the
// node's own address.
func TestClientFrom(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	from := make(chan net.Addr, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			from <- nil
			return
		}
		from <- c.RemoteAddr()
		c.Close()
	}()
	c := NewClientFrom(newTestCert(t, "node2"), net.ParseIP("127.0.0.2"))
	defer c.Close()
	if _, err := c.State(t.Context(), l.Addr().String(), &StateRequest{}); err == nil {
		t.Fatal("a call to a server that closes at once succeeded")
	}
	var got net.Addr
	select {
	case got = <-from:
	case <-time.After(time.Minute):
		// (It hung here once, for the whole test timeout, under load.)
		t.Fatalf("the call did not reach the listener within a minute")
	}
	if a, ok := got.(*net.TCPAddr); !ok || !a.IP.Equal(net.ParseIP("127.0.0.2")) {
		t.Fatalf("the call came from %v, want 127.0.0.2", got)
	}
}

// TestRefusalWarningsAreRateLimited (issue 16, finding 9): every refused
// call logged a WARN line, so a sender without a certificate decided how
// much the log grows. At most refusalBurst lines a window; the next line
// after it says how many were left out.
func TestRefusalWarningsAreRateLimited(t *testing.T) {
	cert := newTestCert(t, "node1")
	s, addr, logs := startServer(t, cert, newFakeHandler())
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	s.refusals.mu.Lock()
	s.refusals.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s.refusals.mu.Unlock()
	for range 50 {
		if status, _ := rawPost(t, "https://"+addr+pathState, `{}`); status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", status)
		}
	}
	if n := strings.Count(logs.String(), "refused a node RPC call"); n != refusalBurst {
		t.Fatalf("%d WARN lines for 50 refused calls, want %d:\n%s", n, refusalBurst, logs)
	}
	mu.Lock()
	now = now.Add(refusalWindow)
	mu.Unlock()
	rawPost(t, "https://"+addr+pathState, `{}`)
	if n := strings.Count(logs.String(), "refused a node RPC call"); n != refusalBurst+1 ||
		!strings.Contains(logs.String(), "suppressed_since_last=40") {
		t.Fatalf("after the window: %d lines, want %d with suppressed_since_last=40:\n%s", n, refusalBurst+1, logs)
	}
}
