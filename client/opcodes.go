package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jobq-dev/jobq/internal/numfmt"
)

// Opcode is one operation of a job. Its JSON encoding must be an object
// of the opcode's parameters; "OP_ID" is added from OpID when the encoding
// lacks it, so a struct with json tags and an OpID method is an opcode.
type Opcode interface {
	OpID() string
}

// Priorities (the common "priority" parameter): lower runs first. The
// jobq command's high, normal and low.
const (
	PriorityHigh   = -10
	PriorityNormal = 0
	PriorityLow    = 10
)

// Common holds the parameters every opcode accepts. Embed it in an
// opcode struct; zero fields are left out (the queue's defaults apply).
type Common struct {
	DryRun     bool `json:"dry_run,omitempty"`
	DebugLevel int  `json:"debug_level,omitempty"`
	// Priority is -20 (highest) to 19 (lowest); 0 is normal.
	Priority int `json:"priority,omitempty"`
	// Depends makes the opcode wait until other jobs are final.
	Depends []Dependency `json:"depends,omitempty"`
	Comment string       `json:"comment,omitempty"`
	// Reason is the reason trail; the queue appends its own entry.
	Reason []ReasonEntry `json:"reason,omitempty"`
}

// Dependency is one entry of Common.Depends: wait until job JobID is final
// and, if Statuses is not empty, fail unless it ended in one of them. A
// negative JobID is relative to the job being submitted (-1: the job
// submitted just before it in the same SubmitManyJobs call).
type Dependency struct {
	JobID    int64
	Statuses []Status
}

// MarshalJSON encodes Ganeti's [job_id, [statuses]].
func (d Dependency) MarshalJSON() ([]byte, error) {
	st := d.Statuses
	if st == nil {
		st = []Status{}
	}
	return json.Marshal([]any{d.JobID, st})
}

// ReasonEntry is one entry of a reason trail: who asked for the operation
// and why.
type ReasonEntry struct {
	Source string // e.g. "gnt:client:myprogram"
	Text   string
	Time   time.Time
}

// MarshalJSON encodes Ganeti's [source, text, nanoseconds].
func (r ReasonEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{r.Source, r.Text, r.Time.UnixNano()})
}

// OpTestDelay is OP_TEST_DELAY: sleep Duration on the master (unless
// NoMaster) and on the nodes in OnNodes, Repeat times, logging each
// iteration when Repeat is above 0. Duration must be positive.
type OpTestDelay struct {
	Common
	Duration time.Duration `json:"-"`
	// NoMaster skips the sleep on the master (Ganeti's on_master=false).
	NoMaster      bool     `json:"-"`
	OnNodes       []string `json:"-"`
	Repeat        int      `json:"repeat"`
	Interruptible bool     `json:"interruptible"`
	NoLocks       bool     `json:"no_locks"`
}

// OpID implements Opcode.
func (OpTestDelay) OpID() string { return "OP_TEST_DELAY" }

// MarshalJSON encodes the opcode as gnt-debug delay sends it: duration in
// seconds as a float, on_master, on_nodes a list.
func (o OpTestDelay) MarshalJSON() ([]byte, error) {
	type plain OpTestDelay // without this method
	nodes := o.OnNodes
	if nodes == nil {
		nodes = []string{}
	}
	return json.Marshal(struct {
		OpID string `json:"OP_ID"`
		plain
		Seconds  pyFloat  `json:"duration"`
		OnMaster bool     `json:"on_master"`
		Nodes    []string `json:"on_nodes"`
	}{o.OpID(), plain(o), pyFloat(o.Duration.Seconds()), !o.NoMaster, nodes})
}

// pyFloat encodes as Python's repr (5.0, 0.01), as Ganeti's clients send
// floats.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) { return []byte(numfmt.PyFloat(float64(f))), nil }

// OpTestJqueue is OP_TEST_JQUEUE, the queue's own test opcode: it logs
// LogMessages (one log entry each, visible to watchers at once) and fails
// when Fail is set.
type OpTestJqueue struct {
	Common
	NotifyWaitlock bool     `json:"notify_waitlock"`
	NotifyExec     bool     `json:"notify_exec"`
	LogMessages    []string `json:"log_messages"`
	Fail           bool     `json:"fail"`
}

// OpID implements Opcode.
func (OpTestJqueue) OpID() string { return "OP_TEST_JQUEUE" }

// MarshalJSON encodes the opcode with its OP_ID.
func (o OpTestJqueue) MarshalJSON() ([]byte, error) {
	type plain OpTestJqueue // without this method
	if o.LogMessages == nil {
		o.LogMessages = []string{}
	}
	return json.Marshal(struct {
		OpID string `json:"OP_ID"`
		plain
	}{o.OpID(), plain(o)})
}

// RawOp is any opcode as its JSON object, for opcodes without a Go type
// here. It must hold "OP_ID".
type RawOp map[string]any

// OpID implements Opcode.
func (o RawOp) OpID() string {
	s, _ := o["OP_ID"].(string)
	return s
}

// encodeOp returns an opcode's JSON object with its OP_ID.
func encodeOp(op Opcode) (json.RawMessage, error) {
	id := op.OpID()
	if id == "" {
		return nil, fmt.Errorf("client: opcode %T has no OP_ID", op)
	}
	b, err := marshal(op)
	if err != nil {
		return nil, fmt.Errorf("client: encoding %s: %w", id, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, fmt.Errorf("client: opcode %s does not encode as a JSON object", id)
	}
	if _, ok := m["OP_ID"]; ok {
		return b, nil
	}
	m["OP_ID"], _ = json.Marshal(id)
	return marshal(m)
}

// marshal is json.Marshal without HTML escaping, as the rest of a LUXI
// request is encoded (and as Ganeti's clients send strings).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func encodeOps(ops []Opcode) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(ops))
	for i, op := range ops {
		b, err := encodeOp(op)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}
