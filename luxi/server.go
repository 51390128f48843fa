package luxi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jobq-dev/jobq/internal/conncap"
)

// Handler serves LUXI requests.
//
// ServeLUXI returns the call's result, which the server encodes with
// encoding/json ([json.RawMessage] values pass through unchanged). An error
// becomes a failure reply: a [*Error] (also wrapped) is sent as
// [Class, Args], a [*RequestError] (see [UnknownMethod]) as luxid's string
// result, and any other error as ["GenericError", [err.Error()]].
//
// ctx carries the connection's peer as the kernel reports it when the
// connection is accepted ([PeerFromContext]; Unix sockets only), for
// handlers that record or check who calls.
//
// ctx is cancelled when the client disconnects or the server shuts down;
// long calls such as WaitForJobChange must return then. Calls on one
// connection run one at a time, in order; calls on different connections
// run concurrently. A panic is recovered, logged and answered with a
// GenericError.
type Handler interface {
	ServeLUXI(ctx context.Context, req *Request) (result any, err error)
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, req *Request) (any, error)

// ServeLUXI calls f(ctx, req).
func (f HandlerFunc) ServeLUXI(ctx context.Context, req *Request) (any, error) {
	return f(ctx, req)
}

// DefaultWriteTimeout is the default for [Server.WriteTimeout].
const DefaultWriteTimeout = 60 * time.Second

// Defaults of [Server.IdleTimeout] and [Server.MessageTimeout].
const (
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultMessageTimeout = 2 * time.Minute
)

// maxConns is the cap of connections on one listener now.
func (s *Server) maxConns() int {
	if s.MaxConns != 0 {
		return s.MaxConns
	}
	return conncap.DefaultMax()
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout == 0 {
		return DefaultIdleTimeout
	}
	return s.IdleTimeout
}

func (s *Server) messageTimeout() time.Duration {
	if s.MessageTimeout == 0 {
		return DefaultMessageTimeout
	}
	return s.MessageTimeout
}

// Server serves LUXI on one or more listeners. Set the fields before the
// first call to [Server.Serve]; a Server must not be copied after first use.
//
// Every connection gets a reader goroutine and a goroutine that calls the
// handler and writes replies, so an idle, slow or misbehaving client only
// holds up itself. The reader reads at most one request ahead of the call in
// progress, and it is by its reading that a disconnect is noticed: a client
// that closes its connection (or only shuts down its sending side) while a
// call runs has that call's context cancelled.
type Server struct {
	// Handler serves the requests. If nil, every method is unknown.
	Handler Handler
	// MaxMessageSize is the largest request accepted, in bytes, not counting
	// the terminator; 0 means DefaultMaxMessageSize. A larger request gets a
	// "Failed to parse request" reply and its connection is closed; it is
	// never buffered beyond the limit.
	MaxMessageSize int
	// Logger receives the server's own log records (handler panics at Error,
	// oversized requests at Warn, parse errors and I/O errors at Debug).
	// nil means slog.Default().
	Logger *slog.Logger
	// WriteTimeout bounds the time to write one reply; a client that does
	// not read its replies for that long is disconnected. 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxBufferedBytes caps the bytes of large requests (above 64 KiB)
	// being received at once over all connections, so that many clients
	// each sending a request near MaxMessageSize cannot exhaust memory;
	// 0 means DefaultMaxBufferedBytes, negative means no cap. A request
	// that would go over it gets a "Failed to parse request" reply saying
	// the server is busy, and its connection is closed; it may be sent
	// again.
	MaxBufferedBytes int64
	// IdleTimeout closes a connection on which no request has begun for
	// that long while no call of it is in progress (a call such as
	// WaitForJobChange may last as long as it needs). 0 means
	// DefaultIdleTimeout, negative none.
	IdleTimeout time.Duration
	// MessageTimeout bounds the time from the first byte of a request to
	// its terminator; a client that takes longer is disconnected. 0
	// means DefaultMessageTimeout, negative none.
	MessageTimeout time.Duration
	// MaxConns caps the connections open at once on each listener, so
	// that clients flooding one socket cannot take the descriptors every
	// listener (RAPI, node RPC, the other sockets) needs. A connection
	// over it is answered a GenericError saying so and closed. 0 means a
	// quarter of the process's descriptor limit (RLIMIT_NOFILE, read at
	// each accept), at least 16; negative means no cap.
	MaxConns int

	// testReserved, when set, is called with the bytes reserved after
	// every change (tests wait on it).
	testReserved func(total int64)

	budgetMu  sync.Mutex
	budgetUse int64

	mu        sync.Mutex
	ctx       context.Context // cancelled by Shutdown; parent of all call contexts
	cancel    context.CancelFunc
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup // one per connection
}

