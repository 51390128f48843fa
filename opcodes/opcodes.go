// Package opcodes is jobq's opcode API: how an operation is declared,
// validated, summarised and executed. jobq ships OP_TEST_DELAY,
// OP_TEST_JQUEUE and OP_RESTRICTED_COMMAND; a program embedding the queue
// registers its own opcodes in a Registry.
//
// An opcode's input is a JSON object with "OP_ID" and parameters. Prepare
// decodes and validates it; a rejected input becomes an OpPrereqError result
// (the job is still stored and visible). With "dry_run": true the queue
// stops there (see DryRun). Exec runs it with a context that is
// cancelled when the job is killed or the daemon stops, and an Env to log
// messages into the job.
package opcodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/numfmt"
	"github.com/jobq-dev/jobq/locking"
)

// Error is an opcode failure in Ganeti's encoding: Class is "OpPrereqError"
// (the parameters or the cluster state do not allow the operation) or
// "OpExecError" (it failed while executing); Args are the message and, for
// OpPrereqError, optionally an error kind such as "wrong_input".
type Error struct {
	Class string
	Args  []any
}

func (e *Error) Error() string {
	if len(e.Args) > 0 {
		return fmt.Sprint(e.Args[0])
	}
	return e.Class
}

// PrereqError returns an OpPrereqError. kind may be empty or one of Ganeti's
// error kinds ("wrong_input", "unknown_entity", "wrong_state", ...).
func PrereqError(kind, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if kind == "" {
		return &Error{Class: "OpPrereqError", Args: []any{msg}}
	}
	return &Error{Class: "OpPrereqError", Args: []any{msg, kind}}
}

// ExecError returns an OpExecError.
func ExecError(format string, args ...any) *Error {
	return &Error{Class: "OpExecError", Args: []any{fmt.Sprintf(format, args...)}}
}

// AsError converts any error returned by an opcode into the encoded form:
// an *Error stays as it is, anything else becomes an OpExecError.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ExecError("%s", err.Error())
}

// Env is what a running opcode may use of the queue.
type Env interface {
	// JobID is the id of the job the opcode belongs to.
	JobID() int64
	// Log appends a "message" log entry to the job, visible at once to
	// watchers (gnt-job watch).
	Log(msg string)
	// NodeName is the name of the node the opcode runs on (the master).
	NodeName() string
	// Nodes reaches the cluster's nodes; never nil.
	Nodes() Nodes
}

// Nodes is what an opcode may ask of the cluster's nodes (through the
// node RPC on a cluster; OP_RESTRICTED_COMMAND, OP_TEST_DELAY on_nodes).
type Nodes interface {
	// Known reports whether name is a node of the cluster.
	Known(name string) bool
	// RunCommand runs the restricted command named command on node
	// (SPEC §5) and returns whether it succeeded and its output; err is
	// for a node that could not be asked.
	RunCommand(ctx context.Context, node, command string) (success bool, output string, err error)
	// Delay sleeps d on node.
	Delay(ctx context.Context, node string, d time.Duration) error
}

// LogInfo logs msg the way Ganeti's LogInfo does (" - INFO: msg").
func LogInfo(env Env, format string, args ...any) {
	env.Log(" - INFO: " + fmt.Sprintf(format, args...))
}

// Params is an opcode's decoded parameters. The queue calls Validate after
// decoding, then Exec.
type Params interface {
	// Validate checks the parameters alone; return PrereqError for bad ones.
	Validate() error
	// Exec runs the operation. Its result is stored as the opcode's result
	// (it must marshal to JSON). A non-nil error fails the opcode.
	Exec(ctx context.Context, env Env) (any, error)
}

// Preparer is implemented by Params that check the environment before
// execution (e.g. that named nodes exist); a failure there is recorded
// before the opcode counts as running.
type Preparer interface {
	Prepare(env Env) error
}

// Expander is implemented by Params with a step that runs while the job
// is still "waiting", after Prepare and before the opcode's locks are
// taken, as Ganeti's ExpandNames (OP_TEST_JQUEUE notifies its client
// there). The queue calls it holding none of its own locks, with a
// context that a cancel of the job or the daemon's stop ends; an error
// fails the opcode with OpPrereqError.
type Expander interface {
	ExpandNames(ctx context.Context, env Env) error
}

