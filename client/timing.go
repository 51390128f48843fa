package client

import (
	"context"
	"time"
)

// Timing asks jobqd to start a job later or to limit how long it runs
// (jobq's addition to Ganeti's SubmitJob: an optional last argument).
type Timing struct {
	// NotBefore: the job stays queued until then (cancel and priority
	// changes work meanwhile); zero: at once.
	NotBefore time.Time
	// Timeout is the job's time limit from its start; OpTimeout each
	// opcode's from the start of its execution. Past one, the opcode is
	// killed and ends in error saying it timed out. Zero: no limit.
	Timeout, OpTimeout time.Duration
	// OpTimeouts are the opcodes' own limits by position (0: OpTimeout).
	OpTimeouts []time.Duration
}

// arg is the timing as LUXI's timing object.
func (t Timing) arg() map[string]any {
	m := map[string]any{}
	if !t.NotBefore.IsZero() {
		m["not_before"] = [2]int64{t.NotBefore.Unix(), int64(t.NotBefore.Nanosecond() / 1000)}
	}
	if t.Timeout != 0 {
		m["timeout"] = t.Timeout.Seconds()
	}
	if t.OpTimeout != 0 {
		m["op_timeout"] = t.OpTimeout.Seconds()
	}
	if len(t.OpTimeouts) > 0 {
		l := make([]any, len(t.OpTimeouts))
		for i, d := range t.OpTimeouts {
			if d != 0 {
				l[i] = d.Seconds()
			}
		}
		m["op_timeouts"] = l
	}
	return m
}

// SubmitOptions are a submission's options: its timing and an
// idempotency key.
type SubmitOptions struct {
	Timing
	// IdempotencyKey, when set (at most 128 printable ASCII characters
	// without spaces, such as a UUID), makes a submission safe to retry:
	// jobqd keeps the key cluster-wide for its idempotency window (24 h
	// by default), and a retry with the same key and the same jobs
	// answers the first submission's job ids instead of making new jobs;
	// the same key with other jobs is refused. Retry with the same key
	// when an error says the outcome is unknown.
	IdempotencyKey string
}

// arg is the options as LUXI's options object.
func (o SubmitOptions) arg() map[string]any {
	m := o.Timing.arg()
	if o.IdempotencyKey != "" {
		m["idempotency_key"] = o.IdempotencyKey
	}
	return m
}

// SubmitJobWith is SubmitJob with options: a timing, an idempotency key.
func (c *Client) SubmitJobWith(ctx context.Context, o SubmitOptions, ops ...Opcode) (int64, error) {
	enc, err := encodeOps(ops)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := c.call(ctx, &id, "SubmitJob", enc, o.arg()); err != nil {
		return 0, err
	}
	return id, nil
}

// SubmitManyJobsWith is SubmitManyJobs with options for the call: one
// timing for every job, one idempotency key for the call (a retry answers
// every job's id).
func (c *Client) SubmitManyJobsWith(ctx context.Context, o SubmitOptions, jobs ...[]Opcode) ([]SubmitResult, error) {
	return c.submitMany(ctx, []any{o.arg()}, jobs)
}

// SubmitJobTimed is SubmitJob with a timing: a not-before time, time
// limits.
func (c *Client) SubmitJobTimed(ctx context.Context, t Timing, ops ...Opcode) (int64, error) {
	enc, err := encodeOps(ops)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := c.call(ctx, &id, "SubmitJob", enc, t.arg()); err != nil {
		return 0, err
	}
	return id, nil
}

// SubmitManyJobsTimed is SubmitManyJobs with one timing for every job.
func (c *Client) SubmitManyJobsTimed(ctx context.Context, t Timing, jobs ...[]Opcode) ([]SubmitResult, error) {
	return c.submitMany(ctx, []any{t.arg()}, jobs)
}
