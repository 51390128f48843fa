package cluster

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestPosition(t *testing.T) {
	ordered := []Position{{}, {0, 5}, {1, 0}, {1, 1}, {1, 9}, {2, 0}, {3, 2}}
	for i, p := range ordered {
		for j, q := range ordered {
			if got := p.Less(q); got != (i < j) {
				t.Errorf("%v.Less(%v) = %v", p, q, got)
			}
		}
	}
	if s := (Position{Epoch: 3, Seq: 14}).String(); s != "3/14" {
		t.Errorf("String = %q", s)
	}
}

func TestVoterVote(t *testing.T) {
	v := Voter{Epoch: 2, For: "b"}
	for _, tc := range []struct {
		epoch   int64
		cand    string
		want    Voter
		granted bool
	}{
		{3, "c", Voter{3, "c"}, true},  // a newer epoch
		{2, "b", Voter{2, "b"}, true},  // the same vote again (a retried request)
		{2, "c", Voter{2, "b"}, false}, // a second candidate in the same epoch
		{1, "b", Voter{2, "b"}, false}, // an older epoch
		{1, "c", Voter{2, "b"}, false},
	} {
		got, granted := v.Vote(tc.epoch, tc.cand)
		if got != tc.want || granted != tc.granted {
			t.Errorf("%+v.Vote(%d, %s) = %+v, %v; want %+v, %v", v, tc.epoch, tc.cand, got, granted, tc.want, tc.granted)
		}
	}
	// A fresh voter grants anything from epoch 1.
	if got, ok := (Voter{}).Vote(1, "a"); !ok || got != (Voter{1, "a"}) {
		t.Errorf("fresh voter: %+v, %v", got, ok)
	}
}

func TestVoterObserve(t *testing.T) {
	v := Voter{Epoch: 2, For: "b"}
	if got := v.Observe(3, "c"); got != (Voter{3, "c"}) {
		t.Errorf("a newer epoch: %+v", got)
	}
	for _, e := range []int64{1, 2} {
		if got := v.Observe(e, "c"); got != v {
			t.Errorf("Observe(%d, c) = %+v, want unchanged", e, got)
		}
	}
	// Once a master of epoch 3 is known, no vote for epoch 3 is given to
	// anyone else.
	if _, ok := v.Observe(3, "c").Vote(3, "d"); ok {
		t.Error("a vote for an epoch whose master is known")
	}
}

func TestVoterAcceptWrite(t *testing.T) {
	for _, tc := range []struct {
		v      Voter
		epoch  int64
		master string
		want   bool
	}{
		{Voter{2, "b"}, 2, "b", true},  // the master it voted for
		{Voter{2, "b"}, 2, "c", false}, // someone else claiming the same epoch
		{Voter{2, "b"}, 1, "a", false}, // an old master
		{Voter{2, "b"}, 3, "c", true},  // a newer master (the node was not asked)
		{Voter{2, ""}, 2, "c", true},   // an epoch learnt without a name
		{Voter{}, 1, "a", true},
	} {
		if got := tc.v.AcceptWrite(tc.epoch, tc.master); got != tc.want {
			t.Errorf("%+v.AcceptWrite(%d, %s) = %v, want %v", tc.v, tc.epoch, tc.master, got, tc.want)
		}
	}
}

