package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/metrics"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/store"
)

// Caller is the part of noderpc.Client the replicator uses.
type Caller interface {
	Apply(ctx context.Context, addr string, req *noderpc.ApplyRequest) (*noderpc.ApplyReply, error)
	State(ctx context.Context, addr string, req *noderpc.StateRequest) (*noderpc.StateReply, error)
}

// Options configure a Replicator.
type Options struct {
	Self     string
	Epoch    int64
	StartSeq int64 // the last sequence number used before (batches start above it)
	QueueDir string
	Client   Caller
	Logger   *slog.Logger
	// CallTimeout bounds one RPC (default 10s).
	CallTimeout time.Duration
	// OnStale is called once when a peer answers that a newer epoch exists.
	OnStale func(epoch int64)
	// OnChange is called whenever a peer's state changes (tests and
	// `jobq cluster info` wait on it).
	OnChange func()
	// BeforeResync is called before a peer is resynchronised (the
	// daemon sends it the cluster configuration); an error fails the
	// resync.
	BeforeResync func(ctx context.Context, name, addr string) error
	// Metrics receives replication times, failures and resyncs (nil:
	// none).
	Metrics *metrics.Set
}

// PeerState is one peer's replication state for `jobq cluster info`.
type PeerState struct {
	Name             string           `json:"name"`
	Address          string           `json:"address"`
	InSync           bool             `json:"in_sync"`
	Behind           int64            `json:"behind"` // batches not yet acknowledged
	Position         cluster.Position `json:"position"`
	UnreachableSince time.Time        `json:"unreachable_since,omitzero"`
	LastError        string           `json:"last_error,omitempty"`
}

// Replicator is the master's side of replication: a store.Replicator that
// sends every batch to every peer (the other online master candidates),
// lets the batch complete once a majority of the voters (the master
// included) have it durably, and brings peers that fall behind back in
// sync with a resync of the whole queue.
type Replicator struct {
	o Options

	mu        sync.Mutex
	cond      *sync.Cond
	seq       int64 // last batch number begun
	committed int64 // last batch number durable locally
	quorum    int
	peers     map[string]*peer
	stopped   bool
	stale     bool
	inflight  map[*acks]struct{} // batches begun and not yet settled
	wg        sync.WaitGroup
}

type record struct {
	seq     int64
	changes []noderpc.Change
	acks    *acks // nil: not counted (sent during a resync)
}

type peer struct {
	name, addr string
	wake       chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc

	// under Replicator.mu
	voter      bool // counts in the majority (not catching up)
	inSync     bool
	collecting bool
	force      []string // files to send at the next resync whatever they compare
	pending    []record
	state      PeerState
}

type acks struct {
	fenced         bool // failed by Fence (or begun after it)
	need, possible int  // peer acks needed, peers that may still ack
	got            int
	done           chan struct{}
	closed         bool
	errs           []string
}

func (a *acks) settle() {
	if a.closed {
		return
	}
	if a.got >= a.need || a.possible < a.need-a.got {
		a.closed = true
		close(a.done)
	}
}

// New starts a replicator for the voters of cfg other than Self. Every
// peer starts with a resync (it may hold anything).
func New(o Options, cfg *cluster.Config) *Replicator {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 10 * time.Second
	}
	r := &Replicator{o: o, seq: o.StartSeq, committed: o.StartSeq, peers: map[string]*peer{}, inflight: map[*acks]struct{}{}}
	r.cond = sync.NewCond(&r.mu)
	r.SetConfig(cfg)
	return r
}

// SetConfig follows a configuration change: peers that left stop, new
// ones start with a resync, the quorum is recomputed. Replicas catching
// up get every batch but their acknowledgements count only once the
// configuration makes them voters.
func (r *Replicator) SetConfig(cfg *cluster.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.quorum = cfg.Quorum()
	want := map[string]cluster.Node{}
	for _, n := range cfg.Peers(r.o.Self) {
		want[n.Name] = n
	}
	for name, p := range r.peers {
		if n, ok := want[name]; !ok || n.Address != p.addr {
			p.cancel()
			delete(r.peers, name)
		}
	}
	r.cond.Broadcast()
	for name, n := range want {
		if p, ok := r.peers[name]; ok {
			p.voter = cfg.Votes(name)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		p := &peer{name: name, addr: n.Address, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
			voter: cfg.Votes(name), state: PeerState{Name: name, Address: n.Address}}
		r.peers[name] = p
		r.wg.Add(1)
		go r.run(p)
	}
}

// Stop ends replication; batches begun afterwards fail.
func (r *Replicator) Stop() {
	r.mu.Lock()
	r.stopped = true
	for _, p := range r.peers {
		p.cancel()
	}
	r.cond.Broadcast()
	r.mu.Unlock()
	r.wg.Wait()
}

// Fence makes this master stop acknowledging, before it votes for a
// newer epoch's candidate: batches begun from now on fail, batches not
// yet held by a majority fail, and it returns once every batch begun is
// on the local disk — so that the position the vote reports covers
// every batch that was acknowledged.
func (r *Replicator) Fence() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stale = true
	for a := range r.inflight {
		if a.got < a.need {
			a.fenced = true
			a.possible = 0
			a.errs = append(a.errs, "this node voted for a newer epoch")
			a.settle()
		}
	}
	for r.committed < r.seq && !r.stopped {
		r.cond.Wait()
	}
}

