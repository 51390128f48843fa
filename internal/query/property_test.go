package query

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

var statusNames = []string{"queued", "waiting", "canceling", "running", "canceled", "success", "error"}

var regexps = []string{"ing$", "^(success|error)$", "e", "^c", "u+e", "^$", "x"}

// A generated job row: every field the generated filters read is present
// and has the type Ganeti gives it, so evaluation never fails.
type testRow struct {
	ID         int64
	Status     string
	Priority   int64
	Archived   bool
	OpStatus   []string
	OpPriority []int64
	EndTS      [2]int64
}

func (r testRow) get(field string) (any, bool) {
	switch field {
	case FieldID:
		return r.ID, true
	case FieldStatus:
		return r.Status, true
	case FieldPriority:
		return r.Priority, true
	case FieldArchived:
		return r.Archived, true
	case FieldOpStatus:
		return r.OpStatus, true
	case FieldOpPriority:
		return r.OpPriority, true
	case FieldEndTS:
		return r.EndTS, true
	}
	return nil, false
}

// getAlt returns the same values in other Go forms an engine might use.
func (r testRow) getAlt(field string) (any, bool) {
	type named string
	switch field {
	case FieldID:
		return json.Number(strconv.FormatInt(r.ID, 10)), true
	case FieldStatus:
		return named(r.Status), true
	case FieldPriority:
		return float64(r.Priority), true
	case FieldArchived:
		return ResultEntry{Value: r.Archived}, true
	case FieldOpStatus:
		out := make([]any, len(r.OpStatus))
		for i, s := range r.OpStatus {
			out[i] = s
		}
		return out, true
	case FieldOpPriority:
		out := make([]int, len(r.OpPriority))
		for i, p := range r.OpPriority {
			out[i] = int(p)
		}
		return out, true
	case FieldEndTS:
		return []any{json.Number(strconv.FormatInt(r.EndTS[0], 10)), r.EndTS[1]}, true
	}
	return nil, false
}

func genRow() *rapid.Generator[testRow] {
	return rapid.Custom(func(t *rapid.T) testRow {
		return testRow{
			ID:         rapid.Int64Range(0, 6).Draw(t, "id"),
			Status:     rapid.SampledFrom(statusNames).Draw(t, "status"),
			Priority:   rapid.Int64Range(-3, 3).Draw(t, "priority"),
			Archived:   rapid.Bool().Draw(t, "archived"),
			OpStatus:   rapid.SliceOfN(rapid.SampledFrom(statusNames), 0, 3).Draw(t, "opstatus"),
			OpPriority: rapid.SliceOfN(rapid.Int64Range(-3, 3), 0, 3).Draw(t, "oppriority"),
			EndTS:      [2]int64{rapid.Int64Range(100, 103).Draw(t, "end_s"), rapid.Int64Range(0, 999999).Draw(t, "end_us")},
		}
	})
}

var compareOps = []string{"==", "=", "!=", "<", "<=", ">", ">="}

// genLeaf draws a type-consistent comparison, as decoded JSON.
func genLeaf() *rapid.Generator[any] {
	return rapid.Custom(func(t *rapid.T) any {
		switch rapid.IntRange(0, 6).Draw(t, "leafkind") {
		case 0:
			return []any{rapid.SampledFrom(compareOps).Draw(t, "op"), FieldID, rapid.Int64Range(0, 7).Draw(t, "v")}
		case 1:
			return []any{rapid.SampledFrom(compareOps).Draw(t, "op"), FieldPriority, rapid.Int64Range(-4, 4).Draw(t, "v")}
		case 2:
			v := rapid.OneOf(rapid.SampledFrom(statusNames), rapid.StringMatching(`[a-z]{0,3}`)).Draw(t, "v")
			return []any{rapid.SampledFrom(compareOps).Draw(t, "op"), FieldStatus, v}
		case 3:
			return []any{OpRegexp, FieldStatus, rapid.SampledFrom(regexps).Draw(t, "re")}
		case 4:
			return []any{OpTrue, FieldArchived}
		case 5:
			if rapid.Bool().Draw(t, "strlist") {
				return []any{OpContains, FieldOpStatus, rapid.SampledFrom(statusNames).Draw(t, "v")}
			}
			return []any{OpContains, FieldOpPriority, rapid.Int64Range(-4, 4).Draw(t, "v")}
		default:
			return []any{rapid.SampledFrom(compareOps).Draw(t, "op"), FieldEndTS, rapid.Int64Range(99, 104).Draw(t, "v")}
		}
	})
}