func (s *Server) initLocked() {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) maxMessageSize() int {
	if s.MaxMessageSize > 0 {
		return s.MaxMessageSize
	}
	return DefaultMaxMessageSize
}

// DefaultMaxBufferedBytes is the default for [Server.MaxBufferedBytes].
const DefaultMaxBufferedBytes = 256 << 20

// smallMessage is the size up to which a request needs no reservation:
// each connection may hold that much whatever the others do.
const smallMessage = 64 << 10

// reserve changes the bytes a connection holds from held to want,
// reporting false (and changing nothing) when the cap would be exceeded.
func (s *Server) reserve(held, want int64) bool {
	limit := s.MaxBufferedBytes
	if limit == 0 {
		limit = DefaultMaxBufferedBytes
	}
	s.budgetMu.Lock()
	if want > held && limit > 0 && s.budgetUse+want-held > limit {
		s.budgetMu.Unlock()
		return false
	}
	s.budgetUse += want - held
	total := s.budgetUse
	s.budgetMu.Unlock()
	if s.testReserved != nil {
		s.testReserved(total)
	}
	return true
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return DefaultWriteTimeout
}

// Serve accepts connections on l and serves them until l fails or is
// closed, or the server is shut down. It always closes l and returns a
// non-nil error: [ErrServerClosed] after [Server.Shutdown], else the
// accept error. Serve may be called for several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.initLocked()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	ctx := s.ctx
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration
	var open atomic.Int64 // connections of this listener
	var lastCapWarn time.Time
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if !isTemporary(err) {
				return err
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Warn("luxi: accept failed; retrying", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		if limit := s.maxConns(); limit > 0 && open.Load() >= int64(limit) {
			if time.Since(lastCapWarn) > time.Minute {
				lastCapWarn = time.Now()
				s.logger().Warn("luxi: connection cap of this socket reached; refusing connections (warned once a minute)",
					"socket", l.Addr().String(), "cap", limit)
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				refuseConn(nc, limit)
			}()
			continue
		}
		if !s.track(nc) {
			nc.Close()
			return ErrServerClosed
		}
		open.Add(1)
		go func() {
			defer open.Add(-1)
			s.serveConn(ctx, nc)
		}()
	}
}

// refuseConn tells a client over the connection cap why it is closed,
// as a reply to the request it is about to send.
func refuseConn(nc net.Conn, limit int) {
	defer nc.Close()
	e := getEncoder()
	defer putEncoder(e)
	_ = e.failure(NewError("GenericError", fmt.Sprintf(
		"jobqd has %d connections open on this socket, its limit; close idle connections or try again later", limit)))
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write(e.buf.Bytes())
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func isTemporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR)
}