// InSync is how many voters hold the queue now, the master included.
func (r *Replicator) InSync() (inSync, quorum int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 1
	for _, p := range r.peers {
		if p.inSync && p.voter {
			n++
		}
	}
	return n, r.quorum
}

// Resync makes a peer resynchronise now, sending names (archived files
// included) whatever they compare (verify-queue --repair).
func (r *Replicator) Resync(name string, names []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[name]
	if !ok {
		return false
	}
	p.force = append(p.force, names...)
	if p.inSync {
		p.inSync = false
		r.failLocked(p.pending, p.name+": resynchronising")
		p.pending = nil
	}
	p.poke()
	return true
}

// Seq is the last batch number begun.
func (r *Replicator) Seq() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Peers returns every peer's state.
func (r *Replicator) Peers() []PeerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PeerState, 0, len(r.peers))
	for _, p := range r.peers {
		s := p.state
		s.InSync = p.inSync
		s.Behind = r.seq - s.Position.Seq
		if s.Position.Epoch != r.o.Epoch {
			s.Behind = r.seq
		}
		out = append(out, s)
	}
	return out
}

// ErrNoQuorum is the error of a batch that a majority did not store.
var ErrNoQuorum = errors.New("not stored on a majority of the master candidates")

// Begin implements store.Replicator.
func (r *Replicator) Begin(changes []store.Change) ([]store.Change, func(error) error) {
	cs := make([]noderpc.Change, 0, len(changes))
	for _, c := range changes {
		if c.Name == PositionName {
			continue
		}
		cs = append(cs, noderpc.Change{Op: c.Kind, Name: c.Name, Dst: c.Dst, Data: c.Data})
	}
	r.mu.Lock()
	r.seq++
	seq := r.seq
	a := &acks{need: r.quorum - 1, done: make(chan struct{})}
	if r.stopped || r.stale {
		a.possible = 0
		a.fenced = true
		a.errs = append(a.errs, "this node is no longer the master")
	}
	for _, p := range r.peers {
		switch {
		case r.stopped || r.stale:
		case p.inSync && p.voter:
			p.pending = append(p.pending, record{seq: seq, changes: cs, acks: a})
			a.possible++
			p.poke()
		case p.inSync:
			// Catching up: it gets the batch, its answer does not count.
			p.pending = append(p.pending, record{seq: seq, changes: cs})
			p.poke()
		case p.collecting:
			p.pending = append(p.pending, record{seq: seq, changes: cs})
			p.poke()
			a.errs = append(a.errs, p.name+": resynchronising")
		default:
			a.errs = append(a.errs, p.name+": "+orUnknown(p.state.LastError))
		}
	}
	a.settle()
	if !a.closed {
		r.inflight[a] = struct{}{}
	}
	r.mu.Unlock()
	extra := []store.Change{{Kind: "write", Name: PositionName, Data: PositionData(cluster.Position{Epoch: r.o.Epoch, Seq: seq})}}
	begun := time.Now()
	return extra, func(localErr error) error {
		r.mu.Lock()
		if seq > r.committed {
			r.committed = seq
		}
		r.cond.Broadcast()
		r.mu.Unlock()
		<-a.done
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.inflight, a)
		if a.got >= a.need && !a.fenced {
			r.o.Metrics.Replicated(time.Since(begun), true)
			return nil
		}
		r.o.Metrics.Replicated(0, false)
		err := fmt.Errorf("%w: %d of %d needed (%v)", ErrNoQuorum, a.got+1, a.need+1, a.errs)
		r.o.Logger.Error("replication failed: a change is not stored on a majority of the master candidates", "seq", seq, "err", err)
		return err
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "not in sync"
	}
	return s
}