// TypedLogger is implemented by an Env that logs entries of another type
// than "message", with any JSON value as the message (Ganeti's
// ELOG_JQUEUE_TEST entries are [socket path, test, argument]).
type TypedLogger interface {
	LogTyped(kind string, msg any)
}

// Locker is implemented by Params that need locks while they execute. The
// queue takes the requests in order (they must go up level by level, see
// package locking) before the opcode runs, and releases them when it ends;
// while it waits, the job is "waiting".
type Locker interface {
	Locks(env Env) []locking.Request
}

// Definition declares one opcode.
type Definition struct {
	// ID is the OP_ID, e.g. "OP_TEST_DELAY".
	ID string
	// New returns the zero parameters with their defaults set; the input is
	// JSON-decoded into it.
	New func() Params
	// SummaryField names the parameter shown in the job's summary, as
	// Ganeti's OP_DSC_FIELD: "TEST_DELAY(1.0e-2)". Empty: just the name.
	SummaryField string
	// Required lists the parameters that must be present.
	Required []string
	// Admit, when set, is called at submission with the opcode's input,
	// before anything is stored: an error refuses the job (one sentence
	// naming the parameter); the input it returns is what the job
	// stores (e.g. with defaults filled in and the version of a
	// declared definition recorded).
	Admit func(input json.RawMessage) (json.RawMessage, error)
	// RerunsOnLoss, when set, says how many times an opcode that was
	// running when the master was lost may be run again by the next
	// master (0: never; the queue is at-most-once for every other
	// opcode). Only for operations that are safe to repeat.
	RerunsOnLoss func(input json.RawMessage) int
}

// Registry maps OP_IDs to their definitions. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	defs     map[string]*Definition
	declared func(id string) *Definition
}

// SetDeclared adds a source of opcodes defined while the program runs
// (an operator's declared opcodes, see internal/declared): lookup is
// asked for an OP_ID no registered definition has, and returns nil when
// it has none either. A registered OP_ID always wins.
func (r *Registry) SetDeclared(lookup func(id string) *Definition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.declared = lookup
}

// Has reports whether id is a registered opcode (declared ones excluded).
func (r *Registry) Has(id string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.defs[id]
	return ok
}

// Rerun reports whether an opcode that was running when the master was
// lost, lost times before, may run again (Definition.RerunsOnLoss).
func (r *Registry) Rerun(input json.RawMessage, lost int) bool {
	var head struct {
		OpID string `json:"OP_ID"`
	}
	if json.Unmarshal(input, &head) != nil {
		return false
	}
	d := r.lookup(head.OpID)
	return d != nil && d.RerunsOnLoss != nil && lost < d.RerunsOnLoss(input)
}

// Admit applies the submission checks of a job's opcodes (Definition's
// Admit) and returns the inputs to store; an opcode without one, or
// unknown, is kept as it is (an unknown opcode fails when it runs).
func (r *Registry) Admit(ops []json.RawMessage) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for i, op := range ops {
		var head struct {
			OpID string `json:"OP_ID"`
		}
		if json.Unmarshal(op, &head) != nil || head.OpID == "" {
			continue
		}
		d := r.lookup(head.OpID)
		if d == nil || d.Admit == nil {
			continue
		}
		in, err := d.Admit(op)
		if err != nil {
			if len(ops) > 1 {
				return nil, fmt.Errorf("opcode %d: %w", i, err)
			}
			return nil, err
		}
		if out == nil {
			out = slices.Clone(ops)
		}
		out[i] = in
	}
	if out == nil {
		return ops, nil
	}
	return out, nil
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{defs: map[string]*Definition{}} }

// Builtin returns a registry with the opcodes jobq ships.
func Builtin() *Registry {
	r := NewRegistry()
	for _, d := range []Definition{testDelayDef, testJqueueDef, restrictedCommandDef} {
		if err := r.Register(d); err != nil {
			panic(err)
		}
	}
	return r
}

// Register adds a definition; registering an OP_ID twice is an error.
func (r *Registry) Register(d Definition) error {
	if !strings.HasPrefix(d.ID, "OP_") || d.New == nil {
		return fmt.Errorf("opcode definition %q needs an ID starting with OP_ and a New function", d.ID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.defs[d.ID]; dup {
		return fmt.Errorf("opcode %s is already registered", d.ID)
	}
	r.defs[d.ID] = &d
	return nil
}

// IDs lists the registered OP_IDs, sorted.
func (r *Registry) IDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.defs))
	for id := range r.defs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (r *Registry) lookup(id string) *Definition {
	r.mu.RLock()
	d, declared := r.defs[id], r.declared
	r.mu.RUnlock()
	if d == nil && declared != nil {
		return declared(id)
	}
	return d
}

