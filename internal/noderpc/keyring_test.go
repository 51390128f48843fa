package noderpc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

// TestKeyringRenewal walks a certificate renewal between two nodes, each
// with its keyring: B is accepted next to A (staged), presented instead of
// A with A still accepted (switched), then alone (finished). Every step
// works with connections made afresh; after the end a node with only A is
// refused both ways.
func TestKeyringRenewal(t *testing.T) {
	a, b := newTestCert(t, "node1"), newTestCert(t, "node1")
	srvKeys, cliKeys := NewKeyring(a), NewKeyring(a)
	s := NewServerKeyring(srvKeys, newFakeHandler(), slog.New(slog.DiscardHandler))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	defer func() {
		s.Shutdown(context.Background())
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	addr := l.Addr().String()
	c := NewClientKeyring(cliKeys, nil)
	defer c.Close()
	call := func(step string) {
		t.Helper()
		c.Close() // a new handshake for each step
		if _, err := c.State(context.Background(), addr, &StateRequest{}); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	call("before")
	// Stage: both accept B.
	srvKeys.Set(a, b.Certificate[0])
	cliKeys.Set(a, b.Certificate[0])
	call("staged")
	// Switch, the server first: it presents B, the client still A.
	srvKeys.Set(b, a.Certificate[0])
	call("server switched")
	cliKeys.Set(b, a.Certificate[0])
	call("both switched")
	if !srvKeys.Accepts(a.Certificate[0]) || len(srvKeys.Accepted()) != 2 {
		t.Fatalf("accepted while switching: %d", len(srvKeys.Accepted()))
	}
	// Finish: B alone.
	srvKeys.Set(b)
	cliKeys.Set(b)
	call("finished")

	// A connection kept alive from before the renewal (made with A) is
	// refused and closed by the server; the client sends the call again
	// over a new connection, with B.
	c2Keys := NewKeyring(b, a.Certificate[0])
	c2 := NewClientKeyring(c2Keys, nil)
	defer c2.Close()
	srvKeys.Set(b, a.Certificate[0])
	c2Keys.Set(a, b.Certificate[0])
	if _, err := c2.State(context.Background(), addr, &StateRequest{}); err != nil {
		t.Fatalf("before the end: %v", err)
	}
	srvKeys.Set(b)
	c2Keys.Set(b)
	if _, err := c2.State(context.Background(), addr, &StateRequest{}); err != nil {
		t.Fatalf("over the connection from before the renewal: %v, want a new handshake and success", err)
	}

	old := NewClient(a)
	defer old.Close()
	if _, err := old.State(context.Background(), addr, &StateRequest{}); err == nil {
		t.Fatal("a node with the old certificate was accepted after the renewal")
	}
	_, oldAddr, _ := startServer(t, a, newFakeHandler())
	c.Close()
	if _, err := c.State(context.Background(), oldAddr, &StateRequest{}); !errors.Is(err, errForeignServer) {
		t.Fatalf("a server with the old certificate: %v, want refused", err)
	}
}
