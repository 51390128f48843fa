package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Filter operators (Ganeti's QLANG_OP_*).
const (
	OpOr          = "|"
	OpAnd         = "&"
	OpNot         = "!"
	OpTrue        = "?"
	OpEqual       = "=="
	OpEqualLegacy = "="  // accepted, same as "=="
	OpNotEqual    = "!=" // accepted, same as ["!", ["==", field, value]]
	OpLT          = "<"
	OpLE          = "<="
	OpGT          = ">"
	OpGE          = ">="
	OpRegexp      = "=~"
	OpContains    = "=[]"
)

type opKind uint8

const (
	opEmpty opKind = iota // null: matches everything
	opAnd
	opOr
	opNot
	opTrue
	opEQ
	opLT
	opLE
	opGT
	opGE
	opRegexp
	opContains
)

var binaryOps = map[string]opKind{
	OpEqual:       opEQ,
	OpEqualLegacy: opEQ,
	OpLT:          opLT,
	OpLE:          opLE,
	OpGT:          opGT,
	OpGE:          opGE,
	OpRegexp:      opRegexp,
	OpContains:    opContains,
}

var opNames = map[opKind]string{
	opAnd:      OpAnd,
	opOr:       OpOr,
	opNot:      OpNot,
	opTrue:     OpTrue,
	opEQ:       OpEqual,
	opLT:       OpLT,
	opLE:       OpLE,
	opGT:       OpGT,
	opGE:       OpGE,
	opRegexp:   OpRegexp,
	opContains: OpContains,
}

// filterValue is the right-hand side of a comparison: a string or an
// integer (Ganeti's FilterValue); for "=~" a compiled regexp.
type filterValue struct {
	isStr bool
	s     string
	n     *intValue
}

func (v filterValue) json() any {
	if v.isStr {
		return v.s
	}
	if v.n.small {
		return v.n.i
	}
	return json.Number(v.n.String())
}

type node struct {
	op       opKind
	children []*node // and, or: operands; not: one operand
	field    string
	val      filterValue
	re       *regexp.Regexp
}

// Filter is a parsed query2 filter for the job resource. The zero value and
// a nil *Filter match every job. A Filter is immutable and safe for
// concurrent use.
type Filter struct {
	root   *node
	fields []string
	ids    []int64
	idsOK  bool
}

// ParseFilter parses a filter from its JSON encoding (the third argument of
// a LUXI Query call). Empty input and JSON null give the empty filter, which
// matches everything. Errors are *Error values: ClassRequest for a filter
// that does not parse, ClassGenericError for an invalid job id in an
// id-list filter, ClassParameterError for an unknown field.
func ParseFilter(raw json.RawMessage) (*Filter, error) {
	return ParseFilterFor(raw, IsJobField)
}

// ParseFilterFor is ParseFilter for a resource whose fields known names
// (see ParseFilterValueFor).
func ParseFilterFor(raw json.RawMessage, known func(string) bool) (*Filter, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return &Filter{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, newError(ClassRequest, "the filter is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, newError(ClassRequest, "the filter is not valid JSON: unexpected data after the top-level value")
	}
	return ParseFilterValueFor(v, known)
}

// ParseFilterValue parses an already decoded filter: the result of
// encoding/json decoding into an `any` (numbers as float64 or json.Number),
// or an equivalent Go value ([]any, string, integer types). See ParseFilter.
func ParseFilterValue(v any) (*Filter, error) {
	return ParseFilterValueFor(v, IsJobField)
}

// ParseFilterValueFor is ParseFilterValue for a resource other than jobs:
// known says which field names exist (nil: any name, as for the opcode
// predicate of a job filter rule, whose fields are the opcode's members).
// An id-list filter is recognised only when "id" is known.
func ParseFilterValueFor(v any, known func(string) bool) (*Filter, error) {
	cv, err := canon(v)
	if err != nil {
		return nil, newError(ClassRequest, "cannot read the filter: %v", err)
	}
	root, err := parseNode(cv)
	if err != nil {
		return nil, err
	}
	f := &Filter{root: root}
	if root.op == opEmpty {
		f.root = nil
		return f, nil
	}
	// As in Ganeti, an id list with an id that is not valid fails the query.
	if vals, ok := requestedValues(root); ok && len(vals) > 0 && known != nil && known(FieldID) {
		ids, err := jobIDs(vals)
		if err != nil {
			return nil, err
		}
		f.ids, f.idsOK = ids, true
	}
	seen := map[string]bool{}
	var walkErr error
	root.walk(func(n *node) {
		if n.op < opTrue || seen[n.field] || walkErr != nil {
			return
		}
		seen[n.field] = true
		if known != nil && !known(n.field) {
			walkErr = newError(ClassParameterError, "Can't find field named '%s'", n.field)
			return
		}
		f.fields = append(f.fields, n.field)
	})
	if walkErr != nil {
		return nil, walkErr
	}
	return f, nil
}

func (n *node) walk(fn func(*node)) {
	fn(n)
	for _, c := range n.children {
		c.walk(fn)
	}
}

func parseNode(v any) (*node, error) {
	if v == nil {
		return &node{op: opEmpty}, nil
	}
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return nil, newError(ClassRequest, "Cannot deserialise filter: expected array [string, args], got %s", render(v))
	}
	opName, ok := arr[0].(string)
	if !ok {
		return nil, newError(ClassRequest, "Cannot deserialise filter: expected array [string, args], got %s", render(v))
	}
	args := arr[1:]
	switch opName {
	case OpAnd, OpOr:
		n := &node{op: opAnd, children: make([]*node, 0, len(args))}
		if opName == OpOr {
			n.op = opOr
		}
		for _, a := range args {
			c, err := parseNode(a)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, c)
		}
		return n, nil
	case OpNot:
		if len(args) != 1 {
			return nil, newError(ClassRequest, "Cannot deserialise field, expected [filter] but got %s", render(args))
		}
		c, err := parseNode(args[0])
		if err != nil {
			return nil, err
		}
		return &node{op: opNot, children: []*node{c}}, nil
	case OpTrue:
		if len(args) != 1 {
			return nil, newError(ClassRequest, "Cannot deserialise field, expected [fieldname] but got %s", render(args))
		}
		field, err := fieldName(args[0])
		if err != nil {
			return nil, err
		}
		return &node{op: opTrue, field: field}, nil
	case OpNotEqual:
		eq, err := parseBinary(opEQ, args)
		if err != nil {
			return nil, err
		}
		return &node{op: opNot, children: []*node{eq}}, nil
	}
	op, ok := binaryOps[opName]
	if !ok {
		return nil, newError(ClassRequest, "Unknown filter operand '%s'", opName)
	}
	return parseBinary(op, args)
}

