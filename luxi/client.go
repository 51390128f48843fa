package luxi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

const (
	// maxClientConns limits the connections a Client has open at once.
	maxClientConns = 16
	// maxIdleConns is how many idle connections a Client keeps.
	maxIdleConns = 2
	// maxReplySize is the largest reply a Client accepts.
	maxReplySize = 1 << 30
)

// errClientClosed is returned by calls on a closed Client.
var errClientClosed = errors.New("luxi: client is closed")

// Client calls a LUXI server over its Unix socket.
//
// A Client is safe for concurrent use. Each call has a connection to itself
// for its duration, so a long call (WaitForJobChange) does not hold up
// others: the Client keeps a small pool of connections, at most 16 open at
// once (further calls wait for one to become free) and 2 kept while idle.
// A call whose context ends is abandoned and its connection closed, which
// also cancels the call on the server.
type Client struct {
	path   string
	dialFn func(ctx context.Context) (net.Conn, error) // NewClient's; nil: the Unix socket at path
	sem    chan struct{}                               // one token per open-or-opening connection in use

	mu     sync.Mutex
	idle   []*clientConn
	closed bool
}

type clientConn struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte
}

// Dial connects to the LUXI server listening on the Unix socket at path.
func Dial(path string) (*Client, error) {
	return DialContext(context.Background(), path)
}

// DialContext is like [Dial] but connects within ctx.
func DialContext(ctx context.Context, path string) (*Client, error) {
	c := &Client{path: path, sem: make(chan struct{}, maxClientConns)}
	cc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.idle = append(c.idle, cc)
	return c, nil
}

// NewClient returns a Client whose connections dial makes (a stream to
// another node, for example) instead of a Unix socket; it connects at the
// first call.
func NewClient(dial func(ctx context.Context) (net.Conn, error)) *Client {
	return &Client{dialFn: dial, sem: make(chan struct{}, maxClientConns)}
}

func (c *Client) dial(ctx context.Context) (*clientConn, error) {
	var (
		nc  net.Conn
		err error
	)
	if c.dialFn != nil {
		nc, err = c.dialFn(ctx)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "unix", c.path)
	}
	if err != nil {
		return nil, &DialError{Err: err}
	}
	return &clientConn{nc: nc, br: bufio.NewReader(nc)}, nil
}

// DialError is a call that could not connect: its request was not sent.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "luxi: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// Call calls method with args and returns the raw JSON result. It sends
// {"method":method,"args":[args...],"version":3000000}, each argument
// encoded with encoding/json (json.RawMessage passes through). A failure
// reply is returned as a [*Error]; other errors are I/O or protocol
// failures, or ctx.Err() if ctx ended first; a call that could not
// connect (so was not sent) fails with a [*DialError].
//
// A call is sent once. Only if a pooled connection turns out to be closed
// by the server (the request could not be written, so it was not received)
// is it sent again on a new connection.
func (c *Client) Call(ctx context.Context, method string, args ...any) (json.RawMessage, error) {
	req, err := encodeRequest(method, args)
	if err != nil {
		return nil, fmt.Errorf("luxi: encoding %s request: %w", method, err)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()

	for retried := false; ; retried = true {
		cc, pooled, err := c.get(ctx)
		if err != nil {
			return nil, err
		}
		reply, sent, reusable, err := cc.roundTrip(ctx, req)
		if err == nil {
			result, err := decodeReply(reply)
			if reusable {
				c.put(cc)
			} else {
				cc.nc.Close()
			}
			return result, err
		}
		cc.nc.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, context.DeadlineExceeded // the socket's deadline beat ctx's timer
		}
		if pooled && !sent && !retried {
			continue
		}
		return nil, fmt.Errorf("luxi: %s: %w", method, err)
	}
}

// get returns an idle connection (pooled) or a new one.
func (c *Client) get(ctx context.Context) (cc *clientConn, pooled bool, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, errClientClosed
	}
	if n := len(c.idle); n > 0 {
		cc = c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cc, true, nil
	}
	c.mu.Unlock()
	cc, err = c.dial(ctx)
	return cc, false, err
}

// put returns a connection to the pool, or closes it.
func (c *Client) put(cc *clientConn) {
	if cap(cc.buf) > 64<<10 {
		cc.buf = nil
	}
	c.mu.Lock()
	if !c.closed && len(c.idle) < maxIdleConns {
		c.idle = append(c.idle, cc)
		cc = nil
	}
	c.mu.Unlock()
	if cc != nil {
		cc.nc.Close()
	}
}

// roundTrip writes req and reads one reply. sent reports whether req was
// written; reusable whether the connection is in a clean state afterwards.
func (cc *clientConn) roundTrip(ctx context.Context, req []byte) (reply []byte, sent, reusable bool, err error) {
	dl, _ := ctx.Deadline() // zero (no deadline) if none
	if err := cc.nc.SetDeadline(dl); err != nil {
		return nil, false, false, err
	}
	stop := context.AfterFunc(ctx, func() { cc.nc.SetDeadline(aLongTimeAgo) })
	defer func() {
		// If the interrupt ran, the connection's deadline is spoilt.
		if !stop() && err == nil {
			reusable = false
		}
	}()
	if _, err := cc.nc.Write(req); err != nil {
		return nil, false, false, err
	}
	reply, err = readMessage(cc.br, cc.buf, maxReplySize, nil)
	if err != nil {
		return nil, true, false, err
	}
	cc.buf = reply
	return reply, true, true, nil
}

// Close closes the client's idle connections; calls in progress finish and
// then close theirs. Calls after Close fail.
func (c *Client) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.closed = true
	c.mu.Unlock()
	for _, cc := range idle {
		cc.nc.Close()
	}
	return nil
}
