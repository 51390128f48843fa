// Package cluster is the pure core of jobq's cluster: the cluster
// configuration (nodes, roles, master, epoch), majorities, replication
// positions and the election rules (who may vote for whom, when a
// candidate has won, whose queue is newest). It does no I/O: the daemon
// stores and sends what these functions decide.
package cluster

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// DefaultCandidatePoolSize is how many nodes are master candidates unless
// the configuration says otherwise: the first ten nodes, as Ganeti.
const DefaultCandidatePoolSize = 10

// Config is the cluster configuration, replicated to every node. Serial
// rises with every change; a node keeps the configuration with the
// highest (Epoch, Serial).
type Config struct {
	Name              string `json:"cluster_name"`
	Master            string `json:"master"`
	Epoch             int64  `json:"epoch"`
	Serial            int64  `json:"serial"`
	CandidatePoolSize int    `json:"candidate_pool_size"`
	Nodes             []Node `json:"nodes"`
}

// Node is one cluster member.
type Node struct {
	Name      string `json:"name"`
	Address   string `json:"address"` // node RPC HOST:PORT
	Candidate bool   `json:"master_candidate"`
	Online    bool   `json:"online"`
	// Syncing marks a master candidate that is catching up with the
	// queue: it joined, became a candidate or came back online. It gets
	// every change, as a voter does, but counts in no majority and
	// cannot become master until the master has seen it in sync and
	// cleared the mark (Synced), so that a node that holds nothing yet
	// never makes the cluster wait for it.
	Syncing bool `json:"syncing,omitempty"`
}

// Role names as `jobq node list` prints them.
const (
	RoleMaster    = "master"
	RoleCandidate = "candidate"
	RoleRegular   = "regular"
)

// NewConfig is the one-node cluster a fresh data directory gets: the node
// is master and candidate, epoch 1.
func NewConfig(node, address string) *Config {
	return &Config{Name: node, Master: node, Epoch: 1, Serial: 1,
		CandidatePoolSize: DefaultCandidatePoolSize,
		Nodes:             []Node{{Name: node, Address: address, Candidate: true, Online: true}}}
}

// Clone returns a deep copy.
func (c *Config) Clone() *Config {
	n := *c
	n.Nodes = slices.Clone(c.Nodes)
	return &n
}

// Newer reports whether c should replace old: a higher epoch, or the same
// epoch and a higher serial.
func (c *Config) Newer(old *Config) bool {
	if old == nil {
		return true
	}
	if c.Epoch != old.Epoch {
		return c.Epoch > old.Epoch
	}
	return c.Serial > old.Serial
}

// Node returns the named node.
func (c *Config) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Role is the node's role: master, candidate or regular.
func (c *Config) Role(name string) string {
	n, _ := c.Node(name)
	switch {
	case name == c.Master:
		return RoleMaster
	case n.Candidate:
		return RoleCandidate
	}
	return RoleRegular
}

// Replicas are the online master candidates, the master included: the
// nodes that hold a replica of the queue, those catching up included.
func (c *Config) Replicas() []Node {
	var out []Node
	for _, n := range c.Nodes {
		if n.Online && (n.Candidate || n.Name == c.Master) {
			out = append(out, n)
		}
	}
	return out
}

// Voters are the replicas that are not catching up: the nodes that count
// in majorities and vote in elections.
func (c *Config) Voters() []Node {
	var out []Node
	for _, n := range c.Replicas() {
		if !n.Syncing || n.Name == c.Master {
			out = append(out, n)
		}
	}
	return out
}

// Peers are the replicas other than self: the nodes the master sends
// the queue's changes to.
func (c *Config) Peers(self string) []Node {
	var out []Node
	for _, n := range c.Replicas() {
		if n.Name != self {
			out = append(out, n)
		}
	}
	return out
}

// Votes reports whether the named node counts in majorities.
func (c *Config) Votes(name string) bool {
	for _, n := range c.Voters() {
		if n.Name == name {
			return true
		}
	}
	return false
}

// Quorum is the number of voters (self included) that make a majority.
func (c *Config) Quorum() int { return Majority(len(c.Voters())) }

// Majority is the smallest number of n that is more than half.
func Majority(n int) int { return n/2 + 1 }

// ErrNodeExists is returned when adding a node whose name is taken.
var ErrNodeExists = errors.New("node already in the cluster")

