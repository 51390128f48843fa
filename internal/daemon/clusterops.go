package daemon

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/replica"
	"github.com/jobq-dev/jobq/internal/restricted"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/luxi"
)

func runRestricted(ctx context.Context, dir, name string) (bool, string) {
	return restricted.Run(ctx, dir, name, restricted.Options{})
}

func prereq(format string, args ...any) error {
	return luxi.NewError("OpPrereqError", fmt.Sprintf(format, args...), "wrong_state")
}

// serveCluster answers jobq's cluster and node calls (Jobq* methods).
func (n *nodeRT) serveCluster(ctx context.Context, req *luxi.Request) (any, error) {
	switch req.Method {
	case "JobqClusterInfo":
		c := n.config()
		out := map[string]any{"name": c.Name, "master": c.Master, "epoch": c.Epoch, "serial": c.Serial,
			"node": n.self, "candidate_pool_size": c.CandidatePoolSize, "nodes": n.nodeList(),
			"drained": nil, "jobs": nil}
		if q := n.queue(); q != nil {
			jobs := map[string]int{}
			for st, k := range q.Counts() {
				jobs[string(st)] = k
			}
			out["drained"], out["jobs"] = q.Drained(), jobs
		}
		return out, nil
	case "JobqNodeList":
		return n.nodeList(), nil
	case "JobqJoinToken":
		var ttl float64
		if err := req.UnmarshalArgs(&ttl); err != nil {
			return nil, badArgs(req.Method, "expected [ttl_seconds]")
		}
		d := time.Duration(ttl * float64(time.Second))
		if d <= 0 {
			d = time.Hour
		}
		tok, exp, err := n.newJoinToken(d)
		if err != nil {
			return nil, err
		}
		return map[string]any{"token": tok, "expires": float64(exp.UnixNano()) / 1e9}, nil
	case "JobqNodeModify":
		var a struct {
			Name      string `json:"name"`
			Candidate *bool  `json:"master_candidate"`
			Offline   *bool  `json:"offline"`
		}
		if err := req.UnmarshalArgs(&a); err != nil {
			return nil, badArgs(req.Method, "expected [{name, master_candidate, offline}]")
		}
		return n.modifyNode(ctx, a.Name, a.Candidate, a.Offline)
	case "JobqNodeRemove":
		var name string
		if err := req.UnmarshalArgs(&name); err != nil {
			return nil, badArgs(req.Method, "expected [name]")
		}
		return n.removeNode(ctx, name)
	case "JobqVerifyQueue":
		var a struct {
			Repair bool    `json:"repair"`
			Wait   float64 `json:"wait"`
		}
		if err := req.UnmarshalArgs(&a); err != nil {
			return nil, badArgs(req.Method, "expected [{repair, wait}]")
		}
		return n.verifyQueue(ctx, a.Repair, time.Duration(a.Wait*float64(time.Second)))
	case "JobqMasterFailover":
		var a struct {
			NoVoting bool `json:"no_voting"`
		}
		if err := req.UnmarshalArgs(&a); err != nil {
			return nil, badArgs(req.Method, "expected [{no_voting}]")
		}
		return n.masterFailover(ctx, a.NoVoting)
	case "JobqRenewCrypto":
		return n.renewCrypto(ctx)
	}
	if res, ok, err := n.serveHousekeeping(ctx, req); ok {
		return res, err
	}
	if res, ok, err := n.serveSchedules(ctx, req); ok {
		return res, err
	}
	return nil, luxi.UnknownMethod(req.Method)
}

// nodeInfo is one node as `jobq node list --json` and `jobq cluster
// info` receive it (fields in the order the earlier map encoding gave).
type nodeInfo struct {
	Address     string          `json:"address"`
	Candidate   bool            `json:"master_candidate"`
	Name        string          `json:"name"`
	Online      bool            `json:"online"`
	Replication replicationInfo `json:"replication"`
	Role        string          `json:"role"`
}

// replicationInfo is a node's replication state as this node knows it:
// "self", "in sync", "behind", "unreachable", "resyncing", "catching up"
// (a new or returning master candidate that does not count in majorities
// yet), "not a replica" or "unknown".
type replicationInfo struct {
	Behind           int64             `json:"behind"`
	LastError        string            `json:"last_error,omitempty"`
	Position         *cluster.Position `json:"position,omitempty"`
	State            string            `json:"state"`
	UnreachableSince *float64          `json:"unreachable_since"` // Unix seconds
}

