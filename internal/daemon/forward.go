package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/luxi"
)

// Job calls on any node: a node that does not run the queue hands a LUXI
// job call to the master over node RPC (a stream "luxi-GROUP" on the node
// RPC port, so mutual TLS on the cluster certificate, no port of its
// own), where a LUXI server of its own serves it with the same handler,
// and passes the answer back as it came. Ganeti's clients only ever talk
// to the local socket, so this is what keeps them working on every node
// and across a failover.
//
// While no master takes calls (an election, a new master opening its
// queue) the call waits for one, up to forwardWait. A call that reached a
// master that went away before answering is sent again to the next one
// if it only reads (readOnlyCall); any other call then answers that its
// outcome is unknown, as nothing tells whether the master carried it out.

// awaitOwnQueue waits, while this node leads, until its queue is open (a
// new master opens it right after its election: it applies the earlier
// masters' entries and agrees the configuration naming it first) and
// returns it; nil when this node does not lead or stops leading, the
// opening failed, or ctx ended first (at most forwardWait).
func (n *nodeRT) awaitOwnQueue(ctx context.Context) *queue.Queue {
	m := n.member()
	if m == nil {
		return nil
	}
	return n.awaitQueueOf(ctx, m.Node())
}

// leaderView is what forwarding reads of the consensus node.
type leaderView interface {
	Changed() <-chan struct{}
	Leader() string
	IsLeader() bool
}

var _ leaderView = (*consensus.Node)(nil)

func (n *nodeRT) awaitQueueOf(ctx context.Context, rn leaderView) *queue.Queue {
	limit := time.NewTimer(forwardWait)
	defer limit.Stop()
	for {
		n.mu.Lock()
		opened := n.opened
		n.mu.Unlock()
		changed := rn.Changed()
		if q := n.queue(); q != nil {
			return q
		}
		if !rn.IsLeader() {
			return nil
		}
		select {
		case <-opened:
			// An attempt to open it ended: open, or failed.
			return n.queue()
		case <-changed:
		case <-ctx.Done():
			return nil
		case <-limit.C:
			return nil
		}
	}
}

// forwardWait is how long a call waits for a master that takes it.
const forwardWait = 15 * time.Second

// replacedGrace is how long a call to a master that another replaced may
// still take to answer.
const replacedGrace = time.Second

// maxForwardFailures bounds the attempts of one call (a read sent again
// and again to masters that fail it).
const maxForwardFailures = 50

// luxiStream is the node RPC stream of group's forwarded LUXI calls.
func luxiStream(group string) string { return "luxi-" + group }

// readOnlyCall says whether method only reads, so that a call that may
// have reached a master that died is sent again to the next one.
func readOnlyCall(method string) bool {
	switch method {
	case "WaitForJobChange", "QueryJobs", "Query", "QueryFields", "QueryFilters", "QueryConfigValues":
		return true
	}
	return false
}

// forwarder holds the LUXI client to the master of the moment.
type forwarder struct {
	mu     sync.Mutex
	addr   string
	stream string
	era    uint64 // the leader changes this node had seen when c was made
	c      *luxi.Client
}

// fwdClient is a LUXI client to the node at addr on stream, kept while the
// master stays the same: a new leadership gets a new client, even at the
// same address, as its connections may lead to a process that has since
// restarted (a request written on one would meet its end: EOF, an
// unknown outcome).
func (n *nodeRT) fwdClient(addr, stream string, era uint64) *luxi.Client {
	f := &n.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c != nil && f.addr == addr && f.stream == stream && f.era == era {
		return f.c
	}
	if f.c != nil {
		f.c.Close() // its idle connections; calls under way end as they do
	}
	rpc := n.client
	f.addr, f.stream, f.era = addr, stream, era
	f.c = luxi.NewClient(func(ctx context.Context) (net.Conn, error) {
		return rpc.DialStream(ctx, addr, stream)
	})
	return f.c
}

func (n *nodeRT) closeForwarder() {
	f := &n.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c != nil {
		f.c.Close()
		f.c = nil
	}
}

