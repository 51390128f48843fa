// Package member is a node's place in a Raft cluster: it runs the node's
// member of the consensus group (package consensus) with the queue
// directory and the cluster's settings as its state machine (package
// queuelog), and, while the node leads, the master's duties: the queue,
// and the membership of the group.
//
// While this node leads it opens the queue only after every entry of
// earlier terms is applied here (consensus.Node.Barrier), so the queue
// starts from the whole agreed state and its recovery ends the jobs the
// previous master was running ("Unclean master shutdown"), through the
// log like every other change. When the node stops leading (deposed,
// cut off from the majority: check-quorum makes it step down within an
// election timeout) the queue is shut down; its store keeps going through
// the log, so nothing it still writes lands anywhere unless agreed.
//
// Who votes is decided by the leader alone, with cluster.NextVoterChange,
// whenever its view changes: the cluster configuration (the "cluster"
// setting), a member's progress, a leadership change. A joining node is
// added as a learner (AddNode) and promoted once its log matches the
// leader's commit index, up to the pool of voters.
package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/queuelog"
	"github.com/jobq-dev/jobq/internal/store"
)

// ClusterSetting is the name of the setting that holds the cluster
// configuration (cluster.Config as JSON).
const ClusterSetting = "cluster"

// Config is what Start needs.
type Config struct {
	Dir       string // DIR/cluster: raft/ and settings/ are made here
	Name      string
	Addr      string
	Store     *store.Store
	Bootstrap bool // a new one-node cluster when Dir holds no state
	Timing    consensus.Timing
	Pool      int // voters wanted, for tests; 0: the cluster's candidate_pool_size
	Listener  net.Listener
	Dial      func(ctx context.Context, addr string) (net.Conn, error)
	// Fetch reaches the master's queue files when a snapshot is restored.
	Fetch queuelog.Fetch
	// OpenQueue opens the queue on the store (the daemon passes its
	// registry, workers, metrics); called each time this node starts
	// leading.
	OpenQueue func(st *store.Store) (*queue.Queue, error)
	// StopQueue, when set, is called before the queue opened by
	// OpenQueue is shut down (the daemon stops what serves it).
	StopQueue func(q *queue.Queue)
	// ShutdownTimeout is how long running opcodes get when the node
	// stops leading.
	ShutdownTimeout time.Duration
	Log             *slog.Logger
}

// Member is a running node of the cluster.
type Member struct {
	cfg  Config
	node *consensus.Node
	fsm  *queuelog.FSM
	log  *slog.Logger
	lg   *queuelog.Log

	mu       sync.Mutex
	q        *queue.Queue
	closed   bool
	stopping bool // a queue is being shut down

	stop chan struct{}
	done chan struct{}
	kick chan struct{}
	// ctx ends when Close is called: what the leader is doing (a barrier,
	// a change of voters) gives way to the stop.
	ctx    context.Context
	cancel context.CancelFunc

	watchMu  sync.Mutex
	watchers []func(key string, value []byte)

	cluster atomic.Pointer[decodedCluster]
}

