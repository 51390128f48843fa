package filter

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParseActionTable(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // Action.String(), or "error: substring"
	}{
		{`"ACCEPT"`, "ACCEPT"},
		{`"PAUSE"`, "PAUSE"},
		{`"REJECT"`, "REJECT"},
		{`"CONTINUE"`, "CONTINUE"},
		{`"RATE_LIMIT 7"`, "RATE_LIMIT 7"},
		{`" RATE_LIMIT   7 "`, "RATE_LIMIT 7"},
		{`["RATE_LIMIT", 7]`, "RATE_LIMIT 7"},
		{`["RATE_LIMIT", 7.0]`, "RATE_LIMIT 7"},
		{`["RATE_LIMIT", 7.5]`, "error: positive integer, got 7.5"},
		{`["RATE_LIMIT", "7"]`, `error: positive integer, got "7"`},
		{`["RATE_LIMIT"]`, "error: must be one of"},
		{`["PAUSE", 1]`, "error: must be one of"},
		{`"accept"`, "error: must be one of"},
		{`null`, "error: must be one of"},
		{`"RATE_LIMIT 0"`, "error: positive integer"},
		{`"RATE_LIMIT"`, "error: needs its limit"},
	} {
		v, err := decode([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		a, err := ParseAction(v)
		got := a.String()
		if err != nil {
			got = "error: " + err.Error()
		}
		if strings.HasPrefix(tc.want, "error: ") {
			if err == nil || !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) {
				t.Errorf("ParseAction(%s) = %q, want an error with %q", tc.in, got, tc.want)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("ParseAction(%s) = %q, want %q", tc.in, got, tc.want)
		}
		// Round trip through the stored form.
		b, _ := json.Marshal(a)
		var back Action
		if err := json.Unmarshal(b, &back); err != nil || back != a {
			t.Errorf("round trip of %v through %s gave %v, %v", a, b, back, err)
		}
	}
}

func TestBucketLimitTable(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int64
		ok bool
	}{
		{"rate-limit:1:mylabel", 1, true},
		{"rate-limit:7:operation pink bunny", 7, true},
		{"rate-limit:7:a:b", 7, true},
		{"rate-limit:7:", 7, true},
		{"rate-limit:0:x", 0, false},
		{"rate-limit:-1:x", 0, false},
		{"rate-limit:x:y", 0, false},
		{"rate-limit:3", 0, false},
		{"Rate-limit:3:x", 0, false},
		{" rate-limit:3:x", 0, false},
		{"", 0, false},
	} {
		n, ok := BucketLimit(tc.in)
		if n != tc.n || ok != tc.ok {
			t.Errorf("BucketLimit(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.ok)
		}
	}
}

func TestCheckAndFormatUUID(t *testing.T) {
	var b [16]byte
	for i := range b {
		b[i] = 0xff
	}
	u := FormatUUID(b)
	if u != "ffffffff-ffff-4fff-bfff-ffffffffffff" {
		t.Fatalf("FormatUUID = %s", u)
	}
	if got, err := CheckUUID(strings.ToUpper(u)); err != nil || got != u {
		t.Fatalf("CheckUUID(upper) = %q, %v", got, err)
	}
	for _, bad := range []string{"", "ffffffff-ffff-4fff-bfff-fffffffffff", "ffffffffffff-4fff-bfff-ffffffffffff-", "gfffffff-ffff-4fff-bfff-ffffffffffff"} {
		if _, err := CheckUUID(bad); err == nil {
			t.Errorf("CheckUUID(%q) accepted", bad)
		}
	}
}

func TestReplaceDelete(t *testing.T) {
	a := Rule{UUID: "00000000-0000-4000-8000-000000000001", Priority: 5}
	b := Rule{UUID: "00000000-0000-4000-8000-000000000002", Priority: 1}
	rules := Replace(nil, a)
	rules = Replace(rules, b)
	if len(rules) != 2 || rules[0].UUID != b.UUID {
		t.Fatalf("Replace order: %+v", rules)
	}
	a2 := a
	a2.Priority = 0
	rules2 := Replace(rules, a2)
	if len(rules2) != 2 || rules2[0].UUID != a.UUID || rules[1].Priority != 5 {
		t.Fatalf("Replace in place: %+v (old %+v)", rules2, rules)
	}
	rules3, found := Delete(rules2, a.UUID)
	if !found || len(rules3) != 1 || rules3[0].UUID != b.UUID || len(rules2) != 2 {
		t.Fatalf("Delete: %+v %v", rules3, found)
	}
	if _, found := Delete(rules3, a.UUID); found {
		t.Fatal("Delete of a missing uuid found it")
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`[{"uuid":"x","watermark":1,"priority":0,"predicates":[],"action":"PAUSE","reason_trail":[]}]`,
		`[{"uuid":"00000000-0000-4000-8000-000000000001","watermark":1,"priority":-3,"predicates":[],"action":"PAUSE","reason_trail":[]}]`,
		`[{"uuid":"00000000-0000-4000-8000-000000000001","watermark":1,"priority":0,"predicates":[["nope",null]],"action":"PAUSE","reason_trail":[]}]`,
		`[{"uuid":"00000000-0000-4000-8000-000000000001","watermark":1,"priority":0,"predicates":[],"action":"STOP","reason_trail":[]}]`,
	} {
		if r, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%s) = %+v, want an error", in, r)
		}
	}
	if r, err := Decode(nil); err != nil || r != nil {
		t.Errorf("Decode(nil) = %v, %v", r, err)
	}
}

