package conncap

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCap: connections over the cap are closed at once (the client reads
// EOF), a closed one makes room, the warning names the listener, and a
// cap of 0 is none.
func TestCap(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	var limit atomic.Int64
	limit.Store(2)
	l := &Listener{Listener: inner, Max: func() int { return int(limit.Load()) }, Log: slog.New(slog.NewTextHandler(&logs, nil)), Name: "test"}
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	wait := func() net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no connection accepted within 10 s")
			return nil
		}
	}
	dial()
	a := wait()
	dial()
	wait()
	over := dial()
	_ = over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := over.Read(make([]byte, 1)); n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a connection over the cap: read %d, %v; want EOF or reset", n, err)
	}
	if !strings.Contains(logs.String(), "test: connection cap reached") || !strings.Contains(logs.String(), "cap=2") {
		t.Fatalf("log: %s", logs.String())
	}
	a.Close()
	a.Close() // twice counts once
	if got := l.Open(); got != 1 {
		t.Fatalf("open after a close: %d", got)
	}
	dial()
	wait()
	limit.Store(0)
	dial()
	wait()
	if got := l.Open(); got != 3 {
		t.Fatalf("open without a cap: %d", got)
	}
	if DefaultMax() < 16 {
		t.Fatalf("DefaultMax %d", DefaultMax())
	}
}

// syncBuffer is a bytes.Buffer safe for the accepting goroutine's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
