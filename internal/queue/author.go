package queue

import (
	"encoding/json"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
)

// noteAction records in j's log who did what to it ("Canceled by
// jobq:luxi uid=1000(alice)"), on its current opcode (the last one of a
// final job); nothing when who is unknown. The line is not subject to
// Config.MaxLogEntries: one per action asked.
func noteAction(j *job.Job, now job.Timestamp, what string, who author.Actor) {
	if who.IsZero() || len(j.Ops) == 0 {
		return
	}
	i := j.CurrentOp()
	if i < 0 {
		i = len(j.Ops) - 1
	}
	msg, _ := json.Marshal(what + " by " + who.String())
	j.AppendLog(i, now, author.LogType, msg)
}

// SubmitOptions are a submission's options besides its jobs.
type SubmitOptions struct {
	// IgnoreDrain submits to a drained queue (SubmitJobToDrainedQueue).
	IgnoreDrain bool
	// Timing is every job's timing (job.Timing).
	Timing job.Timing
	// Author, when known, is recorded in each opcode's reason trail
	// (package author).
	Author author.Actor
	// Admin says whether the author may submit administrative opcodes
	// (author.AdminOpcode); without it a call carrying one is refused
	// whole.
	Admin bool
	// IdempotencyKey, when set, makes a retry of the same submission
	// within Config.IdempotencyWindow answer the first one's job ids
	// (idem.go); the same key with another body is refused.
	IdempotencyKey string
	// IdempotencyDigest, when set, is the digest of the submission's
	// body (idem.Digest) for a caller that changed the opcodes it was
	// sent (RAPI adds reason entries with the time); by default the
	// digest is of the opcodes and the timing.
	IdempotencyDigest string
}

// check refuses a call with an administrative opcode its author may not
// submit.
func (o SubmitOptions) check(jobs [][]json.RawMessage) error {
	if o.Admin {
		return nil
	}
	for _, ops := range jobs {
		for _, op := range ops {
			if id := job.OpID(op); author.AdminOpcode(id) {
				return &RefusedError{Err: &Error{Class: "OpPrereqError", Args: []any{
					"Submitting " + id + " is an administrative call, not allowed to " + o.Author.String() +
						"; submit it as root, jobqd's user or a member of jobqd's --admin-group (RAPI: a user with the admin option)",
					"wrong_input"}}}
			}
		}
	}
	return nil
}