// Generators for the properties: small pools so that rules overlap.

var opIDs = []string{"OP_A", "OP_B", "OP_C"}
var labels = []string{"rate-limit:1:x", "rate-limit:2:y", "plain"}

func genRule(t *rapid.T, i int) Rule {
	var preds []Predicate
	for range rapid.IntRange(0, 2).Draw(t, "npreds") {
		switch rapid.IntRange(0, 3).Draw(t, "pred") {
		case 0:
			preds = append(preds, Predicate{PredJobID, []any{">", "id", "watermark"}})
		case 1:
			preds = append(preds, Predicate{PredJobID, []any{"<", "id", int64(rapid.IntRange(0, 30).Draw(t, "idlt"))}})
		case 2:
			preds = append(preds, Predicate{PredOpcode, []any{"==", "OP_ID", rapid.SampledFrom(opIDs).Draw(t, "op")}})
		case 3:
			preds = append(preds, Predicate{PredReason, []any{"=~", "reason", rapid.SampledFrom([]string{"x", "y", "plain"}).Draw(t, "re")}})
		}
	}
	a := Action{Kind: rapid.SampledFrom([]string{Accept, Pause, Reject, Continue, RateLimit}).Draw(t, "action")}
	if a.Kind == RateLimit {
		a.N = int64(rapid.IntRange(1, 3).Draw(t, "n"))
	}
	if preds == nil {
		preds = []Predicate{}
	}
	return Rule{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Watermark: int64(rapid.IntRange(0, 20).Draw(t, "wm")),
		Priority: int64(rapid.IntRange(0, 3).Draw(t, "prio")), Predicates: preds, Action: a, ReasonTrail: []ReasonEntry{}}
}

func genRules(t *rapid.T) []Rule {
	n := rapid.IntRange(0, 6).Draw(t, "nrules")
	rules := make([]Rule, n)
	for i := range rules {
		rules[i] = genRule(t, i)
	}
	return rules
}

func genJob(t *rapid.T, id int64) *Job {
	var ops []json.RawMessage
	for range rapid.IntRange(1, 3).Draw(t, "nops") {
		op := map[string]any{"OP_ID": rapid.SampledFrom(opIDs).Draw(t, "opid")}
		if rapid.Bool().Draw(t, "hasreason") {
			op["reason"] = []any{[]any{"gnt:user", rapid.SampledFrom(labels).Draw(t, "label"), 1}}
		}
		b, _ := json.Marshal(op)
		ops = append(ops, b)
	}
	return NewJob(id, ops)
}

func mustCompile(t interface{ Fatalf(string, ...any) }, rules []Rule) *Set {
	s, err := Compile(rules)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

// The order rules are given in does not matter, and CONTINUE rules never
// change a decision.
func TestPropertyOrderAndContinue(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rules := genRules(t)
		jobs := make([]*Job, rapid.IntRange(1, 8).Draw(t, "njobs"))
		for i := range jobs {
			jobs[i] = genJob(t, int64(i+1)*3)
		}
		running := jobs[:rapid.IntRange(0, len(jobs)-1).Draw(t, "nrunning")]
		j := jobs[len(jobs)-1]
		want := mustCompile(t, rules).Decide(j, running)

		shuffled := append([]Rule(nil), rules...)
		rand.New(rand.NewPCG(uint64(len(rules)), 7)).Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if got := mustCompile(t, shuffled).Decide(j, running); got != want {
			t.Fatalf("shuffled rules decide %+v, in order %+v", got, want)
		}
		cont := genRule(t, 99)
		cont.Action = Action{Kind: Continue}
		if got := mustCompile(t, append(append([]Rule(nil), rules...), cont)).Decide(j, running); got != want {
			t.Fatalf("with a CONTINUE rule %+v, without %+v", got, want)
		}
		// The stored form gives the same decisions.
		b, err := Encode(rules)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode) = %v for %s", err, b)
		}
		if got := mustCompile(t, back).Decide(j, running); got != want {
			t.Fatalf("after a round trip through %s: %+v, want %+v", b, got, want)
		}
	})
}