// TestVoterProperties: whatever vote requests and observations reach a
// voter in whatever order, its epoch never goes down, it grants at most
// one candidate per epoch, and after granting epoch E to C it accepts
// writes of epoch E from C only, and none from older epochs.
func TestVoterProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var v Voter
		granted := map[int64]string{}
		for i, n := 0, rapid.IntRange(1, 40).Draw(t, "n"); i < n; i++ {
			epoch := rapid.Int64Range(0, 6).Draw(t, "epoch")
			who := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "who")
			old := v
			if rapid.Bool().Draw(t, "observe") {
				v = v.Observe(epoch, who)
			} else {
				var ok bool
				v, ok = v.Vote(epoch, who)
				if ok {
					if g, seen := granted[epoch]; seen && g != who {
						t.Fatalf("epoch %d granted to %s and %s", epoch, g, who)
					}
					granted[epoch] = who
					if v != (Voter{epoch, who}) {
						t.Fatalf("granted %d/%s but stored %+v", epoch, who, v)
					}
				} else if v != old {
					t.Fatalf("a refused vote changed the record: %+v -> %+v", old, v)
				}
			}
			if v.Epoch < old.Epoch {
				t.Fatalf("the epoch went down: %+v -> %+v", old, v)
			}
			for e := int64(0); e < v.Epoch; e++ {
				if v.AcceptWrite(e, who) {
					t.Fatalf("%+v accepts a write of the older epoch %d", v, e)
				}
			}
			for _, m := range []string{"a", "b", "c"} {
				if want := m == v.For || v.For == ""; v.AcceptWrite(v.Epoch, m) != want {
					t.Fatalf("%+v.AcceptWrite(%d, %s) = %v", v, v.Epoch, m, !want)
				}
			}
		}
	})
}

func voterNames(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("v%d", i))
	}
	return out
}

// TestTallyWon counts k granted ballots among n voters, for n from 1 to 7.
func TestTallyWon(t *testing.T) {
	for n := 1; n <= 7; n++ {
		voters := voterNames(n)
		for k := 0; k <= n; k++ {
			tl := NewTally(4, voters)
			for i, v := range voters {
				tl.Add(Ballot{Voter: v, Granted: i < k, Epoch: 4})
			}
			if want := 2*k > n; tl.Won() != want || tl.Granted() != k {
				t.Errorf("%d of %d granted: Won %v (want %v), Granted %d", k, n, tl.Won(), want, tl.Granted())
			}
		}
	}
}

func TestTallyIgnores(t *testing.T) {
	tl := NewTally(3, []string{"a", "b", "c"})
	tl.Add(Ballot{Voter: "x", Granted: true, Epoch: 3})                            // not a voter
	tl.Add(Ballot{Voter: "y", Granted: true, Epoch: 3})                            // not a voter
	tl.Add(Ballot{Voter: "a", Granted: true, Epoch: 2, Position: Position{9, 9}})  // another election's answer
	tl.Add(Ballot{Voter: "b", Granted: true, Epoch: 3, Position: Position{1, 4}})  // counts
	tl.Add(Ballot{Voter: "b", Granted: true, Epoch: 3, Position: Position{1, 4}})  // twice: once
	tl.Add(Ballot{Voter: "c", Granted: false, Epoch: 5, Position: Position{2, 0}}) // a refusal
	tl.Add(Ballot{Voter: "a", Granted: false, Epoch: 4, Position: Position{1, 0}}) // a refusal
	if tl.Granted() != 1 || tl.Won() {
		t.Fatalf("Granted %d, Won %v", tl.Granted(), tl.Won())
	}
	if n, p := tl.Newest(); n != "b" || p != (Position{1, 4}) {
		t.Errorf("Newest = %s %v", n, p)
	}
	if h := tl.HighestSeen(); h != 5 {
		t.Errorf("HighestSeen = %d", h)
	}
	var refused []string
	for _, b := range tl.Refusals() {
		refused = append(refused, b.Voter)
	}
	if !slices.Equal(refused, []string{"a", "c"}) {
		t.Errorf("Refusals = %v", refused)
	}
	// An empty tally: nobody, no position, the own epoch.
	empty := NewTally(7, []string{"a"})
	if n, p := empty.Newest(); n != "" || p != (Position{}) || empty.HighestSeen() != 7 || empty.Won() {
		t.Errorf("empty tally: %q %v %d %v", n, p, empty.HighestSeen(), empty.Won())
	}
}