// text is the state in words (the dashboard's overview).
func (r replicationInfo) text() string {
	switch r.State {
	case "self":
		return "holds the queue (master)"
	case "behind":
		return fmt.Sprintf("behind by %d updates", r.Behind)
	case "unreachable":
		t := "unreachable"
		if r.UnreachableSince != nil {
			t += " since " + time.Unix(int64(*r.UnreachableSince), 0).Format("2006-01-02 15:04:05")
		}
		if r.LastError != "" {
			t += " (" + r.LastError + ")"
		}
		return t
	case "not a replica":
		return "not a master candidate: holds no copy"
	case "catching up":
		return "catching up: receiving the queue, counts in majorities once in sync"
	}
	return r.State
}

// nodeList describes every node with its replication state as this node
// knows it (the master knows every peer's).
func (n *nodeRT) nodeList() []nodeInfo {
	c := n.config()
	peers := map[string]replica.PeerState{}
	n.mu.Lock()
	m := n.master
	n.mu.Unlock()
	if m != nil {
		for _, p := range m.rep.Peers() {
			peers[p.Name] = p
		}
	}
	replicas := map[string]bool{}
	for _, v := range c.Replicas() {
		replicas[v.Name] = true
	}
	var out []nodeInfo
	for _, nd := range sortedNodes(c) {
		repl := replicationInfo{State: "unknown"}
		switch p, ok := peers[nd.Name]; {
		case nd.Name == n.self:
			pos := n.app.Position()
			repl.State, repl.Position = "self", &pos
		case !replicas[nd.Name]:
			repl.State = "not a replica"
		case ok:
			repl.Position, repl.Behind, repl.LastError = &p.Position, p.Behind, p.LastError
			switch {
			case !p.UnreachableSince.IsZero():
				since := float64(p.UnreachableSince.UnixNano()) / 1e9
				repl.State, repl.UnreachableSince = "unreachable", &since
			case nd.Syncing:
				repl.State = "catching up"
			case !p.InSync:
				repl.State = "resyncing"
			case p.Behind > 0:
				repl.State = "behind"
			default:
				repl.State = "in sync"
			}
		}
		out = append(out, nodeInfo{Name: nd.Name, Address: nd.Address, Role: c.Role(nd.Name),
			Online: nd.Online, Candidate: nd.Candidate, Replication: repl})
	}
	return out
}

// replicationText describes each node's replication state in words.
func (n *nodeRT) replicationText() map[string]string {
	out := map[string]string{}
	for _, e := range n.nodeList() {
		out[e.Name] = e.Replication.text()
	}
	return out
}

func (n *nodeRT) nodeEntry(name string) *nodeInfo {
	for _, e := range n.nodeList() {
		if e.Name == name {
			return &e
		}
	}
	return nil
}

// changeConfig applies a change on the master: store, adopt, send.
func (n *nodeRT) changeConfig(ctx context.Context, change func(*cluster.Config) (*cluster.Config, error)) (*cluster.Config, error) {
	// One change at a time: two made from the same configuration would
	// get the same serial, and the second would be lost.
	n.changeMu.Lock()
	defer n.changeMu.Unlock()
	n.mu.Lock()
	master := n.rep != nil && n.cfg.Master == n.self
	n.mu.Unlock()
	if !master {
		// Allowed while the master waits for a majority to start: that is
		// when a lost node must be marked offline.
		return nil, n.notMaster()
	}
	nc, err := change(n.config())
	if err != nil {
		return nil, prereq("%v", err)
	}
	if err := n.setConfig(nc); err != nil {
		return nil, err
	}
	n.pushConfig(ctx, nc)
	return nc, nil
}

func (n *nodeRT) answers(ctx context.Context, addr string) bool {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := n.client.State(cctx, addr, &noderpc.StateRequest{})
	return err == nil
}

