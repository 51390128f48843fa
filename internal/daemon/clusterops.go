package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/durable"
	"github.com/jobq-dev/jobq/internal/member"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/queuelog"
	"github.com/jobq-dev/jobq/internal/restricted"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/luxi"
)

// runRestricted runs the restricted command name contained as declared
// opcodes' programs are: a cgroup v2 of its own under jobqd's when there
// is one (initDeclared), so that the timeout and the fence's stop kill
// everything it started.
func (n *nodeRT) runRestricted(ctx context.Context, dir, name string) (bool, string) {
	return restricted.Run(ctx, dir, name, restricted.Options{Cgroup: n.cgroups})
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
		// The facts QueryClusterInfo tells Ganeti's clients.
		maxRunning := n.maxRunning()
		if q := n.queue(); q != nil {
			maxRunning = q.MaxRunning()
		}
		for k, v := range n.clusterFacts(maxRunning) {
			out[k] = v
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
	if res, ok, err := n.serveOpcodes(ctx, req); ok {
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
	// Voter: the node votes in the cluster's log (the master chooses
	// the voters among the online candidates, up to five).
	Voter bool `json:"voter"`
}

// replicationInfo is a node's copy of the log as this node knows it:
// "self", "in sync", "behind" (Behind entries), "catching up" (a member
// without a vote receiving the log), "not a member" (the master has not
// added it to the log's group yet) or "unknown" (asked of a node that is
// not the master).
type replicationInfo struct {
	Behind           int64    `json:"behind"`
	LastError        string   `json:"last_error,omitempty"`
	State            string   `json:"state"`
	UnreachableSince *float64 `json:"unreachable_since"` // Unix seconds
}

// text is the state in words (the dashboard's overview).
func (r replicationInfo) text() string {
	switch r.State {
	case "self":
		return "holds the queue (master)"
	case "behind":
		return fmt.Sprintf("behind by %d log entries", r.Behind)
	case "catching up":
		return "catching up: receiving the log, votes once it holds it (if the cluster wants it to)"
	case "not a member":
		return "not in the log's group yet"
	}
	return r.State
}

// nodeList describes every node with its copy of the log as this node
// knows it (the master knows every member's).
func (n *nodeRT) nodeList() []nodeInfo {
	c := n.config()
	rn := n.raft()
	leader := rn.Leader()
	members := map[string]consensus.Member{}
	for _, mb := range rn.Members() {
		members[mb.Name] = mb
	}
	lead := rn.IsLeader()
	commit := rn.CommitIndex()
	var out []nodeInfo
	for _, nd := range sortedNodes(c) {
		mb, isMember := members[nd.Name]
		repl := replicationInfo{State: "unknown"}
		switch match := rn.Match(nd.Name); {
		case nd.Name == n.self && lead:
			repl.State = "self"
		case !isMember:
			repl.State = "not a member"
		case !lead:
		case !mb.Voter:
			repl.State = "catching up"
			if match >= commit {
				repl.State = "in sync"
			}
		case match >= commit:
			repl.State = "in sync"
		default:
			repl.State, repl.Behind = "behind", int64(commit-match)
		}
		role := c.Role(nd.Name)
		if leader != "" {
			switch {
			case nd.Name == leader:
				role = cluster.RoleMaster
			case nd.Candidate:
				role = cluster.RoleCandidate
			default:
				role = cluster.RoleRegular
			}
		}
		out = append(out, nodeInfo{Name: nd.Name, Address: nd.Address, Role: role,
			Online: nd.Online, Candidate: nd.Candidate, Replication: repl, Voter: mb.Voter})
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

// changeConfig agrees a change of the configuration through the log (on
// the master only).
func (n *nodeRT) changeConfig(ctx context.Context, change func(*cluster.Config) (*cluster.Config, error)) (*cluster.Config, error) {
	// One change at a time: two made from the same configuration would
	// each lose the other's.
	n.changeMu.Lock()
	defer n.changeMu.Unlock()
	if n.queue() == nil {
		return nil, n.notMaster()
	}
	nc, err := change(n.config())
	if err != nil {
		return nil, prereq("%v", err)
	}
	if err := n.member().SetCluster(ctx, nc); err != nil {
		return nil, err
	}
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
			warnings = append(warnings, fmt.Sprintf("node %s still answers at %s; it no longer votes and runs nothing the master orders until it is marked online again", name, old.Address))
		}
	}
	if _, err := n.changeConfig(ctx, func(c *cluster.Config) (*cluster.Config, error) { return c.Modify(name, cand, online) }); err != nil {
		return nil, err
	}
	return map[string]any{"node": n.nodeEntry(name), "warnings": nonNil(warnings)}, nil
}

func (n *nodeRT) removeNode(ctx context.Context, name string) (any, error) {
	var warnings []string
	old, ok := n.config().Node(name)
	if !ok {
		return nil, prereq("node %s is not in the cluster", name)
	}
	if name == n.self {
		return nil, prereq("node %s is the master and cannot be removed; move the mastership first with 'jobq cluster master-failover' on another node", name)
	}
	if old.Online && n.client != nil && n.answers(ctx, old.Address) {
		warnings = append(warnings, fmt.Sprintf("node %s still runs jobqd at %s; stop it and clear its data directory before it joins again", name, old.Address))
	}
	n.changeMu.Lock()
	if n.queue() == nil {
		n.changeMu.Unlock()
		return nil, n.notMaster()
	}
	// Out of the group first: a node that is in the configuration but
	// not in the group is added again by the next master.
	if _, isMember := n.raftMember(name); isMember {
		if err := n.member().RemoveNode(ctx, name); err != nil {
			n.changeMu.Unlock()
			return nil, prereq("cannot remove %s from the cluster's log: %v", name, err)
		}
	}
	n.changeMu.Unlock()
	if _, err := n.changeConfig(ctx, func(c *cluster.Config) (*cluster.Config, error) { return c.RemoveNode(name) }); err != nil {
		return nil, err
	}
	return map[string]any{"warnings": nonNil(warnings)}, nil
}

func (n *nodeRT) raftMember(name string) (consensus.Member, bool) {
	for _, mb := range n.raft().Members() {
		if mb.Name == name {
			return mb, true
		}
	}
	return consensus.Member{}, false
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
	// CatchingUp: the node is behind the log (OK is false even when its
	// files are the master's now).
	CatchingUp bool     `json:"catching_up,omitempty"`
	Missing    []string `json:"missing"`
	Extra      []string `json:"extra"`
	Differ     []string `json:"differ"`
}

// scanNode is a node's queue files, archive included and hashed.
func (n *nodeRT) scanNode(ctx context.Context, nd cluster.Node) ([]noderpc.FileInfo, error) {
	if nd.Name == n.self {
		if err := n.st.Flush(); err != nil {
			return nil, err
		}
		live, arch, err := queuelog.Scan(n.st.Dir(), true, true)
		return append(live, arch...), err
	}
	if n.client == nil {
		return nil, errors.New("this node serves no node RPC (--rpc-addr)")
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	st, err := n.client.State(cctx, nd.Address, &noderpc.StateRequest{Archive: true, HashArchive: true})
	if err != nil {
		return nil, err
	}
	return append(st.Files, st.Archive...), nil
}

// verifyOnce compares every online node's files, archive included and
// hashed, with the master's queue.
func (n *nodeRT) verifyOnce(ctx context.Context) (ref string, nodes []verifyNode, err error) {
	c := n.config()
	ref = n.leader()
	if ref == "" {
		return c.Master, nil, errors.New("no master is elected")
	}
	refNode, ok := c.Node(ref)
	if !ok {
		return ref, nil, fmt.Errorf("the master %s is not in the configuration", ref)
	}
	refFiles, err := n.scanNode(ctx, refNode)
	if err != nil {
		return ref, nil, fmt.Errorf("cannot read the master's queue: %w", err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nd := range c.Nodes {
		if nd.Name == ref || !nd.Online {
			continue
		}
		wg.Go(func() {
			v := verifyNode{Name: nd.Name, Missing: []string{}, Extra: []string{}, Differ: []string{}}
			files, err := n.scanNode(ctx, nd)
			if err != nil {
				v.Error = err.Error()
			} else {
				have := map[string]bool{}
				for _, f := range files {
					have[f.Name] = true
				}
				d := queuelog.Compare(refFiles, files)
				for _, w := range d.Write {
					if have[w] {
						v.Differ = append(v.Differ, w)
					} else {
						v.Missing = append(v.Missing, w)
					}
				}
				v.Extra = append(v.Extra, d.Remove...)
				v.OK = d.Empty()
			}
			mu.Lock()
			nodes = append(nodes, v)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return ref, nodes, nil
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
// (on the master: the differing and missing files are written again
// through the log, the extra ones removed, on every node) and wait up to
// wait for the copies to agree (a node behind the log converges by
// itself).
func (n *nodeRT) verifyQueue(ctx context.Context, repair bool, wait time.Duration) (any, error) {
	if n.client == nil {
		return map[string]any{"ok": true, "reference": n.self, "repaired": false, "nodes": []verifyNode{}}, nil
	}
	deadline := time.Now().Add(wait)
	repaired := false
	for {
		ref, nodes, err := n.verifyOnce(ctx)
		if err != nil && !time.Now().Before(deadline) {
			return nil, prereq("%v", err)
		}
		ok := err == nil && allOK(nodes)
		if err == nil && !ok && repair && !repaired {
			if n.queue() == nil {
				return nil, prereq("only the master can repair the queue; run this on %s", ref)
			}
			if err := n.repairQueue(nodes); err != nil {
				return nil, err
			}
			repaired = true
			if wait < 30*time.Second {
				deadline = time.Now().Add(30 * time.Second)
			}
			continue
		}
		if err == nil && (ok || !time.Now().Before(deadline)) {
			return map[string]any{"ok": ok, "reference": ref, "repaired": repaired && ok, "nodes": nodes}, nil
		}
		t := time.NewTimer(min(250*time.Millisecond, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// repairQueue writes the master's version of every file some node lacks
// or holds otherwise, and removes the files only other nodes hold,
// through the log.
func (n *nodeRT) repairQueue(nodes []verifyNode) error {
	write, remove := map[string]bool{}, map[string]bool{}
	for _, v := range nodes {
		if v.Error != "" {
			continue
		}
		for _, f := range append(append([]string{}, v.Differ...), v.Missing...) {
			write[f] = true
		}
		for _, f := range v.Extra {
			remove[f] = true
		}
	}
	names := make([]string, 0, len(write))
	for f := range write {
		names = append(names, f)
	}
	sort.Strings(names)
	if err := n.st.Flush(); err != nil {
		return err
	}
	files, err := queuelog.ReadFiles(n.st.Dir(), names)
	if err != nil {
		return err
	}
	var tickets []store.Ticket
	for _, f := range files {
		tickets = append(tickets, n.st.Write(f.Name, f.Data))
	}
	for f := range remove {
		tickets = append(tickets, n.st.Remove(f))
	}
	n.log.Info("repairing the queue: files written again and removed through the log", "written", len(files), "removed", len(remove))
	return waitAll(tickets)
}

// masterFailover makes this node the master. With a master running, it
// asks it to hand the leadership over; with none (a majority of the
// voters lost), --no-voting makes this node the only voter of a new
// cluster with its queue.
func (n *nodeRT) masterFailover(ctx context.Context, noVoting bool) (any, error) {
	rn := n.raft()
	if rn.IsLeader() {
		return nil, prereq("this node (%s) is already the master", n.self)
	}
	c := n.config()
	me, ok := c.Node(n.self)
	if !ok || !me.Candidate || !me.Online {
		return nil, prereq("node %s is not an online master candidate; only those can become master", n.self)
	}
	if noVoting {
		return n.forceNewCluster(ctx)
	}
	mb, ok := n.raftMember(n.self)
	if !ok || !mb.Voter {
		return nil, prereq("node %s does not vote yet (it is catching up with the log, or the cluster has enough voters); fail over to a node that 'jobq node list' shows as a voter", n.self)
	}
	if rn.Leader() == "" {
		return nil, prereq("no master is elected and this node cannot become one: it does not reach a majority of the voters; bring voters back (a majority elects a master by itself), or, if they are lost for good, use --no-voting --yes-do-it here and accept that the jobs this node lacks are lost")
	}
	// The master lets its running opcodes finish first (up to its
	// shutdown timeout).
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second+n.o.ShutdownTimeout)
	defer cancel()
	if err := n.askHandOver(tctx); err != nil {
		return nil, prereq("the master (%s) did not hand the leadership over: %v; see 'jobq node list'", rn.Leader(), err)
	}
	if err := n.waitQueue(tctx); err != nil {
		return nil, err
	}
	term := n.term()
	return map[string]any{"master": n.self, "epoch": term, "message": fmt.Sprintf("Node %s is now the master (epoch %d)", n.self, term)}, nil
}

// forceNewCluster is master-failover --no-voting: this node leaves its
// group and starts a new one alone, with its queue and the cluster's
// settings; the other nodes must join it again (with empty data
// directories). The old group's members cannot reach the new group: it
// talks on another stream.
func (n *nodeRT) forceNewCluster(ctx context.Context) (any, error) {
	dropped, err := n.restartAlone()
	if err != nil {
		return nil, err
	}
	if err := n.waitQueue(ctx); err != nil {
		return nil, err
	}
	term := n.term()
	msg := fmt.Sprintf("Node %s is now the master (epoch %d) of a new cluster of one node", n.self, term)
	if len(dropped) > 0 {
		msg += fmt.Sprintf("; the other nodes (%s) must join it again with empty data directories", strings.Join(dropped, ", "))
	}
	return map[string]any{"master": n.self, "epoch": term, "message": msg}, nil
}

// restartAlone sets the log aside and starts a new group of this node
// alone; it returns the nodes left out.
func (n *nodeRT) restartAlone() ([]string, error) {
	// No configuration change meanwhile; the new member's first
	// leadership takes the lock too, once this returns.
	n.changeMu.Lock()
	defer n.changeMu.Unlock()
	old := n.member()
	c := n.config()
	if err := old.Close(); err != nil {
		n.log.Warn("stopping the cluster member", "err", err)
	}
	// Everything this node's log holds goes into its queue first: it may
	// not know that its last entries were committed (and acknowledged).
	applied, err := member.ApplyLog(member.Config{Dir: filepath.Join(n.o.DataDir, "cluster"), Store: n.st, Log: n.log})
	if err != nil {
		return nil, fmt.Errorf("cannot apply this node's log to its queue: %w", err)
	}
	if err := n.st.Sync(); err != nil {
		return nil, fmt.Errorf("cannot make this node's queue durable: %w", err)
	}
	n.log.Info("applied this node's whole log to its queue", "entries", applied)
	dir := raftDir(n.o.DataDir)
	aside := dir + ".forced-" + time.Now().UTC().Format("20060102T150405")
	if err := durable.Rename(dir, aside); err != nil {
		return nil, fmt.Errorf("cannot set the old log aside: %w", err)
	}
	group := newGroup()
	if err := writeDurable(groupFile(n.o.DataDir), []byte(group+"\n")); err != nil {
		return nil, err
	}
	if err := durable.Create(snapshotPending(n.o.DataDir), 0o640); err != nil {
		return nil, err
	}
	nc := c.Clone()
	nc.Serial++
	nc.Nodes = nil
	var dropped []string
	for _, nd := range c.Nodes {
		if nd.Name == n.self {
			nc.Nodes = append(nc.Nodes, nd)
		} else {
			dropped = append(dropped, nd.Name)
		}
	}
	n.mu.Lock()
	n.boot = nc
	n.mu.Unlock()
	// The new cluster's terms start again: what the old one ordered here
	// stops.
	if stopped := n.fence.Reset(); stopped > 0 {
		n.log.Warn("stopped the executions the old cluster's masters ordered here", "stopped", stopped)
	}
	n.log.Warn("master-failover --no-voting: this node starts a new cluster alone with its queue; the other nodes must join it again", "old_log", aside, "dropped", dropped)
	if err := n.startMember(group, true); err != nil {
		return nil, fmt.Errorf("cannot start the new cluster: %w", err)
	}
	return dropped, nil
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

// handOverMethod is the LUXI call, between nodes only (on the forwarded
// calls' stream), that asks the master for a graceful hand-over of the
// leadership to the calling node: JobqHandOver [NAME].
const handOverMethod = "JobqHandOver"

// askHandOver asks the master to hand the leadership to this node once
// its running opcodes finished, and waits until this node leads. While
// the master it knows does not answer (dead: the others elect another)
// it asks the next one. A master of a release without the call hands the
// leadership over at once.
func (n *nodeRT) askHandOver(ctx context.Context) error {
	rn := n.raft()
	if n.client == nil {
		return rn.TransferLeadership(ctx, n.self)
	}
	for wait := 50 * time.Millisecond; !rn.IsLeader(); wait = min(2*wait, time.Second) {
		changed := rn.Changed()
		if leader, addr := rn.Leader(), rn.LeaderAddr(); addr != "" && leader != n.self && leader != "" {
			n.mu.Lock()
			group := n.group
			n.mu.Unlock()
			_, err := n.callMaster(ctx, leader, addr, luxiStream(group), handOverMethod, n.self)
			var re *luxi.Error
			var de *luxi.DialError
			switch {
			case err == nil:
				// The master saw this node lead; this node learns it at
				// the next message.
			case errors.As(err, &re) && re.Class == "RequestError":
				return rn.TransferLeadership(ctx, n.self) // an older master
			case ctx.Err() != nil:
				return ctx.Err()
			case luxi.IsNoMaster(err) || errors.As(err, &de) || !errors.As(err, &re):
				// Not the master any more, or gone: ask the next one.
				n.log.Debug("master-failover: the master did not take the request; asking the next one", "err", err)
			default:
				return err // refused (not a voter, ...)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
	return nil
}

// handOver is the master's side of JobqHandOver.
func (n *nodeRT) handOver(ctx context.Context, req *luxi.Request) (any, error) {
	var to string
	if err := req.UnmarshalArgs(&to); err != nil {
		return nil, badArgs(req.Method, "expected [node]")
	}
	m := n.member()
	if m == nil || n.queue() == nil {
		return nil, n.notMaster()
	}
	n.log.Info("master-failover: handing the leadership over once the running opcodes finish", "to", to, "timeout", n.o.ShutdownTimeout)
	if err := m.HandOver(ctx, to); err != nil {
		return nil, err
	}
	return true, nil
}