func TestTallyNewest(t *testing.T) {
	tl := NewTally(5, []string{"a", "b", "c", "d", "e"})
	for _, b := range []Ballot{
		{Voter: "e", Granted: true, Epoch: 5, Position: Position{3, 2}},
		{Voter: "d", Granted: true, Epoch: 5, Position: Position{4, 1}},
		{Voter: "c", Granted: true, Epoch: 5, Position: Position{4, 1}},
		{Voter: "b", Granted: true, Epoch: 5, Position: Position{3, 9}},
		{Voter: "a", Granted: false, Epoch: 6, Position: Position{4, 7}}, // newer, but refused
	} {
		tl.Add(b)
	}
	// The newest position among the granting voters is 4/1; c and d tie
	// and the first name is taken.
	if n, p := tl.Newest(); n != "c" || p != (Position{4, 1}) {
		t.Errorf("Newest = %s %v, want c 4/1", n, p)
	}
}

// TestTallyProperties: the newest is a granting voter at a position no
// other granted ballot passes; Granted counts distinct granting voters;
// Won is a strict majority of the voters.
func TestTallyProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 7).Draw(t, "voters")
		voters := voterNames(n)
		epoch := rapid.Int64Range(1, 4).Draw(t, "epoch")
		tl := NewTally(epoch, voters)
		last := map[string]Ballot{}
		for i, k := 0, rapid.IntRange(0, 15).Draw(t, "ballots"); i < k; i++ {
			b := Ballot{
				Voter:    rapid.SampledFrom(append(slices.Clone(voters), "outsider")).Draw(t, "voter"),
				Granted:  rapid.Bool().Draw(t, "granted"),
				Epoch:    rapid.Int64Range(epoch-1, epoch+1).Draw(t, "ballot-epoch"),
				Position: Position{Epoch: rapid.Int64Range(0, 3).Draw(t, "pe"), Seq: rapid.Int64Range(0, 3).Draw(t, "ps")},
			}
			tl.Add(b)
			if slices.Contains(voters, b.Voter) && (!b.Granted || b.Epoch == epoch) {
				last[b.Voter] = b
			}
		}
		granted := 0
		var best Position
		for _, b := range last {
			if b.Granted {
				granted++
				if best.Less(b.Position) {
					best = b.Position
				}
			}
		}
		if tl.Granted() != granted || tl.Won() != (granted >= n/2+1) {
			t.Fatalf("Granted %d (want %d), Won %v of %d", tl.Granted(), granted, tl.Won(), n)
		}
		name, p := tl.Newest()
		if granted == 0 {
			if name != "" {
				t.Fatalf("Newest %s with no granted ballot", name)
			}
			return
		}
		if b, ok := last[name]; !ok || !b.Granted || b.Position != p || p != best {
			t.Fatalf("Newest %s %v; want a granting voter at %v", name, p, best)
		}
	})
}

// TestElectionAtMostOneWinner: any number of candidates ask any voters for
// the same epoch, in any order, each voter deciding with Voter.Vote; at
// most one candidate's tally is won, with 1 to 7 voters.
func TestElectionAtMostOneWinner(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 7).Draw(t, "voters")
		voters := voterNames(n)
		recs := make([]Voter, n)
		for i := range recs {
			recs[i] = Voter{Epoch: rapid.Int64Range(0, 3).Draw(t, "voted"), For: "old"}
		}
		epoch := int64(3)
		cands := rapid.SliceOfNDistinct(rapid.SampledFrom(voters), 1, n, func(s string) string { return s }).Draw(t, "candidates")
		tallies := map[string]*Tally{}
		for _, c := range cands {
			tallies[c] = NewTally(epoch, voters)
		}
		for i, k := 0, rapid.IntRange(0, 3*n*len(cands)).Draw(t, "requests"); i < k; i++ {
			c := rapid.SampledFrom(cands).Draw(t, "candidate")
			vi := rapid.IntRange(0, n-1).Draw(t, "voter")
			var ok bool
			recs[vi], ok = recs[vi].Vote(epoch, c)
			tallies[c].Add(Ballot{Voter: voters[vi], Granted: ok, Epoch: recs[vi].Epoch})
		}
		var won []string
		for c, tl := range tallies {
			if tl.Won() {
				won = append(won, c)
			}
		}
		if len(won) > 1 {
			t.Fatalf("several candidates won epoch %d: %v", epoch, won)
		}
	})
}