// Start runs the member.
func Start(cfg Config) (*Member, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	fsm, err := queuelog.NewFSM(cfg.Store, filepath.Join(cfg.Dir, "settings"), cfg.Fetch, cfg.Log)
	if err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, fsm: fsm, log: cfg.Log,
		stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.decodeCluster(fsm.Setting(ClusterSetting))
	fsm.OnSetting(func(key string, value []byte) {
		if key == ClusterSetting {
			m.decodeCluster(value)
			m.poke()
		}
		m.watchMu.Lock()
		ws := m.watchers
		m.watchMu.Unlock()
		for _, fn := range ws {
			fn(key, value)
		}
	})
	node, err := consensus.Open(consensus.Config{
		Dir: filepath.Join(cfg.Dir, "raft"), Name: cfg.Name, Addr: cfg.Addr, Timing: cfg.Timing,
		Bootstrap: cfg.Bootstrap, Listener: cfg.Listener, Dial: cfg.Dial,
		FSM: fsm, DurableState: true, Log: cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	m.node = node
	m.lg = &queuelog.Log{P: node, Dir: cfg.Store.Dir()}
	// Every change of the queue goes through the log, on every node:
	// a node that does not lead has its writes refused (not master).
	cfg.Store.SetLog(m.lg)
	go m.run()
	return m, nil
}

func (m *Member) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Node is the member's consensus node.
func (m *Member) Node() *consensus.Node { return m.node }

// Queue is the queue while this node leads and has opened it, else nil.
func (m *Member) Queue() *queue.Queue {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.q
}

// Cluster is the agreed cluster configuration as applied here (nil
// before the first one). It is shared: clone it to change it.
func (m *Member) Cluster() (*cluster.Config, error) {
	d := m.cluster.Load()
	return d.c, d.err
}

// decodedCluster is the cluster setting as applied here, decoded once
// per change (every LUXI call and opcode reads it).
type decodedCluster struct {
	c   *cluster.Config
	err error
}

func (m *Member) decodeCluster(b []byte) {
	d := &decodedCluster{}
	if b != nil {
		var c cluster.Config
		if err := json.Unmarshal(b, &c); err != nil {
			d.err = fmt.Errorf("the agreed cluster configuration is malformed: %w", err)
		} else {
			d.c = &c
		}
	}
	m.cluster.Store(d)
}

// Get is the agreed value of the setting key as applied here (nil: never
// set); Member is a settings.Store.
func (m *Member) Get(key string) []byte { return m.fsm.Setting(key) }

// Set proposes the setting key and waits until it is agreed and applied
// here; only the master may.
func (m *Member) Set(ctx context.Context, key string, value []byte) error {
	return m.lg.Set(ctx, key, value)
}

// Watch calls fn after each setting applied here (from the log's
// goroutine, in order).
func (m *Member) Watch(fn func(key string, value []byte)) {
	m.watchMu.Lock()
	m.watchers = append(append([]func(string, []byte){}, m.watchers...), fn)
	m.watchMu.Unlock()
}

// SetCluster proposes a cluster configuration and waits until it is
// agreed and applied here.
func (m *Member) SetCluster(ctx context.Context, c *cluster.Config) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return m.lg.Set(ctx, ClusterSetting, b)
}

// AddNode adds the node name at addr to the group as a learner (the
// leader promotes it once it has caught up, if the configuration wants it
// to vote).
func (m *Member) AddNode(ctx context.Context, name, addr string) error {
	if err := m.node.AddLearner(ctx, name, addr); err != nil {
		return err
	}
	m.poke()
	return nil
}

// RemoveNode takes the node name out of the group (its queue copy is
// left as it is; to come back it joins anew, with an empty directory).
func (m *Member) RemoveNode(ctx context.Context, name string) error {
	if name == m.node.Name() {
		return fmt.Errorf("cannot remove %s: it is the master; hand the leadership to another node first", name)
	}
	if err := m.node.Remove(ctx, name); err != nil {
		return err
	}
	m.poke()
	return nil
}

// run follows leadership: it opens the queue when this node starts
// leading and shuts it down when it stops, and, while leading, moves the
// group's voters towards the wanted ones.
func (m *Member) run() {
	defer close(m.done)
	// A learner's progress changes nothing this node applies: look again
	// at every election timeout while leading.
	tick := time.NewTicker(m.cfg.Timing.ElectionTimeout())
	defer tick.Stop()
	for {
		changed := m.node.Changed()
		if m.node.IsLeader() {
			m.lead()
		} else {
			m.follow(false)
		}
		select {
		case <-changed:
		case <-m.kick:
		case <-tick.C:
		case <-m.stop:
			m.follow(true)
			return
		}
	}
}

// lead opens the queue if it is not open and makes the next membership
// change, if any.
func (m *Member) lead() {
	m.mu.Lock()
	open := m.q != nil
	m.mu.Unlock()
	if !open {
		ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		start := time.Now()
		err := m.node.Barrier(ctx)
		cancel()
		barrier := time.Since(start)
		var q *queue.Queue
		if err == nil {
			q, err = m.cfg.OpenQueue(m.cfg.Store)
		}
		m.mu.Lock()
		m.q = q
		m.mu.Unlock()
		if err != nil {
			m.log.Error("leading, but cannot open the queue; trying again at the next change", "err", err)
			return
		}
		m.log.Info("running as master", "term", m.node.Term(), "barrier", barrier.Round(time.Microsecond), "open", (time.Since(start) - barrier).Round(time.Microsecond))
	}
	m.changeVoters()
}

// follow shuts the queue down if it is open. A node that lost the
// leadership interrupts its running opcodes at once: another master
// already ends those jobs in error and runs the queue, so nothing may go
// on running here. A node that stops (graceful) while it leads hands its
// place over as a graceful master-failover does: it starts no more jobs
// (submissions are still stored), lets the running opcodes finish for up
// to ShutdownTimeout while it still leads, then hands the leadership to
// the most up-to-date voter (handOver), so that the others need not wait
// an election timeout to notice it is gone.
func (m *Member) follow(graceful bool) {
	m.mu.Lock()
	q := m.q
	m.q = nil
	m.stopping = q != nil
	m.mu.Unlock()
	if q == nil {
		return
	}
	defer func() {
		m.mu.Lock()
		m.stopping = false
		m.mu.Unlock()
	}()
	timeout := m.cfg.ShutdownTimeout
	if !graceful {
		timeout = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stopCtx := ctx // what the queue's shutdown gets
	if graceful {
		// Running opcodes may finish while this node still leads; once
		// it does not (the others elected another, or it lost them), its
		// writes can no longer be agreed: stop at once.
		go func() {
			for {
				ch := m.node.Changed()
				if !m.node.IsLeader() {
					cancel()
					return
				}
				select {
				case <-ch:
				case <-ctx.Done():
					return
				}
			}
		}()
		if err := q.HoldStarts(ctx); err != nil {
			if m.node.IsLeader() {
				m.log.Warn("jobs still run at the end of the shutdown timeout; they are interrupted and end in error on the next master", "timeout", timeout)
			}
		} else {
			// Nothing runs: the queue stops at once, whoever leads.
			stopCtx = context.Background()
		}
	}
	if m.cfg.StopQueue != nil {
		m.cfg.StopQueue(q)
	}
	if graceful {
		m.holdSubmissions(q)
		m.handOver()
	}
	if err := q.Shutdown(stopCtx); err != nil {
		m.log.Warn("stopping the queue", "err", err)
	}
	m.log.Info("stopped running as master")
}

// HandOver is a graceful master-failover to the voter to: while this
// node leads, it starts no more jobs (submissions are still stored), lets
// the running opcodes finish for up to ShutdownTimeout, then hands the
// leadership over; the queue then stops here as at any loss of the
// leadership. If the hand-over fails, jobs start again here.
func (m *Member) HandOver(ctx context.Context, to string) error {
	m.mu.Lock()
	q := m.q
	m.mu.Unlock()
	if q == nil || !m.node.IsLeader() {
		return fmt.Errorf("cannot hand the leadership to %s: %w", to, consensus.ErrNotLeader)
	}
	if mb, ok := m.member(to); !ok || !mb.Voter {
		return fmt.Errorf("cannot hand the leadership to %s: it is not a voter", to)
	}
	hctx, cancel := context.WithTimeout(ctx, m.cfg.ShutdownTimeout)
	err := q.HoldStarts(hctx)
	cancel()
	if err != nil {
		m.log.Warn("master-failover: jobs still run at the end of the shutdown timeout; they are interrupted and end in error on the next master", "to", to, "timeout", m.cfg.ShutdownTimeout)
	}
	m.holdSubmissions(q)
	start := time.Now()
	if err := m.node.TransferLeadership(ctx, to); err != nil {
		q.ResumeSubmissions()
		q.ResumeStarts()
		return err
	}
	m.log.Info("master-failover: handed the leadership over", "to", to, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// holdSubmissions refuses new submissions on q and waits, for up to an
// election timeout, until those it took in are answered, so that none is
// in flight when the leadership moves: the refused ones go to the next
// master, and none ends with an unknown outcome.
func (m *Member) holdSubmissions(q *queue.Queue) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timing.ElectionTimeout())
	defer cancel()
	if err := q.HoldSubmissions(ctx); err != nil {
		m.log.Warn("handing the leadership over with submissions still being stored; their outcome may be unknown", "err", err)
	}
}

func (m *Member) member(name string) (consensus.Member, bool) {
	for _, mb := range m.node.Members() {
		if mb.Name == name {
			return mb, true
		}
	}
	return consensus.Member{}, false
}

// handOver hands the leadership of a stopping node to the voter whose log
// goes furthest (the engine sends it what it lacks first), if this node
// leads and another voter is online.
func (m *Member) handOver() {
	if !m.node.IsLeader() {
		return
	}
	c, _ := m.Cluster()
	self := m.node.Name()
	to, best := "", uint64(0)
	for _, mb := range m.node.Members() {
		if !mb.Voter || mb.Name == self {
			continue
		}
		if c != nil {
			if nd, ok := c.Node(mb.Name); ok && !nd.Online {
				continue
			}
		}
		if match := m.node.Match(mb.Name); to == "" || match > best {
			to, best = mb.Name, match
		}
	}
	if to == "" {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*m.cfg.Timing.ElectionTimeout())
	defer cancel()
	if err := m.node.TransferLeadership(ctx, to); err != nil {
		m.log.Warn("stopping: cannot hand the leadership over; the others elect a master after an election timeout", "to", to, "err", err)
		return
	}
	m.log.Info("stopping: handed the leadership over", "to", to, "took", time.Since(start).Round(time.Millisecond))
}

// changeVoters makes the next change of the group's voters.
func (m *Member) changeVoters() {
	c, err := m.Cluster()
	if err != nil || c == nil {
		return
	}
	self := m.node.Name()
	if nd, ok := c.Node(self); ok && !nd.Online {
		// The master was marked offline: it hands its place to another
		// voter, which will then demote it.
		for _, mb := range m.node.Members() {
			if mb.Voter && mb.Name != self {
				ctx, cancel := context.WithTimeout(m.ctx, 2*m.cfg.Timing.ElectionTimeout())
				err := m.node.TransferLeadership(ctx, mb.Name)
				cancel()
				if err != nil {
					m.log.Warn("marked offline, but cannot hand the leadership over", "to", mb.Name, "err", err)
					continue
				}
				m.log.Info("marked offline: handed the leadership over", "to", mb.Name)
				return
			}
		}
		return
	}
	var voters, learners []string
	for _, mb := range m.node.Members() {
		if mb.Voter {
			voters = append(voters, mb.Name)
		} else {
			learners = append(learners, mb.Name)
		}
	}
	commit := m.node.CommitIndex()
	pool := c.CandidatePoolSize
	if m.cfg.Pool > 0 {
		pool = m.cfg.Pool
	}
	ch, ok := cluster.NextVoterChange(c, m.node.Name(), pool, voters, learners, func(n string) bool {
		return m.node.Match(n) >= commit
	})
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	if ch.Promote {
		err = m.node.Promote(ctx, ch.Node)
	} else {
		err = m.node.Demote(ctx, ch.Node)
	}
	if err != nil {
		m.log.Warn("cannot change who votes", "node", ch.Node, "promote", ch.Promote, "err", err)
		return
	}
	m.log.Info("changed who votes", "node", ch.Node, "voter", ch.Promote)
	m.poke() // the next change, if any
}

// stopped says that no queue runs or is being shut down here.
func (m *Member) stopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.q == nil && !m.stopping
}

// Close stops the member: the queue (if open), the engine.
func (m *Member) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	close(m.stop)
	<-m.done
	err := m.node.Close()
	if errors.Is(err, consensus.ErrClosed) {
		err = nil
	}
	return err
}

// ApplyLog brings the queue directory and the settings in cfg.Dir up to
// everything the node's log holds, committed or not as far as it knows
// (consensus.ApplyLog), with no member running: for a node that leaves
// its group to start a new one alone.
func ApplyLog(cfg Config) (int, error) {
	fsm, err := queuelog.NewFSM(cfg.Store, filepath.Join(cfg.Dir, "settings"), nil, cfg.Log)
	if err != nil {
		return 0, err
	}
	return consensus.ApplyLog(filepath.Join(cfg.Dir, "raft"), fsm, cfg.Log)
}
