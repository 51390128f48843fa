package noderpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/testcert"
)

// fakeHandler answers every call from its request and counts the calls.
type fakeHandler struct {
	mu    sync.Mutex
	calls map[string]int
	last  map[string]any // the last request of each call

	err        error    // when set, every call but Delay returns it
	fetchExtra []Change // added to every Fetch reply

	delayStarted chan struct{} // gets a value when a Delay starts, if set
	delayEnded   chan error    // gets what a Delay returns, if set
}

func newFakeHandler() *fakeHandler {
	return &fakeHandler{calls: map[string]int{}, last: map[string]any{}}
}

func (h *fakeHandler) record(call string, req any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[call]++
	h.last[call] = req
}

// total is how many calls the handler has served.
func (h *fakeHandler) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		n += c
	}
	return n
}

func (h *fakeHandler) lastRequest(call string) any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last[call]
}

func (h *fakeHandler) State(ctx context.Context, req *StateRequest) (*StateReply, error) {
	h.record("state", req)
	if h.err != nil {
		return nil, h.err
	}
	rep := &StateReply{
		Node:   "node2",
		Master: true,
		Files:  []FileInfo{{Name: "job-1", Size: 120, SHA256: strings.Repeat("ab", 32)}, {Name: "serial", Size: 2, SHA256: strings.Repeat("cd", 32)}},
		Config: cluster.NewConfig("node1", "192.0.2.1:1811"),
	}
	if req.Archive {
		rep.Archive = []FileInfo{{Name: "archive/0/job-7", Size: 99}}
	}
	return rep, nil
}

func (h *fakeHandler) Fetch(ctx context.Context, req *FetchRequest) (*FetchReply, error) {
	h.record("fetch", req)
	if h.err != nil {
		return nil, h.err
	}
	rep := &FetchReply{}
	for _, name := range req.Names {
		rep.Files = append(rep.Files, Change{Op: OpWrite, Name: name, Data: []byte("contents of " + name)})
	}
	rep.Files = append(rep.Files, h.fetchExtra...)
	return rep, nil
}

func (h *fakeHandler) Join(ctx context.Context, req *JoinRequest) (*JoinReply, error) {
	h.record("join", req)
	if h.err != nil {
		return nil, h.err
	}
	cfg, err := cluster.NewConfig("node1", "192.0.2.1:1811").AddNode(req.Node, req.Address)
	if err != nil {
		return nil, err
	}
	return &JoinReply{Config: cfg, CertPEM: []byte("cert for " + req.Token), KeyPEM: []byte("key")}, nil
}

func (h *fakeHandler) Command(ctx context.Context, req *CommandRequest) (*CommandReply, error) {
	h.record("command", req)
	if h.err != nil {
		return nil, h.err
	}
	return &CommandReply{Success: true, Output: "ran " + req.Command}, nil
}

func (h *fakeHandler) Crypto(ctx context.Context, req *CryptoRequest) error {
	h.record("crypto", req)
	return h.err
}

func (h *fakeHandler) Delay(ctx context.Context, req *DelayRequest) error {
	h.record("delay", req)
	if h.delayStarted != nil {
		h.delayStarted <- struct{}{}
	}
	timer := time.NewTimer(time.Duration(req.Seconds * float64(time.Second)))
	defer timer.Stop()
	var err error
	select {
	case <-timer.C:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if h.delayEnded != nil {
		h.delayEnded <- err
	}
	return err
}

// logBuffer collects a logger's output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer serves h with cert on 127.0.0.1 until the test ends and
// returns the server's address and its log.
func startServer(t *testing.T, cert tls.Certificate, h Handler) (*Server, string, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	s := NewServer(cert, h, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return s, l.Addr().String(), logs
}

// newTestClient is NewClient(cert), closed when the test ends.
func newTestClient(t *testing.T, cert tls.Certificate) *Client {
	c := NewClient(cert)
	t.Cleanup(c.Close)
	return c
}

// rawPost posts body to url with a plain net/http client that presents
// certs (if any) and trusts any server, and returns the status and the
// decoded *Error (nil if the body is not one).
func rawPost(t *testing.T, url string, body string, certs ...tls.Certificate) (int, *Error) {
	t.Helper()
	return rawDo(t, http.MethodPost, url, body, certs...)
}

func rawDo(t *testing.T, method, url string, body string, certs ...tls.Certificate) (int, *Error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var e Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code == "" {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, &e
}

// newTestCert makes a cluster certificate (internal/testcert).
func newTestCert(t testing.TB, name string) tls.Certificate { return testcert.New(t, name) }
