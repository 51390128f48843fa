package cluster

import "slices"

// Who votes. In the Raft cluster the master candidates are the voters of
// the consensus group and every other node receives the log as a learner
// (non-voter). The operator says which nodes may be candidates (the
// Candidate and Online flags) and how many (CandidatePoolSize); the
// master, which alone changes the group's membership, moves the group
// towards that one change at a time, with NextVoterChange, whenever its
// view changes (a node joins, catches up, is marked offline, is made a
// candidate or not).

// WantedVoters are the nodes that should vote: the master, then the
// online candidates in configuration order, up to pool in all (pool <= 0:
// DefaultCandidatePoolSize).
func WantedVoters(c *Config, master string, pool int) []string {
	if pool <= 0 {
		pool = DefaultCandidatePoolSize
	}
	out := []string{}
	if _, ok := c.Node(master); ok {
		out = append(out, master)
	}
	for _, n := range c.Nodes {
		if len(out) >= pool {
			break
		}
		if n.Name != master && n.Candidate && n.Online {
			out = append(out, n.Name)
		}
	}
	return out
}

// VoterChange is one membership change of the consensus group.
type VoterChange struct {
	Node    string
	Promote bool // true: learner to voter; false: voter to learner
}

// NextVoterChange is the next change that brings the group's voters
// towards WantedVoters: a wanted learner is promoted only once caughtUp
// says it holds the log (so that it never makes the cluster wait for it),
// the master is never demoted, and while the group has fewer voters than
// wanted promotions come first (a group keeps as many voters as it can
// while it changes). voters are the group's voters now, learners its
// learners. ok is false when nothing is to change.
//
// Only members count: a node of the configuration that is not in the
// group (it joins, or was taken out of the group first) takes no place in
// the pool, so that the group never keeps fewer voters than it could.
func NextVoterChange(c *Config, master string, pool int, voters, learners []string, caughtUp func(node string) bool) (VoterChange, bool) {
	members := c.Clone()
	members.Nodes = nil
	for _, nd := range c.Nodes {
		if slices.Contains(voters, nd.Name) || slices.Contains(learners, nd.Name) {
			members.Nodes = append(members.Nodes, nd)
		}
	}
	wanted := WantedVoters(members, master, pool)
	isWanted := map[string]bool{}
	for _, n := range wanted {
		isWanted[n] = true
	}
	isVoter := map[string]bool{}
	for _, n := range voters {
		isVoter[n] = true
	}
	isLearner := map[string]bool{}
	for _, n := range learners {
		isLearner[n] = true
	}
	promote := func() (VoterChange, bool) {
		for _, n := range wanted {
			if !isVoter[n] && isLearner[n] && caughtUp(n) {
				return VoterChange{Node: n, Promote: true}, true
			}
		}
		return VoterChange{}, false
	}
	demote := func() (VoterChange, bool) {
		// The last in configuration order first, the master never.
		for i := len(voters) - 1; i >= 0; i-- {
			if n := voters[i]; !isWanted[n] && n != master {
				return VoterChange{Node: n}, true
			}
		}
		return VoterChange{}, false
	}
	if len(voters) < len(wanted) {
		if ch, ok := promote(); ok {
			return ch, true
		}
		return demote()
	}
	if ch, ok := demote(); ok {
		return ch, true
	}
	return promote()
}
