// Package cluster is the pure core of jobq's cluster: the cluster
// configuration (nodes, roles, master, epoch) and which master candidates
// should vote in the cluster's Raft group (voters.go). Elections,
// majorities and replication are the Raft log's (internal/consensus,
// internal/member). It does no I/O: the daemon stores and sends what
// these functions decide.
package cluster

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// DefaultCandidatePoolSize is how many nodes are master candidates, and
// so how many vote in the cluster's Raft group, unless the configuration
// says otherwise (candidate_pool_size): five, which tolerates two
// failures, the size etcd's and Consul's authors recommend for
// production; more voters make every commit wait for more
// acknowledgements. (Ganeti's default is ten: its candidates only hold
// copies of the configuration.)
const DefaultCandidatePoolSize = 5

// MaxCandidatePoolSize is the largest candidate_pool_size accepted.
const MaxCandidatePoolSize = 9

// OldDefaultCandidatePoolSize is the candidate_pool_size every
// configuration of the releases before the Raft log holds (none could
// change it): an upgrade replaces it with DefaultCandidatePoolSize.
const OldDefaultCandidatePoolSize = 10

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
// candidate while the pool is not full, online, serial raised.
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
	nc.Nodes = append(nc.Nodes, Node{Name: name, Address: address, Candidate: cands < pool, Online: true})
	return nc, nil
}

// SetCandidatePoolSize returns a new configuration whose pool of master
// candidates (the voters) holds size nodes: as Ganeti's gnt-cluster modify
// --candidate-pool-size, online nodes that are not candidates become
// candidates, in configuration order, until the pool is full; a smaller
// pool leaves the candidates as they are (only the first size online
// candidates vote).
func (c *Config) SetCandidatePoolSize(size int) (*Config, error) {
	if size < 1 || size > MaxCandidatePoolSize {
		return nil, fmt.Errorf("the candidate pool size must be between 1 and %d (every candidate votes: an odd number, 3 or 5, suits most clusters), not %d", MaxCandidatePoolSize, size)
	}
	nc := c.Clone()
	nc.Serial++
	nc.CandidatePoolSize = size
	cands := 0
	for _, n := range nc.Nodes {
		if n.Candidate {
			cands++
		}
	}
	for i := range nc.Nodes {
		if cands >= size {
			break
		}
		if !nc.Nodes[i].Candidate && nc.Nodes[i].Online {
			nc.Nodes[i].Candidate = true
			cands++
		}
	}
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
	if candidate != nil {
		nd.Candidate = *candidate
	}
	if online != nil {
		nd.Online = *online
	}
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
