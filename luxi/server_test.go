package luxi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sockPath returns a socket path in a fresh directory, short enough for
// sun_path.
func sockPath(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 80 {
		var err error
		if dir, err = os.MkdirTemp("", "luxi"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return filepath.Join(dir, "sock")
}

// testServer is a Server serving a Unix socket for one test.
type testServer struct {
	*Server
	path string
	logs *syncBuffer
	errc chan error
	once sync.Once
	err  error
}

// serveResult waits for Serve to return and returns its error.
func (ts *testServer) serveResult() error {
	ts.once.Do(func() { ts.err = <-ts.errc })
	return ts.err
}

func startServerOpts(t testing.TB, h Handler, configure func(*Server)) *testServer {
	t.Helper()
	path := sockPath(t)
	l, err := ListenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{path: path, logs: &syncBuffer{}, errc: make(chan error, 1)}
	ts.Server = &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if configure != nil {
		configure(ts.Server)
	}
	go func() { ts.errc <- ts.Serve(l) }()
	t.Cleanup(func() {
		if err := ts.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := ts.serveResult(); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs)
		}
	})
	return ts
}

func startServer(t testing.TB, h Handler) (*testServer, string) {
	t.Helper()
	ts := startServerOpts(t, h, nil)
	return ts, ts.path
}

// wait waits for ch, failing the test if it takes absurdly long (a hang).
func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// testHandler implements a few methods for the tests:
//
//	Echo(args...)   -> args
//	Version()       -> the request's version
//	Block()         -> waits for ctx; reports on started and cancelled
//	Panic(msg)      -> panics
//	Fail(class, args) -> *Error
//	Big(n)          -> a string of n bytes
type testHandler struct {
	started   chan struct{}
	cancelled chan error
}

func newTestHandler() *testHandler {
	return &testHandler{started: make(chan struct{}, 100), cancelled: make(chan error, 100)}
}

func (h *testHandler) ServeLUXI(ctx context.Context, req *Request) (any, error) {
	switch req.Method {
	case "Echo":
		return req.Args, nil
	case "Version":
		return req.Version, nil
	case "Block":
		h.started <- struct{}{}
		<-ctx.Done()
		h.cancelled <- ctx.Err()
		return nil, ctx.Err()
	case "Panic":
		var msg string
		if err := req.UnmarshalArgs(&msg); err != nil {
			return nil, err
		}
		panic(msg)
	case "Fail":
		var e Error
		if err := req.UnmarshalArgs(&e.Class, &e.Args); err != nil {
			return nil, err
		}
		return nil, &e
	case "Big":
		var n int
		if err := req.UnmarshalArgs(&n); err != nil {
			return nil, err
		}
		return strings.Repeat("x", n), nil
	case "Unencodable":
		return math.Inf(1), nil
	case "BadMarshaler":
		return badMarshaler{}, nil
	}
	return nil, UnknownMethod(req.Method)
}

type badMarshaler struct{}

func (badMarshaler) MarshalJSON() ([]byte, error) { panic("marshal boom") }

