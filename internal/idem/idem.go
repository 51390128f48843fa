// Package idem is the pure core of idempotency keys: a submission may
// carry a key, and a retry with the same key returns the first
// submission's job ids instead of making new jobs.
//
// A key's record travels in the job files of its jobs (the job's
// "idempotency" member, which Ganeti's readers ignore): it is in the same
// log entry as the submission, so it is agreed cluster-wide with the jobs,
// atomically. Whether a record still counts is judged by the time it
// carries (when the first submission was received, by the master that
// received it) against the time of the retry (the master's clock, which the
// retry's own jobs would carry), never by a node's clock when it applies
// the log.
package idem

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// DefaultWindow is how long a key is kept by default.
const DefaultWindow = 24 * time.Hour

// MaxKeyLen is the longest key.
const MaxKeyLen = 128

// Member is the job file member and the submission option's name.
const (
	Member = "idempotency"
	Option = "idempotency_key"
)

// CheckKey refuses a key that is empty, too long, or not printable
// ASCII without spaces (keys are logged and shown).
func CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("the idempotency key is empty; give a unique string such as a UUID, or none")
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("the idempotency key is %d bytes long, more than %d; give a shorter one such as a UUID", len(key), MaxKeyLen)
	}
	for _, r := range key {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
			return fmt.Errorf("the idempotency key %q has a character other than printable ASCII without spaces; use letters, digits and the marks - _ . : only", key)
		}
	}
	return nil
}

// Record is a key's record in one job file: the key, the digest of the
// submission's body, when it was received (seconds, microseconds, as the
// job's received_timestamp), and the job's place among the call's jobs.
type Record struct {
	Key    string   `json:"key"`
	Digest string   `json:"digest"`
	At     [2]int64 `json:"at"`
	Index  int      `json:"index"`
	Count  int      `json:"count"`
}

// Time is r's time.
func (r Record) Time() time.Time { return time.Unix(r.At[0], r.At[1]*1000) }

// Digest is the digest of a submission's body: its jobs' opcodes and its
// other options (the caller leaves out what a retry may change, such as a
// relative not-before time), each JSON value canonicalised (members sorted, white space
// dropped), so that a retry that encodes the same body differently is the
// same body.
func Digest(jobs [][]json.RawMessage, options json.RawMessage) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00", len(jobs))
	for _, ops := range jobs {
		fmt.Fprintf(h, "%d\x00", len(ops))
		for _, op := range ops {
			c, err := canonical(op)
			if err != nil {
				return "", err
			}
			h.Write(c)
			h.Write([]byte{0})
		}
	}
	if len(bytes.TrimSpace(options)) > 0 {
		c, err := canonical(options)
		if err != nil {
			return "", err
		}
		h.Write(c)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func canonical(raw json.RawMessage) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// Outcome is what to do with a submission that carries a key.
type Outcome int

const (
	// Submit: no record counts for the key; submit as new.
	Submit Outcome = iota
	// Replay: the same body was submitted with the key within the
	// window; answer its job ids.
	Replay
	// Conflict: another body was submitted with the key within the
	// window; refuse.
	Conflict
)

// Decide says what to do with a submission with digest at now, given the
// key's earlier record (found false when there is none): a record counts
// while now is less than window after its time; a record from the future
// (a master whose clock ran ahead) counts too.
func Decide(rec Record, found bool, digest string, now time.Time, window time.Duration) Outcome {
	if !found || !now.Before(rec.Time().Add(window)) {
		return Submit
	}
	if rec.Digest != digest {
		return Conflict
	}
	return Replay
}

// ConflictError is the refusal of a different body with a key in use.
func ConflictError(key string, ids []int64, at time.Time, window time.Duration) error {
	return fmt.Errorf("the idempotency key %q was used at %s for another submission (job %s) and is kept for %s; use a new key for a different submission",
		key, at.UTC().Format(time.RFC3339), joinIDs(ids), shortDuration(window))
}

// shortDuration is d without zero units at its end: 24h, 1h30m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func joinIDs(ids []int64) string {
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != 0 {
			parts = append(parts, fmt.Sprint(id))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// SplitOptions takes the idempotency key out of a LUXI submission's
// options object (jobq's optional last argument of SubmitJob and
// SubmitManyJobs) and returns the rest for the timing; key is "" when
// there is none.
func SplitOptions(raw json.RawMessage) (key string, rest json.RawMessage, err error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" || t[0] != '{' {
		return "", raw, nil // the timing's parser says what is wrong
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", raw, nil
	}
	k, ok := m[Option]
	if !ok {
		return "", raw, nil
	}
	if err := json.Unmarshal(k, &key); err != nil {
		return "", nil, fmt.Errorf("%s must be a string, got %s", Option, k)
	}
	if err := CheckKey(key); err != nil {
		return "", nil, err
	}
	delete(m, Option)
	rest, err = json.Marshal(m)
	return key, rest, err
}

// Index keeps the records of the keys in use: the master's view, built
// from the job files and kept up to date with each submission.
type Index struct {
	keys map[string]*Entry
}

// Entry is a key's submission: its record (index and count aside) and the
// ids of its jobs by position (0: that job was refused).
type Entry struct {
	Record
	IDs []int64
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{keys: map[string]*Entry{}} }

// Add records the job id of rec (a job file's record).
func (x *Index) Add(rec Record, id int64) {
	e := x.keys[rec.Key]
	if e == nil || e.Digest != rec.Digest || e.At != rec.At {
		if e != nil && !rec.Time().After(e.Time()) {
			return // an older submission's record: the newer one counts
		}
		e = &Entry{Record: rec, IDs: make([]int64, max(rec.Count, 1))}
		x.keys[rec.Key] = e
	}
	if rec.Index >= 0 && rec.Index < len(e.IDs) {
		e.IDs[rec.Index] = id
	}
}

// Lookup returns key's entry.
func (x *Index) Lookup(key string) (*Entry, bool) {
	e, ok := x.keys[key]
	return e, ok
}

// Prune drops the entries that no longer count at now.
func (x *Index) Prune(now time.Time, window time.Duration) {
	for k, e := range x.keys {
		if !now.Before(e.Time().Add(window)) {
			delete(x.keys, k)
		}
	}
}

// Len is the number of keys kept.
func (x *Index) Len() int { return len(x.keys) }