func (n *nodeRT) modifyNode(ctx context.Context, name string, cand, offline *bool) (any, error) {
	if cand == nil && offline == nil {
		return nil, prereq("nothing to change: give --master-candidate or --offline")
	}
	var warnings []string
	old, ok := n.config().Node(name)
	if !ok {
		return nil, prereq("node %s is not in the cluster", name)
	}
	var online *bool
	if offline != nil {
		on := !*offline
		online = &on
		if *offline && old.Online && n.client != nil && n.answers(ctx, old.Address) {
			warnings = append(warnings, fmt.Sprintf("node %s still answers at %s; it no longer counts for majorities and gets no updates until it is marked online again", name, old.Address))
		}
	}
	nc, err := n.changeConfig(ctx, func(c *cluster.Config) (*cluster.Config, error) { return c.Modify(name, cand, online) })
	if err != nil {
		return nil, err
	}
	if nd, _ := nc.Node(name); cand != nil && !*cand && old.Candidate && nd.Online {
		// No longer a replica: it deletes its copy of the queue.
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.client.Purge(cctx, nd.Address, &noderpc.PurgeRequest{Master: n.self, Epoch: nc.Epoch})
		cancel()
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("node %s keeps its copy of the queue: %v", name, err))
		}
	}
	return map[string]any{"node": n.nodeEntry(name), "warnings": nonNil(warnings)}, nil
}

func (n *nodeRT) removeNode(ctx context.Context, name string) (any, error) {
	var warnings []string
	old, ok := n.config().Node(name)
	if !ok {
		return nil, prereq("node %s is not in the cluster", name)
	}
	if old.Online && n.client != nil && n.answers(ctx, old.Address) {
		warnings = append(warnings, fmt.Sprintf("node %s still runs jobqd at %s; stop it and clear its data directory before it joins again", name, old.Address))
	}
	if _, err := n.changeConfig(ctx, func(c *cluster.Config) (*cluster.Config, error) { return c.RemoveNode(name) }); err != nil {
		return nil, err
	}
	return map[string]any{"warnings": nonNil(warnings)}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type verifyNode struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// CatchingUp: the node does not count in majorities yet (OK is
	// false even when its files are the master's).
	CatchingUp bool     `json:"catching_up,omitempty"`
	Missing    []string `json:"missing"`
	Extra      []string `json:"extra"`
	Differ     []string `json:"differ"`
}

