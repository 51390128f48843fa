package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jobq-dev/jobq/internal/idem"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
)

// Idempotency keys (package idem): the queue keeps an index of the keys
// of the last window, built at load from the job files (live, and the
// archive's recent ones) and updated by each submission once its jobs are
// durable. A submission with a key in flight is refused until the first
// one is answered.

type idemState struct {
	index *idem.Index
	busy  map[string]bool
}

func (q *Queue) idemWindow() time.Duration {
	if q.cfg.IdempotencyWindow > 0 {
		return q.cfg.IdempotencyWindow
	}
	return idem.DefaultWindow
}

func (q *Queue) idemIndexLocked() *idem.Index {
	if q.idem.index == nil {
		q.idem.index = idem.NewIndex()
		q.idem.busy = map[string]bool{}
	}
	return q.idem.index
}

// idemRecord is j's key record, if it has one.
func idemRecord(j *job.Job) (idem.Record, bool) {
	raw, ok := j.Extra[idem.Member]
	if !ok {
		return idem.Record{}, false
	}
	var r idem.Record
	if err := json.Unmarshal(raw, &r); err != nil || r.Key == "" {
		return idem.Record{}, false
	}
	return r, true
}

// indexJobLocked adds j's key record, if any, to the index.
func (q *Queue) indexJobLocked(j *job.Job) {
	if r, ok := idemRecord(j); ok {
		q.idemIndexLocked().Add(r, j.ID)
	}
}

// loadArchivedKeys indexes the keys of the archived jobs received within
// the window (newest first, until one older than the window and an hour
// of clock difference between masters).
func (q *Queue) loadArchivedKeys() error {
	ids, err := q.store.ArchivedIDs()
	if err != nil {
		return err
	}
	slices.Sort(ids)
	q.mu.Lock()
	cutoff := q.now().Add(-q.idemWindow() - time.Hour)
	q.mu.Unlock()
	for i := len(ids) - 1; i >= 0; i-- {
		b, ok, err := q.store.ReadArchived(ids[i])
		if err != nil || !ok {
			continue
		}
		j, err := job.Decode(b)
		if err != nil {
			continue
		}
		if j.ReceivedTimestamp != nil && j.ReceivedTimestamp.Time().Before(cutoff) {
			break
		}
		q.mu.Lock()
		q.indexJobLocked(j)
		q.mu.Unlock()
	}
	return nil
}

// idemBegin decides a keyed submission: done is true with its answer when
// it is a replay or refused; otherwise the key is marked in flight (end
// with idemEnd) and rec is the record its jobs carry.
func (q *Queue) idemBegin(jobs [][]json.RawMessage, o SubmitOptions) (rec idem.Record, res []SubmitResult, done bool, err error) {
	if err := idem.CheckKey(o.IdempotencyKey); err != nil {
		return rec, nil, true, &RefusedError{Err: prereqError(err)}
	}
	digest := o.IdempotencyDigest
	if digest == "" {
		// The not-before time is left out: a retry of "in one hour"
		// asks for a later time, and is the same submission.
		t := o.Timing
		t.NotBefore = nil
		timing, _ := json.Marshal(t)
		var err error
		if digest, err = idem.Digest(jobs, timing); err != nil {
			return rec, nil, true, &RefusedError{Err: genericError("%s", err)}
		}
	}
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	window := q.idemWindow()
	x := q.idemIndexLocked()
	x.Prune(now, window)
	if q.idem.busy[o.IdempotencyKey] {
		return rec, nil, true, genericError("A submission with the idempotency key %q is in progress; retry once it is answered", o.IdempotencyKey)
	}
	e, found := x.Lookup(o.IdempotencyKey)
	var r idem.Record
	if found {
		r = e.Record
	}
	switch idem.Decide(r, found, digest, now, window) {
	case idem.Replay:
		res = make([]SubmitResult, len(jobs))
		for i := range res {
			if i < len(e.IDs) && e.IDs[i] != 0 {
				res[i].ID = e.IDs[i]
			} else {
				res[i].Err = &RefusedError{Err: fmt.Errorf("job %d of the first submission with the idempotency key %q was refused; use a new key to submit it again", i, o.IdempotencyKey)}
			}
		}
		q.log.Info("idempotent retry answered with the first submission's jobs", "key", o.IdempotencyKey, "jobs", e.IDs)
		return rec, res, true, nil
	case idem.Conflict:
		return rec, nil, true, &RefusedError{Err: prereqError(idem.ConflictError(o.IdempotencyKey, e.IDs, e.Time(), window))}
	}
	q.idem.busy[o.IdempotencyKey] = true
	ts := job.TS(now)
	return idem.Record{Key: o.IdempotencyKey, Digest: digest, At: [2]int64{ts[0], ts[1]}, Count: len(jobs)}, nil, false, nil
}

// idemEnd ends a keyed submission begun with idemBegin.
func (q *Queue) idemEnd(key string) {
	q.mu.Lock()
	delete(q.idem.busy, key)
	q.mu.Unlock()
}

// setIdem records rec (at position i) in new job j.
func setIdem(j *job.Job, rec idem.Record, i int) {
	rec.Index = i
	b, _ := json.Marshal(rec)
	if j.Extra == nil {
		j.Extra = map[string]json.RawMessage{}
	}
	j.Extra[idem.Member] = b
}

// storeFailure is the answer for a job whose write failed: when the log
// could not say whether the batch was committed, the job may exist all
// the same, and the client is told so.
func storeFailure(id int64, err error, key string) error {
	if errors.Is(err, store.ErrOutcomeUnknown) {
		if key != "" {
			return fmt.Errorf("the outcome of the submission is unknown (%v): job %d may or may not exist and run; retry with the same idempotency key %q, which answers its id if it does and submits it once if it does not", err, id, key)
		}
		return fmt.Errorf("the outcome of the submission is unknown (%v): job %d may or may not exist and run; look for it (jobq list) before submitting again, or submit with an idempotency key (jobq submit --idempotency-key KEY), whose retry is safe", err, id)
	}
	// Wrapped: a node that stopped leading before it proposed the job
	// (consensus.ErrNotLeader) hands the call to the next master.
	return fmt.Errorf("job could not be stored: %w", err)
}

// prereqError is a refusal the client can fix (OpPrereqError,
// wrong_input, as Ganeti's clients print it).
func prereqError(err error) *Error {
	return &Error{Class: "OpPrereqError", Args: []any{err.Error(), "wrong_input"}}
}
