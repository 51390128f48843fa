package cluster

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestWantedVoters(t *testing.T) {
	c := &Config{Nodes: []Node{
		{Name: "a", Candidate: true, Online: true},
		{Name: "b", Candidate: true, Online: false},
		{Name: "c", Candidate: false, Online: true},
		{Name: "d", Candidate: true, Online: true},
		{Name: "e", Candidate: true, Online: true},
	}}
	for _, tc := range []struct {
		master string
		pool   int
		want   []string
	}{
		{"a", 5, []string{"a", "d", "e"}},
		{"e", 2, []string{"e", "a"}},
		{"c", 2, []string{"c", "a"}}, // the master votes even if not a candidate by flag
		{"a", 0, []string{"a", "d", "e"}},
		{"gone", 3, []string{"a", "d", "e"}},
	} {
		if got := WantedVoters(c, tc.master, tc.pool); !slices.Equal(got, tc.want) {
			t.Errorf("master %s pool %d: %v, want %v", tc.master, tc.pool, got, tc.want)
		}
	}
}

// Following NextVoterChange from any group reaches the wanted voters
// without ever demoting the master, promoting a learner that has not
// caught up, leaving the group without a voter, or going over the pool
// while a wanted learner waits.
func TestNextVoterChangeConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 7).Draw(t, "nodes")
		c := &Config{}
		for i := range n {
			c.Nodes = append(c.Nodes, Node{Name: fmt.Sprint("n", i),
				Candidate: rapid.Bool().Draw(t, "cand"), Online: rapid.Bool().Draw(t, "online")})
		}
		master := c.Nodes[rapid.IntRange(0, n-1).Draw(t, "master")].Name
		pool := rapid.IntRange(1, 6).Draw(t, "pool")
		var voters, learners []string
		for _, nd := range c.Nodes {
			if nd.Name == master || rapid.Bool().Draw(t, "voter") {
				voters = append(voters, nd.Name)
			} else {
				learners = append(learners, nd.Name)
			}
		}
		behind := map[string]bool{}
		for _, l := range learners {
			behind[l] = rapid.Bool().Draw(t, "behind")
		}
		caughtUp := func(node string) bool { return !behind[node] }
		wanted := WantedVoters(c, master, pool)
		for step := 0; ; step++ {
			if step > 2*n {
				t.Fatalf("no convergence after %d steps: voters %v, wanted %v", step, voters, wanted)
			}
			ch, ok := NextVoterChange(c, master, pool, voters, learners, caughtUp)
			if !ok {
				break
			}
			if ch.Promote {
				if !slices.Contains(learners, ch.Node) || behind[ch.Node] || !slices.Contains(wanted, ch.Node) {
					t.Fatalf("promoted %s: learners %v, behind %v, wanted %v", ch.Node, learners, behind, wanted)
				}
				learners = slices.DeleteFunc(learners, func(s string) bool { return s == ch.Node })
				voters = append(voters, ch.Node)
			} else {
				if ch.Node == master || !slices.Contains(voters, ch.Node) || slices.Contains(wanted, ch.Node) {
					t.Fatalf("demoted %s: master %s, voters %v, wanted %v", ch.Node, master, voters, wanted)
				}
				voters = slices.DeleteFunc(voters, func(s string) bool { return s == ch.Node })
				learners = append(learners, ch.Node)
			}
			if len(voters) == 0 {
				t.Fatal("the group lost its last voter")
			}
		}
		// At rest: every wanted node that has caught up votes, nothing
		// else does.
		for _, w := range wanted {
			if !slices.Contains(voters, w) && !behind[w] {
				t.Fatalf("at rest %s (wanted, caught up) does not vote: voters %v", w, voters)
			}
		}
		for _, v := range voters {
			if !slices.Contains(wanted, v) {
				t.Fatalf("at rest %s votes but is not wanted (%v)", v, wanted)
			}
		}
	})
}

// The growth from one node: joining nodes are learners until
// caught up, then become voters up to the pool; the sixth stays a learner.
func TestGrowingToSixNodes(t *testing.T) {
	c := NewConfig("a", "a:1")
	voters, learners := []string{"a"}, []string{}
	for _, name := range []string{"b", "c", "d", "e", "f"} {
		c.Nodes = append(c.Nodes, Node{Name: name, Candidate: true, Online: true})
		learners = append(learners, name)
		if ch, ok := NextVoterChange(c, "a", 5, voters, learners, func(string) bool { return false }); ok {
			t.Fatalf("%s behind, yet %+v", name, ch)
		}
		ch, ok := NextVoterChange(c, "a", 5, voters, learners, func(string) bool { return true })
		if name == "f" {
			if ok {
				t.Fatalf("a sixth voter: %+v", ch)
			}
			continue
		}
		if !ok || ch != (VoterChange{Node: name, Promote: true}) {
			t.Fatalf("after %s joined and caught up: %+v %v", name, ch, ok)
		}
		voters = append(voters, name)
		learners = learners[:len(learners)-1]
	}
	// b is marked offline: it is demoted, then f takes its place.
	c.Nodes[1].Online = false
	all := func(string) bool { return true }
	ch, ok := NextVoterChange(c, "a", 5, voters, learners, all)
	if !ok || ch != (VoterChange{Node: "b"}) {
		t.Fatalf("after b went offline: %+v %v, want b demoted", ch, ok)
	}
	voters = []string{"a", "c", "d", "e"}
	learners = []string{"f", "b"}
	if ch, ok := NextVoterChange(c, "a", 5, voters, learners, all); !ok || ch != (VoterChange{Node: "f", Promote: true}) {
		t.Fatalf("after b's demotion: %+v %v, want f promoted", ch, ok)
	}
}

// TestNonMemberTakesNoPlace: a candidate of the configuration that is not
// in the group (taken out of it, or not yet added) takes no place in the
// pool: the next candidate that is a member is promoted instead, so that
// a group of two voters out of a pool of three gets its third.
func TestNonMemberTakesNoPlace(t *testing.T) {
	c := NewConfig("a", "a:1")
	for _, n := range []string{"b", "c", "d"} {
		var err error
		if c, err = c.AddNode(n, n+":1"); err != nil {
			t.Fatal(err)
		}
	}
	all := func(string) bool { return true }
	ch, ok := NextVoterChange(c, "a", 3, []string{"a", "b"}, []string{"d"}, all)
	if !ok || ch != (VoterChange{Node: "d", Promote: true}) {
		t.Fatalf("with c out of the group: %+v %v, want d promoted", ch, ok)
	}
	ch, ok = NextVoterChange(c, "a", 3, []string{"a", "b"}, []string{"c", "d"}, all)
	if !ok || ch != (VoterChange{Node: "c", Promote: true}) {
		t.Fatalf("with c in the group: %+v %v, want c promoted", ch, ok)
	}
}