// common are the parameters every opcode accepts; Prepare checks their
// types so that a bad one fails the opcode with a clear message.
type common struct {
	DryRun     *bool             `json:"dry_run"`
	DebugLevel *int              `json:"debug_level"`
	Priority   *int              `json:"priority"`
	Depends    json.RawMessage   `json:"depends"`
	Comment    *string           `json:"comment"`
	Reason     []json.RawMessage `json:"reason"`
}

// Prepare decodes and validates an opcode input. The error is always an
// *Error (OpPrereqError) describing what is wrong in one sentence.
func (r *Registry) Prepare(input json.RawMessage) (Params, error) {
	var head struct {
		OpID any `json:"OP_ID"`
	}
	if err := json.Unmarshal(input, &head); err != nil {
		return nil, PrereqError("wrong_input", "Opcode is not a JSON object")
	}
	id, _ := head.OpID.(string)
	if id == "" {
		return nil, PrereqError("wrong_input", "Opcode has no OP_ID")
	}
	d := r.lookup(id)
	if d == nil {
		return nil, PrereqError("wrong_input", "Unknown opcode %s", id)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(input, &fields)
	for _, name := range d.Required {
		if v, ok := fields[name]; !ok || string(v) == "null" {
			return nil, PrereqError("wrong_input", "Parameter '%s.%s' is missing", id, name)
		}
	}
	var c common
	if err := json.Unmarshal(input, &c); err != nil {
		return nil, PrereqError("wrong_input", "%s", paramError(id, err))
	}
	if c.Priority != nil && (*c.Priority < -20 || *c.Priority > 19) {
		return nil, PrereqError("wrong_input", "Parameter '%s.priority' must be between -20 and 19", id)
	}
	p := d.New()
	if err := json.Unmarshal(input, p); err != nil {
		return nil, PrereqError("wrong_input", "%s", paramError(id, err))
	}
	if err := p.Validate(); err != nil {
		return nil, AsPrereq(err)
	}
	return p, nil
}

// DryRunMessage is what a dry run logs instead of executing, as Ganeti's
// logical units do.
const DryRunMessage = "dry-run mode requested, not actually executing the operation"

// DryRun reports whether an opcode input asks for a dry run ("dry_run":
// true). The queue then checks the opcode as always (Prepare, and the
// Preparer's checks) but neither takes its locks nor executes it: the
// opcode logs DryRunMessage and succeeds with a null result, as in
// Ganeti, where a dry run stops after CheckPrereq.
func DryRun(input json.RawMessage) bool {
	var c struct {
		DryRun any `json:"dry_run"`
	}
	return json.Unmarshal(input, &c) == nil && c.DryRun == true
}

// AsPrereq converts a validation error to an OpPrereqError.
func AsPrereq(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return PrereqError("wrong_input", "%s", err.Error())
}

func paramError(id string, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("Parameter '%s.%s' has the wrong type: expected %s, got a JSON %s", id, te.Field, te.Type, te.Value)
	}
	return fmt.Sprintf("Parameters of %s are invalid: %v", id, err)
}

// Summary renders an opcode's summary as Ganeti does: the OP_ID without
// "OP_", then the summary field's value in parentheses when the opcode
// declares one and the input has it.
func (r *Registry) Summary(input json.RawMessage) string {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(input, &fields); err != nil {
		return "INVALID"
	}
	var id string
	_ = json.Unmarshal(fields["OP_ID"], &id)
	name := strings.TrimPrefix(id, "OP_")
	if name == "" {
		name = "UNKNOWN"
	}
	d := r.lookup(id)
	if d == nil || d.SummaryField == "" {
		return name
	}
	v, ok := fields[d.SummaryField]
	if !ok {
		return name
	}
	return name + "(" + summaryValue(v) + ")"
}

func summaryValue(raw json.RawMessage) string {
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return string(raw)
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return numfmt.ShowDouble(f)
	case nil:
		return "None"
	}
	return string(raw)
}