func (p *peer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (r *Replicator) changed() {
	if r.o.OnChange != nil {
		r.o.OnChange()
	}
}

// run is a peer's sender: resync until in sync, then send pending batches
// in order, many per request.
func (r *Replicator) run(p *peer) {
	defer r.wg.Done()
	backoff := 200 * time.Millisecond
	for {
		if p.ctx.Err() != nil {
			r.failPending(p, "replication to "+p.name+" stopped")
			return
		}
		r.mu.Lock()
		inSync := p.inSync
		r.mu.Unlock()
		if !inSync {
			if err := r.resync(p); err != nil {
				r.peerFailed(p, err)
				if !sleepCtx(p.ctx, backoff) {
					continue
				}
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			backoff = 200 * time.Millisecond
			continue
		}
		r.mu.Lock()
		batch := p.pending
		p.pending = nil
		r.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-p.wake:
			case <-p.ctx.Done():
			}
			continue
		}
		if err := r.send(p, batch); err != nil {
			r.failRecords(batch, p.name+": "+err.Error())
			r.peerFailed(p, err)
		}
	}
}

func (r *Replicator) requeueForce(p *peer, force []string) {
	r.mu.Lock()
	p.force = append(p.force, force...)
	r.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// send sends batches (consecutive, in order) in requests of bounded size.
func (r *Replicator) send(p *peer, batch []record) error {
	for len(batch) > 0 {
		n, size := 0, 0
		var changes []noderpc.Change
		for n < len(batch) && (n == 0 || size < 8<<20) {
			for _, c := range batch[n].changes {
				size += len(c.Data) + 64
			}
			changes = append(changes, batch[n].changes...)
			n++
		}
		req := &noderpc.ApplyRequest{Master: r.o.Self, Epoch: r.o.Epoch, FirstSeq: batch[0].seq, LastSeq: batch[n-1].seq, Changes: changes}
		ctx, cancel := context.WithTimeout(p.ctx, r.o.CallTimeout)
		start := time.Now()
		rep, err := r.o.Client.Apply(ctx, p.addr, req)
		cancel()
		if err != nil {
			return err // counted by peerFailed
		}
		r.o.Metrics.ReplicaCall(p.name, time.Since(start), true)
		r.mu.Lock()
		for _, rec := range batch[:n] {
			if rec.acks != nil {
				rec.acks.got++
				rec.acks.possible--
				rec.acks.settle()
			}
		}
		p.state.Position = rep.Position
		p.state.LastError = ""
		p.state.UnreachableSince = time.Time{}
		r.mu.Unlock()
		batch = batch[n:]
	}
	r.changed()
	return nil
}

func (r *Replicator) failRecords(batch []record, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failLocked(batch, msg)
}

func (r *Replicator) failLocked(batch []record, msg string) {
	for _, rec := range batch {
		if rec.acks != nil {
			rec.acks.possible--
			rec.acks.errs = append(rec.acks.errs, msg)
			rec.acks.settle()
		}
	}
}

func (r *Replicator) failPending(p *peer, msg string) {
	r.mu.Lock()
	batch := p.pending
	p.pending = nil
	p.inSync = false
	r.mu.Unlock()
	r.failRecords(batch, msg)
}

// peerFailed marks the peer out of sync; a stale-epoch answer means this
// node is no longer master.
func (r *Replicator) peerFailed(p *peer, err error) {
	r.o.Metrics.ReplicaCall(p.name, 0, false)
	var re *noderpc.Error
	stale := errors.As(err, &re) && re.Code == noderpc.CodeStaleEpoch
	r.mu.Lock()
	p.inSync = false
	p.collecting = false
	batch := p.pending
	p.pending = nil
	p.state.LastError = err.Error()
	if !(errors.As(err, &re)) && p.state.UnreachableSince.IsZero() {
		p.state.UnreachableSince = time.Now()
	}
	first := stale && !r.stale
	if stale {
		r.stale = true
	}
	r.mu.Unlock()
	r.failRecords(batch, p.name+": "+err.Error())
	if p.ctx.Err() == nil {
		r.o.Logger.Warn("replication to a node failed; it will be resynchronised", "node", p.name, "addr", p.addr, "err", err)
	}
	r.changed()
	if first && r.o.OnStale != nil {
		r.o.OnStale(re.Epoch)
	}
}

// A resync is sent in requests of about resyncChunkBytes or
// resyncChunkFiles changes (variables for the tests).
var (
	resyncChunkBytes = 4 << 20
	resyncChunkFiles = 2000
)

// resync makes the peer's queue equal to ours: collect batches begun from
// now on, wait until every batch begun before is durable here, compare
// both queues, send the differences, set the peer's position to the last
// batch included, then let the collected batches follow.
func (r *Replicator) resync(p *peer) (err error) {
	r.mu.Lock()
	p.collecting = true
	r.failLocked(p.pending, p.name+": resynchronising")
	p.pending = nil
	force := p.force
	p.force = nil
	s0 := r.seq
	for r.committed < s0 && !r.stopped && p.ctx.Err() == nil {
		r.cond.Wait()
	}
	r.mu.Unlock()
	defer func() {
		if err != nil {
			// The files asked for go with the next attempt.
			r.requeueForce(p, force)
		}
	}()
	if err := p.ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*r.o.CallTimeout)
	defer cancel()
	if r.o.BeforeResync != nil {
		if err := r.o.BeforeResync(ctx, p.name, p.addr); err != nil {
			return err
		}
	}
	remote, err := r.o.Client.State(ctx, p.addr, &noderpc.StateRequest{Archive: true})
	if err != nil {
		return err
	}
	live, arch, err := Scan(r.o.QueueDir, true, false)
	if err != nil {
		return fmt.Errorf("cannot scan the local queue: %w", err)
	}
	d := CompareQueues(live, arch, remote.Files, remote.Archive)
	for _, n := range force {
		if !slices.Contains(d.Write, n) {
			d.Write = append(d.Write, n)
		}
	}
	var chunk []noderpc.Change
	size := 0
	first := true
	flush := func(last bool) error {
		req := &noderpc.ApplyRequest{Master: r.o.Self, Epoch: r.o.Epoch, FirstSeq: s0, LastSeq: s0,
			Resync: true, ResyncStart: first, ResyncEnd: last, Changes: chunk}
		cctx, ccancel := context.WithTimeout(p.ctx, r.o.CallTimeout)
		defer ccancel()
		rep, err := r.o.Client.Apply(cctx, p.addr, req)
		if err != nil {
			return err
		}
		first = false
		chunk, size = nil, 0
		if last {
			r.mu.Lock()
			p.state.Position = rep.Position
			r.mu.Unlock()
		}
		return nil
	}
	// Writes first, removals last: while the chunks arrive the replica
	// keeps claiming its old position, so its files may only move
	// towards ours — never lose a job it held before the new version or
	// the archived copy is there.
	sent := make(map[string]bool, len(d.Write))
	for _, n := range d.Write {
		if sent[n] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.o.QueueDir, n))
		if errors.Is(err, os.ErrNotExist) {
			// Gone since the scan: a collected batch removes it, or
			// archives it. A rename finds its target done on the peer
			// when the source is missing, so send the archived file.
			id, ok := store.ParseJobFileName(n)
			if !ok {
				continue
			}
			n = store.ArchiveName(id)
			if sent[n] {
				continue
			}
			b, err = os.ReadFile(filepath.Join(r.o.QueueDir, n))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", n, err)
		}
		sent[n] = true
		chunk = append(chunk, noderpc.Change{Op: noderpc.OpWrite, Name: n, Data: b})
		size += len(b) + 64
		if size >= resyncChunkBytes || len(chunk) >= resyncChunkFiles {
			if err := flush(false); err != nil {
				return err
			}
		}
	}
	for _, n := range d.Remove {
		chunk = append(chunk, noderpc.Change{Op: noderpc.OpRemove, Name: n})
		if len(chunk) >= resyncChunkFiles {
			if err := flush(false); err != nil {
				return err
			}
		}
	}
	if err := flush(true); err != nil {
		return err
	}
	r.mu.Lock()
	if len(p.force) > 0 {
		// Resync was asked again while this one ran, for files it may
		// not have sent: once more (the batches collected meanwhile are
		// in the next one's files).
		r.mu.Unlock()
		r.o.Logger.Info("resynchronising a node's queue again, as asked", "node", p.name, "seq", s0)
		return nil
	}
	p.inSync = true
	p.collecting = false
	p.state.LastError = ""
	p.state.UnreachableSince = time.Time{}
	if len(p.pending) > 0 {
		p.poke()
	}
	r.mu.Unlock()
	r.o.Metrics.Resynced(p.name)
	if !d.Empty() {
		r.o.Logger.Info("resynchronised a node's queue", "node", p.name, "written", len(d.Write), "removed", len(d.Remove), "seq", s0)
	} else {
		r.o.Logger.Info("a node's queue is in sync", "node", p.name, "seq", s0)
	}
	r.changed()
	return nil
}