// serveForwarded starts serving the LUXI calls other nodes forward here
// on group's stream (the previous group's stream, if any, closes).
func (n *nodeRT) serveForwarded(group string) {
	if n.srv == nil {
		return
	}
	n.mu.Lock()
	if n.fwdSrv == nil {
		n.fwdSrv = &luxi.Server{Handler: &luxiHandler{n: n, forwarded: true}, Logger: n.log}
	}
	srv, old := n.fwdSrv, n.fwdL
	l := n.srv.StreamListener(luxiStream(group))
	n.fwdL = l
	n.mu.Unlock()
	if old != nil && old != l {
		old.Close()
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, luxi.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			n.log.Warn("serving forwarded LUXI calls", "err", err)
		}
	}()
}

// stopForwarded stops serving forwarded calls and closes the client to
// the master.
func (n *nodeRT) stopForwarded(ctx context.Context) {
	n.mu.Lock()
	srv := n.fwdSrv
	n.mu.Unlock()
	if srv != nil {
		_ = srv.Shutdown(ctx)
	}
	n.closeForwarder()
}

// callMaster calls method on the master leader (at addr) and gives up
// an election timeout after this node learns that another node leads: a
// master that hangs (stopped, cut off) does not hold the call past its
// own replacement, and one that stepped down has the time to answer.
func (n *nodeRT) callMaster(ctx context.Context, leader, addr, stream, method string, args ...any) (json.RawMessage, error) {
	rn := n.raft()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			ch := rn.Changed()
			if l := rn.Leader(); l != leader && l != "" {
				t := time.NewTimer(replacedGrace)
				defer t.Stop()
				select {
				case <-t.C:
					cancel()
				case <-cctx.Done():
				}
				return
			}
			select {
			case <-ch:
			case <-cctx.Done():
				return
			}
		}
	}()
	res, err := n.fwdClient(addr, stream, rn.LeaderChanges()).Call(cctx, method, args...)
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		var de *luxi.DialError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, fmt.Errorf("node %s no longer leads: %w", leader, err)
	}
	return res, err
}

// forwardedMethod carries a forwarded call to the master with its
// author: [actor, admin, method, arguments]. The node the caller reached
// names them (from its socket's peer credentials and its own
// --admin-group) and has already refused an administrative call of
// someone who may not make it; the master trusts it, as only nodes reach
// the stream (mutual TLS on the cluster certificate).
const forwardedMethod = "JobqForwardedCall"

// unwrapForwarded is the call a node forwarded, its author and whether
// they may administer.
func unwrapForwarded(req *luxi.Request) (*luxi.Request, author.Actor, bool, error) {
	if req.Method != forwardedMethod {
		return nil, author.Actor{}, false, luxi.UnknownMethod(req.Method)
	}
	var (
		raw    []json.RawMessage
		who    author.Actor
		admin  bool
		method string
	)
	if err := json.Unmarshal(req.Args, &raw); err != nil || len(raw) != 4 ||
		json.Unmarshal(raw[0], &who) != nil || json.Unmarshal(raw[1], &admin) != nil ||
		json.Unmarshal(raw[2], &method) != nil || method == forwardedMethod || method == handOverMethod {
		return nil, author.Actor{}, false, badArgs(forwardedMethod, "a forwarded call is [actor, admin, method, arguments]")
	}
	return &luxi.Request{Method: method, Args: raw[3]}, who, admin, nil
}

