// Package filter is the pure core of Ganeti's job filter rules (Ganeti
// 2.13+, doc/design-optables.rst) and of its ad hoc rate limits through the
// reason trail: the rule model (uuid, watermark, priority, predicates,
// action, reason trail) as Ganeti stores and sends it, its validation, and
// the scheduler's decision — given the rules, a queued job and the jobs
// running, does the job run, stay paused, wait for a rate limit, or is it
// rejected. No I/O and no clock: the caller passes the time, the uuids and
// the jobs.
//
// Rules apply in order of priority (lower first), then watermark, then
// uuid. A rule applies to a job when all its predicates match and it is
// the first such rule whose action is not CONTINUE. Predicates are
// ["jobid", expr] (field "id"; the string "watermark" in a value position
// stands for the rule's watermark), ["opcode", expr] (true when the
// expression holds for one of the job's opcodes; its fields are the
// opcode's members, OP_ID included) and ["reason", expr] (true when it
// holds for one entry of one opcode's reason trail; fields source, reason,
// timestamp); expr is a filter of the query language (package query). A
// field the opcode or reason entry does not have makes the expression
// false for it, and so does an expression that cannot be evaluated
// (values of other types).
//
// Ad hoc rate limits: a reason "rate-limit:N:LABEL" (N a positive integer)
// puts the job in the bucket of that exact text; at most N jobs of a
// bucket run at once. They apply to jobs that no rule pauses or rejects.
package filter

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jobq-dev/jobq/internal/query"
)

// Action kinds, as Ganeti spells them.
const (
	Accept    = "ACCEPT"
	Pause     = "PAUSE"
	Reject    = "REJECT"
	Continue  = "CONTINUE"
	RateLimit = "RATE_LIMIT"
)

// Action is a rule's action; N is RATE_LIMIT's limit.
type Action struct {
	Kind string
	N    int64
}

// MarshalJSON writes "REJECT" or ["RATE_LIMIT", n], as Ganeti.
func (a Action) MarshalJSON() ([]byte, error) {
	if a.Kind == RateLimit {
		return json.Marshal([]any{RateLimit, a.N})
	}
	return json.Marshal(a.Kind)
}

// UnmarshalJSON reads what MarshalJSON writes (and what ParseAction takes).
func (a *Action) UnmarshalJSON(b []byte) error {
	v, err := decode(b)
	if err != nil {
		return err
	}
	x, err := ParseAction(v)
	if err != nil {
		return err
	}
	*a = x
	return nil
}

// String is the action as gnt-filter's --action takes it ("RATE_LIMIT 10").
func (a Action) String() string {
	if a.Kind == RateLimit {
		return fmt.Sprintf("%s %d", RateLimit, a.N)
	}
	return a.Kind
}

// ParseAction reads an action: "ACCEPT", "PAUSE", "REJECT", "CONTINUE",
// ["RATE_LIMIT", n] with n a positive integer, or the text "RATE_LIMIT n"
// (gnt-filter's and jobq's --action).
func ParseAction(v any) (Action, error) {
	switch x := v.(type) {
	case string:
		fs := strings.Fields(x)
		if len(fs) == 2 && fs[0] == RateLimit {
			n, err := strconv.ParseInt(fs[1], 10, 64)
			if err != nil || n <= 0 {
				return Action{}, fmt.Errorf("action: the limit of RATE_LIMIT must be a positive integer, got %q", fs[1])
			}
			return Action{Kind: RateLimit, N: n}, nil
		}
		switch x {
		case Accept, Pause, Reject, Continue:
			return Action{Kind: x}, nil
		case RateLimit:
			return Action{}, fmt.Errorf("action: RATE_LIMIT needs its limit, e.g. \"RATE_LIMIT 10\" or [\"RATE_LIMIT\", 10]")
		}
	case []any:
		if len(x) == 2 && x[0] == RateLimit {
			n, ok := toInt(x[1])
			if !ok || n <= 0 {
				return Action{}, fmt.Errorf("action: the limit of RATE_LIMIT must be a positive integer, got %s", render(x[1]))
			}
			return Action{Kind: RateLimit, N: n}, nil
		}
	}
	return Action{}, fmt.Errorf("action must be one of ACCEPT, PAUSE, REJECT, CONTINUE or [\"RATE_LIMIT\", n], got %s", render(v))
}

// ReasonEntry is one entry of a reason trail: [source, reason, timestamp
// in nanoseconds].
type ReasonEntry struct {
	Source string
	Reason string
	TS     int64
}

// MarshalJSON writes [source, reason, timestamp].
func (r ReasonEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{r.Source, r.Reason, r.TS})
}

// UnmarshalJSON reads [source, reason, timestamp].
func (r *ReasonEntry) UnmarshalJSON(b []byte) error {
	v, err := decode(b)
	if err != nil {
		return err
	}
	x, err := parseReasonEntry(v)
	if err != nil {
		return err
	}
	*r = x
	return nil
}

