package query

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// FilterDetectionChars are the characters that make a single command
// argument a filter rather than a name, as Ganeti's
// QLANG_FILTER_DETECTION_CHARS: "gnt-job list 'status == \"running\"'"
// filters, "gnt-job list 6040" names a job.
const FilterDetectionChars = "\t\n\v\f\r !\"'()/<=>\\~"

// LooksLikeFilter reports whether arg holds one of FilterDetectionChars.
func LooksLikeFilter(arg string) bool { return strings.ContainsAny(arg, FilterDetectionChars) }

// ParseText parses Ganeti's query filter language (the text "gnt-job list
// -F" takes) into the filter structure Query takes ([op, ...], see
// ParseFilter):
//
//	status == "running" and not id < 100
//	summary =~ m/DELAY/i or "x" in tags
//	(status != "success") or priority >= 10
//
// Conditions: FIELD OP VALUE with OP one of == = != < <= > >=, VALUE a
// whole number or a quoted string; FIELD =~ /regexp/flags and !~ (the
// delimiter one of / # ^ |, an optional leading m, flags i and s); FIELD =*
// "glob" and !* (* and ? within a dot-separated part); VALUE in FIELD and
// VALUE not in FIELD (FIELD is a list that holds VALUE); a FIELD alone (it
// is true). "not", then "and", then "or" combine them, with parentheses.
// As in Ganeti, quoted strings keep their backslashes and a regular
// expression drops the backslash of each escaped character.
func ParseText(text string) (any, error) {
	p := &qlParser{s: text}
	v, err := p.or()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		return nil, p.errorf("unexpected %q", p.rest())
	}
	return v, nil
}

type qlParser struct {
	s string
	i int
}

// QLangError is a filter text that does not parse.
type QLangError struct {
	Pos int // byte offset
	Msg string
}

func (e *QLangError) Error() string {
	return fmt.Sprintf("cannot parse the filter at character %d: %s", e.Pos+1, e.Msg)
}

func (p *qlParser) errorf(format string, a ...any) error {
	return &QLangError{Pos: p.i, Msg: fmt.Sprintf(format, a...)}
}

func (p *qlParser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *qlParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\n\v\f\r", p.s[p.i]) >= 0 {
		p.i++
	}
}

// keyword consumes word when it is next as a whole word.
func (p *qlParser) keyword(word string) bool {
	p.space()
	if !strings.HasPrefix(p.s[p.i:], word) {
		return false
	}
	end := p.i + len(word)
	if end < len(p.s) && isFieldChar(p.s[end]) {
		return false
	}
	p.i = end
	return true
}

func isFieldChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '/' || c == '.'
}

func (p *qlParser) or() (any, error) {
	return p.infix("or", OpOr, p.and)
}

func (p *qlParser) and() (any, error) {
	return p.infix("and", OpAnd, p.not)
}

// infix parses operands joined by word into one [op, a, b, ...] (a single
// operand is itself).
func (p *qlParser) infix(word, op string, operand func() (any, error)) (any, error) {
	first, err := operand()
	if err != nil {
		return nil, err
	}
	list := []any{op, first}
	for p.keyword(word) {
		next, err := operand()
		if err != nil {
			return nil, err
		}
		list = append(list, next)
	}
	if len(list) == 2 {
		return first, nil
	}
	return list, nil
}

func (p *qlParser) not() (any, error) {
	save := p.i
	if p.keyword("not") {
		// "not" starts a negation unless it is a field's name used alone.
		p.space()
		if p.i < len(p.s) && p.s[p.i] != ')' && !p.peekKeyword("and") && !p.peekKeyword("or") {
			x, err := p.not()
			if err != nil {
				return nil, err
			}
			return []any{OpNot, x}, nil
		}
		p.i = save
	}
	return p.primary()
}

func (p *qlParser) peekKeyword(word string) bool {
	save := p.i
	ok := p.keyword(word)
	p.i = save
	return ok
}

