// Package opdef is the pure core of declared opcodes: an operator's own
// operation, declared in a TOML file (no Go needed), agreed cluster-wide
// as the setting "opcodes" and run by jobqd (internal/declared).
//
// TOML rather than JSON: operators write and review these files by hand;
// TOML has comments, multi-line strings for descriptions and no trailing
// comma traps, and maps one to one onto the structure below. The parsed
// definition is stored and versioned as JSON.
//
// Everything here is a plain function: Parse and Validate (every error
// named with its field), Check (a submitted opcode's parameters against
// the definition), and what a run needs from the values (Argv, Env,
// Targets, Locks).
package opdef

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/jobq-dev/jobq/internal/duration"
	"github.com/jobq-dev/jobq/locking"
)

// Key is the cluster-wide setting holding the definitions.
const Key = "opcodes"

// VersionParam is the member of a submitted opcode naming the version of
// its definition (filled in at submission).
const VersionParam = "opcode_version"

// Parameter types.
const (
	TString  = "string"
	TInteger = "integer"
	TNumber  = "number"
	TBoolean = "boolean"
	TList    = "list" // of strings
	TEnum    = "enum"
)

var types = []string{TString, TInteger, TNumber, TBoolean, TList, TEnum}

// Where a definition runs.
const (
	OnMaster         = "master"
	OnParam          = "param" // the node (string) or nodes (list) a parameter names
	Parallel         = "parallel"
	Serial           = "serial"
	LockNode         = "node"
	LockClusterLevel = "cluster"
	Exclusive        = "exclusive"
	Shared           = "shared"
)

// Def is one declared opcode.
type Def struct {
	ID          string  `toml:"id" json:"id"`
	Summary     string  `toml:"summary" json:"summary"`
	Description string  `toml:"description" json:"description,omitempty"`
	Idempotent  bool    `toml:"idempotent" json:"idempotent,omitempty"`
	Params      []Param `toml:"param" json:"params"`
	Locks       []Lock  `toml:"lock" json:"locks,omitempty"`
	Run         Run     `toml:"run" json:"run"`
	Program     Program `toml:"program" json:"program"`
	Retry       *Retry  `toml:"retry" json:"retry,omitempty"`
}

// Param is a typed parameter.
type Param struct {
	Name     string   `toml:"name" json:"name"`
	Type     string   `toml:"type" json:"type"`
	Doc      string   `toml:"doc" json:"doc,omitempty"`
	Required bool     `toml:"required" json:"required,omitempty"`
	Default  any      `toml:"default" json:"default,omitempty"`
	Pattern  string   `toml:"pattern" json:"pattern,omitempty"` // strings, list items
	Min      *float64 `toml:"min" json:"min,omitempty"`         // integer, number
	Max      *float64 `toml:"max" json:"max,omitempty"`
	Values   []string `toml:"values" json:"values,omitempty"` // enum
}

// Lock is a lock taken while the opcode runs: the cluster lock, or the
// nodes a parameter names (Param) or the master (Param empty).
type Lock struct {
	Level string `toml:"level" json:"level"`
	Param string `toml:"param" json:"param,omitempty"`
	Mode  string `toml:"mode" json:"mode"`
}

// Run says where the program runs.
type Run struct {
	On    string `toml:"on" json:"on"`                 // master (default) or param
	Param string `toml:"param" json:"param,omitempty"` // with on = "param"
	Order string `toml:"order" json:"order,omitempty"` // list: parallel (default) or serial
	// ContinueOnFailure runs on the other nodes of a list after one
	// failed (default: stop at the first failure).
	ContinueOnFailure bool `toml:"continue_on_failure" json:"continue_on_failure,omitempty"`
}

// Program is what runs.
type Program struct {
	Path    string   `toml:"path" json:"path"`
	Args    []string `toml:"args" json:"args,omitempty"`
	User    string   `toml:"user" json:"user,omitempty"`
	Timeout string   `toml:"timeout" json:"timeout,omitempty"` // default 1h
	// KillGrace is the time between SIGTERM and SIGKILL (default 10s).
	KillGrace string `toml:"kill_grace" json:"kill_grace,omitempty"`
}

