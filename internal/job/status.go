package job

import "encoding/json"

// Status is a job's status, derived from its opcodes.
type Status string

// OpStatus is an opcode's status. The values are shared with Status.
type OpStatus = Status

// The job and opcode statuses, as Ganeti spells them.
const (
	StatusQueued    Status = "queued"
	StatusWaiting   Status = "waiting"
	StatusCanceling Status = "canceling"
	StatusRunning   Status = "running"
	StatusCanceled  Status = "canceled"
	StatusSuccess   Status = "success"
	StatusError     Status = "error"
)

// AllStatuses lists every status in Ganeti's order.
var AllStatuses = []Status{StatusQueued, StatusWaiting, StatusCanceling,
	StatusRunning, StatusCanceled, StatusSuccess, StatusError}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusQueued, StatusWaiting, StatusCanceling, StatusRunning,
		StatusCanceled, StatusSuccess, StatusError:
		return true
	}
	return false
}

// Final reports whether s is canceled, success or error.
func (s Status) Final() bool {
	return s == StatusCanceled || s == StatusSuccess || s == StatusError
}

// Pending reports whether s is queued, waiting or canceling: a job that has
// not started executing an opcode yet (or waits between locks).
func (s Status) Pending() bool {
	return s == StatusQueued || s == StatusWaiting || s == StatusCanceling
}

// DefaultPriority is Ganeti's OP_PRIO_DEFAULT.
const DefaultPriority = 0

// Priority bounds (Ganeti: OP_PRIO_HIGHEST .. OP_PRIO_LOWEST).
const (
	PriorityHighest = -20
	PriorityLowest  = 19
)

// CalcStatus derives a job's status from its opcodes: scanning in order,
// success opcodes are skipped, queued keeps the status, waiting and running
// are taken (and the scan goes on), canceling, error and canceled end the
// scan and are the job's status; all success is success.
func (j *Job) CalcStatus() Status {
	status := StatusQueued
	allSuccess := true
	for _, op := range j.Ops {
		if op.Status == StatusSuccess {
			continue
		}
		allSuccess = false
		switch op.Status {
		case StatusQueued:
		case StatusWaiting, StatusRunning:
			status = op.Status
		case StatusCanceling, StatusError, StatusCanceled:
			return op.Status
		}
	}
	if allSuccess {
		return StatusSuccess
	}
	return status
}

// CalcPriority is the lowest priority value among the unfinished opcodes,
// or DefaultPriority when every opcode is final.
func (j *Job) CalcPriority() int {
	prio, any := 0, false
	for _, op := range j.Ops {
		if op.Status.Final() {
			continue
		}
		if !any || op.Priority < prio {
			prio, any = op.Priority, true
		}
	}
	if !any {
		return DefaultPriority
	}
	return prio
}

// Final reports whether the job is finished: its end timestamp is set.
func (j *Job) Final() bool { return j.EndTimestamp != nil }

// EncodedError is an opcode failure as Ganeti encodes it in a result:
// ["OpExecError", ["message"]].
type EncodedError struct {
	Class string
	Args  []any
}

// MarshalJSON encodes [Class, Args].
func (e EncodedError) MarshalJSON() ([]byte, error) {
	args := e.Args
	if args == nil {
		args = []any{}
	}
	return json.Marshal([]any{e.Class, args})
}

// Raw returns the encoded error as a raw JSON result.
func (e EncodedError) Raw() json.RawMessage {
	b, _ := e.MarshalJSON()
	return b
}

// Error renders "Class: first arg".
func (e EncodedError) Error() string {
	if len(e.Args) > 0 {
		if s, ok := e.Args[0].(string); ok {
			return e.Class + ": " + s
		}
	}
	return e.Class
}

// ExecError is an OpExecError with one message.
func ExecError(msg string) EncodedError {
	return EncodedError{Class: "OpExecError", Args: []any{msg}}
}

// PrereqError is an OpPrereqError with a message and, when kind is not
// empty, Ganeti's error kind (e.g. "wrong_input", "unknown_entity").
func PrereqError(msg, kind string) EncodedError {
	if kind == "" {
		return EncodedError{Class: "OpPrereqError", Args: []any{msg}}
	}
	return EncodedError{Class: "OpPrereqError", Args: []any{msg, kind}}
}
