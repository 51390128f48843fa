package noderpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Streams: long-lived byte streams between nodes over the node RPC port.
//
// The consensus engine keeps connections open to every peer and frames its
// own messages. It gets them here rather than on a port of its own: a
// stream is an HTTP/1.1 request "GET /v1/stream/NAME" with "Upgrade:
// jobq-stream" over the same mutual-TLS connection as every call (so the
// cluster certificate authenticates it both ways), answered "101 Switching
// Protocols"; from then on the TLS connection is the stream's. A stream
// is served only to a node presenting an accepted cluster certificate and
// only for a name that has a StreamListener.

const (
	pathStreamPrefix = "/v1/stream/"
	streamUpgrade    = "jobq-stream"
)

// StreamListener returns the listener on which the server delivers the
// streams that nodes open with Client.DialStream(name). Accept blocks
// until a stream arrives or the listener is closed; closing it refuses
// later streams of that name (those accepted stay open). Asking twice for
// the same name returns the same listener while it is open.
func (s *Server) StreamListener(name string) net.Listener {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streams == nil {
		s.streams = map[string]*streamListener{}
	}
	if l := s.streams[name]; l != nil && !l.isClosed() {
		return l
	}
	l := &streamListener{name: name, conns: make(chan net.Conn), done: make(chan struct{}), addr: streamAddr(name)}
	s.streams[name] = l
	return l
}

func (s *Server) streamListener(name string) *streamListener {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	l := s.streams[name]
	if l == nil || l.isClosed() {
		return nil
	}
	return l
}

// serveStream upgrades an authenticated request to a stream and hands
// the connection to its listener.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, pathStreamPrefix)
	l := s.streamListener(name)
	if l == nil {
		writeJSON(w, http.StatusNotFound, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("this node serves no stream %q", name)})
		return
	}
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), streamUpgrade) {
		writeJSON(w, http.StatusBadRequest, &Error{Code: CodeBadRequest, Message: "a stream is opened with GET and Upgrade: " + streamUpgrade})
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, &Error{Code: CodeInternal, Message: fmt.Sprintf("cannot take over the connection: %v", err)})
		return
	}
	// The server's read deadline (headers, idle) does not apply to the
	// stream: the engine times its own messages out.
	conn.SetDeadline(time.Time{})
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + streamUpgrade + "\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		conn.Close()
		return
	}
	if err := brw.Flush(); err != nil {
		conn.Close()
		return
	}
	c := net.Conn(conn)
	if brw.Reader.Buffered() > 0 { // the peer did not wait for the answer
		c = &bufferedConn{Conn: conn, r: brw.Reader}
	}
	select {
	case l.conns <- c:
	case <-l.done:
		conn.Close()
	case <-s.base.Done():
		conn.Close()
	}
}

// streamListener is a net.Listener fed by serveStream.
type streamListener struct {
	name      string
	addr      net.Addr
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *streamListener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *streamListener) Addr() net.Addr { return l.addr }

type streamAddr string

func (a streamAddr) Network() string { return "jobq-stream" }
func (a streamAddr) String() string  { return string(a) }

// bufferedConn reads what the server had buffered before the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// DialStream opens the stream name to the node at addr (HOST:PORT), with
// the client's certificate and pinning as for every call, and from its
// source address. ctx bounds the dial, the handshake and the upgrade;
// once it returns, the stream lives until it is closed.
func (c *Client) DialStream(ctx context.Context, addr, name string) (net.Conn, error) {
	if c.joinOnly {
		return nil, fmt.Errorf("a join client cannot open a stream to node at %s", addr)
	}
	raw, err := c.tr.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot reach node at %s: %w", addr, err)
	}
	ok := false
	defer func() {
		if !ok {
			raw.Close()
		}
	}()
	tc := tls.Client(raw, c.tr.TLSClientConfig.Clone())
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("cannot reach node at %s: %w", addr, err)
	}
	// A context done cuts the upgrade short; ctx.Err() is then set, so the
	// error says the dial was abandoned.
	stop := context.AfterFunc(ctx, func() { tc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := "GET " + pathStreamPrefix + name + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: " + streamUpgrade + "\r\n\r\n"
	if _, err := tc.Write([]byte(req)); err != nil {
		return nil, c.streamErr(ctx, addr, name, err)
	}
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, c.streamErr(ctx, addr, name, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Code != "" {
			return nil, &e
		}
		return nil, fmt.Errorf("node at %s refused the stream %s with %s: %s", addr, name, resp.Status, snippet(data))
	}
	if !stop() {
		return nil, c.streamErr(ctx, addr, name, ctx.Err())
	}
	tc.SetDeadline(time.Time{})
	ok = true
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: tc, r: br}, nil
	}
	return tc, nil
}

func (c *Client) streamErr(ctx context.Context, addr, name string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return abandoned("stream "+name, addr, ctxErr)
	}
	if errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("node at %s closed the stream %s", addr, name)
	}
	return fmt.Errorf("cannot open the stream %s to node at %s: %w", name, addr, err)
}