func parseReasonEntry(v any) (ReasonEntry, error) {
	l, ok := v.([]any)
	if !ok || len(l) != 3 {
		return ReasonEntry{}, fmt.Errorf("must be [source, reason, timestamp], got %s", render(v))
	}
	src, ok1 := l[0].(string)
	why, ok2 := l[1].(string)
	ts, ok3 := toInt(l[2])
	if !ok1 || !ok2 || !ok3 {
		return ReasonEntry{}, fmt.Errorf("must be [source, reason, timestamp] (two strings and an integer), got %s", render(v))
	}
	return ReasonEntry{Source: src, Reason: why, TS: ts}, nil
}

// Predicate names.
const (
	PredJobID  = "jobid"
	PredOpcode = "opcode"
	PredReason = "reason"
)

// Predicate is [name, expression]; Expr is the query-language filter in
// its canonical form ("=" written "==").
type Predicate struct {
	Name string
	Expr any
}

// MarshalJSON writes [name, expr].
func (p Predicate) MarshalJSON() ([]byte, error) {
	return marshal([]any{p.Name, p.Expr})
}

// UnmarshalJSON reads and checks [name, expr].
func (p *Predicate) UnmarshalJSON(b []byte) error {
	v, err := decode(b)
	if err != nil {
		return err
	}
	x, err := parsePredicate(v)
	if err != nil {
		return err
	}
	*p = x
	return nil
}

var reasonFields = map[string]bool{"source": true, "reason": true, "timestamp": true}

func predicateFields(name string) (func(string) bool, bool) {
	switch name {
	case PredJobID:
		return func(f string) bool { return f == "id" }, true
	case PredOpcode:
		return nil, true
	case PredReason:
		return func(f string) bool { return reasonFields[f] }, true
	}
	return nil, false
}

func parsePredicate(v any) (Predicate, error) {
	l, ok := v.([]any)
	if !ok || len(l) != 2 {
		return Predicate{}, fmt.Errorf("must be [name, expression] with name jobid, opcode or reason, got %s", render(v))
	}
	name, _ := l[0].(string)
	known, ok := predicateFields(name)
	if !ok {
		return Predicate{}, fmt.Errorf("unknown predicate %s: use jobid, opcode or reason", render(l[0]))
	}
	expr := l[1]
	check := expr
	if name == PredJobID {
		check = substWatermark(expr, 0)
	}
	f, err := query.ParseFilterValueFor(check, known)
	if err != nil {
		return Predicate{}, fmt.Errorf("%s expression: %s", name, errText(err))
	}
	if name == PredJobID {
		// Keep "watermark" as given; only "=" becomes "==".
		f, err = query.ParseFilterValueFor(expr, nil)
		if err != nil {
			return Predicate{}, fmt.Errorf("%s expression: %s", name, errText(err))
		}
	}
	canon, err := decode([]byte(f.String())) // exact numbers
	if err != nil {
		return Predicate{}, err
	}
	return Predicate{Name: name, Expr: canon}, nil
}

func errText(err error) string {
	if qe, ok := err.(*query.Error); ok {
		return qe.Message()
	}
	return err.Error()
}

// substWatermark replaces the string "watermark" in the value position of
// each comparison (not of a regular expression) by wm.
func substWatermark(v any, wm int64) any {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return v
	}
	op, _ := l[0].(string)
	switch op {
	case query.OpOr, query.OpAnd, query.OpNot:
		out := make([]any, len(l))
		out[0] = op
		for i := 1; i < len(l); i++ {
			out[i] = substWatermark(l[i], wm)
		}
		return out
	case query.OpRegexp:
		return v
	}
	if len(l) == 3 && l[2] == "watermark" {
		return []any{l[0], l[1], wm}
	}
	return v
}

// Rule is one filter rule, with Ganeti's member names.
type Rule struct {
	UUID        string        `json:"uuid"`
	Watermark   int64         `json:"watermark"`
	Priority    int64         `json:"priority"`
	Predicates  []Predicate   `json:"predicates"`
	Action      Action        `json:"action"`
	ReasonTrail []ReasonEntry `json:"reason_trail"`
}

// Input is what a client gives for a new or replaced rule (LUXI
// ReplaceFilter, RAPI POST/PUT /2/filters): decoded JSON values, nil for
// what it left out (priority 0, no predicates, CONTINUE, no reason).
type Input struct {
	UUID       string
	Priority   any
	Predicates any
	Action     any
	Reason     any
}

