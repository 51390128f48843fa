package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// RAPI on any node: the node owns RAPI's TCP listener for its whole life
// (rapiFront). While it is the master, every connection goes to its RAPI
// server; otherwise the connection's bytes (TLS included: the client talks
// to the master's RAPI end to end) are relayed to the master over a node
// RPC stream "rapi-GROUP" (mutual TLS, no port of its own), which the
// master's RAPI server serves as one more connection. The relaying node
// sends the client's address first, so that the master's back-off of
// failed logins counts the client, not the relaying node.

// rapiStream is the node RPC stream of group's relayed RAPI connections.
func rapiStream(group string) string { return "rapi-" + group }

// relayWait is how long a connection waits for a master to relay it to.
const relayWait = 10 * time.Second

// rapiFront owns RAPI's listener.
type rapiFront struct {
	n    *nodeRT
	l    net.Listener
	done chan struct{} // closed when the node stops
	mu   sync.Mutex
	in   *connQueue // the local RAPI server's listener while it serves
	sl   net.Listener
	open map[net.Conn]struct{} // connections being relayed or waiting
}

// startRAPIFront takes RAPI's listener opened at the start (none: RAPI is
// off) and serves it for the node's life.
func (n *nodeRT) startRAPIFront() {
	l := n.takeRAPIListener()
	if l == nil {
		return
	}
	f := &rapiFront{n: n, l: l, done: make(chan struct{}), open: map[net.Conn]struct{}{}}
	n.mu.Lock()
	n.front = f
	n.mu.Unlock()
	go f.run()
}

// stopRAPIFront closes RAPI's listener (connections being relayed end
// with their streams).
func (n *nodeRT) stopRAPIFront() {
	n.mu.Lock()
	f := n.front
	n.mu.Unlock()
	if f == nil {
		return
	}
	f.l.Close()
	f.mu.Lock()
	sl, open := f.sl, f.open
	f.open = nil
	select {
	case <-f.done:
	default:
		close(f.done)
	}
	f.mu.Unlock()
	if sl != nil {
		sl.Close()
	}
	for c := range open {
		c.Close()
	}
}

// track records a connection to close at the stop; false if stopped.
func (f *rapiFront) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open == nil {
		return false
	}
	f.open[c] = struct{}{}
	return true
}

func (f *rapiFront) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, c)
}

func (f *rapiFront) run() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.n.log.Warn("RAPI's listener failed; RAPI is no longer served on this node", "err", err)
			}
			return
		}
		go f.route(c)
	}
}

// serveLocal is the listener of the master's RAPI server: the front's
// connections and those relayed by the other nodes.
func (f *rapiFront) serveLocal() net.Listener {
	q := &connQueue{addr: f.l.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
	f.mu.Lock()
	f.in = q
	f.mu.Unlock()
	return q
}

// local is the local RAPI server's listener, nil when it does not serve.
func (f *rapiFront) local() *connQueue {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.in == nil || f.in.closed() {
		return nil
	}
	return f.in
}

// route gives the connection to the local RAPI server, or relays it to
// the master.
func (f *rapiFront) route(c net.Conn) {
	n := f.n
	if !f.track(c) {
		c.Close()
		return
	}
	defer f.untrack(c)
	giveUp := time.Now().Add(relayWait)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		if in := f.local(); in != nil && in.push(c) {
			return
		}
		if m := n.member(); m != nil && n.client != nil {
			rn := m.Node()
			n.mu.Lock()
			group := n.group
			n.mu.Unlock()
			if leader, addr := rn.Leader(), rn.LeaderAddr(); leader != "" && leader != n.self && addr != "" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				sc, err := n.client.DialStream(ctx, addr, rapiStream(group))
				cancel()
				if err == nil {
					if f.track(sc) {
						relay(c, sc)
						f.untrack(sc)
					}
					sc.Close()
					c.Close()
					return
				}
				n.log.Debug("cannot relay a RAPI connection to the master", "master", leader, "err", err)
			}
		}
		if time.Now().After(giveUp) {
			n.log.Warn("closed a RAPI connection: no master to relay it to", "remote", c.RemoteAddr().String(), "waited", relayWait)
			c.Close()
			return
		}
		t := time.NewTimer(wait) // waiting for a master to be elected
		select {
		case <-t.C:
		case <-f.done:
			t.Stop()
			c.Close()
			return
		}
	}
}

// relay sends the client's address, then copies bytes both ways until
// either side ends.
func relay(c, sc net.Conn) {
	defer c.Close()
	defer sc.Close()
	if _, err := fmt.Fprintf(sc, "%s\n", c.RemoteAddr().String()); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(sc, c); done <- struct{}{} }()
	go func() { io.Copy(c, sc); done <- struct{}{} }()
	<-done
}

// serveRAPIStreams takes the RAPI connections other nodes relay here on
// group's stream (the previous group's stream closes) and gives them to
// the local RAPI server while it serves; others are closed.
func (n *nodeRT) serveRAPIStreams(group string) {
	n.mu.Lock()
	f := n.front
	n.mu.Unlock()
	if f == nil || n.srv == nil {
		return
	}
	l := n.srv.StreamListener(rapiStream(group))
	f.mu.Lock()
	old := f.sl
	f.sl = l
	f.mu.Unlock()
	if old != nil && old != l {
		old.Close()
	}
	go func() {
		for {
			sc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				rc, err := readRelayed(sc)
				if err != nil {
					n.log.Warn("refused a relayed RAPI connection", "remote", sc.RemoteAddr().String(), "err", err)
					sc.Close()
					return
				}
				if in := f.local(); in == nil || !in.push(rc) {
					sc.Close() // not the master (any more): the client connects again
				}
			}()
		}
	}()
}

// readRelayed reads the client's address a relaying node sends first.
func readRelayed(sc net.Conn) (net.Conn, error) {
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(sc, 256)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, fmt.Errorf("no client address: %w", err)
	}
	sc.SetReadDeadline(time.Time{})
	addr := strings.TrimSpace(string(line))
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("client address %q: %w", addr, err)
	}
	return &relayedConn{Conn: sc, r: br, remote: relayAddr(addr)}, nil
}

// relayedConn is a relayed connection: its reads start with what the
// reader holds, its remote address is the client's.
type relayedConn struct {
	net.Conn
	r      *bufio.Reader
	remote net.Addr
}

func (c *relayedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *relayedConn) RemoteAddr() net.Addr       { return c.remote }

type relayAddr string

func (relayAddr) Network() string  { return "tcp" }
func (a relayAddr) String() string { return string(a) }

// connQueue is a listener whose connections are pushed to it.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

func (q *connQueue) closed() bool {
	select {
	case <-q.done:
		return true
	default:
		return false
	}
}

// push hands c to the server; false if the listener is closed.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}