func TestServerMalformedRequests(t *testing.T) {
	_, path := startServer(t, newTestHandler())
	c := dialRaw(t, path)
	for _, bad := range []string{
		`{bad json`,
		`{"method":"Echo","args":[1]} trailing`,
		`[1,2]`,
		`"SubmitJob"`,
		`null`,
		`42`,
		``,
		" \n\t",
		`{}`,
		`{"args":[]}`,
		`{"method":1,"args":[]}`,
		`{"method":null,"args":[]}`,
		`{"method":["Echo"],"args":[]}`,
		`{"method":"Echo"}`,
		`{"method":"Echo","args":{}}`,
		`{"method":"Echo","args":null}`,
		`{"method":"Echo","args":"x"}`,
		`{"METHOD":"Echo","ARGS":[]}`,
		"{\"method\":\"Echo\",\"args\":[\"\x00\"]}",
		`{"method":"NoSuchMethod","args":[]}`,
		"{\"method\":\"\xff\",\"args\":[]}",
		`{"method":"Panic","args":[]}`,
		`{"method":"Panic","args":[1]}`,
	} {
		rep := c.call(bad)
		var r struct {
			Success bool
			Result  any
		}
		if err := json.Unmarshal([]byte(rep), &r); err != nil {
			t.Fatalf("%q: reply %q: %v", bad, rep, err)
		}
		msg, ok := r.Result.(string)
		if r.Success || !ok || !strings.HasPrefix(msg, "Failed to parse request: ") ||
			!strings.HasPrefix(rep, `{"success":false,"result":"Failed to parse request: `) {
			t.Errorf("%q: reply %s, want a parse failure", bad, rep)
		}
		// The connection stays usable.
		if rep := c.call(`{"method":"Echo","args":[1,"a"],"version":3000000}`); rep != `{"success":true,"result":[1,"a"]}` {
			t.Fatalf("after %q: reply %s", bad, rep)
		}
	}
	want := `{"success":false,"result":"Failed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: \"NoSuchMethod\""}`
	if rep := c.call(`{"method": "NoSuchMethod", "args": [], "version": 3000000}`); rep != want {
		t.Errorf("unknown method: got %s\nwant %s", rep, want)
	}
}

func TestServerVersion(t *testing.T) {
	_, path := startServer(t, newTestHandler())
	c := dialRaw(t, path)
	for msg, want := range map[string]string{
		`{"method":"Version","args":[],"version":3000000}`: `3000000`,
		`{"method":"Version","args":[],"version":2160000}`: `2160000`,
		`{"method":"Version","args":[]}`:                   `null`,
		`{"method":"Version","args":[],"version":"x"}`:     `null`,
		`{"method":"Version","args":[],"version":1.5}`:     `null`,
		`{"method":"Version","args":[],"version":null}`:    `null`,
		`{"version":7,"args":[],"method":"Version"}`:       `7`,
	} {
		if rep := c.call(msg); rep != `{"success":true,"result":`+want+`}` {
			t.Errorf("%s: reply %s, want result %s", msg, rep, want)
		}
	}
}

func TestServerErrors(t *testing.T) {
	ts, path := startServer(t, newTestHandler())
	c := dialRaw(t, path)
	for _, tc := range []struct{ req, want string }{
		{`{"method":"Fail","args":["GenericError",["Queue drained"]]}`,
			`{"success":false,"result":["GenericError",["Queue drained"]]}`},
		{`{"method":"Fail","args":["OpPrereqError",["This is not the master node, please connect to node n1","wrong_state"]]}`,
			`{"success":false,"result":["OpPrereqError",["This is not the master node, please connect to node n1","wrong_state"]]}`},
		{`{"method":"Fail","args":["GenericError",[]]}`,
			`{"success":false,"result":["GenericError",[]]}`},
		// null where the handler wants a value is a malformed request.
		{`{"method":"Fail","args":["GenericError",null]}`,
			`{"success":false,"result":"Failed to parse request: argument 2 of Fail must not be null"}`},
		// No HTML escaping, as luxid.
		{`{"method":"Echo","args":["<a&b>"]}`, `{"success":true,"result":["<a&b>"]}`},
		{`{"method":"Panic","args":["boom"]}`,
			`{"success":false,"result":["GenericError",["Internal error in Panic: boom"]]}`},
		{`{"method":"BadMarshaler","args":[]}`,
			`{"success":false,"result":["GenericError",["Internal error in BadMarshaler: marshal boom"]]}`},
		{`{"method":"Unencodable","args":[]}`,
			`{"success":false,"result":["GenericError",["Cannot encode result: json: unsupported value: +Inf"]]}`},
		{`{"method":"Echo","args":[]}`, `{"success":true,"result":[]}`},
	} {
		if rep := c.call(tc.req); rep != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.req, rep, tc.want)
		}
	}
	logs := ts.logs.String()
	for _, want := range []string{"handler panicked", "boom", "cannot encode reply"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestServerGenericError(t *testing.T) {
	_, path := startServer(t, HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		return nil, fmt.Errorf("job %s: %w", "7", errors.New("not found"))
	}))
	c := dialRaw(t, path)
	if rep, want := c.call(`{"method":"X","args":[]}`), `{"success":false,"result":["GenericError",["job 7: not found"]]}`; rep != want {
		t.Errorf("got %s, want %s", rep, want)
	}
}