// NewRule checks in and builds the rule: uuid (lower-cased; "" stays ""
// for the caller to fill), priority, predicates, action, reason trail;
// the watermark is the caller's. An error names the member that is wrong
// and says what it must be.
func NewRule(in Input, watermark int64) (Rule, error) {
	r := Rule{Watermark: watermark, Action: Action{Kind: Continue}, Predicates: []Predicate{}, ReasonTrail: []ReasonEntry{}}
	if in.UUID != "" {
		u, err := CheckUUID(in.UUID)
		if err != nil {
			return Rule{}, err
		}
		r.UUID = u
	}
	if in.Priority != nil {
		p, ok := toInt(in.Priority)
		if !ok || p < 0 {
			return Rule{}, fmt.Errorf("priority must be a non-negative integer (0 is the highest), got %s", render(in.Priority))
		}
		r.Priority = p
	}
	if in.Predicates != nil {
		l, ok := in.Predicates.([]any)
		if !ok {
			return Rule{}, fmt.Errorf("predicates must be a list of [name, expression], got %s", render(in.Predicates))
		}
		for i, pv := range l {
			p, err := parsePredicate(pv)
			if err != nil {
				return Rule{}, fmt.Errorf("predicates[%d]: %v", i, err)
			}
			r.Predicates = append(r.Predicates, p)
		}
	}
	if in.Action != nil {
		a, err := ParseAction(in.Action)
		if err != nil {
			return Rule{}, err
		}
		r.Action = a
	}
	if in.Reason != nil {
		l, ok := in.Reason.([]any)
		if !ok {
			return Rule{}, fmt.Errorf("reason must be a list of [source, reason, timestamp], got %s", render(in.Reason))
		}
		for i, e := range l {
			re, err := parseReasonEntry(e)
			if err != nil {
				return Rule{}, fmt.Errorf("reason[%d] %v", i, err)
			}
			r.ReasonTrail = append(r.ReasonTrail, re)
		}
	}
	return r, nil
}

// CheckUUID accepts a UUID in its 8-4-4-4-12 hexadecimal form and returns
// it lower-cased.
func CheckUUID(s string) (string, error) {
	u := strings.ToLower(s)
	ok := len(u) == 36
	for i := 0; ok && i < len(u); i++ {
		c := u[i]
		switch i {
		case 8, 13, 18, 23:
			ok = c == '-'
		default:
			ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
		}
	}
	if !ok {
		return "", fmt.Errorf("uuid %q is not a UUID (like 2828f17b-e475-435d-bd95-3e8a7d97210d)", s)
	}
	return u, nil
}

// FormatUUID makes a version 4 UUID of 16 random bytes.
func FormatUUID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Less is the order rules apply in: priority, then watermark, then uuid.
func Less(a, b *Rule) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if a.Watermark != b.Watermark {
		return a.Watermark < b.Watermark
	}
	return a.UUID < b.UUID
}

// Sort puts rules in the order they apply.
func Sort(rules []Rule) {
	sort.SliceStable(rules, func(i, j int) bool { return Less(&rules[i], &rules[j]) })
}

// Replace returns rules with r in place of the rule of the same uuid, or
// added; Delete returns them without uuid and whether it was there. Both
// leave rules unchanged and return them sorted.
func Replace(rules []Rule, r Rule) []Rule {
	out := make([]Rule, 0, len(rules)+1)
	for _, x := range rules {
		if x.UUID != r.UUID {
			out = append(out, x)
		}
	}
	out = append(out, r)
	Sort(out)
	return out
}

// Delete: see Replace.
func Delete(rules []Rule, uuid string) ([]Rule, bool) {
	out := make([]Rule, 0, len(rules))
	found := false
	for _, x := range rules {
		if x.UUID == uuid {
			found = true
			continue
		}
		out = append(out, x)
	}
	Sort(out)
	return out, found
}

// Encode is the stored form of a rule list (a JSON list, in order).
func Encode(rules []Rule) ([]byte, error) {
	if rules == nil {
		rules = []Rule{}
	}
	return marshal(rules)
}

// Decode reads Encode's form; nil or empty input is no rules. Every rule
// is checked as NewRule checks it.
func Decode(b []byte) ([]Rule, error) {
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("the stored filters are not a JSON list: %v", err)
	}
	rules := make([]Rule, 0, len(raw))
	seen := map[string]bool{}
	for i, rb := range raw {
		var r Rule
		if err := json.Unmarshal(rb, &r); err != nil {
			return nil, fmt.Errorf("stored filter %d: %v", i, err)
		}
		if _, err := CheckUUID(r.UUID); err != nil {
			return nil, fmt.Errorf("stored filter %d: %v", i, err)
		}
		if r.Priority < 0 {
			return nil, fmt.Errorf("stored filter %s: priority must be a non-negative integer", r.UUID)
		}
		if seen[r.UUID] {
			return nil, fmt.Errorf("stored filter %s appears twice", r.UUID)
		}
		seen[r.UUID] = true
		if r.Predicates == nil {
			r.Predicates = []Predicate{}
		}
		if r.ReasonTrail == nil {
			r.ReasonTrail = []ReasonEntry{}
		}
		rules = append(rules, r)
	}
	Sort(rules)
	return rules, nil
}

// decode reads JSON keeping numbers exact.
func decode(b []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v), nil
}

// numbers turns json.Number integers into int64 (and leaves others).
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x
	case []any:
		for i := range x {
			x[i] = numbers(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = numbers(x[k])
		}
		return x
	}
	return v
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case float64:
		if x == float64(int64(x)) {
			return int64(x), true
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, true
		}
	}
	return 0, false
}

func marshal(v any) ([]byte, error) {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimRight(sb.String(), "\n")), nil
}

func render(v any) string {
	if v == nil {
		return "null"
	}
	b, err := marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