// genFilter draws filters up to the given depth of "&", "|" and "!".
func genFilter(depth int) *rapid.Generator[any] {
	if depth == 0 {
		return genLeaf()
	}
	sub := genFilter(depth - 1)
	return rapid.Custom(func(t *rapid.T) any {
		switch rapid.IntRange(0, 3).Draw(t, "node") {
		case 0:
			return genLeaf().Draw(t, "leaf")
		case 1:
			return []any{OpNot, sub.Draw(t, "not")}
		default:
			op := OpAnd
			if rapid.Bool().Draw(t, "or") {
				op = OpOr
			}
			return append([]any{op}, rapid.SliceOfN(sub, 0, 3).Draw(t, "operands")...)
		}
	})
}

func mustParse(t *rapid.T, f any) *Filter {
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatalf("marshal %#v: %v", f, err)
	}
	p, err := ParseFilter(b)
	if err != nil {
		t.Fatalf("ParseFilter(%s): %v", b, err)
	}
	return p
}

func mustMatch(t *rapid.T, f *Filter, get func(string) (any, bool)) bool {
	ok, err := f.Match(get)
	if err != nil {
		t.Fatalf("Match(%s): %v", f, err)
	}
	return ok
}

// model is an independent, direct evaluation of the generated filters.
func model(f any, r testRow) bool {
	if f == nil {
		return true
	}
	a := f.([]any)
	op := a[0].(string)
	switch op {
	case OpAnd:
		for _, c := range a[1:] {
			if !model(c, r) {
				return false
			}
		}
		return true
	case OpOr:
		for _, c := range a[1:] {
			if model(c, r) {
				return true
			}
		}
		return false
	case OpNot:
		return !model(a[1], r)
	case OpTrue:
		return r.Archived
	case OpRegexp:
		return regexp.MustCompile(a[2].(string)).MatchString(r.Status)
	case OpContains:
		if s, ok := a[2].(string); ok {
			return slices.Contains(r.OpStatus, s)
		}
		return slices.Contains(r.OpPriority, a[2].(int64))
	}
	var c int
	switch a[1].(string) {
	case FieldStatus:
		s, v := r.Status, a[2].(string)
		c = map[bool]int{true: -1, false: 0}[s < v] + map[bool]int{true: 1, false: 0}[s > v]
	default:
		x := map[string]int64{FieldID: r.ID, FieldPriority: r.Priority, FieldEndTS: r.EndTS[0]}[a[1].(string)]
		v := a[2].(int64)
		c = map[bool]int{true: -1, false: 0}[x < v] + map[bool]int{true: 1, false: 0}[x > v]
	}
	switch op {
	case "==", "=":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	panic("unknown op " + op)
}

func TestPropMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		raw := genFilter(3).Draw(t, "filter")
		r := genRow().Draw(t, "row")
		f := mustParse(t, raw)
		if got, want := mustMatch(t, f, r.get), model(raw, r); got != want {
			t.Fatalf("Match(%s) on %+v = %v, model says %v", f, r, got, want)
		}
	})
}

func TestPropValueFormsAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := mustParse(t, genFilter(3).Draw(t, "filter"))
		r := genRow().Draw(t, "row")
		if a, b := mustMatch(t, f, r.get), mustMatch(t, f, r.getAlt); a != b {
			t.Fatalf("Match(%s) on %+v: %v with plain values, %v with other forms", f, r, a, b)
		}
	})
}

func TestPropNotInverts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		raw := genFilter(3).Draw(t, "filter")
		r := genRow().Draw(t, "row")
		pos := mustMatch(t, mustParse(t, raw), r.get)
		neg := mustMatch(t, mustParse(t, []any{OpNot, raw}), r.get)
		if pos == neg {
			t.Fatalf("%v and its negation both give %v on %+v", raw, pos, r)
		}
		if double := mustMatch(t, mustParse(t, []any{OpNot, []any{OpNot, raw}}), r.get); double != pos {
			t.Fatalf("double negation of %v gives %v, want %v", raw, double, pos)
		}
	})
}

func TestPropAndOrIdentities(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		fs := rapid.SliceOfN(genFilter(2), 0, 4).Draw(t, "operands")
		r := genRow().Draw(t, "row")
		all, any_ := true, false
		for _, f := range fs {
			m := mustMatch(t, mustParse(t, f), r.get)
			all, any_ = all && m, any_ || m
		}
		if got := mustMatch(t, mustParse(t, append([]any{OpAnd}, fs...)), r.get); got != all {
			t.Fatalf("& of %v = %v, want %v", fs, got, all)
		}
		if got := mustMatch(t, mustParse(t, append([]any{OpOr}, fs...)), r.get); got != any_ {
			t.Fatalf("| of %v = %v, want %v", fs, got, any_)
		}
		// Identity elements and null operands.
		if len(fs) > 0 {
			f := fs[0]
			m := mustMatch(t, mustParse(t, f), r.get)
			for _, wrapped := range []any{
				[]any{OpAnd, f}, []any{OpOr, f}, []any{OpAnd, f, []any{OpAnd}},
				[]any{OpOr, f, []any{OpOr}}, []any{OpAnd, nil, f},
			} {
				if got := mustMatch(t, mustParse(t, wrapped), r.get); got != m {
					t.Fatalf("%v = %v, want %v as %v", wrapped, got, m, f)
				}
			}
			// De Morgan.
			g := fs[len(fs)-1]
			lhs := mustMatch(t, mustParse(t, []any{OpNot, []any{OpAnd, f, g}}), r.get)
			rhs := mustMatch(t, mustParse(t, []any{OpOr, []any{OpNot, f}, []any{OpNot, g}}), r.get)
			if lhs != rhs {
				t.Fatalf("De Morgan fails for %v, %v", f, g)
			}
		}
	})
}

func TestPropCanonicalRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		raw := genFilter(3).Draw(t, "filter")
		f := mustParse(t, raw)
		canonical := f.String()
		g, err := ParseFilter(json.RawMessage(canonical))
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", canonical, err)
		}
		if g.String() != canonical {
			t.Fatalf("canonical form not stable: %s then %s", canonical, g)
		}
		if !slices.Equal(f.Fields(), g.Fields()) {
			t.Fatalf("fields %v then %v", f.Fields(), g.Fields())
		}
		r := genRow().Draw(t, "row")
		if mustMatch(t, f, r.get) != mustMatch(t, g, r.get) {
			t.Fatalf("%s and its canonical form %s disagree", raw, canonical)
		}
	})
}

func TestPropComparisonTrichotomy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := genRow().Draw(t, "row")
		field := rapid.SampledFrom([]string{FieldID, FieldPriority, FieldEndTS, FieldStatus}).Draw(t, "field")
		// Negative ids are rejected in id lookups (["==", "id", -1]).
		var v any = rapid.Int64Range(0, 120).Draw(t, "v")
		if field == FieldPriority {
			v = rapid.Int64Range(-25, 25).Draw(t, "p")
		}
		if field == FieldStatus {
			v = rapid.StringMatching(`[a-z]{0,8}`).Draw(t, "s")
		}
		m := func(op string) bool { return mustMatch(t, mustParse(t, []any{op, field, v}), r.get) }
		lt, eq, gt := m("<"), m("=="), m(">")
		if n := map[bool]int{true: 1}[lt] + map[bool]int{true: 1}[eq] + map[bool]int{true: 1}[gt]; n != 1 {
			t.Fatalf("%s vs %v: <=%v ==%v >=%v", field, v, lt, eq, gt)
		}
		if m("<=") != (lt || eq) || m(">=") != (gt || eq) || m("!=") == eq || m("=") != eq {
			t.Fatalf("%s vs %v: derived comparisons disagree", field, v)
		}
	})
}

// TestPropRequestedIDs: an id-list filter names exactly the jobs it matches.
func TestPropRequestedIDs(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ids := rapid.SliceOfN(rapid.Int64Range(0, 30), 1, 6).Draw(t, "ids")
		terms := []any{}
		for i, id := range ids {
			var v any = id
			if rapid.Bool().Draw(t, fmt.Sprintf("str%d", i)) {
				v = strconv.FormatInt(id, 10)
			}
			op := rapid.SampledFrom([]string{"==", "="}).Draw(t, fmt.Sprintf("op%d", i))
			terms = append(terms, []any{op, FieldID, v})
		}
		var raw any
		switch rapid.IntRange(0, 2).Draw(t, "shape") {
		case 0:
			raw = append([]any{OpOr}, terms...)
		case 1: // nested, as QueryJobs sends it
			half := append([]any{OpOr}, terms...)
			raw = []any{OpOr, half, half}
		default:
			raw = append([]any{OpOr, append([]any{OpOr}, terms[:1]...)}, terms[1:]...)
		}
		f := mustParse(t, raw)
		got, ok := f.RequestedIDs()
		if !ok {
			t.Fatalf("%s: not recognised as an id list", f)
		}
		var want []int64
		for _, id := range ids {
			if !slices.Contains(want, id) {
				want = append(want, id)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: RequestedIDs = %v, want %v", f, got, want)
		}
		// Numeric ids only: matching agrees with the list (string ids fail
		// to compare with the numeric id field, as in Ganeti).
		numeric := mustParse(t, SimpleFilter(FieldID, toAny(ids)...))
		id := rapid.Int64Range(0, 31).Draw(t, "probe")
		if m := mustMatch(t, numeric, testRow{ID: id}.get); m != slices.Contains(ids, id) {
			t.Fatalf("%s on id %d = %v", numeric, id, m)
		}
	})
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