func (p *qlParser) primary() (any, error) {
	p.space()
	if p.i >= len(p.s) {
		return nil, p.errorf("a condition is missing at the end")
	}
	if p.s[p.i] == '(' {
		p.i++
		v, err := p.or()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return nil, p.errorf("a closing parenthesis is missing")
		}
		p.i++
		return v, nil
	}
	// VALUE [not] in FIELD
	if c := p.s[p.i]; c == '"' || c == '\'' || c == '-' || c == '+' || c >= '0' && c <= '9' {
		val, err := p.value()
		if err != nil {
			return nil, err
		}
		negate := p.keyword("not")
		if !p.keyword("in") {
			return nil, p.errorf(`expected "in" or "not in" after the value %v`, val)
		}
		field, err := p.field()
		if err != nil {
			return nil, err
		}
		cond := []any{OpContains, field, val}
		if negate {
			return []any{OpNot, cond}, nil
		}
		return cond, nil
	}
	field, err := p.field()
	if err != nil {
		return nil, err
	}
	p.space()
	for _, op := range []string{"=~", "!~", "=*", "!*", "==", "!=", "<=", ">=", "=", "<", ">"} {
		if !strings.HasPrefix(p.s[p.i:], op) {
			continue
		}
		p.i += len(op)
		switch op {
		case "=~", "!~":
			re, err := p.regexp()
			if err != nil {
				return nil, err
			}
			return negateIf(op == "!~", []any{OpRegexp, field, re}), nil
		case "=*", "!*":
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != '"' && p.s[p.i] != '\'' {
				return nil, p.errorf("%s needs a quoted pattern", op)
			}
			glob, err := p.quoted()
			if err != nil {
				return nil, err
			}
			return negateIf(op == "!*", []any{OpRegexp, field, globRegexp(glob)}), nil
		}
		val, err := p.value()
		if err != nil {
			return nil, err
		}
		if op == "=" {
			op = OpEqual
		}
		return []any{op, field, val}, nil
	}
	return []any{OpTrue, field}, nil
}

func negateIf(neg bool, cond []any) any {
	if neg {
		return []any{OpNot, cond}
	}
	return cond
}

func (p *qlParser) field() (string, error) {
	p.space()
	start := p.i
	if p.i >= len(p.s) || !(p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z') {
		if p.i >= len(p.s) {
			return "", p.errorf("a field name is missing at the end")
		}
		return "", p.errorf("expected a field name, found %q", p.rest())
	}
	for p.i < len(p.s) && isFieldChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], nil
}

// value is a whole number or a quoted string.
func (p *qlParser) value() (any, error) {
	p.space()
	if p.i >= len(p.s) {
		return nil, p.errorf("a value is missing at the end")
	}
	if c := p.s[p.i]; c == '"' || c == '\'' {
		return p.quoted()
	}
	start := p.i
	if c := p.s[p.i]; c == '-' || c == '+' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits {
		p.i = start
		return nil, p.errorf("expected a whole number or a quoted string, found %q", p.rest())
	}
	n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	if err != nil {
		p.i = start
		return nil, p.errorf("the number %s is too large", p.s[start:digits+len(p.s[digits:p.i])])
	}
	return n, nil
}

// quoted reads a string in single or double quotes; a backslash escapes
// the next character, and both are kept (pyparsing's quotedString with
// removeQuotes).
func (p *qlParser) quoted() (string, error) {
	q := p.s[p.i]
	start := p.i
	for j := p.i + 1; j < len(p.s); j++ {
		switch p.s[j] {
		case '\\':
			j++
		case q:
			p.i = j + 1
			return p.s[start+1 : j], nil
		}
	}
	return "", p.errorf("the string has no closing %c", q)
}

// regexp reads [m]DELIM...DELIM[flags] and returns Ganeti's regular
// expression: the flags as a (?is) prefix.
func (p *qlParser) regexp() (string, error) {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == 'm' {
		p.i++
	}
	if p.i >= len(p.s) || strings.IndexByte("/#^|", p.s[p.i]) < 0 {
		return "", p.errorf("a regular expression starts with /, #, ^ or | (such as /^job/i)")
	}
	delim := p.s[p.i]
	var b strings.Builder
	j := p.i + 1
	for ; j < len(p.s) && p.s[j] != delim; j++ {
		if p.s[j] == '\\' && j+1 < len(p.s) {
			j++
		}
		b.WriteByte(p.s[j])
	}
	if j >= len(p.s) {
		return "", p.errorf("the regular expression has no closing %c", delim)
	}
	p.i = j + 1
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z') {
		p.i++
	}
	flags := strings.Split(p.s[start:p.i], "")
	var unknown string
	for _, f := range flags {
		if f != "i" && f != "s" {
			unknown += f
		}
	}
	if unknown != "" {
		return "", &QLangError{Pos: start, Msg: fmt.Sprintf("unknown regular expression flags: '%s' (i and s are known)", unknown)}
	}
	re := b.String()
	if len(flags) > 0 {
		sort.Strings(flags)
		re = "(?" + strings.Join(flags, "") + ")" + re
	}
	if _, err := regexp.Compile(re); err != nil {
		return "", &QLangError{Pos: start, Msg: fmt.Sprintf("invalid regular expression (%v)", err)}
	}
	return re, nil
}

// globRegexp turns a DNS name glob into Ganeti's regular expression: *
// and ? match within a dot-separated part, the match starts at the
// beginning and may stop before a dot.
func globRegexp(glob string) string {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteString("[^.]*")
		case '?':
			b.WriteString("[^.]")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`(\..*)?$`)
	return b.String()
}
