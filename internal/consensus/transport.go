package consensus

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The transport carries the engine's messages over noderpc streams. Each
// node keeps one outgoing stream per peer, opened on demand by a sender
// goroutine that writes the messages queued for that peer; incoming
// streams are read by one goroutine each and their messages stepped into
// the engine. The engine tolerates lost messages: a message that cannot
// be sent is dropped and the peer reported unreachable (the engine then
// probes it gently), a snapshot that cannot be sent is reported failed.
//
// A stream starts with a hello frame (the sender's id, name and address)
// so that a node learns how to answer a leader it has no configuration
// entry for yet (a node being added). Then each frame is a 4-byte
// big-endian length and a raftpb.Message.

const (
	maxFrame         = 1 << 30 // a snapshot message carries the whole state
	peerQueue        = 4096
	dialTimeout      = 2 * time.Second
	writeTimeout     = 10 * time.Second
	snapWriteTimeout = 10 * time.Minute
)

type hello struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
	Addr string `json:"addr"`
}

type transport struct {
	n    *Node
	l    net.Listener
	dial func(ctx context.Context, addr string) (net.Conn, error)

	mu      sync.Mutex
	peers   map[uint64]*peer
	learned map[uint64]string // addresses from hellos
	inbound map[net.Conn]bool
	closed  bool
	wg      sync.WaitGroup
	stop    chan struct{}
}

type peer struct {
	id   uint64
	msgs chan *pb.Message
}

func newTransport(n *Node, l net.Listener, dial func(ctx context.Context, addr string) (net.Conn, error)) *transport {
	t := &transport{n: n, l: l, dial: dial, peers: map[uint64]*peer{}, learned: map[uint64]string{}, inbound: map[net.Conn]bool{}, stop: make(chan struct{})}
	t.wg.Add(1)
	go t.accept()
	return t
}

func (t *transport) close() {
	t.mu.Lock()
	t.closed = true
	for c := range t.inbound {
		c.Close()
	}
	t.mu.Unlock()
	close(t.stop)
	t.l.Close()
	t.wg.Wait()
}

// addr is where the peer id listens: its member entry, else its hello.
func (t *transport) addr(id uint64) string {
	t.n.mu.Lock()
	a := t.n.members[id].Addr
	t.n.mu.Unlock()
	if a != "" {
		return a
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.learned[id]
}

func (t *transport) send(msgs []*pb.Message) {
	for _, m := range msgs {
		to := m.GetTo()
		if to == raft.None || to == t.n.id {
			continue
		}
		p := t.peer(to)
		if p == nil {
			return
		}
		select {
		case p.msgs <- m:
		default:
			t.n.rn.ReportUnreachable(to)
			if m.GetType() == pb.MsgSnap {
				t.n.rn.ReportSnapshot(to, raft.SnapshotFailure)
			}
		}
	}
}

func (t *transport) peer(id uint64) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	p := t.peers[id]
	if p == nil {
		p = &peer{id: id, msgs: make(chan *pb.Message, peerQueue)}
		t.peers[id] = p
		t.wg.Add(1)
		go t.runPeer(p)
	}
	return p
}

// runPeer writes the messages queued for p on its stream, opening it when
// needed.
//
// A stream whose peer went away (its process killed, or restarted since)
// must not swallow the next messages, or a vote request sent to a
// follower restarted since this node last wrote to it is lost on the dead
// stream and the election waits a whole election timeout more. The peer
// never writes on the stream, so a read that ends says it closed it
// (watchClosed): the stream is opened anew before the next write. And a
// batch whose write fails on a stream opened earlier is written once more
// on a new one (messages may arrive twice: the engine ignores what it
// already has).
func (t *transport) runPeer(p *peer) {
	defer t.wg.Done()
	var s *outStream
	defer func() {
		if s != nil {
			s.conn.Close()
		}
	}()
	var batch []*pb.Message
	for {
		var m *pb.Message
		select {
		case m = <-p.msgs:
		case <-t.stop:
			return
		}
		// Write what is queued behind it in the same flush, up to a
		// snapshot.
		batch = append(batch[:0], m)
		for m.GetType() != pb.MsgSnap && len(p.msgs) > 0 {
			m = <-p.msgs
			batch = append(batch, m)
		}
		if s != nil && s.peerClosed() {
			s.conn.Close()
			s = nil
		}
		fresh := s == nil
		var err error
		if s == nil {
			s, err = t.open(p.id)
		}
		if err == nil {
			if err = s.write(batch); err != nil && !fresh {
				s.conn.Close()
				if s, err = t.open(p.id); err == nil {
					err = s.write(batch)
				}
			}
		}
		if err != nil {
			t.n.log.Debug("consensus stream broken", "peer", p.id, "err", err)
			if s != nil {
				s.conn.Close()
				s = nil
			}
			t.n.rn.ReportUnreachable(p.id)
			if m.GetType() == pb.MsgSnap {
				t.n.rn.ReportSnapshot(p.id, raft.SnapshotFailure)
			}
			continue
		}
		if m.GetType() == pb.MsgSnap {
			t.n.rn.ReportSnapshot(p.id, raft.SnapshotFinish)
		}
	}
}

