package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the scripts in testdata/*.txt. Rewrite the expected
// output with `go test ./internal/cluster -run TestScenarios -rewrite`.
//
// The election commands drive a small simulated cluster whose every
// decision is taken by this package's functions (Voter.Vote, Observe,
// AcceptWrite, Accept, AcceptResync, Tally, Majority); the simulation does
// what the daemon does around them. All nodes are voters.
//
//	cluster nodes=(a,b,c)       a new cluster, the first node master of epoch 1
//	write [node=M] [to=(..)]    master M (default: the acting master of the
//	                            highest epoch) writes the next batch and sends
//	                            it to the nodes in to (default: every node that
//	                            is up); it is acknowledged with a majority
//	resync [node=M] to=(..)     M sends its whole queue
//	crash node=N | restart node=N
//	campaign node=C [epoch=E]   C starts master-failover: votes for itself
//	ask node=C voter=V          V answers C's vote request
//	conclude node=C             C counts its ballots; when won it takes the
//	                            newest queue, becomes master and resyncs
//	                            the nodes that are up
//	failover node=C [reach=(..)] [epoch=E]
//	                            campaign, ask every node of reach (default:
//	                            every node that is up), conclude
//	state                       every node
//	tally epoch=E voters=(..)   counts the ballots of the input, one a line:
//	                            VOTER granted|refused EPOCH POSITION
//
// The configuration commands work on one Config:
//
//	config node=N addr=A [pool=P]     NewConfig
//	add-node name=N addr=A            AddNode
//	remove-node name=N                RemoveNode
//	modify-node name=N [candidate=yes|no] [online=yes|no]
//	newer epoch=E serial=S            is (E, S) Newer than the configuration
//	validate                          Validate the input (JSON)
//
// A changing configuration command prints the new configuration or the
// error; a refused change leaves the configuration as it was.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			t.Skip("not a scenario")
		}
		s := &sim{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

type simNode struct {
	name     string
	up       bool
	voter    Voter
	pos      Position
	queue    []string // the batches applied, by name
	masterOf int64    // the epoch it was made master of
	tally    *Tally   // a running master-failover
}

type sim struct {
	nodes   []*simNode
	written map[int64]int64 // batches written by each epoch's master
	cfg     *Config
}

func (s *sim) node(t *testing.T, d *datadriven.TestData, key string) *simNode {
	var name string
	d.ScanArgs(t, key, &name)
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	d.Fatalf(t, "no node %s", name)
	return nil
}

func (s *sim) voters() []string {
	var out []string
	for _, n := range s.nodes {
		out = append(out, n.name)
	}
	return out
}

// targets are the nodes named by key, by default every node that is up;
// never from itself.
func (s *sim) targets(t *testing.T, d *datadriven.TestData, key string, from *simNode) []*simNode {
	var names []string
	if d.HasArg(key) {
		d.ScanArgs(t, key, &names)
	}
	var out []*simNode
	for _, n := range s.nodes {
		if n != from && (len(names) == 0 && n.up || slices.Contains(names, n.name)) {
			out = append(out, n)
		}
	}
	return out
}

// master is the node of arg "node", or the acting master of the highest
// epoch.
func (s *sim) master(t *testing.T, d *datadriven.TestData) *simNode {
	if d.HasArg("node") {
		return s.node(t, d, "node")
	}
	var best *simNode
	for _, n := range s.nodes {
		if n.masterOf > 0 && n.up && (best == nil || n.masterOf > best.masterOf) {
			best = n
		}
	}
	if best == nil {
		d.Fatalf(t, "no master")
	}
	return best
}

func (n *simNode) String() string {
	state := "up"
	if !n.up {
		state = "down"
	}
	role := ""
	if n.masterOf > 0 {
		role = fmt.Sprintf(", master of epoch %d", n.masterOf)
		if !n.voter.AcceptWrite(n.masterOf, n.name) {
			role += " (stepped down)"
		}
	}
	return fmt.Sprintf("%s: %s, voted %d for %s, position %v, queue [%s]%s",
		n.name, state, n.voter.Epoch, n.voter.For, n.pos, strings.Join(n.queue, " "), role)
}

func (s *sim) state() string {
	var b strings.Builder
	for _, n := range s.nodes {
		fmt.Fprintln(&b, n)
	}
	return b.String()
}

// applyBatch is a replica's handling of one batch (in the daemon:
// replica.Applier.Apply, under its lock).
func applyBatch(n *simNode, master string, epoch, seq int64, batch string) string {
	switch {
	case !n.up:
		return "unreachable"
	case !n.voter.AcceptWrite(epoch, master):
		return fmt.Sprintf("refused: it has seen epoch %d (%s)", n.voter.Epoch, n.voter.For)
	case !Accept(n.pos, epoch, seq):
		return fmt.Sprintf("refused: it is at %v, needs a resync", n.pos)
	}
	n.voter = n.voter.Observe(epoch, master)
	n.queue = append(n.queue, batch)
	n.pos = Position{Epoch: epoch, Seq: seq}
	return "applied, now at " + n.pos.String()
}

// resync sends m's whole queue to n.
func resync(m, n *simNode) string {
	switch {
	case !n.up:
		return "unreachable"
	case !n.voter.AcceptWrite(m.masterOf, m.name):
		return fmt.Sprintf("refused: it has seen epoch %d (%s)", n.voter.Epoch, n.voter.For)
	case !AcceptResync(n.pos, m.pos.Epoch, m.pos.Seq):
		return fmt.Sprintf("refused: it is at %v, past %v", n.pos, m.pos)
	}
	n.voter = n.voter.Observe(m.masterOf, m.name)
	n.queue = slices.Clone(m.queue)
	n.pos = m.pos
	return "resynced to " + n.pos.String()
}

func (s *sim) run(t *testing.T, d *datadriven.TestData) string {
	var b strings.Builder
	switch d.Cmd {
	case "cluster":
		var names []string
		d.ScanArgs(t, "nodes", &names)
		s.nodes, s.written = nil, map[int64]int64{}
		for _, name := range names {
			s.nodes = append(s.nodes, &simNode{name: name, up: true, voter: Voter{Epoch: 1, For: names[0]}, pos: Position{Epoch: 1}})
		}
		s.nodes[0].masterOf = 1
		return s.state()

	case "state":
		return s.state()

	case "crash", "restart":
		n := s.node(t, d, "node")
		n.up = d.Cmd == "restart"
		n.tally = nil // the running failover, if any, is lost
		return n.String() + "\n"

	case "write":
		m := s.master(t, d)
		e := m.masterOf
		if !m.voter.AcceptWrite(e, m.name) {
			return fmt.Sprintf("%s refuses to write: it has voted for epoch %d (%s), so it is no longer master\n", m.name, m.voter.Epoch, m.voter.For)
		}
		if m.pos.Epoch != e {
			return fmt.Sprintf("%s is not at a position of its epoch %d\n", m.name, e)
		}
		seq := m.pos.Seq + 1
		s.written[e] = seq
		batch := fmt.Sprintf("%d/%d", e, seq)
		m.queue, m.pos = append(m.queue, batch), Position{Epoch: e, Seq: seq}
		fmt.Fprintf(&b, "%s writes batch %s\n", m.name, batch)
		stored := 1
		for _, n := range s.targets(t, d, "to", m) {
			r := applyBatch(n, m.name, e, seq, batch)
			if strings.HasPrefix(r, "applied") {
				stored++
			}
			fmt.Fprintf(&b, "  %s: %s\n", n.name, r)
		}
		need := Majority(len(s.nodes))
		if stored >= need {
			fmt.Fprintf(&b, "acknowledged: stored on %d of %d voters\n", stored, len(s.nodes))
		} else {
			fmt.Fprintf(&b, "not acknowledged: stored on %d of %d voters, %d needed; the client gets an error\n", stored, len(s.nodes), need)
		}
		return b.String()

	case "resync":
		m := s.master(t, d)
		for _, n := range s.targets(t, d, "to", m) {
			fmt.Fprintf(&b, "%s: %s\n", n.name, resync(m, n))
		}
		return b.String()

	case "campaign":
		c := s.node(t, d, "node")
		s.campaign(t, d, c, &b)
		return b.String()

	case "ask":
		c := s.node(t, d, "node")
		v := s.node(t, d, "voter")
		if c.tally == nil {
			d.Fatalf(t, "%s runs no failover", c.name)
		}
		s.ask(c, v, &b)
		return b.String()

	case "conclude":
		s.conclude(s.node(t, d, "node"), &b)
		return b.String()

	case "failover":
		c := s.node(t, d, "node")
		if !s.campaign(t, d, c, &b) {
			return b.String()
		}
		for _, v := range s.targets(t, d, "reach", c) {
			s.ask(c, v, &b)
		}
		s.conclude(c, &b)
		return b.String()

	case "tally":
		var epoch int64
		var voters []string
		d.ScanArgs(t, "epoch", &epoch)
		d.ScanArgs(t, "voters", &voters)
		tl := NewTally(epoch, voters)
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			var bl Ballot
			var verdict string
			if _, err := fmt.Sscanf(line, "%s %s %d %d/%d", &bl.Voter, &verdict, &bl.Epoch, &bl.Position.Epoch, &bl.Position.Seq); err != nil {
				d.Fatalf(t, "ballot %q: %v", line, err)
			}
			bl.Granted = verdict == "granted"
			tl.Add(bl)
		}
		name, p := tl.Newest()
		fmt.Fprintf(&b, "granted %d of %d (majority %d): won %v\nnewest: %s at %v\nhighest epoch seen: %d\n",
			tl.Granted(), len(voters), Majority(len(voters)), tl.Won(), name, p, tl.HighestSeen())
		for _, r := range tl.Refusals() {
			fmt.Fprintf(&b, "refused by %s (voted %d)\n", r.Voter, r.Epoch)
		}
		return b.String()

	case "config":
		var node, addr string
		d.ScanArgs(t, "node", &node)
		d.ScanArgs(t, "addr", &addr)
		s.cfg = NewConfig(node, addr)
		if d.HasArg("pool") {
			d.ScanArgs(t, "pool", &s.cfg.CandidatePoolSize)
		}
		return describeConfig(s.cfg)

	case "add-node", "remove-node", "modify-node", "synced":
		var name string
		d.ScanArgs(t, "name", &name)
		var next *Config
		var err error
		switch d.Cmd {
		case "add-node":
			var addr string
			d.ScanArgs(t, "addr", &addr)
			next, err = s.cfg.AddNode(name, addr)
		case "remove-node":
			next, err = s.cfg.RemoveNode(name)
		case "synced":
			next, err = s.cfg.Synced(name)
		default:
			flag := func(key string) *bool {
				if !d.HasArg(key) {
					return nil
				}
				var v string
				d.ScanArgs(t, key, &v)
				b := v == "yes"
				return &b
			}
			next, err = s.cfg.Modify(name, flag("candidate"), flag("online"))
		}
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		s.cfg = next
		return describeConfig(next)

	case "newer":
		c := s.cfg.Clone()
		d.ScanArgs(t, "epoch", &c.Epoch)
		d.ScanArgs(t, "serial", &c.Serial)
		return fmt.Sprintf("%v\n", c.Newer(s.cfg))

	case "validate":
		var c Config
		if err := json.Unmarshal([]byte(d.Input), &c); err != nil {
			d.Fatalf(t, "%v", err)
		}
		if err := c.Validate(); err != nil {
			return "error: " + err.Error() + "\n"
		}
		return "ok\n"
	}
	d.Fatalf(t, "unknown command %s", d.Cmd)
	return ""
}

// campaign starts c's failover: the epoch one above the highest it knows,
// its own vote first.
func (s *sim) campaign(t *testing.T, d *datadriven.TestData, c *simNode, b *strings.Builder) bool {
	e := max(c.voter.Epoch, c.pos.Epoch, c.masterOf) + 1
	if d.HasArg("epoch") {
		d.ScanArgs(t, "epoch", &e)
	}
	nv, ok := c.voter.Vote(e, c.name)
	if !ok {
		fmt.Fprintf(b, "%s cannot run for epoch %d: it has voted %d for %s\n", c.name, e, c.voter.Epoch, c.voter.For)
		return false
	}
	c.voter = nv
	c.tally = NewTally(e, s.voters())
	c.tally.Add(Ballot{Voter: c.name, Granted: true, Epoch: e, Position: c.pos})
	fmt.Fprintf(b, "%s runs for epoch %d and votes for itself (position %v)\n", c.name, e, c.pos)
	return true
}

// ask delivers c's vote request to v and v's ballot to c.
func (s *sim) ask(c, v *simNode, b *strings.Builder) {
	if !v.up {
		fmt.Fprintf(b, "  %s: unreachable\n", v.name)
		return
	}
	nv, ok := v.voter.Vote(c.tally.Epoch, c.name)
	v.voter = nv
	bl := Ballot{Voter: v.name, Granted: ok, Epoch: nv.Epoch, Position: v.pos}
	c.tally.Add(bl)
	if ok {
		fmt.Fprintf(b, "  %s: granted, position %v\n", v.name, v.pos)
	} else {
		fmt.Fprintf(b, "  %s: refused, it voted %d for %s\n", v.name, nv.Epoch, nv.For)
	}
}

// conclude counts c's ballots; a winner takes the newest queue among them,
// becomes master of the epoch and resyncs the nodes that are up.
func (s *sim) conclude(c *simNode, b *strings.Builder) {
	tl := c.tally
	c.tally = nil
	if tl == nil || !c.up {
		fmt.Fprintf(b, "%s runs no failover\n", c.name)
		return
	}
	e := tl.Epoch
	if !tl.Won() {
		fmt.Fprintf(b, "%s lost epoch %d: %d of %d votes, %d needed", c.name, e, tl.Granted(), len(tl.Voters), Majority(len(tl.Voters)))
		if h := tl.HighestSeen(); h > e {
			fmt.Fprintf(b, "; epoch %d exists, a retry runs for %d", h, h+1)
		}
		b.WriteString("\n")
		return
	}
	if !c.voter.AcceptWrite(e, c.name) {
		fmt.Fprintf(b, "%s won epoch %d but has voted for epoch %d since; it does not become master\n", c.name, e, c.voter.Epoch)
		return
	}
	name, p := tl.Newest()
	var src *simNode
	for _, n := range s.nodes {
		if n.name == name {
			src = n
		}
	}
	fmt.Fprintf(b, "%s won epoch %d with %d of %d votes; the newest queue is %s's at %v: [%s]\n",
		c.name, e, tl.Granted(), len(tl.Voters), name, p, strings.Join(src.queue, " "))
	c.queue = slices.Clone(src.queue)
	c.masterOf, c.pos = e, Position{Epoch: e}
	for _, n := range s.nodes {
		if n != c && n.up {
			fmt.Fprintf(b, "  resync %s: %s\n", n.name, resync(c, n))
		}
	}
}

func describeConfig(c *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d serial %d master %s pool %d\n", c.Epoch, c.Serial, c.Master, c.CandidatePoolSize)
	byName := map[string]Node{}
	for _, n := range c.Nodes {
		byName[n.Name] = n
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		n := byName[name]
		online := "online"
		if !n.Online {
			online = "offline"
		}
		syncing := ""
		if n.Syncing {
			syncing = " catching-up"
		}
		fmt.Fprintf(&b, "  %s %s %s %s%s\n", n.Name, n.Address, c.Role(n.Name), online, syncing)
	}
	fmt.Fprintf(&b, "voters [%s], majority %d; replicas [%s]\n", strings.Join(names(c.Voters()), " "), c.Quorum(),
		strings.Join(names(c.Replicas()), " "))
	return b.String()
}