// Retry is how an idempotent definition is tried again after a failure.
type Retry struct {
	Attempts int    `toml:"attempts" json:"attempts"`
	Backoff  string `toml:"backoff" json:"backoff,omitempty"`
}

// FieldError is one error of a definition, named by its field
// ("param[1].pattern", "program.path").
type FieldError struct {
	Field string
	Msg   string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

// Errors are all the errors of a definition.
type Errors []FieldError

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Parse reads a TOML definition and validates it: every error, each
// named with its field (unknown keys too).
func Parse(data []byte) (*Def, error) {
	var d Def
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&d)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Errors{{Field: fmt.Sprintf("line %d", pe.Position.Line), Msg: pe.Message}}
		}
		return nil, Errors{{Field: "file", Msg: err.Error()}}
	}
	var es Errors
	for _, k := range md.Undecoded() {
		if len(k) >= 2 && k[len(k)-1] != "" && slices.Contains([]string{"default"}, k[len(k)-2]) {
			continue
		}
		es = append(es, FieldError{Field: k.String(), Msg: "is not a known key"})
	}
	// TOML integers decode as int64: defaults are kept as JSON numbers.
	for i := range d.Params {
		d.Params[i].Default = normalize(d.Params[i].Default)
	}
	es = append(es, Validate(&d)...)
	if len(es) > 0 {
		return nil, es
	}
	return &d, nil
}