// Admitting jobs one after the other, each decided against those already
// admitted, never runs more jobs under a RATE_LIMIT rule or an ad hoc
// bucket than their limit; and fewer running jobs never hold back a job
// that more running jobs let run.
func TestPropertyLimitsHold(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := mustCompile(t, genRules(t))
		var admitted []*Job
		for i := range rapid.IntRange(1, 15).Draw(t, "njobs") {
			j := genJob(t, int64(i+1))
			d := s.Decide(j, admitted)
			if d.Verdict == Run {
				// Monotone: a subset of the running jobs lets it run too.
				sub := admitted[:rapid.IntRange(0, len(admitted)).Draw(t, "sub")]
				if d2 := s.Decide(j, sub); d2.Verdict != Run {
					t.Fatalf("job %d runs beside %d jobs but not beside %d of them: %+v", j.ID, len(admitted), len(sub), d2)
				}
				admitted = append(admitted, j)
			}
		}
		rules := s.Rules()
		for k, r := range rules {
			if r.Action.Kind != RateLimit {
				continue
			}
			n := 0
			for _, j := range admitted {
				if s.Applying(j) == k {
					n++
				}
			}
			if int64(n) > r.Action.N {
				t.Fatalf("rule %s RATE_LIMIT %d: %d jobs run", r.UUID, r.Action.N, n)
			}
		}
		for _, label := range labels {
			lim, ok := BucketLimit(label)
			if !ok {
				continue
			}
			n := 0
			for _, j := range admitted {
				if j.inBucket(label) {
					n++
				}
			}
			if int64(n) > lim {
				t.Fatalf("bucket %s: %d jobs run", label, n)
			}
		}
	})
}

// A verdict that does not count the running jobs (PAUSE, REJECT, ACCEPT,
// no rule, and no ad hoc bucket) is the same whatever runs; pausing and
// rejecting never count.
func TestPropertyUncountedIgnoreRunning(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := mustCompile(t, genRules(t))
		j := genJob(t, 1)
		d := s.Decide(j, nil)
		if (d.Verdict == Paused || d.Verdict == Rejected) && d.Counted {
			t.Fatalf("a %s verdict counted the running jobs: %+v", d.Verdict, d)
		}
		if d.Counted {
			return
		}
		var running []*Job
		for i := range rapid.IntRange(1, 5).Draw(t, "n") {
			running = append(running, genJob(t, int64(i+2)))
		}
		if d2 := s.Decide(j, running); d2 != d {
			t.Fatalf("alone %+v, beside running jobs %+v", d, d2)
		}
	})
}

func BenchmarkDecide(b *testing.B) {
	running := make([]*Job, 20)
	for i := range running {
		running[i] = NewJob(int64(i+1), []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":1,"reason":[["gnt:client:gnt-debug","delay",1]]}`)})
	}
	j := NewJob(1000, []json.RawMessage{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":1,"reason":[["gnt:client:gnt-debug","delay",1]]}`)})
	for _, n := range []int{0, 100} {
		rules := make([]Rule, n)
		for i := range rules {
			// Rules that do not apply to the job, as most rules do not:
			// each is evaluated in full.
			var p Predicate
			switch i % 3 {
			case 0:
				p = Predicate{PredOpcode, []any{"==", "OP_ID", fmt.Sprintf("OP_OTHER_%d", i)}}
			case 1:
				p = Predicate{PredReason, []any{"=~", "reason", fmt.Sprintf("maintenance %d", i)}}
			case 2:
				p = Predicate{PredJobID, []any{"<", "id", "watermark"}}
			}
			rules[i] = Rule{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Watermark: 10, Priority: int64(i % 7),
				Predicates: []Predicate{p}, Action: Action{Kind: []string{Pause, Reject, RateLimit}[i%3], N: 5}}
		}
		s, err := Compile(rules)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("filters=%d", n), func(b *testing.B) {
			for b.Loop() {
				if d := s.Decide(j, running); d.Verdict != Run {
					b.Fatalf("decision %+v", d)
				}
			}
		})
	}
}
