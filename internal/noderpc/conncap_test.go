package noderpc

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestConnectionCap: connections over SetMaxConns are closed at once,
// before TLS, and logged; calls are served again once the idle flood is
// gone.
func TestConnectionCap(t *testing.T) {
	cert := newTestCert(t, "node1")
	s, addr, logs := startServer(t, cert, newFakeHandler())
	s.SetMaxConns(3)
	c := newTestClient(t, cert)
	ctx := context.Background()
	if _, err := c.State(ctx, addr, &StateRequest{}); err != nil {
		t.Fatalf("a call under the cap: %v", err)
	}
	c.Close() // its kept-alive connection would count
	// Three idle connections that never start TLS hold the cap (the
	// client's closed connection may still count for a moment: one of
	// these is then refused, and the fourth below all the more).
	var idle []net.Conn
	for range 3 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, nc)
	}
	defer func() {
		for _, nc := range idle {
			nc.Close()
		}
	}()
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := over.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a connection over the cap: read %d bytes, %v; want it closed at once (EOF)", n, err)
	}
	if !strings.Contains(logs.String(), "node RPC: connection cap reached") {
		t.Fatalf("no WARN line for the cap:\n%s", logs.String())
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = c.State(cctx, addr, &StateRequest{})
	cancel()
	if err == nil {
		t.Fatal("a call was served while idle connections held the cap")
	}
	for _, nc := range idle {
		nc.Close()
	}
	idle = nil
	// The server sees the idle connections go when their reads fail:
	// calls are served again, within a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.State(cctx, addr, &StateRequest{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls are still refused 10s after the idle connections closed: %v", err)
		}
		c.Close()
	}
	// Negative: no cap.
	s.SetMaxConns(-1)
	if s.connCap() != 0 {
		t.Fatalf("SetMaxConns(-1): cap %d, want none", s.connCap())
	}
	s.SetMaxConns(0)
	if s.connCap() < 16 {
		t.Fatalf("default cap %d, want at least 16", s.connCap())
	}
}
