package luxi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// holdHandler answers Hold once released, and Echo at once.
type holdHandler struct {
	started chan struct{}
	release chan struct{}
}

func (h *holdHandler) ServeLUXI(ctx context.Context, req *Request) (any, error) {
	if req.Method == "Hold" {
		h.started <- struct{}{}
		select {
		case <-h.release:
			return "held", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return req.Args, nil
}

// dialRaw connects to path; every read on it has a deadline.
func dialReader(t *testing.T, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc, bufio.NewReader(nc)
}

// readReply reads one reply, failing the test after a minute.
func readReply(t *testing.T, nc net.Conn, br *bufio.Reader, what string) (string, error) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(time.Minute))
	defer nc.SetReadDeadline(time.Time{})
	b, err := br.ReadBytes(eom)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: nothing within a minute", what)
	}
	return strings.TrimSuffix(string(b), string(rune(eom))), err
}

// TestServerIdleAndMessageTimeouts (issue 16, finding 6): a connection
// that sends nothing, or stops in the middle of a request, is closed; a
// connection whose call lasts longer than the idle timeout is not.
func TestServerIdleAndMessageTimeouts(t *testing.T) {
	h := &holdHandler{started: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startServerOpts(t, h, func(s *Server) {
		s.IdleTimeout, s.MessageTimeout = 50*time.Millisecond, 50*time.Millisecond
	})
	busy, busyR := dialReader(t, ts.path)
	busy.Write([]byte(`{"method": "Hold", "args": []}` + string(rune(eom))))
	wait(t, h.started, "the Hold call to start")

	// Opened after the call began: once it is closed for idleness, the
	// busy connection has been without a request longer than that.
	idle, idleR := dialReader(t, ts.path)
	if b, err := readReply(t, idle, idleR, "an idle connection"); err != io.EOF || b != "" {
		t.Fatalf("idle connection: %q %v, want it closed", b, err)
	}
	half, halfR := dialReader(t, ts.path)
	half.Write([]byte(`{"method": "Echo", "ar`))
	if b, err := readReply(t, half, halfR, "a half request"); err != io.EOF || b != "" {
		t.Fatalf("half a request: %q %v, want the connection closed", b, err)
	}
	close(h.release)
	if b, err := readReply(t, busy, busyR, "the Hold reply"); err != nil || b != `{"success":true,"result":"held"}` {
		t.Fatalf("a call longer than the idle timeout: %q %v", b, err)
	}
	// (Logged once the connection is closed.)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(ts.logs.String(), "a request did not arrive whole in time") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the half request in the log within a minute:\n%s", ts.logs)
		}
		runtime.Gosched()
	}
}

// TestServerConnectionCapPerListener (issue 16, finding 6): 20,200 idle
// LUXI connections took every descriptor and RAPI stopped answering. Each
// listener has a cap now: a connection over it is told why and closed,
// the connections under it are served, and another listener of the same
// server is not affected.
func TestServerConnectionCapPerListener(t *testing.T) {
	h := &holdHandler{started: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startServerOpts(t, h, func(s *Server) { s.MaxConns = 3 })
	other := sockPath(t)
	l, err := ListenUnix(other, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	otherDone := make(chan error, 1)
	go func() { otherDone <- ts.Serve(l) }()
	t.Cleanup(func() { ts.Shutdown(context.Background()); <-otherDone })

	echo := func(nc net.Conn, br *bufio.Reader, what string) (string, error) {
		nc.Write([]byte(`{"method": "Echo", "args": [1]}` + string(rune(eom))))
		return readReply(t, nc, br, what)
	}
	var conns []net.Conn
	for i := range 3 {
		nc, br := dialReader(t, ts.path)
		if b, err := echo(nc, br, "a connection under the cap"); err != nil || b != `{"success":true,"result":[1]}` {
			t.Fatalf("connection %d: %q %v", i, b, err)
		}
		conns = append(conns, nc)
	}
	nc, br := dialReader(t, ts.path)
	b, err := readReply(t, nc, br, "a connection over the cap")
	if err != nil || !strings.Contains(b, `"GenericError",["jobqd has 3 connections open on this socket, its limit; close idle connections or try again later"]`) {
		t.Fatalf("over the cap: %q %v", b, err)
	}
	if _, err := readReply(t, nc, br, "the refused connection's end"); err != io.EOF {
		t.Fatalf("over the cap: not closed: %v", err)
	}
	// The other listener serves.
	onc, obr := dialReader(t, other)
	if b, err := echo(onc, obr, "the other listener"); err != nil || b != `{"success":true,"result":[1]}` {
		t.Fatalf("other listener while the first is full: %q %v", b, err)
	}
	// One closes: room for a new one.
	conns[0].Close()
	deadline := time.Now().Add(time.Minute)
	for {
		nc, br := dialReader(t, ts.path)
		b, err := echo(nc, br, "a connection after one closed")
		if err == nil && b == `{"success":true,"result":[1]}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served within a minute after one of three closed: %q %v", b, err)
		}
		nc.Close()
	}
}

// TestClientSurvivesIdleTimeout: a Client's pooled connection closed by
// the server's idle timeout is replaced without the caller noticing.
func TestClientSurvivesIdleTimeout(t *testing.T) {
	h := &holdHandler{started: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startServerOpts(t, h, func(s *Server) { s.IdleTimeout = 20 * time.Millisecond })
	c, err := Dial(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Call(ctx, "Echo", 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(ts.logs.String(), "closing an idle connection") {
		if time.Now().After(deadline) {
			t.Fatalf("the idle connection was not closed within a minute:\n%s", ts.logs)
		}
		runtime.Gosched()
	}
	if res, err := c.Call(ctx, "Echo", 2); err != nil || string(res) != "[2]" {
		t.Fatalf("call after the server closed the pooled connection: %s %v", res, err)
	}
}