// outStream is a stream this node writes its messages to a peer on.
type outStream struct {
	conn   net.Conn
	w      *bufio.Writer
	closed chan struct{} // closed when a read of conn ends: the peer closed it
}

func (s *outStream) peerClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// open opens a stream to the peer id and writes its hello.
func (t *transport) open(id uint64) (*outStream, error) {
	addr := t.addr(id)
	if addr == "" {
		return nil, fmt.Errorf("the address of peer %x is not known", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	c, err := t.dial(ctx, addr)
	cancel()
	if err != nil {
		t.n.log.Debug("cannot open a consensus stream", "peer", addr, "err", err)
		return nil, err
	}
	s := &outStream{conn: c, w: bufio.NewWriterSize(c, 64<<10), closed: make(chan struct{})}
	t.wg.Add(1)
	go t.watchClosed(s)
	hb, _ := json.Marshal(hello{ID: t.n.id, Name: t.n.cfg.Name, Addr: t.n.cfg.Addr})
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := writeFrame(s.w, hb); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// watchClosed reads s until the read ends (the peer never writes): the
// peer closed the stream, or this node did.
func (t *transport) watchClosed(s *outStream) {
	defer t.wg.Done()
	defer close(s.closed)
	var b [512]byte
	for {
		if _, err := s.conn.Read(b[:]); err != nil {
			return
		}
	}
}

// write writes batch and flushes it.
func (s *outStream) write(batch []*pb.Message) error {
	timeout := writeTimeout
	if batch[len(batch)-1].GetType() == pb.MsgSnap {
		timeout = snapWriteTimeout
	}
	s.conn.SetWriteDeadline(time.Now().Add(timeout))
	for _, m := range batch {
		data, err := proto.Marshal(m)
		if err == nil {
			err = writeFrame(s.w, data)
		}
		if err != nil {
			return err
		}
	}
	return s.w.Flush()
}

func writeFrame(w *bufio.Writer, data []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(data)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > maxFrame {
		return nil, fmt.Errorf("a consensus message of %d bytes is over the limit of %d", size, maxFrame)
	}
	buf := make([]byte, size)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

func (t *transport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				t.n.log.Warn("consensus streams: accept failed", "err", err)
			}
			return
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.inbound[c] = true
		t.wg.Add(1)
		t.mu.Unlock()
		go t.read(c)
	}
}

// read steps the messages of one incoming stream into the engine.
func (t *transport) read(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		c.Close()
		t.mu.Lock()
		delete(t.inbound, c)
		t.mu.Unlock()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	hb, err := readFrame(r)
	if err != nil {
		return
	}
	var h hello
	if err := json.Unmarshal(hb, &h); err != nil || h.ID == 0 {
		t.n.log.Warn("consensus stream without a valid hello", "remote", c.RemoteAddr())
		return
	}
	if h.ID != ID(h.Name) {
		t.n.log.Warn("consensus stream whose id does not match its name", "remote", c.RemoteAddr(), "name", h.Name)
		return
	}
	t.mu.Lock()
	t.learned[h.ID] = h.Addr
	t.mu.Unlock()
	for {
		data, err := readFrame(r)
		if err != nil {
			return
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(data, m); err != nil {
			t.n.log.Warn("malformed consensus message", "from", h.Name, "err", err)
			return
		}
		if m.GetFrom() != h.ID {
			t.n.log.Warn("consensus message from another node than the stream's", "stream", h.Name, "from", m.GetFrom())
			return
		}
		switch m.GetType() {
		case pb.MsgVote, pb.MsgPreVote:
			t.n.mu.Lock()
			t.n.voteReqs++
			t.n.mu.Unlock()
			t.n.notify()
		}
		if err := t.n.rn.Step(context.Background(), m); err != nil {
			if errors.Is(err, raft.ErrStopped) {
				return
			}
		}
	}
}
