package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// threeNodes is a cluster of a (master), b and c, all candidates.
func threeNodes(t testing.TB) *Config {
	t.Helper()
	c := NewConfig("a", "10.0.0.1:1811")
	var err error
	for _, n := range []string{"b", "c"} {
		if c, err = c.AddNode(n, "10.0.0."+map[string]string{"b": "2", "c": "3"}[n]+":1811"); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestNewConfig(t *testing.T) {
	c := NewConfig("node1", "192.0.2.1:1811")
	want := &Config{Name: "node1", Master: "node1", Epoch: 1, Serial: 1, CandidatePoolSize: DefaultCandidatePoolSize,
		Nodes: []Node{{Name: "node1", Address: "192.0.2.1:1811", Candidate: true, Online: true}}}
	if d := cmp.Diff(want, c); d != "" {
		t.Fatalf("NewConfig (-want +got):\n%s", d)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Role("node1") != RoleMaster {
		t.Fatalf("one-node cluster: role %s", c.Role("node1"))
	}
}

func TestCloneIsDeep(t *testing.T) {
	c := threeNodes(t)
	d := c.Clone()
	d.Nodes[1].Online = false
	d.Serial = 99
	if !c.Nodes[1].Online || c.Serial == 99 {
		t.Fatal("changing a clone changed the original")
	}
}

func TestNewer(t *testing.T) {
	base := &Config{Epoch: 2, Serial: 5}
	for _, tc := range []struct {
		epoch, serial int64
		want          bool
	}{
		{3, 1, true},  // a higher epoch wins whatever the serial
		{2, 6, true},  // same epoch, higher serial
		{2, 5, false}, // the same
		{2, 4, false},
		{1, 99, false}, // an older epoch loses whatever the serial
	} {
		c := &Config{Epoch: tc.epoch, Serial: tc.serial}
		if got := c.Newer(base); got != tc.want {
			t.Errorf("(%d,%d).Newer(2,5) = %v, want %v", tc.epoch, tc.serial, got, tc.want)
		}
	}
	if !base.Newer(nil) {
		t.Error("any configuration is newer than none")
	}
}

func TestRoles(t *testing.T) {
	c := threeNodes(t)
	c.Nodes = append(c.Nodes, Node{Name: "d", Address: "10.0.0.4:1811", Online: true}) // regular
	c.Nodes = append(c.Nodes, Node{Name: "e", Address: "10.0.0.5:1811", Candidate: true})
	for n, want := range map[string]string{"a": RoleMaster, "b": RoleCandidate, "c": RoleCandidate, "d": RoleRegular, "e": RoleCandidate, "zz": RoleRegular} {
		if got := c.Role(n); got != want {
			t.Errorf("Role(%s) = %s, want %s", n, got, want)
		}
	}
	// The master is the master even when its candidate flag is off.
	c.Nodes[0].Candidate = false
	if got := c.Role("a"); got != RoleMaster {
		t.Errorf("Role(a) = %s with its candidate flag off, want %s", got, RoleMaster)
	}
	if _, ok := c.Node("zz"); ok {
		t.Error("Node found a node that does not exist")
	}
}

func TestValidNodeName(t *testing.T) {
	for _, ok := range []string{"a", "node1.example.org", "N_2-x", strings.Repeat("a", 253)} {
		if err := ValidNodeName(ok); err != nil {
			t.Errorf("ValidNodeName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 254), "a b", "a/b", "..", ".", ".hidden", "-x", "ü", "a:1"} {
		if err := ValidNodeName(bad); err == nil {
			t.Errorf("ValidNodeName(%q) accepted it", bad)
		}
	}
}

func TestAddNode(t *testing.T) {
	c := NewConfig("a", "h1:1")
	c2, err := c.AddNode("b", "h2:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 1 || c.Serial != 1 {
		t.Fatal("AddNode changed its receiver")
	}
	if n, _ := c2.Node("b"); !n.Candidate || !n.Online || n.Address != "h2:1" || c2.Serial != 2 {
		t.Fatalf("added %+v, serial %d", n, c2.Serial)
	}
	if _, err := c2.AddNode("b", "h9:1"); !errors.Is(err, ErrNodeExists) {
		t.Errorf("a taken name: %v", err)
	}
	if _, err := c2.AddNode("x", "h2:1"); err == nil || errors.Is(err, ErrNodeExists) || !strings.Contains(err.Error(), "address") {
		t.Errorf("a taken address: %v", err)
	}
	if _, err := c2.AddNode("bad name", "h3:1"); err == nil {
		t.Error("an invalid name was accepted")
	}
}

func TestSetAddress(t *testing.T) {
	c := NewConfig("a", "")
	c2, err := c.SetAddress("a", "h1:1")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Node("a"); n.Address != "" || c.Serial != 1 {
		t.Fatal("SetAddress changed its receiver")
	}
	if n, _ := c2.Node("a"); n.Address != "h1:1" || c2.Serial != 2 {
		t.Fatalf("set %+v, serial %d", n, c2.Serial)
	}
	c3, err := c2.AddNode("b", "h2:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c3.SetAddress("a", "h2:1"); err == nil || !strings.Contains(err.Error(), "already uses") {
		t.Errorf("a taken address: %v", err)
	}
	if _, err := c3.SetAddress("z", "h3:1"); err == nil {
		t.Error("an unknown node was accepted")
	}
}

func TestAddNodeCandidatePool(t *testing.T) {
	for _, tc := range []struct {
		pool, want int // pool size, candidates after adding 12 nodes to a one-node cluster
	}{
		{0, DefaultCandidatePoolSize}, // 0: the default, five
		{3, 3},
		{1, 1},
		{20, 13},
	} {
		c := NewConfig("n0", "h0:1")
		c.CandidatePoolSize = tc.pool
		var err error
		for i := 1; i <= 12; i++ {
			if c, err = c.AddNode(fmt.Sprintf("n%d", i), fmt.Sprintf("h%d:1", i)); err != nil {
				t.Fatal(err)
			}
		}
		cands := 0
		for i, n := range c.Nodes {
			if n.Candidate {
				cands++
				if i >= tc.want {
					t.Errorf("pool %d: node %s is a candidate, but the first nodes should be", tc.pool, n.Name)
				}
			}
		}
		if cands != tc.want {
			t.Errorf("pool %d: %d candidates, want %d", tc.pool, cands, tc.want)
		}
	}
}

func TestRemoveNode(t *testing.T) {
	c := threeNodes(t)
	if _, err := c.RemoveNode("a"); err == nil || !strings.Contains(err.Error(), "master") {
		t.Errorf("removing the master: %v", err)
	}
	if _, err := c.RemoveNode("zz"); err == nil {
		t.Error("removing an unknown node succeeded")
	}
	c2, err := c.RemoveNode("b")
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.NodeNames(); !slices.Equal(got, []string{"a", "c"}) || c2.Serial != c.Serial+1 {
		t.Errorf("after removing b: %v, serial %d", got, c2.Serial)
	}
	if len(c.Nodes) != 3 {
		t.Error("RemoveNode changed its receiver")
	}
}

func TestModify(t *testing.T) {
	c := threeNodes(t)
	yes, no := true, false
	for _, tc := range []struct {
		name              string
		candidate, online *bool
		wantErr           string
	}{
		{"a", &no, nil, "must stay a master candidate"},
		{"a", nil, &no, "cannot be marked offline"},
		{"zz", &yes, nil, "not in the cluster"},
	} {
		if _, err := c.Modify(tc.name, tc.candidate, tc.online); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Modify(%s): %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	// The master may be confirmed a candidate and online.
	if _, err := c.Modify("a", &yes, &yes); err != nil {
		t.Errorf("Modify(a, yes, yes): %v", err)
	}
	c2, err := c.Modify("b", nil, &no)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c2.Node("b"); n.Online || !n.Candidate || c2.Serial != c.Serial+1 {
		t.Errorf("b after --offline: %+v, serial %d", n, c2.Serial)
	}
	if n, _ := c.Node("b"); !n.Online {
		t.Error("Modify changed its receiver")
	}
	c3, err := c2.Modify("c", &no, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c3.Node("c"); n.Candidate || !n.Online || c3.Role("c") != RoleRegular || c3.Serial != c2.Serial+1 {
		t.Errorf("c after --master-candidate no: %+v, role %s, serial %d", n, c3.Role("c"), c3.Serial)
	}
	// Back online and a candidate again: both flags at once.
	c4, err := c3.Modify("c", &yes, &yes)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c4.Node("c"); !n.Candidate || !n.Online || c4.Role("c") != RoleCandidate {
		t.Errorf("c after --master-candidate yes --online yes: %+v, role %s", n, c4.Role("c"))
	}
}

func TestValidate(t *testing.T) {
	good := threeNodes(t)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what    string
		change  func(c *Config)
		wantErr string
	}{
		{"epoch 0", func(c *Config) { c.Epoch = 0 }, "epoch 0"},
		{"bad name", func(c *Config) { c.Nodes[1].Name = "b/../x" }, "may hold only"},
		{"empty name", func(c *Config) { c.Nodes[1].Name = "" }, "1 to 253"},
		{"twice", func(c *Config) { c.Nodes[2].Name = "b" }, "appears twice"},
		{"no master", func(c *Config) { c.Master = "zz" }, "not a node"},
		{"empty master", func(c *Config) { c.Master = "" }, "not a node"},
	} {
		c := good.Clone()
		tc.change(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %v, want %q", tc.what, err, tc.wantErr)
		}
	}
}

func TestNodeNamesString(t *testing.T) {
	c := NewConfig("m", "h:1")
	c, _ = c.AddNode("z", "h:2")
	c, _ = c.AddNode("b", "h:3")
	if got := c.NodeNames(); !slices.Equal(got, []string{"b", "m", "z"}) {
		t.Errorf("NodeNames = %v", got)
	}
	if got, want := c.String(), "cluster m: master m, epoch 1, serial 3, nodes b,m,z"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

// TestConfigProperties applies random sequences of AddNode, RemoveNode and
// Modify: a successful change raises the serial by one, leaves its
// receiver alone and keeps the configuration valid with the master an
// online candidate; a refused one names why.
func TestConfigProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := NewConfig("n0", "h0:1")
		c.CandidatePoolSize = rapid.IntRange(0, 4).Draw(t, "pool")
		steps := rapid.IntRange(1, 30).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			before := c.Clone()
			var next *Config
			var err error
			name := fmt.Sprintf("n%d", rapid.IntRange(0, 6).Draw(t, "node"))
			switch op := rapid.SampledFrom([]string{"add", "remove", "modify"}).Draw(t, "op"); op {
			case "add":
				cands := 0
				for _, n := range c.Nodes {
					if n.Candidate {
						cands++
					}
				}
				pool := c.CandidatePoolSize
				if pool == 0 {
					pool = DefaultCandidatePoolSize
				}
				next, err = c.AddNode(name, "h"+name[1:]+":1")
				_, exists := c.Node(name)
				if exists != (err != nil) {
					t.Fatalf("AddNode(%s): exists %v, error %v", name, exists, err)
				}
				if err == nil {
					if n, _ := next.Node(name); n.Candidate != (cands < pool) {
						t.Fatalf("AddNode(%s) with %d candidates and pool %d: candidate %v", name, cands, pool, n.Candidate)
					}
				}
			case "remove":
				next, err = c.RemoveNode(name)
				_, exists := c.Node(name)
				if want := exists && name != c.Master; want != (err == nil) {
					t.Fatalf("RemoveNode(%s): %v (exists %v, master %s)", name, err, exists, c.Master)
				}
			case "modify":
				var cand, online *bool
				if rapid.Bool().Draw(t, "set-candidate") {
					v := rapid.Bool().Draw(t, "candidate")
					cand = &v
				}
				if rapid.Bool().Draw(t, "set-online") {
					v := rapid.Bool().Draw(t, "online")
					online = &v
				}
				next, err = c.Modify(name, cand, online)
				_, exists := c.Node(name)
				demotes := name == c.Master && (cand != nil && !*cand || online != nil && !*online)
				if want := exists && !demotes; want != (err == nil) {
					t.Fatalf("Modify(%s, %v, %v): %v", name, cand, online, err)
				}
			}
			if d := cmp.Diff(before, c); d != "" {
				t.Fatalf("the receiver changed:\n%s", d)
			}
			if err != nil {
				continue
			}
			if next.Serial != c.Serial+1 || next.Epoch != c.Epoch || !next.Newer(c) || c.Newer(next) {
				t.Fatalf("serial %d -> %d, epoch %d -> %d", c.Serial, next.Serial, c.Epoch, next.Epoch)
			}
			if err := next.Validate(); err != nil {
				t.Fatalf("invalid after a change: %v\n%s", err, next)
			}
			if m, ok := next.Node(next.Master); !ok || !m.Candidate || !m.Online || next.Role(next.Master) != RoleMaster {
				t.Fatalf("the master %s is not an online candidate: %+v\n%s", next.Master, m, next)
			}
			c = next
		}
	})
}

// SetCandidatePoolSize fills a larger pool with online nodes in
// configuration order, leaves candidates alone when it shrinks, and
// refuses sizes out of range.
func TestSetCandidatePoolSize(t *testing.T) {
	c := NewConfig("n0", "h0:1")
	c.CandidatePoolSize = 1
	var err error
	for i := 1; i <= 4; i++ {
		if c, err = c.AddNode(fmt.Sprintf("n%d", i), fmt.Sprintf("h%d:1", i)); err != nil {
			t.Fatal(err)
		}
	}
	off := false
	if c, err = c.Modify("n1", nil, &off); err != nil { // n1 offline
		t.Fatal(err)
	}
	cands := func(c *Config) (out []string) {
		for _, n := range c.Nodes {
			if n.Candidate {
				out = append(out, n.Name)
			}
		}
		return out
	}
	if got := cands(c); !slices.Equal(got, []string{"n0"}) {
		t.Fatalf("candidates with a pool of 1: %v", got)
	}
	big, err := c.SetCandidatePoolSize(3)
	if err != nil {
		t.Fatal(err)
	}
	if got := cands(big); !slices.Equal(got, []string{"n0", "n2", "n3"}) || big.CandidatePoolSize != 3 || big.Serial != c.Serial+1 {
		t.Fatalf("pool of 3: candidates %v, pool %d, serial %d", got, big.CandidatePoolSize, big.Serial)
	}
	if got := cands(c); !slices.Equal(got, []string{"n0"}) {
		t.Fatalf("the receiver changed: %v", got)
	}
	small, err := big.SetCandidatePoolSize(1)
	if err != nil {
		t.Fatal(err)
	}
	if got := cands(small); !slices.Equal(got, []string{"n0", "n2", "n3"}) || small.CandidatePoolSize != 1 {
		t.Fatalf("pool of 1 again: candidates %v, pool %d", got, small.CandidatePoolSize)
	}
	if w := WantedVoters(small, "n0", small.CandidatePoolSize); !slices.Equal(w, []string{"n0"}) {
		t.Fatalf("voters of a pool of 1: %v", w)
	}
	for _, size := range []int{0, -1, MaxCandidatePoolSize + 1} {
		if _, err := c.SetCandidatePoolSize(size); err == nil ||
			err.Error() != fmt.Sprintf("the candidate pool size must be between 1 and 9 (every candidate votes: an odd number, 3 or 5, suits most clusters), not %d", size) {
			t.Errorf("size %d: %v", size, err)
		}
	}
}
