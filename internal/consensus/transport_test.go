package consensus

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestStreamToRestartedPeer: a message to a peer that closed its end of
// the stream (a node killed and restarted since this one last wrote to
// it) goes on a new stream; it used to be lost on the dead one, and with
// it a vote request, which made the election wait a whole election
// timeout more.
func TestStreamToRestartedPeer(t *testing.T) {
	rn := raft.StartNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: raft.NewMemoryStorage(),
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, Logger: &raftLogger{l: slog.New(slog.DiscardHandler)}}, []raft.Peer{{ID: 1}})
	defer rn.Stop()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := make(chan net.Conn, 4) // the peer's ends of the streams opened
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		a, b := net.Pipe()
		peers <- b
		return a, nil
	}
	n := &Node{id: 1, cfg: Config{Name: "a", Addr: "a:1"}, log: slog.New(slog.DiscardHandler), rn: rn,
		members: map[uint64]Member{2: {Name: "b", Addr: "b:1", Voter: true}}}
	tr := newTransport(n, l, dial)
	defer tr.close()

	// next reads the hello and one message from the next stream opened.
	next := func(what string) (net.Conn, *bufio.Reader, *pb.Message) {
		t.Helper()
		var c net.Conn
		select {
		case c = <-peers:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no stream was opened to the peer within 10s", what)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		hb, err := readFrame(r)
		var h hello
		if err != nil || json.Unmarshal(hb, &h) != nil || h.ID != 1 {
			t.Fatalf("%s: hello %q %v", what, hb, err)
		}
		return c, r, readMsg(t, r)
	}
	msg := func(typ pb.MessageType, index uint64) *pb.Message {
		return &pb.Message{Type: typ.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(3), Index: proto.Uint64(index)}
	}

	tr.send([]*pb.Message{msg(pb.MsgHeartbeat, 0)})
	c1, r1, m := next("the first message")
	if m.GetType() != pb.MsgHeartbeat {
		t.Fatalf("first message %v", m)
	}
	// Still open: the next message goes on the same stream.
	tr.send([]*pb.Message{msg(pb.MsgApp, 4)})
	if m := readMsg(t, r1); m.GetType() != pb.MsgApp || m.GetIndex() != 4 {
		t.Fatalf("second message %v", m)
	}
	// The peer goes away; the vote request after it must reach it anew.
	c1.Close()
	tr.send([]*pb.Message{msg(pb.MsgPreVote, 5)})
	c2, _, m := next("the message after the peer closed the stream")
	defer c2.Close()
	if m.GetType() != pb.MsgPreVote || m.GetIndex() != 5 {
		t.Fatalf("message on the new stream %v", m)
	}
}

func readMsg(t *testing.T, r *bufio.Reader) *pb.Message {
	t.Helper()
	data, err := readFrame(r)
	if err != nil {
		t.Fatalf("reading a message: %v", err)
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPreCandidateAsksAgain: a pre-candidate whose first pre-vote round
// got no answer (a voter still in its lease ignores it, a message lost)
// asks the voters again every preVoteRepeatTicks ticks, rather than after
// another randomized election timeout; other states ask nothing.
func TestPreCandidateAsksAgain(t *testing.T) {
	st := raft.NewMemoryStorage()
	rn := raft.StartNode(&raft.Config{ID: 1, ElectionTick: 1000, HeartbeatTick: 1, Storage: st, PreVote: true, CheckQuorum: true,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, Logger: &raftLogger{l: slog.New(slog.DiscardHandler)}},
		[]raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}})
	defer rn.Stop()
	n := &Node{id: 1, log: slog.New(slog.DiscardHandler), rn: rn}
	preVotes := make(chan uint64, 64) // the To of each MsgPreVote sent
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case rd := <-rn.Ready():
				if rd.SoftState != nil {
					n.mu.Lock()
					n.state = rd.SoftState.RaftState
					n.mu.Unlock()
				}
				st.Append(rd.Entries)
				for _, e := range rd.CommittedEntries {
					if e.GetType() == pb.EntryConfChange {
						var cc pb.ConfChange
						if proto.Unmarshal(e.GetData(), &cc) == nil {
							rn.ApplyConfChange(&cc)
						}
					}
				}
				for _, m := range rd.Messages {
					if m.GetType() == pb.MsgPreVote {
						preVotes <- m.GetTo()
					}
				}
				rn.Advance()
			case <-stop:
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	round := func(what string) {
		t.Helper()
		got := map[uint64]bool{}
		for len(got) < 2 {
			select {
			case to := <-preVotes:
				got[to] = true
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: pre-votes sent to %v within 10s, want both other voters", what, got)
			}
		}
	}
	noRound := func(what string) {
		t.Helper()
		select {
		case to := <-preVotes:
			t.Fatalf("%s: a pre-vote was sent to %d", what, to)
		default:
		}
	}
	if got := n.repeatPreVote(5); got != 0 {
		t.Fatalf("a follower counted %d ticks as a pre-candidate", got)
	}
	// The bootstrap's configuration must be applied before it campaigns.
	for deadline := time.Now().Add(10 * time.Second); rn.Status().Applied < 3; {
		if time.Now().After(deadline) {
			t.Fatal("the bootstrap configuration was not applied within 10s")
		}
		time.Sleep(time.Millisecond) // the Ready goroutine applies it
	}
	if err := rn.Campaign(context.Background()); err != nil {
		t.Fatal(err)
	}
	round("the first pre-vote")
	for deadline := time.Now().Add(10 * time.Second); n.State() != raft.StatePreCandidate.String(); {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want a pre-candidate", n.State())
		}
		time.Sleep(time.Millisecond) // the Ready goroutine records it
	}
	if got := n.repeatPreVote(0); got != 1 {
		t.Fatalf("ticks %d after one tick", got)
	}
	noRound("after one tick")
	if got := n.repeatPreVote(1); got != preVoteRepeatTicks {
		t.Fatalf("ticks %d after two ticks", got)
	}
	round("asked again after two ticks")
}