// verifyOnce compares every replica's files, archive included and
// hashed, with the reference (the master's queue).
func (n *nodeRT) verifyOnce(ctx context.Context) (ref string, nodes []verifyNode, err error) {
	c := n.config()
	var refLive, refArch []noderpc.FileInfo
	if c.Master == n.self {
		refLive, refArch, err = replica.Scan(n.st.Dir(), true, true)
	} else {
		addr, aerr := n.nodeAddr(c.Master)
		if aerr != nil {
			return c.Master, nil, aerr
		}
		var st *noderpc.StateReply
		st, err = n.client.State(ctx, addr, &noderpc.StateRequest{Archive: true, HashArchive: true})
		if st != nil {
			refLive, refArch = st.Files, st.Archive
		}
	}
	if err != nil {
		return c.Master, nil, fmt.Errorf("cannot read the master's queue: %w", err)
	}
	ref_ := append(append([]noderpc.FileInfo{}, refLive...), refArch...)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nd := range c.Replicas() {
		if nd.Name == c.Master {
			continue
		}
		wg.Go(func() {
			v := verifyNode{Name: nd.Name, Missing: []string{}, Extra: []string{}, Differ: []string{}}
			var live, arch []noderpc.FileInfo
			var err error
			if nd.Name == n.self {
				live, arch, err = replica.Scan(n.st.Dir(), true, true)
			} else {
				cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				var st *noderpc.StateReply
				st, err = n.client.State(cctx, nd.Address, &noderpc.StateRequest{Archive: true, HashArchive: true})
				cancel()
				if st != nil {
					live, arch = st.Files, st.Archive
				}
			}
			if err != nil {
				v.Error = err.Error()
			} else {
				have := map[string]bool{}
				for _, f := range append(live, arch...) {
					have[f.Name] = true
				}
				d := replica.Compare(ref_, append(live, arch...))
				for _, w := range d.Write {
					if have[w] {
						v.Differ = append(v.Differ, w)
					} else {
						v.Missing = append(v.Missing, w)
					}
				}
				v.Extra = append(v.Extra, d.Remove...)
				v.CatchingUp = nd.Syncing
				v.OK = d.Empty() && !nd.Syncing
			}
			mu.Lock()
			nodes = append(nodes, v)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return c.Master, nodes, nil
}

func allOK(nodes []verifyNode) bool {
	for _, v := range nodes {
		if !v.OK {
			return false
		}
	}
	return true
}

// verifyQueue is `jobq cluster verify-queue`: compare, optionally repair
// (on the master: resynchronise each differing node with its differing
// files forced) and wait up to wait for the replicas to agree.
func (n *nodeRT) verifyQueue(ctx context.Context, repair bool, wait time.Duration) (any, error) {
	if n.client == nil {
		return map[string]any{"ok": true, "reference": n.self, "repaired": false, "nodes": []verifyNode{}}, nil
	}
	deadline := time.Now().Add(wait)
	repaired := false
	for {
		ch := n.syncChanged()
		ref, nodes, err := n.verifyOnce(ctx)
		if err != nil {
			return nil, prereq("%v", err)
		}
		ok := allOK(nodes)
		if !ok && repair && !repaired {
			n.mu.Lock()
			m := n.master
			n.mu.Unlock()
			if m == nil {
				return nil, prereq("only the master can repair the queue; run this on %s", ref)
			}
			for _, v := range nodes {
				if !v.OK && v.Error == "" && !(v.CatchingUp && len(v.Missing)+len(v.Differ)+len(v.Extra) == 0) {
					m.rep.Resync(v.Name, append(append([]string{}, v.Differ...), v.Missing...))
				}
			}
			repaired = true
			if wait < 30*time.Second {
				deadline = time.Now().Add(30 * time.Second)
			}
			continue
		}
		if ok || !time.Now().Before(deadline) {
			return map[string]any{"ok": ok, "reference": ref, "repaired": repaired && ok, "nodes": nodes}, nil
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// masterFailover makes this node the master: a vote among the voters for
// a new epoch, the newest queue among those who granted it, then the new
// configuration.
func (n *nodeRT) masterFailover(ctx context.Context, noVoting bool) (any, error) {
	c := n.config()
	if c.Master == n.self && n.wantMaster() {
		return nil, prereq("this node (%s) is already the master", n.self)
	}
	me, ok := c.Node(n.self)
	if !ok || !me.Candidate || !me.Online {
		return nil, prereq("node %s is not an online master candidate; only those can become master", n.self)
	}
	if me.Syncing && !noVoting {
		return nil, prereq("node %s is still catching up with the queue (it joined or came back recently) and may not hold every job; fail over to a node that 'jobq node list' shows in sync (or, if every node that holds the queue is lost, use --no-voting --yes-do-it here and accept that the jobs it lacks are lost)", n.self)
	}
	if n.client == nil {
		return nil, prereq("this node serves no node RPC (--rpc-addr) and cannot take part in a cluster")
	}
	// Candidates that start at the same moment compete for the same
	// epoch, the one after the configuration's: each voter votes once in
	// it, so at most one of them wins. Only this node's own failed attempt
	// (a split vote) moves a retry to the epoch after.
	epoch := c.Epoch + 1
	if v := n.app.Voter(); v.Epoch >= epoch {
		if v.For != n.self {
			return nil, prereq("this node voted for %s in epoch %d: a master-failover is under way or done there; see 'jobq cluster info' on %s", v.For, v.Epoch, v.For)
		}
		epoch = v.Epoch + 1
	}
	// master-failover is for a master that is down: a running one is
	// stopped first (its running jobs then end cleanly).
	if nd, ok := c.Node(c.Master); ok && c.Master != n.self && !noVoting {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := n.client.State(cctx, nd.Address, &noderpc.StateRequest{})
		cancel()
		switch {
		case err != nil:
		case st.Master:
			return nil, prereq("node %s is the master and is running; master-failover is for a master that is down: stop jobqd on %s first", c.Master, c.Master)
		case st.Config != nil && st.Config.Master == c.Master && st.Voter.Epoch <= st.Config.Epoch:
			// Elected (perhaps a moment ago, by a failover that ran
			// at the same time as this one) and starting: waiting for a
			// majority of the candidates to hold the queue.
			return nil, prereq("node %s is the master (epoch %d) and is starting: it answers but does not run the queue yet; see 'jobq cluster info' there, or stop jobqd on %s first if it must be replaced",
				c.Master, st.Config.Epoch, c.Master)
		}
	}
	voters := c.Voters()
	if noVoting {
		// Without a vote, the epoch must be one nobody reachable has
		// voted in or seen: above all of theirs.
		for _, nd := range c.Nodes {
			if nd.Name == n.self {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := n.client.State(cctx, nd.Address, &noderpc.StateRequest{})
			cancel()
			if err != nil {
				continue
			}
			epoch = max(epoch, st.Voter.Epoch+1)
			if st.Config != nil {
				epoch = max(epoch, st.Config.Epoch+1)
			}
		}
	}
	names := make([]string, len(voters))
	for i, v := range voters {
		names[i] = v.Name
	}
	tally := cluster.NewTally(epoch, names)
	own, err := n.app.Vote(n.self, &noderpc.VoteRequest{Epoch: epoch, Candidate: n.self})
	if err != nil {
		return nil, err
	}
	tally.Add(*own)
	var problems []string
	if !noVoting {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, v := range voters {
			if v.Name == n.self {
				continue
			}
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				b, err := n.client.Vote(cctx, v.Address, &noderpc.VoteRequest{Epoch: epoch, Candidate: n.self})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", v.Name, err))
					return
				}
				b.Voter = v.Name
				tally.Add(*b)
				if !b.Granted {
					problems = append(problems, fmt.Sprintf("%s has already voted for epoch %d", v.Name, b.Epoch))
				}
			})
		}
		wg.Wait()
		sort.Strings(problems)
		if !tally.Won() {
			return nil, prereq("master-failover refused: %d of %d master candidates voted for %s in epoch %d, %d needed (%s)",
				tally.Granted(), len(voters), n.self, epoch, cluster.Majority(len(voters)), strings.Join(problems, "; "))
		}
	}
	newest, pos := tally.Newest()
	if noVoting {
		newest, pos = n.self, n.app.Position()
	}
	// Still ours? A newer candidate may have had this node's vote since;
	// then this epoch's mastership must not start.
	stillOurs := func() error {
		if v := n.app.Voter(); v.Epoch != epoch || v.For != n.self {
			return prereq("won the vote for epoch %d, but this node has voted for %s in epoch %d since; see 'jobq cluster info'", epoch, v.For, v.Epoch)
		}
		return nil
	}
	if err := stillOurs(); err != nil {
		return nil, err
	}
	if newest != n.self {
		nd, _ := c.Node(newest)
		if err := n.pullQueue(ctx, nd.Address); err != nil {
			return nil, prereq("won the vote for epoch %d but cannot take the newest queue from %s (position %s): %v; run master-failover again", epoch, newest, pos, err)
		}
		if err := stillOurs(); err != nil {
			return nil, err
		}
	}
	if err := n.app.SetPosition(cluster.Position{Epoch: epoch}); err != nil {
		return nil, err
	}
	nc := c.Clone()
	nc.Master = n.self
	nc.Epoch = epoch
	nc.Serial++
	for i := range nc.Nodes {
		if nc.Nodes[i].Name == n.self {
			nc.Nodes[i].Syncing = false // forced with --no-voting: its queue is the queue now
		}
	}
	if err := n.setConfig(nc); err != nil {
		return nil, err
	}
	n.log.Info("won the election: this node is the master", "epoch", epoch, "queue_from", newest, "position", pos)
	go n.pushConfig(context.Background(), nc)
	// Wait until the queue runs here.
	for n.queue() == nil {
		ch := n.syncChanged()
		if n.config().Master != n.self {
			return nil, prereq("lost the mastership again while starting")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
	msg := fmt.Sprintf("Node %s is now the master (epoch %d)", n.self, epoch)
	if len(problems) > 0 {
		msg += "; not reached: " + strings.Join(problems, "; ")
	}
	return map[string]any{"master": n.self, "epoch": epoch, "message": msg}, nil
}

// pullQueue makes the local queue equal to the node's at addr.
func (n *nodeRT) pullQueue(ctx context.Context, addr string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	remote, err := n.client.State(cctx, addr, &noderpc.StateRequest{Archive: true})
	if err != nil {
		return err
	}
	live, arch, err := replica.Scan(n.st.Dir(), true, false)
	if err != nil {
		return err
	}
	d := replica.CompareQueues(remote.Files, remote.Archive, live, arch)
	// Writes first, removals last, each group committed together.
	for len(d.Write) > 0 {
		k := min(len(d.Write), 500)
		r, err := n.client.Fetch(cctx, addr, &noderpc.FetchRequest{Names: d.Write[:k]})
		if err != nil {
			return err
		}
		var tickets []store.Ticket
		for _, f := range r.Files {
			tickets = append(tickets, n.st.Write(f.Name, f.Data))
		}
		if err := waitAll(tickets); err != nil {
			return err
		}
		d.Write = d.Write[k:]
	}
	var tickets []store.Ticket
	for _, name := range d.Remove {
		tickets = append(tickets, n.st.Remove(name))
	}
	return waitAll(tickets)
}

// waitAll waits for every ticket and returns the first error.
func waitAll(tickets []store.Ticket) error {
	var first error
	for _, t := range tickets {
		if err := t.Wait(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