func TestServerNilHandler(t *testing.T) {
	_, path := startServer(t, nil)
	c := dialRaw(t, path)
	if rep := c.call(`{"method":"QueryJobs","args":[]}`); !strings.Contains(rep, `LuxiReq: \"QueryJobs\"`) {
		t.Errorf("got %s", rep)
	}
}

func TestServerOversizedMessage(t *testing.T) {
	const limit = 100
	ts := startServerOpts(t, newTestHandler(), func(s *Server) { s.MaxMessageSize = limit })

	other := dialRaw(t, ts.path) // connected before, served after
	if rep := other.call(`{"method":"Echo","args":[0]}`); rep != `{"success":true,"result":[0]}` {
		t.Fatalf("got %s", rep)
	}

	// A message of exactly the limit is fine, one byte more is not.
	exact := func(n int) []byte {
		head, tail := `{"method":"Echo","args":["`, `"]}`
		return []byte(head + strings.Repeat("y", n-len(head)-len(tail)) + tail)
	}
	c := dialRaw(t, ts.path)
	c.write(append(exact(limit), eom))
	if rep := string(c.readRaw()); !strings.HasPrefix(rep, `{"success":true`) {
		t.Fatalf("message of %d bytes: %s", limit, rep)
	}
	c.write(append(exact(limit+1), eom))
	want := fmt.Sprintf(`{"success":false,"result":"Failed to parse request: message exceeds the limit of %d bytes"}`, limit)
	if rep := string(c.readRaw()); rep != want+"\x03" {
		t.Errorf("message of %d bytes: %s", limit+1, rep)
	}
	if msg, err := c.read(); err == nil {
		t.Errorf("connection still open after oversized message; read %q", msg)
	}

	// A huge message without terminator is refused without waiting for its end.
	big := dialRaw(t, ts.path)
	big.write(bytes.Repeat([]byte("z"), 8*limit))
	if rep := string(big.readRaw()); rep != want+"\x03" {
		t.Errorf("unterminated message: %s", rep)
	}
	if _, err := big.read(); err == nil {
		t.Errorf("connection still open after oversized message")
	}

	if rep := other.call(`{"method":"Echo","args":[1]}`); rep != `{"success":true,"result":[1]}` {
		t.Errorf("other client after oversized messages: %s", rep)
	}
	if !strings.Contains(ts.logs.String(), "request too large") {
		t.Errorf("oversized request not logged:\n%s", ts.logs)
	}
}

func TestServerCancelsCallWhenClientDisconnects(t *testing.T) {
	h := newTestHandler()
	_, path := startServer(t, h)
	c := dialRaw(t, path)
	c.write([]byte(`{"method":"Block","args":[]}` + "\n\x03"))
	wait(t, h.started, "call to start")
	c.nc.Close()
	if err := wait(t, h.cancelled, "call to be cancelled"); !errors.Is(err, context.Canceled) {
		t.Errorf("ctx.Err() = %v", err)
	}
}

func TestServerShutdownDuringCall(t *testing.T) {
	h := newTestHandler()
	ts, path := startServer(t, h)

	idle := dialRaw(t, path)
	if rep := idle.call(`{"method":"Echo","args":[]}`); rep != `{"success":true,"result":[]}` {
		t.Fatal(rep)
	}
	busy := dialRaw(t, path)
	busy.write([]byte(`{"method":"Block","args":[]}` + "\n\x03"))
	wait(t, h.started, "call to start")

	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := wait(t, h.cancelled, "call to be cancelled"); !errors.Is(err, context.Canceled) {
		t.Errorf("ctx.Err() = %v", err)
	}
	// The blocked call is answered, then its connection closed.
	if rep, want := string(busy.readRaw()), `{"success":false,"result":["GenericError",["Server is shutting down"]]}`+"\x03"; rep != want {
		t.Errorf("blocked call: got %q, want %q", rep, want)
	}
	if _, err := busy.read(); err != io.EOF {
		t.Errorf("busy connection: read %v, want EOF", err)
	}
	if _, err := idle.read(); err != io.EOF {
		t.Errorf("idle connection: read %v, want EOF", err)
	}
	if err := ts.serveResult(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after shutdown: %v", err)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Errorf("dial after shutdown succeeded")
	}
}

