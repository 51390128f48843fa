package client

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is a job's or an opcode's status.
type Status string

// The statuses (Ganeti's).
const (
	StatusQueued    Status = "queued"
	StatusWaiting   Status = "waiting"
	StatusCanceling Status = "canceling"
	StatusRunning   Status = "running"
	StatusCanceled  Status = "canceled"
	StatusSuccess   Status = "success"
	StatusError     Status = "error"
)

// Final reports whether a job with this status will not change any more.
func (s Status) Final() bool {
	return s == StatusCanceled || s == StatusSuccess || s == StatusError
}

// LogEntry is one entry of a job's log.
type LogEntry struct {
	// Serial counts the job's entries from 1.
	Serial int64
	Time   time.Time
	// Type is "message" for what opcodes log.
	Type string
	// Message is the entry's JSON value, a string for "message" entries.
	Message json.RawMessage
}

// Text returns the message if it is a string, else its JSON.
func (e LogEntry) Text() string {
	var s string
	if json.Unmarshal(e.Message, &s) == nil {
		return s
	}
	return string(e.Message)
}

// UnmarshalJSON decodes Ganeti's [serial, [seconds, microseconds], type,
// message].
func (e *LogEntry) UnmarshalJSON(b []byte) error {
	var v []json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil || len(v) != 4 {
		return fmt.Errorf("client: log entry is not [serial, timestamp, type, message]: %.200s", b)
	}
	var ts timestamp
	if err := json.Unmarshal(v[0], &e.Serial); err != nil {
		return fmt.Errorf("client: log entry serial: %w", err)
	}
	if err := json.Unmarshal(v[1], &ts); err != nil {
		return fmt.Errorf("client: log entry time: %w", err)
	}
	if err := json.Unmarshal(v[2], &e.Type); err != nil {
		return fmt.Errorf("client: log entry type: %w", err)
	}
	e.Time = ts.time()
	e.Message = append(json.RawMessage(nil), v[3]...)
	return nil
}

// MarshalJSON encodes Ganeti's four-element list.
func (e LogEntry) MarshalJSON() ([]byte, error) {
	msg := e.Message
	if len(msg) == 0 {
		msg = json.RawMessage("null")
	}
	return json.Marshal([]any{e.Serial, []int64{e.Time.Unix(), int64(e.Time.Nanosecond() / 1000)}, e.Type, msg})
}

// timestamp is Ganeti's [seconds, microseconds].
type timestamp [2]int64

func (t *timestamp) time() time.Time {
	if t == nil {
		return time.Time{}
	}
	return time.Unix(t[0], t[1]*1000)
}