// track registers a new connection; it fails once Shutdown has begun.
func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[nc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// Shutdown stops the server: it closes the listeners, cancels the contexts
// of all calls in progress (and of every connection, so idle connections
// are closed and no further requests are read), and waits until every
// connection's goroutines have finished. A call in progress still gets its
// reply. If ctx ends first, Shutdown closes the remaining connections and
// returns ctx.Err(); handlers that ignore their context may then still be
// running.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.initLocked()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.cancel()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for nc := range s.conns {
			nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// inbound is what a connection's reader passes on: a parsed request, a
// parse error, or the news that the next request was too large.
type inbound struct {
	req      *Request
	err      error
	tooLarge bool
	busy     bool // over Server.MaxBufferedBytes
}

// aLongTimeAgo is a deadline in the past, used to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// deadlines keeps a connection's read deadline: the idle timeout while it
// waits for a request and no call runs, none while a call runs, the
// message timeout from a request's first byte to its end.
type deadlines struct {
	s       *Server
	nc      net.Conn
	ctx     context.Context
	mu      sync.Mutex
	busy    bool // a call is in progress
	reading bool // a request has begun
}

// armLocked sets the read deadline for the state.
func (d *deadlines) armLocked() {
	switch {
	case d.ctx.Err() != nil:
		d.nc.SetReadDeadline(aLongTimeAgo)
	case d.reading:
		if t := d.s.messageTimeout(); t > 0 {
			d.nc.SetReadDeadline(time.Now().Add(t))
		} else {
			d.nc.SetReadDeadline(time.Time{})
		}
	case d.busy || d.s.idleTimeout() < 0:
		d.nc.SetReadDeadline(time.Time{})
	default:
		d.nc.SetReadDeadline(time.Now().Add(d.s.idleTimeout()))
	}
}

func (d *deadlines) set(busy, reading *bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if busy != nil {
		d.busy = *busy
	}
	if reading != nil {
		d.reading = *reading
	}
	d.armLocked()
}

var yes, no = true, false

func (s *Server) serveConn(srvCtx context.Context, nc net.Conn) {
	defer s.wg.Done()
	if p, ok := peerCred(nc); ok {
		srvCtx = WithPeer(srvCtx, p)
	}
	ctx, cancel := context.WithCancel(srvCtx)
	in := make(chan inbound)
	readerDone := make(chan struct{})
	dl := &deadlines{s: s, nc: nc, ctx: ctx}
	go func() {
		defer close(readerDone)
		s.readLoop(ctx, cancel, nc, in, dl)
	}()
	// Cancelling the connection (shutdown, write failure) stops the reader.
	stop := context.AfterFunc(ctx, func() {
		dl.mu.Lock() // after any armLocked that did not see ctx done yet
		nc.SetReadDeadline(aLongTimeAgo)
		dl.mu.Unlock()
	})
	defer func() {
		stop()
		cancel()
		nc.Close()
		<-readerDone
		s.untrack(nc)
	}()

	e := getEncoder()
	defer putEncoder(e)
	for m := range in {
		switch {
		case m.tooLarge:
			err := &RequestError{Reason: fmt.Sprintf("message exceeds the limit of %d bytes", s.maxMessageSize())}
			s.logger().Warn("luxi: request too large; closing connection", "limit", s.maxMessageSize())
			_ = e.failure(err)
			s.write(nc, e)
			return
		case m.busy:
			err := &RequestError{Reason: "the server is receiving too many large requests at once; send it again later"}
			s.logger().Warn("luxi: large requests over the memory cap; closing connection", "cap", s.MaxBufferedBytes)
			_ = e.failure(err)
			s.write(nc, e)
			return
		case m.err != nil:
			s.logger().Debug("luxi: bad request", "err", m.err)
			_ = e.failure(m.err)
		default:
			dl.set(&yes, nil)
			s.respond(ctx, srvCtx, m.req, e)
		}
		err := s.write(nc, e)
		dl.set(&no, nil)
		if err != nil {
			s.logger().Debug("luxi: cannot write reply", "err", err)
			return
		}
	}
}

// readLoop reads requests from nc and passes them on until the stream
// ends, fails, or ctx is cancelled. When reading ends it cancels the
// connection's context, so a call in progress learns that its client left.
func (s *Server) readLoop(ctx context.Context, cancel context.CancelFunc, nc net.Conn, out chan<- inbound, dl *deadlines) {
	defer close(out)
	br := bufio.NewReader(nc)
	max := s.maxMessageSize()
	var buf []byte
	var held int64 // reserved for the message being read
	release := func() {
		if held > 0 {
			s.reserve(held, 0)
			held = 0
		}
	}
	defer release()
	grow := func(size int) bool {
		if size <= smallMessage || int64(size) <= held {
			return true
		}
		// Reserve ahead (doubling) so that a large message does not
		// lock the budget for every chunk.
		want := min(max64(int64(size), 2*held), int64(max))
		if !s.reserve(held, want) {
			if want = int64(size); !s.reserve(held, want) {
				return false
			}
		}
		held = want
		return true
	}
	for {
		// Wait for a request's first byte under the idle timeout (none
		// while a call runs), then for the rest under the message one.
		dl.set(nil, &no)
		_, err := br.Peek(1)
		if err == nil {
			dl.set(nil, &yes)
		}
		var msg []byte
		if err == nil {
			msg, err = readMessage(br, buf, max, grow)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
			dl.mu.Lock()
			reading := dl.reading
			dl.mu.Unlock()
			cancel()
			nc.Close() // before the log line says so (tests wait for it)
			if reading {
				s.logger().Warn("luxi: a request did not arrive whole in time; closing its connection", "timeout", s.messageTimeout())
			} else {
				s.logger().Debug("luxi: closing an idle connection", "timeout", s.idleTimeout())
			}
			cancel()
			return
		}
		if errors.Is(err, errTooLarge) || errors.Is(err, errBusy) {
			// Give back what this connection held before the reply goes
			// out, so a client that hears "busy" finds the bytes free.
			buf = nil
			release()
			select {
			case out <- inbound{tooLarge: errors.Is(err, errTooLarge), busy: errors.Is(err, errBusy)}:
			case <-ctx.Done():
			}
			return
		}
		if err != nil {
			cancel()
			if ctx.Err() == nil && !errors.Is(err, io.EOF) {
				s.logger().Debug("luxi: read failed", "err", err)
			}
			return
		}
		req, err := decodeRequest(msg)
		if cap(msg) <= smallMessage {
			buf = msg // decodeRequest copies what it keeps
		} else {
			buf = nil
		}
		release()
		select {
		case out <- inbound{req: req, err: err}:
		case <-ctx.Done():
			return
		}
	}
}

// respond calls the handler for req and leaves the reply in e. A panic in
// the handler or while encoding its result is answered with a GenericError.
func (s *Server) respond(ctx, srvCtx context.Context, req *Request, e *encoder) {
	defer func() {
		if v := recover(); v != nil {
			s.logger().Error("luxi: handler panicked", "method", req.Method, "panic", v, "stack", string(debug.Stack()))
			_ = e.failure(&Error{Class: "GenericError", Args: []any{fmt.Sprintf("Internal error in %s: %v", req.Method, v)}})
		}
	}()
	var (
		result any
		err    error
	)
	switch {
	case srvCtx.Err() != nil:
		err = errShuttingDown
	case s.Handler == nil:
		err = UnknownMethod(req.Method)
	default:
		result, err = s.Handler.ServeLUXI(ctx, req)
		if err != nil && srvCtx.Err() != nil && errors.Is(err, context.Canceled) {
			err = errShuttingDown
		}
	}
	if encErr := e.reply(result, err); encErr != nil {
		s.logger().Error("luxi: cannot encode reply", "method", req.Method, "err", encErr)
	}
}

func (s *Server) write(nc net.Conn, e *encoder) error {
	if err := nc.SetWriteDeadline(time.Now().Add(s.writeTimeout())); err != nil {
		return err
	}
	_, err := nc.Write(e.buf.Bytes())
	return err
}

// ListenUnix listens on a Unix socket at path and sets the socket's mode
// (LUXI sockets use 0660). It creates the parent directory with mode 0750
// if it does not exist. A socket left at path by a server that is gone is
// removed first; if a server still answers there, or path is not a socket,
// ListenUnix fails instead. Closing the listener removes the socket.
func ListenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("luxi: %w", err)
	}
	fi, err := os.Lstat(path)
	switch {
	case err == nil:
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("luxi: %s exists and is not a socket", path)
		}
		c, derr := net.DialTimeout("unix", path, 5*time.Second)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("luxi: another server is listening on %s", path)
		}
		if !errors.Is(derr, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("luxi: cannot tell whether %s is in use: %w", path, derr)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("luxi: removing stale socket: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("luxi: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("luxi: %w", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("luxi: %w", err)
	}
	return l, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