// forward hands req, made by who (admin: whether they may administer), to
// the master and returns its answer; it serves req here if this node
// becomes the master meanwhile.
func (n *nodeRT) forward(ctx context.Context, req *luxi.Request, who author.Actor, admin bool) (any, error) {
	if !json.Valid(req.Args) || len(req.Args) == 0 || req.Args[0] != '[' {
		return nil, badArgs(req.Method, "arguments must be a list")
	}
	args := []any{who, admin, req.Method, req.Args}
	read := readOnlyCall(req.Method)
	giveUp := time.Now().Add(forwardWait)
	backoff := 20 * time.Millisecond
	var lastErr error
	failures := 0
	for {
		tried := false
		if q := n.queue(); q != nil {
			res, err := (&luxiHandler{n: n, q: q, cluster: n.config(), who: who, admin: admin}).serveLocal(ctx, req)
			if err == nil || !notCarriedOut(err) {
				return res, err
			}
			tried = true // this node is stopping as master
		}
		m := n.member()
		if m == nil {
			return nil, n.notMaster()
		}
		rn := m.Node()
		changed := rn.Changed()
		leader, addr := rn.Leader(), rn.LeaderAddr()
		n.mu.Lock()
		group := n.group
		n.mu.Unlock()
		if leader != "" && leader != n.self && addr != "" && n.client != nil {
			tried = true
			res, err := n.callMaster(ctx, leader, addr, luxiStream(group), forwardedMethod, args...)
			if err == nil {
				return res, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var le *luxi.Error
			var de *luxi.DialError
			switch {
			case luxi.IsNoMaster(err):
				// That node no longer leads; it did not take the call.
			case errors.As(err, &le):
				if !read || !shuttingDown(le) {
					return nil, fromForwarded(le)
				}
				giveUp = time.Now().Add(forwardWait)
			case errors.As(err, &de):
				// Not sent: the master is unreachable (dead, cut off).
			default:
				if !read {
					n.log.Warn("the master went away while it handled a forwarded call", "master", leader, "method", req.Method, "err", err)
					return nil, luxi.NewError("GenericError", fmt.Sprintf("%s: the master (%s) went away while it handled %s, which may or may not have been carried out; look (jobq list, jobq info) before sending it again", luxi.OutcomeUnknownPrefix, leader, req.Method))
				}
				// A read is sent again to the next master.
				giveUp = time.Now().Add(forwardWait)
			}
			lastErr = err
			if failures++; failures > maxForwardFailures {
				return nil, luxi.NoMasterError(fmt.Sprintf("%s that takes the call: it failed %d times (%v); see 'jobq node list'", luxi.NoMasterPrefix, failures, err))
			}
			n.log.Debug("cannot forward a LUXI call to the master; trying again", "master", leader, "method", req.Method, "err", err)
		}
		if time.Now().After(giveUp) {
			if lastErr != nil && leader != "" && leader != n.self {
				return nil, luxi.NoMasterError(fmt.Sprintf("%s that this node reaches: node %s leads, but this node cannot hand it the call (%v); see 'jobq node list'", luxi.NoMasterPrefix, leader, lastErr))
			}
			return nil, n.notMaster()
		}
		wait := time.NewTimer(min(backoff, time.Until(giveUp)))
		if tried {
			backoff = min(2*backoff, 500*time.Millisecond)
		}
		if err := n.forwardPause(ctx, rn, changed, wait.C, tried, leader); err != nil {
			wait.Stop()
			return nil, err
		}
		wait.Stop()
	}
}

// forwardPause waits before the next attempt to hand a call over: until
// the back-off ends (wait) or, when an attempt was made (tried) to the
// master leader, until another master is known (a call that failed on a
// dead master goes to the next one as soon as it is elected, not up to
// half a second later); before any attempt, until anything changes
// (changed: an entry applied, a leader elected, this node's queue open).
func (n *nodeRT) forwardPause(ctx context.Context, rn leaderView, changed <-chan struct{}, wait <-chan time.Time, tried bool, leader string) error {
	n.mu.Lock()
	opened := n.opened
	n.mu.Unlock()
	for {
		select {
		case <-changed:
			if !tried {
				return nil
			}
			changed = rn.Changed()
			if l := rn.Leader(); l != leader && l != "" {
				return nil
			}
		case <-opened:
			return nil
		case <-wait:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// shuttingDown is the LUXI server's answer to a call cut short by its
// shutdown.
func shuttingDown(le *luxi.Error) bool {
	return le.Class == "GenericError" && len(le.Args) == 1 && le.Args[0] == "Server is shutting down"
}

// fromForwarded is the master's failure answer as this node gives it: a
// request the master could not parse goes back as the same plain string.
func fromForwarded(le *luxi.Error) error {
	const prefix = "Failed to parse request: "
	if le.Class == "RequestError" && len(le.Args) == 1 {
		if s, ok := le.Args[0].(string); ok && strings.HasPrefix(s, prefix) {
			return &luxi.RequestError{Reason: strings.TrimPrefix(s, prefix)}
		}
	}
	return le
}