func TestAccept(t *testing.T) {
	pos := Position{Epoch: 2, Seq: 5}
	for _, tc := range []struct {
		epoch, seq int64
		want       bool
	}{
		{2, 6, true},  // the next batch
		{2, 5, false}, // again
		{2, 7, false}, // a gap
		{2, 1, false},
		{3, 1, false}, // a new master: resync first
		{1, 6, false},
	} {
		if got := Accept(pos, tc.epoch, tc.seq); got != tc.want {
			t.Errorf("Accept(%v, %d, %d) = %v, want %v", pos, tc.epoch, tc.seq, got, tc.want)
		}
	}
	if Accept(Position{}, 1, 1) {
		t.Error("a replica at zero accepts a batch (it needs a resync)")
	}
}

func TestAcceptResync(t *testing.T) {
	pos := Position{Epoch: 2, Seq: 5}
	for _, tc := range []struct {
		epoch, seq int64
		want       bool
	}{
		{2, 5, true}, // the same state again
		{2, 9, true},
		{2, 4, false}, // late: it would undo batch 5
		{3, 0, true},  // a newer master
		{1, 9, false}, // an older master (AcceptWrite refuses it too)
	} {
		if got := AcceptResync(pos, tc.epoch, tc.seq); got != tc.want {
			t.Errorf("AcceptResync(%v, %d, %d) = %v, want %v", pos, tc.epoch, tc.seq, got, tc.want)
		}
	}
	if !AcceptResync(Position{}, 1, 0) {
		t.Error("a replica at zero refuses a resync")
	}
}

// TestReplicaPositionNeverGoesBack: a replica that applies only what
// Accept and AcceptResync allow never moves back, so a batch it has
// acknowledged stays acknowledged.
func TestReplicaPositionNeverGoesBack(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var p Position
		for i, n := 0, rapid.IntRange(1, 30).Draw(t, "n"); i < n; i++ {
			e, s := rapid.Int64Range(0, 3).Draw(t, "epoch"), rapid.Int64Range(0, 4).Draw(t, "seq")
			next := Position{Epoch: e, Seq: s}
			resync := rapid.Bool().Draw(t, "resync")
			if resync && AcceptResync(p, e, s) || !resync && Accept(p, e, s) {
				if next.Less(p) {
					t.Fatalf("moved back from %v to %v (resync %v)", p, next, resync)
				}
				if !resync && next != (Position{p.Epoch, p.Seq + 1}) {
					t.Fatalf("a batch moved %v to %v", p, next)
				}
				p = next
			}
		}
	})
}

// TestVoterFollow: a node that voted for a losing candidate follows the
// winner once the winner's configuration arrives, and accepts its writes;
// an older epoch's configuration changes nothing.
func TestVoterFollow(t *testing.T) {
	v, ok := Voter{}.Vote(2, "n3")
	if !ok {
		t.Fatal("first vote refused")
	}
	if v.AcceptWrite(2, "n2") {
		t.Fatal("accepted the other candidate's write before it was known to have won")
	}
	f := v.Follow(2, "n2")
	if f != (Voter{Epoch: 2, For: "n2"}) || !f.AcceptWrite(2, "n2") || f.AcceptWrite(2, "n3") {
		t.Fatalf("after following n2 in epoch 2: %+v", f)
	}
	if g := f.Follow(1, "n1"); g != f {
		t.Fatalf("an older epoch's configuration changed the record: %+v", g)
	}
	if g := f.Follow(3, "n1"); g != (Voter{Epoch: 3, For: "n1"}) {
		t.Fatalf("a newer epoch's configuration: %+v", g)
	}
	// Following never lets a node vote again in the epoch it follows.
	if _, ok := f.Vote(2, "n3"); ok {
		t.Fatal("voted again in the followed epoch")
	}
}
