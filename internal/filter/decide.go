package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/jobq-dev/jobq/internal/query"
)

// Job is what the decision reads of a job: its id, its opcodes' inputs and
// their reason trails, decoded once (NewJob) so that deciding is cheap.
type Job struct {
	ID      int64
	idObj   map[string]any // {"id": ID}, the jobid predicate's object
	ops     []map[string]any
	reasons []map[string]any
	buckets []bucket
}

type bucket struct {
	key string
	n   int64
}

// NewJob decodes a job's opcode inputs for the decision. Inputs that are
// not JSON objects are skipped (such a job matches no opcode predicate).
func NewJob(id int64, inputs []json.RawMessage) *Job {
	j := &Job{ID: id, idObj: map[string]any{"id": id}}
	seen := map[string]bool{}
	for _, in := range inputs {
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) != nil || m == nil {
			continue
		}
		numbers(m)
		j.ops = append(j.ops, m)
		trail, _ := m["reason"].([]any)
		for _, e := range trail {
			l, ok := e.([]any)
			if !ok || len(l) != 3 {
				continue
			}
			j.reasons = append(j.reasons, map[string]any{"source": l[0], "reason": l[1], "timestamp": l[2]})
			text, _ := l[1].(string)
			if n, ok := BucketLimit(text); ok && !seen[text] {
				seen[text] = true
				j.buckets = append(j.buckets, bucket{key: text, n: n})
			}
		}
	}
	return j
}

// BucketLimit reads an ad hoc rate limit "rate-limit:N:LABEL": N when it
// is a positive integer.
func BucketLimit(reason string) (int64, bool) {
	rest, ok := strings.CutPrefix(reason, "rate-limit:")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// RateLimited reports whether the job belongs to an ad hoc rate-limit
// bucket.
func (j *Job) RateLimited() bool { return len(j.buckets) > 0 }

// Verdict is what happens to a queued job now.
type Verdict uint8

// Verdicts.
const (
	Run      Verdict = iota // start it
	Paused                  // a PAUSE rule holds it
	Limited                 // a RATE_LIMIT rule or an ad hoc bucket is full
	Rejected                // a REJECT rule cancels it
)

func (v Verdict) String() string {
	return [...]string{"run", "paused", "limited", "rejected"}[v]
}

// Decision is a Verdict and why: the uuid of the rule that applies (""
// when none), or the ad hoc bucket that is full.
type Decision struct {
	Verdict Verdict
	Rule    string
	Bucket  string
	// Counted is true when the verdict depends on the running jobs (a
	// RATE_LIMIT rule applies, or the job is in an ad hoc bucket): with
	// other jobs running it may differ.
	Counted bool
}

type compiled struct {
	rule  Rule
	preds []cpred
}

type cpred struct {
	name   string
	f      *query.Filter
	fields []string // f.Fields(), read once
}

// Set is a compiled, ordered list of rules, immutable and safe for
// concurrent use. The nil *Set has no rules.
type Set struct {
	rules []compiled
}

// Compile checks and orders rules for Decide. Rules from NewRule or
// Decode always compile.
func Compile(rules []Rule) (*Set, error) {
	s := &Set{}
	sorted := append([]Rule(nil), rules...)
	Sort(sorted)
	for _, r := range sorted {
		c := compiled{rule: r}
		for i, p := range r.Predicates {
			known, ok := predicateFields(p.Name)
			if !ok {
				return nil, fmt.Errorf("filter %s: predicates[%d]: unknown predicate %q", r.UUID, i, p.Name)
			}
			expr := p.Expr
			if p.Name == PredJobID {
				expr = substWatermark(expr, r.Watermark)
			}
			f, err := query.ParseFilterValueFor(expr, known)
			if err != nil {
				return nil, fmt.Errorf("filter %s: predicates[%d]: %s", r.UUID, i, errText(err))
			}
			c.preds = append(c.preds, cpred{name: p.Name, f: f, fields: f.Fields()})
		}
		s.rules = append(s.rules, c)
	}
	return s, nil
}

// Rules are the set's rules in the order they apply.
func (s *Set) Rules() []Rule {
	if s == nil {
		return nil
	}
	out := make([]Rule, len(s.rules))
	for i, c := range s.rules {
		out[i] = c.rule
	}
	return out
}

// Len is the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Applying is the index (in Rules' order) of the rule that applies to j:
// the first whose predicates all match and whose action is not
// CONTINUE; -1 when none does.
func (s *Set) Applying(j *Job) int {
	if s == nil {
		return -1
	}
	for i := range s.rules {
		c := &s.rules[i]
		if c.rule.Action.Kind == Continue {
			continue // never applies, whatever it matches
		}
		if c.matches(j) {
			return i
		}
	}
	return -1
}

func (c *compiled) matches(j *Job) bool {
	for _, p := range c.preds {
		if !p.matches(j) {
			return false
		}
	}
	return true
}

func (p cpred) matches(j *Job) bool {
	switch p.name {
	case PredJobID:
		if j.idObj == nil {
			return eval(p, map[string]any{"id": j.ID})
		}
		return eval(p, j.idObj)
	case PredOpcode:
		for _, op := range j.ops {
			if eval(p, op) {
				return true
			}
		}
	case PredReason:
		for _, r := range j.reasons {
			if eval(p, r) {
				return true
			}
		}
	}
	return false
}

// eval is the expression on one object: false when it reads a member the
// object does not have or cannot be evaluated.
func eval(p cpred, obj map[string]any) bool {
	for _, name := range p.fields {
		if _, ok := obj[name]; !ok {
			return false
		}
	}
	ok, err := p.f.Match(func(name string) (any, bool) {
		v, ok := obj[name]
		return v, ok
	})
	return err == nil && ok
}

// Decide is what happens to the queued job j while the jobs in running
// run: the rule that applies decides (REJECT: Rejected; PAUSE: Paused;
// RATE_LIMIT n: Limited while n running jobs have that rule applying to
// them; ACCEPT or none: go on); then each ad hoc bucket of j must have
// fewer running jobs than its limit. Otherwise Run. Deciding job after
// job, adding each that runs to running, keeps every limit.
//
// Only queued jobs are decided: a job that runs goes on to its next
// opcodes whatever the rules say, as in Ganeti 3.0 (design-optables.rst
// says a PAUSE stops a running job before its next opcode, but Ganeti's
// scheduler filters only the queued jobs it starts, and its job process
// reads no rule); a running job counts toward the rate limits.
func (s *Set) Decide(j *Job, running []*Job) Decision {
	k := s.Applying(j)
	d := Decision{}
	if k >= 0 {
		r := &s.rules[k].rule
		d.Rule = r.UUID
		switch r.Action.Kind {
		case Reject:
			d.Verdict = Rejected
			return d
		case Pause:
			d.Verdict = Paused
			return d
		case RateLimit:
			d.Counted = true
			n := int64(0)
			for _, o := range running {
				if s.Applying(o) == k {
					n++
				}
			}
			if n >= r.Action.N {
				d.Verdict = Limited
				return d
			}
		}
	}
	for _, b := range j.buckets {
		d.Counted = true
		n := int64(0)
		for _, o := range running {
			if o.inBucket(b.key) {
				n++
			}
		}
		if n >= b.n {
			d.Verdict = Limited
			d.Bucket = b.key
			return d
		}
	}
	return d
}

func (j *Job) inBucket(key string) bool {
	for _, b := range j.buckets {
		if b.key == key {
			return true
		}
	}
	return false
}