func TestServerShutdownTimeout(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	ts, path := startServer(t, HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		close(started)
		<-release // ignores ctx
		return 1, nil
	}))
	c := dialRaw(t, path)
	c.write([]byte(`{"method":"Stubborn","args":[]}` + "\x03"))
	<-started

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	// The connection was closed by force.
	if _, err := c.read(); err == nil {
		t.Errorf("connection still open")
	}
	close(release)
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
}

func TestServeAfterShutdown(t *testing.T) {
	var s Server
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := sockPath(t)
	l, err := ListenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("listener not closed: %v", err)
	}
}

func TestServeReturnsWhenListenerCloses(t *testing.T) {
	l, err := ListenUnix(sockPath(t), 0o660)
	if err != nil {
		t.Fatal(err)
	}
	var s Server
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	l.Close()
	if err := wait(t, errc, "Serve"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve = %v, want net.ErrClosed", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestServerSlowClientsDoNotBlockOthers keeps a client idle, one stuck in
// the middle of a request, one in a long call and one that never reads its
// (large) replies, and serves others meanwhile.
func TestServerSlowClientsDoNotBlockOthers(t *testing.T) {
	h := newTestHandler()
	_, path := startServer(t, h)

	_ = dialRaw(t, path) // idle
	partial := dialRaw(t, path)
	partial.write([]byte(`{"method":"Echo","ar`))
	blocked := dialRaw(t, path)
	blocked.write([]byte(`{"method":"Block","args":[]}` + "\x03"))
	wait(t, h.started, "call to start")
	stuffed := dialRaw(t, path)
	for range 8 {
		stuffed.write([]byte(`{"method":"Big","args":[1000000]}` + "\x03"))
	}

	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 10 {
		res, err := c.Call(context.Background(), "Echo", i)
		if err != nil || string(res) != fmt.Sprintf("[%d]", i) {
			t.Fatalf("Call = %s, %v", res, err)
		}
	}

	// The partial request can still be finished.
	partial.write([]byte(`gs":[2]}` + "\x03"))
	if got := string(partial.readRaw()); got != `{"success":true,"result":[2]}`+"\x03" {
		t.Errorf("partial: %q", got)
	}
	stuffed.nc.Close()
	blocked.nc.Close()
	wait(t, h.cancelled, "blocked call to end")
}

func TestServerManyClients(t *testing.T) {
	_, path := startServer(t, newTestHandler())
	shared, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()

	const clients, calls = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*clients*calls)
	for i := range clients {
		wg.Add(2)
		go func() { // own client
			defer wg.Done()
			c, err := Dial(path)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range calls {
				res, err := c.Call(context.Background(), "Echo", i, j, "own")
				if want := fmt.Sprintf(`[%d,%d,"own"]`, i, j); err != nil || string(res) != want {
					errs <- fmt.Errorf("own client: got %s, %v; want %s", res, err, want)
				}
			}
		}()
		go func() { // shared client
			defer wg.Done()
			for j := range calls {
				res, err := shared.Call(context.Background(), "Echo", i, j, "shared")
				if want := fmt.Sprintf(`[%d,%d,"shared"]`, i, j); err != nil || string(res) != want {
					errs <- fmt.Errorf("shared client: got %s, %v; want %s", res, err, want)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestListenUnix(t *testing.T) {
	dir := filepath.Dir(sockPath(t))
	path := filepath.Join(dir, "run", "socket", "jobq-query")

	l, err := ListenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want socket 0660", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if !di.IsDir() || di.Mode().Perm()&^0o750 != 0 {
		t.Errorf("parent mode %v, want at most 0750", di.Mode())
	}

	// A live server is not replaced.
	var s Server
	s.Handler = newTestHandler()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	if _, err := ListenUnix(path, 0o660); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("ListenUnix over a live server: %v", err)
	}
	c := dialRaw(t, path)
	if rep := c.call(`{"method":"Echo","args":[]}`); rep != `{"success":true,"result":[]}` {
		t.Errorf("live server after refused ListenUnix: %s", rep)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}

	// A stale socket (its server gone without removing it) is replaced.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket missing: %v", err)
	}
	l, err = ListenUnix(path, 0o600)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after replacing: %v, %v", fi.Mode(), err)
	}
	l.Close()

	// Something that is not a socket is left alone.
	if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(path, 0o660); err == nil {
		t.Errorf("ListenUnix over a regular file succeeded")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("regular file changed: %q, %v", b, err)
	}
}

func TestUnmarshalArgs(t *testing.T) {
	req := &Request{Method: "CancelJob", Args: json.RawMessage(`[26, false]`)}
	var (
		id   int64
		kill bool
	)
	if err := req.UnmarshalArgs(&id, &kill); err != nil || id != 26 || kill {
		t.Errorf("UnmarshalArgs = %v; id %d kill %v", err, id, kill)
	}
	for _, tc := range []struct {
		args string
		dst  []any
		want string
	}{
		{`[26]`, []any{&id, &kill}, "Failed to parse request: CancelJob takes 2 arguments, got 1"},
		{`[26, false, 1]`, []any{&id, &kill}, "Failed to parse request: CancelJob takes 2 arguments, got 3"},
		{`["x", false]`, []any{&id, &kill}, "Failed to parse request: argument 1 of CancelJob has the wrong type: expected an integer, got a JSON string"},
		{`[null, false]`, []any{&id, &kill}, "Failed to parse request: argument 1 of CancelJob must not be null"},
		{`[1, [true]]`, []any{&id, &kill}, "Failed to parse request: argument 2 of CancelJob has the wrong type: expected a boolean, got a JSON array"},
		{`{}`, []any{&id}, "Failed to parse request: arguments of CancelJob are not an array"},
	} {
		req := &Request{Method: "CancelJob", Args: json.RawMessage(tc.args)}
		err := req.UnmarshalArgs(tc.dst...)
		var re *RequestError
		if !errors.As(err, &re) || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestUnknownMethodQuoting(t *testing.T) {
	const prefix = "Failed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: "
	for name, want := range map[string]string{
		"NoSuchMethod": `"NoSuchMethod"`,
		`a"b\c`:        `"a\"b\\c"`,
		"tab\there\n":  `"tab\there\n"`,
		"\x01\x7f":     `"\SOH\DEL"`,
		"\x0eH\x0eI":   `"\SO\&H\SOI"`,
		"é1":           `"\233\&1"`,
		"éx€":          `"\233x\8364"`,
		"\a\b\f\v\r":   `"\a\b\f\v\r"`,
		"":             `""`,
	} {
		if got := UnknownMethod(name).Error(); got != prefix+want {
			t.Errorf("UnknownMethod(%q) = %q, want %q", name, strings.TrimPrefix(got, prefix), want)
		}
	}
}

func TestErrorValue(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		text string
		json string
	}{
		{NewError("GenericError", "Queue drained"), "GenericError: Queue drained", `["GenericError",["Queue drained"]]`},
		{NewError("OpPrereqError", "This is not the master node, please connect to node n1", "wrong_state"),
			"OpPrereqError: This is not the master node, please connect to node n1 (wrong_state)",
			`["OpPrereqError",["This is not the master node, please connect to node n1","wrong_state"]]`},
		{NewError("OpExecError"), "OpExecError", `["OpExecError",[]]`},
		{NewError("X", "a", 2.0, "c"), "X: a (2, c)", `["X",["a",2,"c"]]`},
	} {
		if got := tc.err.Error(); got != tc.text {
			t.Errorf("Error() = %q, want %q", got, tc.text)
		}
		b, err := json.Marshal(tc.err)
		if err != nil || string(b) != tc.json {
			t.Errorf("Marshal = %s, %v; want %s", b, err, tc.json)
		}
		var back Error
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		want := *tc.err
		if want.Args == nil {
			want.Args = []any{}
		}
		if diff := cmp.Diff(want, back); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	var e Error
	if err := json.Unmarshal([]byte(`["OpPrereqError","not a list"]`), &e); err != nil || e.Error() != "OpPrereqError: not a list" {
		t.Errorf("non-list args: %v, %v", e, err)
	}
	for _, bad := range []string{`"x"`, `[]`, `[1,[]]`, `["a",[],3]`} {
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}

// TestServerBufferedBytesCap: large requests being received at once are
// capped over all connections: the one that would go over gets a "busy"
// reply and is closed, the others are served, and once the bytes are
// freed the refused request goes through.
func TestServerBufferedBytesCap(t *testing.T) {
	const budget = 1 << 20
	reserved := make(chan int64, 1024)
	ts := startServerOpts(t, newTestHandler(), func(s *Server) {
		s.MaxMessageSize = 4 << 20
		s.MaxBufferedBytes = budget
		s.testReserved = func(total int64) { reserved <- total }
	})
	head := `{"method":"Echo","args":["`
	body := func(n int) []byte { return []byte(head + strings.Repeat("y", n-len(head))) }
	// A sends 700 KiB of a request and stops.
	a := dialRaw(t, ts.path)
	a.write(body(700 << 10))
	for total := int64(0); total < 700<<10; {
		total = wait(t, reserved, "A's bytes reserved")
	}
	// B's 700 KiB request would go over the cap: refused, closed.
	b := dialRaw(t, ts.path)
	wrote := make(chan error, 1)
	go func() {
		// The server closes the connection before all of it is read.
		_, err := b.nc.Write(append(body(700<<10), '"', ']', '}', eom))
		wrote <- err
	}()
	want := `{"success":false,"result":"Failed to parse request: the server is receiving too many large requests at once; send it again later"}` + "\x03"
	if rep := string(b.readRaw()); rep != want {
		t.Fatalf("B over the cap: %.200s", rep)
	}
	b.nc.Close()
	<-wrote
	// A small request is served meanwhile.
	if rep := dialRaw(t, ts.path).call(`{"method":"Echo","args":[1]}`); rep != `{"success":true,"result":[1]}` {
		t.Fatalf("small request: %s", rep)
	}
	// A finishes and is answered; its bytes are freed.
	a.write([]byte{'"', ']', '}', eom})
	if rep := string(a.readRaw()); !strings.HasPrefix(rep, `{"success":true`) {
		t.Fatalf("A: %.200s", rep)
	}
	for total := int64(-1); total != 0; {
		total = wait(t, reserved, "A's bytes released")
	}
	// B again: fine now.
	b2 := dialRaw(t, ts.path)
	b2.write(append(body(700<<10), '"', ']', '}', eom))
	if rep := string(b2.readRaw()); !strings.HasPrefix(rep, `{"success":true`) {
		t.Fatalf("B after A: %.200s", rep)
	}
}

// TestPeerCredentials: every call's context carries the peer the kernel
// reports for the connection (SO_PEERCRED), not anything the client says.
func TestPeerCredentials(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sock")
	l, err := ListenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		p, ok := PeerFromContext(ctx)
		if !ok {
			return nil, fmt.Errorf("no peer")
		}
		out := []int64{int64(p.UID), int64(p.GID), int64(p.PID)}
		for _, g := range p.Groups {
			out = append(out, int64(g))
		}
		return out, nil
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []int64
	raw, err := c.Call(context.Background(), "Whoami")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := []int64{int64(os.Getuid()), int64(os.Getgid()), int64(os.Getpid())}
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		want = append(want, int64(g))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("peer %v, want %v", got, want)
	}
	if _, ok := PeerFromContext(context.Background()); ok {
		t.Fatal("a context without a connection has a peer")
	}
}