func normalize(v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

var (
	idRe   = regexp.MustCompile(`^OP_[A-Z][A-Z0-9_]{0,62}$`)
	nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	userRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$|^[0-9]{1,10}$`)
	argRe  = regexp.MustCompile(`\{([^{}]*)\}`)
)

// Reserved are the members every opcode may carry (and the version):
// no parameter may take their names.
var Reserved = []string{"dry_run", "debug_level", "priority", "depends", "comment", "reason", VersionParam}

// MaxTimeout is the longest timeout a definition may give.
const MaxTimeout = 7 * 24 * time.Hour

// Validate checks a definition and returns every error, each named with
// its field. Pure.
func Validate(d *Def) Errors {
	var es Errors
	add := func(field, format string, a ...any) {
		es = append(es, FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	if !idRe.MatchString(d.ID) {
		add("id", "must be OP_ followed by capital letters, digits and '_' (e.g. OP_BACKUP_DIR), got %q", d.ID)
	}
	if strings.TrimSpace(d.Summary) == "" {
		add("summary", "is required: one line saying what the opcode does")
	} else if strings.Contains(d.Summary, "\n") {
		add("summary", "must be one line")
	}
	byName := map[string]*Param{}
	for i := range d.Params {
		p := &d.Params[i]
		f := fmt.Sprintf("param[%d]", i)
		if !nameRe.MatchString(p.Name) {
			add(f+".name", "must be a lower-case letter then lower-case letters, digits and '_', got %q", p.Name)
		} else if slices.Contains(Reserved, p.Name) {
			add(f+".name", "%q is reserved (%s)", p.Name, strings.Join(Reserved, ", "))
		} else if byName[p.Name] != nil {
			add(f+".name", "%q is declared twice", p.Name)
		} else {
			byName[p.Name] = p
		}
		f += " (" + p.Name + ")"
		if !slices.Contains(types, p.Type) {
			add(f+".type", "must be one of %s, got %q", strings.Join(types, ", "), p.Type)
			continue
		}
		if p.Pattern != "" {
			if p.Type != TString && p.Type != TList {
				add(f+".pattern", "applies to string and list parameters only")
			} else if _, err := regexp.Compile(p.Pattern); err != nil {
				add(f+".pattern", "is not a valid regular expression: %v", err)
			}
		}
		if p.Min != nil || p.Max != nil {
			if p.Type != TInteger && p.Type != TNumber {
				add(f+".min/max", "apply to integer and number parameters only")
			} else if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
				add(f+".min", "%g is above max %g", *p.Min, *p.Max)
			}
		}
		if p.Type == TEnum {
			if len(p.Values) == 0 {
				add(f+".values", "an enum needs its allowed values")
			}
			seen := map[string]bool{}
			for _, v := range p.Values {
				if v == "" || seen[v] {
					add(f+".values", "must be distinct and non-empty, got %q", v)
				}
				seen[v] = true
			}
		} else if len(p.Values) > 0 {
			add(f+".values", "applies to enum parameters only")
		}
		if p.Required && p.Default != nil {
			add(f+".default", "a required parameter has no default")
		}
		if p.Default != nil {
			if _, err := checkValue(p, p.Default); err != nil {
				add(f+".default", "%s", err)
			}
		}
	}
	// run
	switch d.Run.On {
	case "", OnMaster:
		if d.Run.Param != "" {
			add("run.param", "is only for on = \"param\"")
		}
	case OnParam:
		p := byName[d.Run.Param]
		switch {
		case d.Run.Param == "":
			add("run.param", "on = \"param\" needs the parameter naming the node or nodes")
		case p == nil:
			add("run.param", "names no parameter: %q", d.Run.Param)
		case p.Type != TString && p.Type != TList:
			add("run.param", "%q must be a string (one node) or a list (nodes) parameter, not %s", p.Name, p.Type)
		}
	default:
		add("run.on", "must be \"master\" or \"param\", got %q", d.Run.On)
	}
	switch d.Run.Order {
	case "", Parallel, Serial:
	default:
		add("run.order", "must be \"parallel\" or \"serial\", got %q", d.Run.Order)
	}
	// program
	switch {
	case d.Program.Path == "":
		add("program.path", "is required: the absolute path of the program (no shell)")
	case !filepath.IsAbs(d.Program.Path) || filepath.Clean(d.Program.Path) != d.Program.Path:
		add("program.path", "must be an absolute, clean path, got %q", d.Program.Path)
	}
	for i, a := range d.Program.Args {
		f := fmt.Sprintf("program.args[%d]", i)
		for _, m := range argRe.FindAllStringSubmatch(a, -1) {
			p := byName[m[1]]
			switch {
			case p == nil:
				add(f, "{%s} names no parameter", m[1])
			case p.Type == TList && a != m[0]:
				add(f, "the list parameter {%s} must be an argument of its own (it becomes one argument per item)", m[1])
			}
		}
		if strings.Count(a, "{") != len(argRe.FindAllString(a, -1)) || strings.Count(a, "}") != len(argRe.FindAllString(a, -1)) {
			add(f, "has an unbalanced '{' or '}' in %q", a)
		}
	}
	if d.Program.User != "" && !userRe.MatchString(d.Program.User) {
		add("program.user", "is not a user name or uid: %q", d.Program.User)
	}
	if t, err := parseDur(d.Program.Timeout, time.Hour); err != nil {
		add("program.timeout", "%s", err)
	} else if t > MaxTimeout {
		add("program.timeout", "must be at most %s", MaxTimeout)
	}
	if _, err := parseDur(d.Program.KillGrace, 10*time.Second); err != nil {
		add("program.kill_grace", "%s", err)
	}
	// locks
	for i, l := range d.Locks {
		f := fmt.Sprintf("lock[%d]", i)
		switch l.Level {
		case LockClusterLevel:
			if l.Param != "" {
				add(f+".param", "the cluster lock takes no parameter")
			}
		case LockNode:
			if l.Param != "" {
				if p := byName[l.Param]; p == nil {
					add(f+".param", "names no parameter: %q", l.Param)
				} else if p.Type != TString && p.Type != TList {
					add(f+".param", "%q must be a string or list parameter naming nodes, not %s", p.Name, p.Type)
				}
			}
		default:
			add(f+".level", "must be \"cluster\" or \"node\", got %q", l.Level)
		}
		switch l.Mode {
		case Exclusive, Shared:
		default:
			add(f+".mode", "must be \"exclusive\" or \"shared\", got %q", l.Mode)
		}
	}
	if r := d.Retry; r != nil {
		if !d.Idempotent {
			add("retry", "only an idempotent definition (idempotent = true) may be retried: the queue runs others at most once")
		}
		if r.Attempts < 1 || r.Attempts > 10 {
			add("retry.attempts", "must be between 1 and 10, got %d", r.Attempts)
		}
		if _, err := parseDur(r.Backoff, 0); err != nil {
			add("retry.backoff", "%s", err)
		}
	}
	return es
}

func parseDur(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := duration.Parse(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive, got %q", s)
	}
	return d, nil
}

// Timeout is the program's timeout.
func (d *Def) Timeout() time.Duration { t, _ := parseDur(d.Program.Timeout, time.Hour); return t }

// KillGrace is the time between SIGTERM and SIGKILL.
func (d *Def) KillGrace() time.Duration {
	t, _ := parseDur(d.Program.KillGrace, 10*time.Second)
	return t
}

// Attempts is how many times the program may run (1 unless retried).
func (d *Def) Attempts() int {
	if d.Retry == nil || !d.Idempotent || d.Retry.Attempts < 1 {
		return 1
	}
	return d.Retry.Attempts
}

// Backoff is the wait before the next attempt.
func (d *Def) Backoff() time.Duration {
	if d.Retry == nil {
		return 0
	}
	t, _ := parseDur(d.Retry.Backoff, 0)
	return t
}

// Version is the definition's content hash (16 hex digits of the
// SHA-256 of its JSON form): what a submitted job records.
func (d *Def) Version() string {
	b, _ := json.Marshal(d)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Param returns the parameter name, or nil.
func (d *Def) Param(name string) *Param {
	for i := range d.Params {
		if d.Params[i].Name == name {
			return &d.Params[i]
		}
	}
	return nil
}

// allowed describes what a parameter accepts, for error messages.
func allowed(p *Param) string {
	switch p.Type {
	case TEnum:
		return "one of " + strings.Join(p.Values, ", ")
	case TInteger, TNumber:
		s := "an " + p.Type
		if p.Type == TNumber {
			s = "a number"
		}
		switch {
		case p.Min != nil && p.Max != nil:
			s += fmt.Sprintf(" from %g to %g", *p.Min, *p.Max)
		case p.Min != nil:
			s += fmt.Sprintf(" of at least %g", *p.Min)
		case p.Max != nil:
			s += fmt.Sprintf(" of at most %g", *p.Max)
		}
		return s
	case TList:
		s := "a list of strings"
		if p.Pattern != "" {
			s += " each matching " + p.Pattern
		}
		return s
	case TString:
		if p.Pattern != "" {
			return "a string matching " + p.Pattern
		}
		return "a string"
	}
	return "a boolean (true or false)"
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// checkValue checks one decoded JSON value against p and returns it in
// its canonical form (float64 numbers, []any of strings).
func checkValue(p *Param, v any) (any, error) {
	bad := func() error { return fmt.Errorf("must be %s, got %s", allowed(p), jsonKind(v)) }
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		if err != nil {
			return nil, bad()
		}
		v = f
	}
	switch p.Type {
	case TString, TEnum:
		s, ok := v.(string)
		if !ok {
			return nil, bad()
		}
		if p.Type == TEnum && !slices.Contains(p.Values, s) {
			return nil, fmt.Errorf("must be one of %s, got %q", strings.Join(p.Values, ", "), s)
		}
		if p.Pattern != "" && !regexp.MustCompile(p.Pattern).MatchString(s) {
			return nil, fmt.Errorf("must match %s, got %q", p.Pattern, s)
		}
		return s, nil
	case TBoolean:
		if _, ok := v.(bool); !ok {
			return nil, bad()
		}
		return v, nil
	case TInteger, TNumber:
		f, ok := v.(float64)
		if !ok {
			return nil, bad()
		}
		if p.Type == TInteger && (f != math.Trunc(f) || math.Abs(f) > 1<<53) {
			return nil, fmt.Errorf("must be %s, got %s", allowed(p), strconv.FormatFloat(f, 'g', -1, 64))
		}
		if (p.Min != nil && f < *p.Min) || (p.Max != nil && f > *p.Max) {
			return nil, fmt.Errorf("must be %s, got %s", allowed(p), strconv.FormatFloat(f, 'g', -1, 64))
		}
		return f, nil
	case TList:
		l, ok := v.([]any)
		if !ok {
			return nil, bad()
		}
		out := make([]any, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("must be a list of strings, item %d is %s", i, jsonKind(e))
			}
			if p.Pattern != "" && !regexp.MustCompile(p.Pattern).MatchString(s) {
				return nil, fmt.Errorf("item %d must match %s, got %q", i, p.Pattern, s)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, bad()
}

// Values are a submitted opcode's checked parameters, defaults filled in.
type Values map[string]any

// Check checks a submitted opcode (its JSON members) against d: every
// required parameter present, every member a parameter (or a member
// every opcode may carry), each of its type, in its range, matching its
// pattern. It returns the values with defaults filled in, or every error,
// each naming the parameter ("parameter 'size' must be ...").
func Check(d *Def, fields map[string]json.RawMessage) (Values, error) {
	var es []string
	vals := Values{}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "OP_ID" || slices.Contains(Reserved, k) {
			continue
		}
		p := d.Param(k)
		if p == nil {
			es = append(es, fmt.Sprintf("%q is not a parameter of %s (%s)", k, d.ID, d.paramList()))
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(fields[k]))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			es = append(es, fmt.Sprintf("parameter '%s' is not valid JSON", k))
			continue
		}
		if v == nil {
			continue // null: as if missing
		}
		cv, err := checkValue(p, v)
		if err != nil {
			es = append(es, fmt.Sprintf("parameter '%s' %s", k, err))
			continue
		}
		vals[k] = cv
	}
	for i := range d.Params {
		p := &d.Params[i]
		if _, ok := vals[p.Name]; ok {
			continue
		}
		if raw, ok := fields[p.Name]; ok && string(raw) != "null" {
			continue // erroneous, said above
		}
		switch {
		case p.Required:
			es = append(es, fmt.Sprintf("parameter '%s' is missing: %s (%s)", p.Name, allowed(p), p.Doc))
		case p.Default != nil:
			vals[p.Name] = p.Default
		}
	}
	if len(es) > 0 {
		return nil, errors.New(d.ID + ": " + strings.Join(es, "; "))
	}
	return vals, nil
}

func (d *Def) paramList() string {
	if len(d.Params) == 0 {
		return "it takes none"
	}
	n := make([]string, len(d.Params))
	for i, p := range d.Params {
		n[i] = p.Name
	}
	return "it takes " + strings.Join(n, ", ")
}

// ParseArg turns a command line's key=value into the parameter's JSON
// value: integers and numbers parsed, booleans true/false/yes/no/1/0,
// lists comma-separated ("" is the empty list).
func ParseArg(d *Def, arg string) (string, any, error) {
	k, s, ok := strings.Cut(arg, "=")
	if !ok || k == "" {
		return "", nil, fmt.Errorf("%q is not key=value", arg)
	}
	p := d.Param(k)
	if p == nil {
		return "", nil, fmt.Errorf("%q is not a parameter of %s (%s)", k, d.ID, d.paramList())
	}
	switch p.Type {
	case TInteger, TNumber:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "", nil, fmt.Errorf("parameter '%s' must be %s, got %q", k, allowed(p), s)
		}
		return k, f, nil
	case TBoolean:
		switch strings.ToLower(s) {
		case "true", "yes", "1":
			return k, true, nil
		case "false", "no", "0":
			return k, false, nil
		}
		return "", nil, fmt.Errorf("parameter '%s' must be true or false, got %q", k, s)
	case TList:
		if s == "" {
			return k, []any{}, nil
		}
		var l []any
		for _, e := range strings.Split(s, ",") {
			l = append(l, e)
		}
		return k, l, nil
	}
	return k, s, nil
}

// Argv is the program's arguments with the values substituted: "{name}"
// inside an argument by the value's text, a list parameter's "{name}"
// argument by one argument per item.
func Argv(d *Def, v Values) []string {
	var out []string
	for _, a := range d.Program.Args {
		if m := argRe.FindStringSubmatch(a); m != nil && m[0] == a {
			if l, ok := v[m[1]].([]any); ok {
				for _, e := range l {
					out = append(out, fmt.Sprint(e))
				}
				continue
			}
		}
		out = append(out, argRe.ReplaceAllStringFunc(a, func(m string) string {
			return Text(v[m[1:len(m)-1]])
		}))
	}
	return out
}

// Text is a value as the program sees it in its arguments and
// environment: numbers without exponent where whole, lists joined by ','.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		s := make([]string, len(x))
		for i, e := range x {
			s[i] = Text(e)
		}
		return strings.Join(s, ",")
	}
	return fmt.Sprint(v)
}

// Env is the program's environment: a fixed PATH, the job id, the
// opcode's index, the node it runs on, the attempt, and each parameter as
// JOBQ_PARAM_<NAME> (upper case; lists joined by ','; unset ones empty).
func Env(d *Def, v Values, jobID int64, opIndex int, node string, attempt int) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"JOBQ_JOB_ID=" + strconv.FormatInt(jobID, 10),
		"JOBQ_OPCODE_INDEX=" + strconv.Itoa(opIndex),
		"JOBQ_OP_ID=" + d.ID,
		"JOBQ_NODE=" + node,
		"JOBQ_ATTEMPT=" + strconv.Itoa(attempt),
	}
	for _, p := range d.Params {
		env = append(env, "JOBQ_PARAM_"+strings.ToUpper(p.Name)+"="+Text(v[p.Name]))
	}
	return env
}

// Targets are the nodes the program runs on: the master, or the node or
// nodes the run parameter names (each once, in their order).
func Targets(d *Def, v Values, master string) []string {
	if d.Run.On != OnParam {
		return []string{master}
	}
	return names(v[d.Run.Param])
}

func names(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Locks are the lock requests of an opcode with values v, level by level
// (cluster, then node).
func Locks(d *Def, v Values, master string) []locking.Request {
	var reqs []locking.Request
	modeOf := func(m string) locking.Mode {
		if m == Shared {
			return locking.Shared
		}
		return locking.Exclusive
	}
	for _, l := range d.Locks {
		if l.Level == LockClusterLevel {
			reqs = append(reqs, locking.Request{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: modeOf(l.Mode)})
			break
		}
	}
	// One request per level (package locking): every node named, taken
	// exclusively when any node lock is exclusive.
	var ns []string
	mode := locking.Shared
	for _, l := range d.Locks {
		if l.Level != LockNode {
			continue
		}
		if l.Mode != Shared {
			mode = locking.Exclusive
		}
		byParam := []string{master}
		if l.Param != "" {
			byParam = names(v[l.Param])
		}
		for _, n := range byParam {
			if !slices.Contains(ns, n) {
				ns = append(ns, n)
			}
		}
	}
	if len(ns) > 0 {
		reqs = append(reqs, locking.Request{Level: locking.LevelNode, Names: ns, Mode: mode})
	}
	return reqs
}

// RunsOn says where d runs, in words ("master", "node NAME_PARAM",
// "nodes of PARAM (serial)").
func RunsOn(d *Def) string {
	if d.Run.On != OnParam {
		return "master"
	}
	order := d.Run.Order
	if order == "" {
		order = Parallel
	}
	if p := d.Param(d.Run.Param); p != nil && p.Type == TList {
		s := "nodes of " + d.Run.Param + " (" + order
		if order == Serial && !d.Run.ContinueOnFailure {
			s += ", stop at the first failure"
		}
		return s + ")"
	}
	return "node " + d.Run.Param
}

// LocksText lists d's locks in words.
func LocksText(d *Def) string {
	var s []string
	for _, l := range d.Locks {
		on := "cluster"
		if l.Level == LockNode {
			on = "node of " + l.Param
			if l.Param == "" {
				on = "master node"
			}
		}
		s = append(s, on+" "+l.Mode)
	}
	return strings.Join(s, ", ")
}

// Constraint is what a parameter allows beyond its type ("" if nothing):
// pattern, range, enum values.
func Constraint(p *Param) string {
	var s []string
	if p.Pattern != "" {
		s = append(s, "matching "+p.Pattern)
	}
	if p.Min != nil {
		s = append(s, fmt.Sprintf("min %g", *p.Min))
	}
	if p.Max != nil {
		s = append(s, fmt.Sprintf("max %g", *p.Max))
	}
	if len(p.Values) > 0 {
		s = append(s, "one of "+strings.Join(p.Values, ", "))
	}
	return strings.Join(s, ", ")
}
