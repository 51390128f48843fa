package luxi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClientCall(t *testing.T) {
	_, path := startServer(t, newTestHandler())
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	res, err := c.Call(ctx, "Echo", 20, []string{"id", "status"}, nil, json.RawMessage(`{"b": 1.0e-2}`), "<&>")
	if want := `[20,["id","status"],null,{"b":1.0e-2},"<&>"]`; err != nil || string(res) != want {
		t.Errorf("Echo = %s, %v; want %s", res, err, want)
	}
	if res, err := c.Call(ctx, "Echo"); err != nil || string(res) != `[]` {
		t.Errorf("Echo() = %s, %v", res, err)
	}
	if res, err := c.Call(ctx, "Version"); err != nil || string(res) != `3000000` {
		t.Errorf("Version = %s, %v", res, err)
	}

	for _, tc := range []struct {
		method string
		args   []any
		want   *Error
		text   string
	}{
		{"Fail", []any{"GenericError", []string{"Queue drained"}},
			NewError("GenericError", "Queue drained"), "GenericError: Queue drained"},
		{"Fail", []any{"OpPrereqError", []string{"This is not the master node, please connect to node n1", "wrong_state"}},
			NewError("OpPrereqError", "This is not the master node, please connect to node n1", "wrong_state"),
			"OpPrereqError: This is not the master node, please connect to node n1 (wrong_state)"},
		{"NoSuchMethod", nil,
			NewError("RequestError", `Failed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: "NoSuchMethod"`),
			`RequestError: Failed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: "NoSuchMethod"`},
		{"Panic", []any{"boom"}, NewError("GenericError", "Internal error in Panic: boom"), "GenericError: Internal error in Panic: boom"},
	} {
		_, err := c.Call(ctx, tc.method, tc.args...)
		var le *Error
		if !errors.As(err, &le) {
			t.Errorf("%s: error %v is not *Error", tc.method, err)
			continue
		}
		if diff := cmp.Diff(tc.want, le); diff != "" {
			t.Errorf("%s: error differs (-want +got):\n%s", tc.method, diff)
		}
		if le.Error() != tc.text {
			t.Errorf("%s: Error() = %q, want %q", tc.method, le.Error(), tc.text)
		}
	}

	if _, err := c.Call(ctx, "Echo", func() {}); err == nil || !strings.Contains(err.Error(), "encoding Echo request") {
		t.Errorf("unencodable argument: %v", err)
	}
}

// fakeServer accepts one connection and runs fn on it.
func fakeServer(t *testing.T, fn func(nc net.Conn, br *bufio.Reader)) string {
	t.Helper()
	path := sockPath(t)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		fn(nc, bufio.NewReader(nc))
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return path
}

func TestClientWire(t *testing.T) {
	got := make(chan string, 3)
	path := fakeServer(t, func(nc net.Conn, br *bufio.Reader) {
		for _, rep := range []string{
			// Python-style spacing and a trailing newline are fine.
			"{\"success\": true, \"result\": [[true, 21], [true, 22]]}\n\x03",
			`{"result":"x"}` + "\x03",
			`{"success":false,"result":{"odd":1}}` + "\x03",
		} {
			msg, err := readMessage(br, nil, DefaultMaxMessageSize, nil)
			if err != nil {
				return
			}
			got <- string(msg)
			nc.Write([]byte(rep))
		}
	})
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ops := []map[string]any{{"OP_ID": "OP_TEST_DELAY", "duration": 0.01}}
	res, err := c.Call(context.Background(), "SubmitManyJobs", [][]map[string]any{ops, ops})
	if err != nil || string(res) != `[[true, 21], [true, 22]]` {
		t.Errorf("Call = %s, %v", res, err)
	}
	want := `{"method":"SubmitManyJobs","args":[[[{"OP_ID":"OP_TEST_DELAY","duration":0.01}],[{"OP_ID":"OP_TEST_DELAY","duration":0.01}]]],"version":3000000}`
	if g := <-got; g != want {
		t.Errorf("request bytes:\n got %s\nwant %s", g, want)
	}

	_, err = c.Call(context.Background(), "X")
	var le *Error
	if err == nil || errors.As(err, &le) || !strings.Contains(err.Error(), "invalid reply") {
		t.Errorf("reply without success: %v", err)
	}
	// A well-framed but odd reply leaves the connection usable.
	_, err = c.Call(context.Background(), "X")
	if !errors.As(err, &le) || le.Class != "RequestError" || !cmp.Equal(le.Args, []any{map[string]any{"odd": 1.0}}) {
		t.Errorf("odd failure: %#v", err)
	}
}

func TestClientContextCancel(t *testing.T) {
	h := newTestHandler()
	_, path := startServer(t, h)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "Block")
		errc <- err
	}()
	wait(t, h.started, "call to start")
	cancel()
	if err := wait(t, errc, "Call to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Call = %v, want context.Canceled", err)
	}
	// Abandoning the call closed its connection, which cancels it on the server.
	if err := wait(t, h.cancelled, "server call to be cancelled"); !errors.Is(err, context.Canceled) {
		t.Errorf("server ctx.Err() = %v", err)
	}
	// The client still works.
	if res, err := c.Call(context.Background(), "Echo", 1); err != nil || string(res) != "[1]" {
		t.Errorf("Call after cancel = %s, %v", res, err)
	}
	// A call with a context that is already done is not sent.
	if _, err := c.Call(ctx, "Echo", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Call with done context = %v", err)
	}
}

func TestClientReconnectsAfterServerRestart(t *testing.T) {
	path := sockPath(t)
	start := func() (*Server, chan error) {
		l, err := ListenUnix(path, 0o660)
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{Handler: newTestHandler()}
		errc := make(chan error, 1)
		go func() { errc <- s.Serve(l) }()
		return s, errc
	}
	stop := func(s *Server, errc chan error) {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-errc
	}

	s, errc := start()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Call(context.Background(), "Echo", 1); err != nil {
		t.Fatal(err)
	}
	stop(s, errc) // closes the client's pooled connection

	if _, err := c.Call(context.Background(), "Echo", 2); err == nil {
		t.Errorf("Call with no server succeeded")
	}

	s, errc = start()
	defer stop(s, errc)
	if res, err := c.Call(context.Background(), "Echo", 3); err != nil || string(res) != "[3]" {
		t.Errorf("Call after restart = %s, %v", res, err)
	}
}

func TestClientStalePooledConnection(t *testing.T) {
	ts, path := startServer(t, newTestHandler())
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Call(context.Background(), "Echo", 1); err != nil {
		t.Fatal(err)
	}
	// Close the server's side of every connection, as a restarting server
	// does; the pooled connection is then dead, and the call is retried.
	ts.mu.Lock()
	for nc := range ts.conns {
		nc.Close()
	}
	ts.mu.Unlock()
	if res, err := c.Call(context.Background(), "Echo", 2); err != nil || string(res) != "[2]" {
		t.Errorf("Call on stale pooled connection = %s, %v", res, err)
	}
}

func TestClientClose(t *testing.T) {
	_, path := startServer(t, newTestHandler())
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(context.Background(), "Echo"); err == nil {
		t.Errorf("Call after Close succeeded")
	}
}

func TestDialNoServer(t *testing.T) {
	if _, err := Dial(sockPath(t)); err == nil {
		t.Errorf("Dial with no server succeeded")
	}
}
