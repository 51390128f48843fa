package noderpc

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// acceptOne accepts one stream from l, or fails the test after a deadline.
func acceptOne(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(10 * time.Second):
		t.Fatal("no stream was accepted within 10s")
		return nil
	}
}

func TestStreamCarriesBytesBothWays(t *testing.T) {
	cert := newTestCert(t, "cluster")
	s, addr, _ := startServer(t, cert, newFakeHandler())
	l := s.StreamListener("raft")
	if l2 := s.StreamListener("raft"); l2 != l {
		t.Fatal("a second StreamListener for the same name is another listener")
	}
	c := newTestClient(t, cert)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.DialStream(ctx, addr, "raft")
	if err != nil {
		t.Fatalf("DialStream: %v", err)
	}
	defer out.Close()
	in := acceptOne(t, l)
	deadline := time.Now().Add(10 * time.Second)
	out.SetDeadline(deadline)
	in.SetDeadline(deadline)

	// Right after the upgrade, as the engine does: the first bytes of each
	// side reach the other unchanged, and so do later ones.
	for i, msg := range []string{"hello from the client", strings.Repeat("x", 100_000)} {
		go out.Write([]byte(msg))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(in, got); err != nil || string(got) != msg {
			t.Fatalf("message %d: server read %q... (%d bytes), %v", i, got[:min(len(got), 20)], len(got), err)
		}
		go in.Write([]byte(msg))
		if _, err := io.ReadFull(out, got); err != nil || string(got) != msg {
			t.Fatalf("message %d: client read %q..., %v", i, got[:min(len(got), 20)], err)
		}
	}
	// The server's idle and header timeouts do not cut a quiet stream:
	// the connection has no deadline once upgraded (checked by closing the
	// client and seeing EOF rather than a timeout on the server side).
	out.Close()
	if _, err := in.Read(make([]byte, 1)); err == nil || errors.Is(err, net.ErrClosed) {
		t.Fatalf("server read after the client closed: %v, want EOF", err)
	}
}

func TestStreamRefusals(t *testing.T) {
	cert := newTestCert(t, "cluster")
	s, addr, logs := startServer(t, cert, newFakeHandler())
	l := s.StreamListener("raft")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("foreign certificate", func(t *testing.T) {
		// A client that presents a foreign certificate but accepts the
		// server's.
		c := NewClientKeyring(NewKeyring(newTestCert(t, "stranger"), cert.Certificate[0]), nil)
		defer c.Close()
		_, err := c.DialStream(ctx, addr, "raft")
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeRefused {
			t.Fatalf("DialStream with a foreign client certificate: %v, want a 403 refusal", err)
		}
		if !strings.Contains(logs.String(), "unknown client certificate") {
			t.Errorf("the refusal is not logged: %s", logs.String())
		}
	})
	t.Run("foreign server", func(t *testing.T) {
		c := newTestClient(t, newTestCert(t, "other cluster"))
		_, err := c.DialStream(ctx, addr, "raft")
		if err == nil || !strings.Contains(err.Error(), "not the cluster certificate") {
			t.Fatalf("DialStream to a server of another cluster: %v", err)
		}
	})
	t.Run("unknown stream", func(t *testing.T) {
		c := newTestClient(t, cert)
		_, err := c.DialStream(ctx, addr, "gossip")
		if err == nil || !strings.Contains(err.Error(), `this node serves no stream "gossip"`) {
			t.Fatalf("DialStream of an unknown stream: %v", err)
		}
	})
	t.Run("plain POST", func(t *testing.T) {
		code, e := rawPost(t, "https://"+addr+"/v1/stream/raft", "{}", cert)
		if code != 400 || e == nil || !strings.Contains(e.Message, "Upgrade") {
			t.Fatalf("POST to a stream: %d %+v", code, e)
		}
	})
	t.Run("join client", func(t *testing.T) {
		c := NewJoinClient(Fingerprint(cert.Certificate[0]))
		defer c.Close()
		if _, err := c.DialStream(ctx, addr, "raft"); err == nil {
			t.Fatal("a join client opened a stream")
		}
	})
	t.Run("closed listener", func(t *testing.T) {
		l.Close()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept on a closed listener: %v", err)
		}
		c := newTestClient(t, cert)
		_, err := c.DialStream(ctx, addr, "raft")
		if err == nil || !strings.Contains(err.Error(), "serves no stream") {
			t.Fatalf("DialStream after the listener closed: %v", err)
		}
		// A new listener serves again.
		l2 := s.StreamListener("raft")
		out, err := c.DialStream(ctx, addr, "raft")
		if err != nil {
			t.Fatalf("DialStream after a new listener: %v", err)
		}
		out.Close()
		acceptOne(t, l2)
	})
}

// A server that takes the TCP connection but never answers: the dial
// gives up at the context's deadline and says so.
func TestStreamDialDeadline(t *testing.T) {
	cert := newTestCert(t, "cluster")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Shake hands, then say nothing.
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert})
			go func() { tc.Handshake(); io.Copy(io.Discard, tc) }()
		}
	}()
	c := newTestClient(t, cert)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.DialStream(ctx, ln.Addr().String(), "raft")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "abandoned") {
			t.Fatalf("DialStream to a silent server: %v, want abandoned", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DialStream to a silent server did not return 10s after its deadline")
	}
}

// Shutdown closes the stream listeners, so the engine's accept loop ends.
func TestStreamListenerClosedByShutdown(t *testing.T) {
	cert := newTestCert(t, "cluster")
	s := NewServer(cert, newFakeHandler(), nil)
	l := s.StreamListener("raft")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Shutdown: %v", err)
	}
}