func fieldName(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", newError(ClassRequest, "Cannot deserialise field name: expected a string, got %s", render(v))
	}
	return s, nil
}

func parseBinary(op opKind, args []any) (*node, error) {
	if len(args) != 2 {
		return nil, newError(ClassRequest, "Cannot deserialise field/value pair, expected [fieldname, value] but got %s", render(args))
	}
	field, err := fieldName(args[0])
	if err != nil {
		return nil, err
	}
	n := &node{op: op, field: field}
	if op == opRegexp {
		s, ok := args[1].(string)
		if !ok {
			return nil, newError(ClassRequest, "Cannot deserialise regular expression: expected a string, got %s", render(args[1]))
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, newError(ClassRequest, "Invalid regular expression '%s': %v", s, unwrapRegexpError(err))
		}
		n.val = filterValue{isStr: true, s: s}
		n.re = re
		return n, nil
	}
	val, err := parseValue(args[1])
	if err != nil {
		return nil, err
	}
	n.val = val
	return n, nil
}

func unwrapRegexpError(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// parseValue reads a comparison value: a string or an integral number.
func parseValue(v any) (filterValue, error) {
	switch x := v.(type) {
	case string:
		return filterValue{isStr: true, s: x}, nil
	case int64:
		return filterValue{n: newIntValue(big.NewInt(x))}, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || x != math.Trunc(x) {
			return filterValue{}, fractionalError(render(x))
		}
		b, _ := new(big.Float).SetFloat64(x).Int(nil)
		return filterValue{n: newIntValue(b)}, nil
	case json.Number:
		r, ok := exactRat(string(x))
		if !ok {
			return filterValue{}, newError(ClassRequest, "Cannot deserialise numeric filter value, expecting an integer with at most %d digits, got %s", maxExponent, string(x))
		}
		if !r.IsInt() {
			return filterValue{}, fractionalError(string(x))
		}
		return filterValue{n: newIntValue(new(big.Int).Set(r.Num()))}, nil
	}
	return filterValue{}, newError(ClassRequest, "Cannot deserialise filter value, expecting string or integer, got %s", render(v))
}

func fractionalError(s string) error {
	return newError(ClassRequest, "Cannot deserialise numeric filter value, expecting integral but got a fractional value: %s", s)
}

// requestedValues mirrors Ganeti's requestedNames for the "id" field: the
// empty filter, an equality on "id", or an "|" of such filters (nested
// freely) yields the compared values; any other shape yields ok=false.
func requestedValues(n *node) (vals []filterValue, ok bool) {
	switch n.op {
	case opEmpty:
		return nil, true
	case opEQ:
		if n.field != FieldID {
			return nil, false
		}
		return []filterValue{n.val}, true
	case opOr:
		for _, c := range n.children {
			cv, ok := requestedValues(c)
			if !ok {
				return nil, false
			}
			vals = append(vals, cv...)
		}
		return vals, true
	}
	return nil, false
}

// jobIDs converts requested id values to job ids, removing duplicates but
// keeping the first-occurrence order (Ganeti's nub).
func jobIDs(vals []filterValue) ([]int64, error) {
	ids := make([]int64, 0, len(vals))
	seen := make(map[int64]bool, len(vals))
	for _, v := range vals {
		var id int64
		if v.isStr {
			s := strings.TrimLeftFunc(v.s, unicode.IsSpace)
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, newError(ClassGenericError, "parsing job id: cannot parse string '%s'", v.s)
			}
			if i < 0 {
				return nil, newError(ClassGenericError, "Invalid value for job ID '%d'", i)
			}
			id = i
		} else {
			if !v.n.small || v.n.i < 0 {
				return nil, newError(ClassGenericError, "Invalid value for job ID '%s'", v.n)
			}
			id = v.n.i
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Fields returns the names of the fields the filter reads, each once, in
// the order they first appear. The engine must be able to supply them to
// Match (they need not be among the Query's output fields).
func (f *Filter) Fields() []string {
	if f == nil {
		return nil
	}
	return append([]string(nil), f.fields...)
}

// IsEmpty reports whether the filter is the empty (null) filter.
func (f *Filter) IsEmpty() bool { return f == nil || f.root == nil }

// RequestedIDs recognises the filters that name jobs by id, as Ganeti's
// luxid does: ["==", "id", N], or "|" of such terms (nested "|" and the
// legacy "=" included; N may also be a decimal string). It returns the ids
// without duplicates in the order first given, and true. The engine should
// then look exactly these jobs up, live or archived, in this order,
// evaluating the filter on each, instead of scanning the queue; a job that
// does not exist still yields a row (its id with status RS_NORMAL, every
// other field RS_UNAVAIL), because its runtime fields have no data and
// Ganeti lets such terms pass. For any other filter it returns nil, false:
// scan all live jobs (and archived ones when WantArchived(outputFields)),
// in ascending id order, and keep those for which Match is true.
//
// Like Ganeti, a null term inside such an "|" is ignored here (so
// ["|", null, ["==", "id", 5]] looks up job 5 only, although Match is
// true for every job).
func (f *Filter) RequestedIDs() ([]int64, bool) {
	if f == nil || !f.idsOK {
		return nil, false
	}
	return append([]int64(nil), f.ids...), true
}

// MarshalJSON encodes the filter in Ganeti's canonical form: "=" is written
// "==", and ["!=", f, v] as ["!", ["==", f, v]].
func (f *Filter) MarshalJSON() ([]byte, error) {
	if f == nil || f.root == nil {
		return []byte("null"), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f.root.json()); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// String returns the canonical JSON form of the filter.
func (f *Filter) String() string {
	b, _ := f.MarshalJSON()
	return string(b)
}

func (n *node) json() any {
	switch n.op {
	case opEmpty:
		return nil
	case opAnd, opOr, opNot:
		out := make([]any, 0, len(n.children)+1)
		out = append(out, opNames[n.op])
		for _, c := range n.children {
			out = append(out, c.json())
		}
		return out
	case opTrue:
		return []any{OpTrue, n.field}
	}
	return []any{opNames[n.op], n.field, n.val.json()}
}

// Match evaluates the filter on one job. get returns the value of a field
// for this job, in any of the forms BuildQueryResult accepts (numbers as
// any Go integer or float type or json.Number, lists as any slice, a
// ResultEntry, or a type that marshals to JSON); get is only called for
// names in Fields().
//
// get returns ok=false (or a ResultEntry whose Status is not RSNormal) when
// the field has no data for this job, e.g. a job that does not exist; a
// null timestamp (received_ts, start_ts, end_ts) counts as no data too. As
// in Ganeti, a comparison on a field without data is true, whatever the
// operator (so ["!", term] is then false).
//
// Operands are evaluated left to right and "&"/"|" stop at the first
// deciding operand, so an error in a later operand is only reported when it
// is reached. Errors are *Error values: ParameterError for a comparison of
// mismatched types ("==", "<", … on a string field with an integer, or the
// reverse), a non-bool field under "?", or a non-string field under "=~";
// GenericError for "=[]" on a value that is not a list of values of the
// compared type; ProgrammerError for a malformed timestamp.
func (f *Filter) Match(get func(field string) (any, bool)) (bool, error) {
	if f == nil || f.root == nil {
		return true, nil
	}
	return f.root.eval(get)
}

func (n *node) eval(get func(string) (any, bool)) (bool, error) {
	switch n.op {
	case opEmpty:
		return true, nil
	case opAnd:
		for _, c := range n.children {
			ok, err := c.eval(get)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case opOr:
		for _, c := range n.children {
			ok, err := c.eval(get)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case opNot:
		ok, err := n.children[0].eval(get)
		if err != nil {
			return false, err
		}
		return !ok, nil
	}
	v, present, err := lookup(get, n.field)
	if err != nil {
		return false, err
	}
	if !present {
		return true, nil
	}
	switch n.op {
	case opTrue:
		b, ok := v.(bool)
		if !ok {
			return false, newError(ClassParameterError, "Unexpected value '%s' in boolean context", render(v))
		}
		return b, nil
	case opRegexp:
		s, ok := v.(string)
		if !ok {
			return false, newError(ClassParameterError, "Invalid field value used in regexp matching, expecting string but got '%s'", render(v))
		}
		return n.re.MatchString(s), nil
	case opContains:
		return contains(v, n.val)
	}
	c, ok, err := compare(v, n.val)
	if err != nil || !ok {
		return false, err
	}
	switch n.op {
	case opEQ:
		return c == 0, nil
	case opLT:
		return c < 0, nil
	case opLE:
		return c <= 0, nil
	case opGT:
		return c > 0, nil
	default: // opGE
		return c >= 0, nil
	}
}

// lookup fetches and canonicalises a field value; present is false when
// the field has no data.
func lookup(get func(string) (any, bool), field string) (v any, present bool, err error) {
	raw, ok := get(field)
	if !ok {
		return nil, false, nil
	}
	switch e := raw.(type) {
	case ResultEntry:
		if e.Status != RSNormal {
			return nil, false, nil
		}
		raw = e.Value
	case *ResultEntry:
		if e == nil || e.Status != RSNormal {
			return nil, false, nil
		}
		raw = e.Value
	}
	v, err = canon(raw)
	if err != nil {
		return nil, false, newError(ClassProgrammerError, "Cannot encode the value of field '%s': %v", field, err)
	}
	if timestampFields[field] {
		if v == nil {
			return nil, false, nil
		}
		ts, ok := v.([]any)
		if !ok || len(ts) != 2 || !isNumber(ts[0]) || !isNumber(ts[1]) {
			return nil, false, newError(ClassProgrammerError, "Internal error: Getter returned non-timestamp for QffTimestamp")
		}
		v = ts[0]
	}
	return v, true, nil
}

// compare orders a field value against a filter value; ok is false when
// they are unordered (a NaN).
func compare(v any, fv filterValue) (c int, ok bool, err error) {
	if fv.isStr {
		if s, isStr := v.(string); isStr {
			return strings.Compare(s, fv.s), true, nil
		}
	} else if isNumber(v) {
		c, ok := cmpNumber(v, fv.n)
		return c, ok, nil
	}
	return 0, false, newError(ClassParameterError, "Invalid types in comparison, trying to compare %s with '%s'", render(v), render(fv.json()))
}

func contains(v any, fv filterValue) (bool, error) {
	want := "integers"
	if fv.isStr {
		want = "strings"
	}
	list, ok := v.([]any)
	if !ok {
		return false, newError(ClassGenericError, "Cannot convert value '%s', error: expected a list of %s", render(v), want)
	}
	found := false
	for _, e := range list {
		if fv.isStr {
			s, ok := e.(string)
			if !ok {
				return false, newError(ClassGenericError, "Cannot convert value '%s', error: expected a list of %s", render(v), want)
			}
			found = found || s == fv.s
			continue
		}
		if !isNumber(e) {
			return false, newError(ClassGenericError, "Cannot convert value '%s', error: expected a list of %s", render(v), want)
		}
		if c, ok := cmpNumber(e, fv.n); ok && c == 0 {
			found = true
		}
	}
	return found, nil
}

// SimpleFilter builds the filter Ganeti's qlang.MakeSimpleFilter builds:
// ["|", ["==", field, v1], ["==", field, v2], …], or nil (the null filter)
// when there are no values. gnt-job uses it for job ids and status
// options; see the package documentation.
func SimpleFilter(field string, values ...any) any {
	if len(values) == 0 {
		return nil
	}
	out := make([]any, 0, len(values)+1)
	out = append(out, OpOr)
	for _, v := range values {
		out = append(out, []any{OpEqual, field, v})
	}
	return out
}