// ValidNodeName reports whether name can name a node: a host name.
func ValidNodeName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("node name %q must be 1 to 253 characters", name)
	}
	if name[0] == '-' || name[0] == '.' {
		// "-x" reads as an option on a command line, "." and ".." as
		// directories.
		return fmt.Errorf("node name %q must not start with '-' or '.'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("node name %q may hold only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// AddNode returns a new configuration with node added: a master
// candidate while the pool is not full (catching up until Synced),
// online, serial raised.
func (c *Config) AddNode(name, address string) (*Config, error) {
	if err := ValidNodeName(name); err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		if n.Name == name {
			return nil, fmt.Errorf("%w: %s", ErrNodeExists, name)
		}
		if n.Address == address {
			return nil, fmt.Errorf("node %s already uses the address %s", n.Name, address)
		}
	}
	pool := c.CandidatePoolSize
	if pool <= 0 {
		pool = DefaultCandidatePoolSize
	}
	cands := 0
	for _, n := range c.Nodes {
		if n.Candidate {
			cands++
		}
	}
	nc := c.Clone()
	nc.Serial++
	nc.Nodes = append(nc.Nodes, Node{Name: name, Address: address, Candidate: cands < pool, Online: true, Syncing: cands < pool})
	return nc, nil
}

// RemoveNode returns a new configuration without the node. The master
// cannot be removed.
func (c *Config) RemoveNode(name string) (*Config, error) {
	if name == c.Master {
		return nil, fmt.Errorf("node %s is the master and cannot be removed; fail over to another node first", name)
	}
	i := slices.IndexFunc(c.Nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("node %s is not in the cluster", name)
	}
	nc := c.Clone()
	nc.Serial++
	nc.Nodes = slices.Delete(nc.Nodes, i, i+1)
	return nc, nil
}

// Modify returns a new configuration with the node's candidate or online
// flag changed (nil: unchanged). The master stays a candidate and online.
// A node that becomes a replica (an online candidate) catches up first
// (Syncing); one that stops being one is no longer catching up.
func (c *Config) Modify(name string, candidate, online *bool) (*Config, error) {
	i := slices.IndexFunc(c.Nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("node %s is not in the cluster", name)
	}
	if name == c.Master {
		if candidate != nil && !*candidate {
			return nil, fmt.Errorf("node %s is the master and must stay a master candidate", name)
		}
		if online != nil && !*online {
			return nil, fmt.Errorf("node %s is the master and cannot be marked offline", name)
		}
	}
	nc := c.Clone()
	nc.Serial++
	nd := &nc.Nodes[i]
	was := nd.Candidate && nd.Online
	if candidate != nil {
		nd.Candidate = *candidate
	}
	if online != nil {
		nd.Online = *online
	}
	switch is := nd.Candidate && nd.Online; {
	case name == c.Master:
	case is && !was:
		nd.Syncing = true
	case !is:
		nd.Syncing = false
	}
	return nc, nil
}

// Synced returns a new configuration in which the named node, caught up
// with the queue, counts in majorities.
func (c *Config) Synced(name string) (*Config, error) {
	i := slices.IndexFunc(c.Nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("node %s is not in the cluster", name)
	}
	if !c.Nodes[i].Syncing {
		return nil, fmt.Errorf("node %s is not catching up", name)
	}
	nc := c.Clone()
	nc.Serial++
	nc.Nodes[i].Syncing = false
	return nc, nil
}

// Validate checks a configuration received from elsewhere.
func (c *Config) Validate() error {
	if c.Epoch < 1 {
		return fmt.Errorf("cluster configuration has epoch %d; it must be at least 1", c.Epoch)
	}
	names := map[string]bool{}
	for _, n := range c.Nodes {
		if err := ValidNodeName(n.Name); err != nil {
			return err
		}
		if names[n.Name] {
			return fmt.Errorf("node %s appears twice in the cluster configuration", n.Name)
		}
		names[n.Name] = true
	}
	if !names[c.Master] {
		return fmt.Errorf("the master %q is not a node of the cluster configuration", c.Master)
	}
	if m, _ := c.Node(c.Master); m.Syncing {
		return fmt.Errorf("the master %s is marked as catching up with the queue", c.Master)
	}
	return nil
}

// NodeNames lists the node names, sorted.
func (c *Config) NodeNames() []string {
	out := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// String is a short description for logs.
func (c *Config) String() string {
	return fmt.Sprintf("cluster %s: master %s, epoch %d, serial %d, nodes %s", c.Name, c.Master, c.Epoch, c.Serial, strings.Join(c.NodeNames(), ","))
}

// SetAddress returns a new configuration in which the named node's node
// RPC address is address, serial raised.
func (c *Config) SetAddress(name, address string) (*Config, error) {
	i := slices.IndexFunc(c.Nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("node %s is not in the cluster", name)
	}
	for _, n := range c.Nodes {
		if n.Name != name && address != "" && n.Address == address {
			return nil, fmt.Errorf("node %s already uses the address %s", n.Name, address)
		}
	}
	nc := c.Clone()
	nc.Serial++
	nc.Nodes[i].Address = address
	return nc, nil
}
