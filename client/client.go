// Package client is the Go client of jobq, the Ganeti-compatible job
// queue: it submits jobs to a jobqd, watches them, queries, cancels and
// archives them, over the node's LUXI socket (package luxi). The jobq
// command talks to jobqd through it.
//
// Connect with [Dial]; an empty path finds the socket as the jobq command
// does (see [ResolveSocket]). A job is a list of opcodes: the shipped ones
// have Go types ([OpTestDelay], [OpTestJqueue]); any other is a [RawOp] or
// a struct of yours with an OpID method.
//
//	c, err := client.Dial(ctx, "")
//	id, err := c.SubmitJob(ctx, client.OpTestDelay{Duration: time.Second, Repeat: 3})
//	status, err := c.WatchJob(ctx, id, func(e client.LogEntry) error {
//		fmt.Println(e.Text())
//		return nil
//	})
//
// A LUXI method without a method of its own here (Query, QueryFields,
// QueryConfigValues, the Jobq* cluster calls) is called with [Client.Call].
//
// A failure reply from jobqd is an [*Error] (Ganeti's error class and
// arguments, e.g. GenericError "Queue drained"); an answer that does not
// decode into what a method expects is a [*DecodeError]; a job that does
// not exist is [ErrJobNotFound]. Other errors are luxi's (the connection
// failed or broke), or the context's error.
//
// Every node of a cluster takes job calls and hands them to the master.
// While no master takes them (an election) or the node's jobqd is
// restarting, a call is sent again, with a growing pause, until the
// context ends or the client's retry window from the call's start has
// passed ([DefaultRetryWindow], [Client.SetRetryWindow]): a call that only reads
// whenever it failed, any other call (a submission) only when it is known
// not to have been carried out (it could not be sent, or the node
// answered that no master took it).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"time"

	"github.com/jobq-dev/jobq/internal/paths"
	"github.com/jobq-dev/jobq/luxi"
)

// SocketEnv is the environment variable naming jobqd's socket.
const SocketEnv = "JOBQ_SOCKET"

// Error is a failure reply from jobqd: Ganeti's error class and arguments.
type Error = luxi.Error

// ErrJobNotFound is returned for a job id that is neither live nor
// archived.
var ErrJobNotFound = errors.New("job not found")

// DecodeError is an answer from jobqd that does not decode into the result
// a call expects, for example a string where a job id was expected.
type DecodeError struct {
	// Method is the LUXI method called.
	Method string
	// Err is why the answer did not decode (an encoding/json error).
	Err error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("client: jobqd's answer to %s is not what was expected: %v", e.Method, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// waitTimeout is how long one WaitForJobChange call may wait on the
// server while WatchJob follows a job.
const waitTimeout = 30 * time.Second

// ResolveSocket returns the socket to connect to, found as the jobq command
// finds it: socket if not empty, else the socket in dataDir if that is
// not empty (what the caller was given explicitly beats the environment),
// else $JOBQ_SOCKET, else the socket in the default data directory
// (/var/lib/jobq for root, else $XDG_STATE_HOME/jobq).
func ResolveSocket(socket, dataDir string) string {
	if socket != "" {
		return socket
	}
	if dataDir != "" {
		return SocketPath(dataDir)
	}
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return SocketPath(DefaultDataDir())
}

// SocketPath is the LUXI socket of the jobqd whose data directory is
// dataDir.
func SocketPath(dataDir string) string { return paths.SocketPath(dataDir) }

// DefaultDataDir is jobqd's default data directory: /var/lib/jobq for
// root, else $XDG_STATE_HOME/jobq (~/.local/state/jobq when XDG_STATE_HOME
// is unset).
func DefaultDataDir() string { return paths.DefaultDataDir() }

// Client talks to one jobqd. It is safe for concurrent use; calls share a
// small pool of connections, and a long call (WatchJob) does not hold up
// others.
type Client struct {
	lc    *luxi.Client
	retry retryWindow // retry.go
}

// Dial connects to the jobqd whose LUXI socket is at path; an empty path
// means ResolveSocket("", "").
func Dial(ctx context.Context, path string) (*Client, error) {
	if path == "" {
		path = ResolveSocket("", "")
	}
	lc, err := luxi.DialContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("client: cannot connect to jobqd at %s: %w", path, err)
	}
	c := &Client{lc: lc}
	c.retry.set(DefaultRetryWindow)
	return c, nil
}

// Close closes the client's connections.
func (c *Client) Close() error { return c.lc.Close() }

// Call calls a LUXI method this package does not wrap (for example
// "QueryConfigValues", "Query" or "JobqClusterInfo") with args, and
// decodes the JSON answer into result, which must be a pointer (or nil to
// ignore the answer; a *json.RawMessage keeps it as it came). Each
// argument is sent as encoding/json encodes it (without HTML escaping); a
// nil slice is sent as null. Numbers decoded into an interface value
// (any, []any, map[string]any) are json.Number, so large integers keep
// their digits.
//
// A failure reply is an [*Error]; an answer that does not decode into
// result is a [*DecodeError]; other errors are luxi's (the connection
// failed or broke), or ctx's error if ctx ended first.
func (c *Client) Call(ctx context.Context, result any, method string, args ...any) error {
	return c.call(ctx, result, method, args...)
}

func (c *Client) call(ctx context.Context, result any, method string, args ...any) error {
	raw, err := c.callRetrying(ctx, method, args)
	if err != nil {
		return err
	}
	if result == nil {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(result); err != nil {
		return &DecodeError{Method: method, Err: err}
	}
	return nil
}

// SubmitJob submits one job made of ops and returns its id once it is
// stored. A drained queue refuses it (GenericError "Queue drained").
func (c *Client) SubmitJob(ctx context.Context, ops ...Opcode) (int64, error) {
	enc, err := encodeOps(ops)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := c.call(ctx, &id, "SubmitJob", enc); err != nil {
		return 0, err
	}
	return id, nil
}

// SubmitResult is one job's outcome in SubmitManyJobs: its id, or why it
// was refused.
type SubmitResult struct {
	ID  int64
	Err error
}

// SubmitManyJobs submits several jobs in one call (stored together, ids
// in order). Each job gets its own result; the error is for the call as a
// whole (e.g. a drained queue).
func (c *Client) SubmitManyJobs(ctx context.Context, jobs ...[]Opcode) ([]SubmitResult, error) {
	return c.submitMany(ctx, nil, jobs)
}

func (c *Client) submitMany(ctx context.Context, extra []any, jobs [][]Opcode) ([]SubmitResult, error) {
	enc := make([][]json.RawMessage, len(jobs))
	for i, ops := range jobs {
		var err error
		if enc[i], err = encodeOps(ops); err != nil {
			return nil, err
		}
	}
	var res [][2]json.RawMessage
	if err := c.call(ctx, &res, "SubmitManyJobs", append([]any{enc}, extra...)...); err != nil {
		return nil, err
	}
	if len(res) != len(jobs) {
		return nil, fmt.Errorf("client: jobqd answered %d results for %d jobs", len(res), len(jobs))
	}
	out := make([]SubmitResult, len(res))
	for i, r := range res {
		var ok bool
		if err := json.Unmarshal(r[0], &ok); err != nil {
			return nil, fmt.Errorf("client: SubmitManyJobs result %d is not [bool, value]", i)
		}
		if ok {
			if err := json.Unmarshal(r[1], &out[i].ID); err != nil {
				return nil, fmt.Errorf("client: SubmitManyJobs result %d has no job id", i)
			}
			continue
		}
		var msg any
		_ = json.Unmarshal(r[1], &msg)
		out[i].Err = fmt.Errorf("%v", msg)
	}
	return out, nil
}

// QueryJobs returns the values of fields (see JobFields) for the jobs
// ids, live or archived, one row per id in that order; a job that does
// not exist has a nil row. With ids nil it returns every live job, in id
// order.
func (c *Client) QueryJobs(ctx context.Context, ids []int64, fields ...string) ([][]json.RawMessage, error) {
	var rows [][]json.RawMessage // ids nil is sent as null: every live job
	if err := c.call(ctx, &rows, "QueryJobs", ids, fields); err != nil {
		return nil, err
	}
	return rows, nil
}

// JobFields are the fields QueryJobs and WaitForJobChange accept.
var JobFields = []string{"id", "status", "priority", "archived", "ops", "opresult",
	"opstatus", "oplog", "opstart", "opexec", "opend", "oppriority", "summary",
	"received_ts", "start_ts", "end_ts"}

// Job is what Job tells about a job.
type Job struct {
	ID       int64
	Status   Status
	Priority int
	Archived bool
	// Ops are the opcodes' parameters as stored (with OP_ID, the reason
	// trail and defaults filled in).
	Ops      []json.RawMessage
	OpStatus []Status
	// OpResult holds each opcode's result: null, its value, or an encoded
	// error ["OpExecError", ["message"]].
	OpResult []json.RawMessage
	OpLog    [][]LogEntry
	Summary  []string
	// Received, Started and Ended are zero until they happen.
	Received, Started, Ended time.Time
}

// Job returns a job, live or archived.
func (c *Client) Job(ctx context.Context, id int64) (*Job, error) {
	fields := []string{"id", "status", "priority", "archived", "ops", "opstatus", "opresult", "oplog", "summary", "received_ts", "start_ts", "end_ts"}
	rows, err := c.QueryJobs(ctx, []int64{id}, fields...)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || rows[0] == nil {
		return nil, fmt.Errorf("job %d: %w", id, ErrJobNotFound)
	}
	r := rows[0]
	if len(r) != len(fields) {
		return nil, fmt.Errorf("client: jobqd answered %d fields for %d", len(r), len(fields))
	}
	j := &Job{}
	var ts [3]*timestamp
	for i, dst := range []any{&j.ID, &j.Status, &j.Priority, &j.Archived, &j.Ops, &j.OpStatus, &j.OpResult, &j.OpLog, &j.Summary, &ts[0], &ts[1], &ts[2]} {
		if err := json.Unmarshal(r[i], dst); err != nil {
			return nil, fmt.Errorf("client: job %d field %s: %w", id, fields[i], err)
		}
	}
	j.Received, j.Started, j.Ended = ts[0].time(), ts[1].time(), ts[2].time()
	return j, nil
}

// JobChange is a WaitForJobChange answer: the fields' current values and
// the log entries after the serial the caller had.
type JobChange struct {
	Info []json.RawMessage
	Logs []LogEntry
}

// WaitForJobChange waits until job id's fields differ from prevInfo (nil:
// answer at once) or it has log entries after prevLogSerial (-1: all),
// at most timeout, and returns the current state. A job that does not
// exist is ErrJobNotFound.
func (c *Client) WaitForJobChange(ctx context.Context, id int64, fields []string, prevInfo []json.RawMessage,
	prevLogSerial int64, timeout time.Duration) (*JobChange, error) {
	var prev any // null
	if prevInfo != nil {
		prev = prevInfo
	}
	var serial any // null
	if prevLogSerial >= 0 {
		serial = prevLogSerial
	}
	var raw json.RawMessage
	if err := c.call(ctx, &raw, "WaitForJobChange", id, fields, prev, serial, timeout.Seconds()); err != nil {
		return nil, err
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, fmt.Errorf("job %d: %w", id, ErrJobNotFound)
	}
	var pair []json.RawMessage
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return nil, fmt.Errorf("client: WaitForJobChange answer is not [values, log entries]: %.200s", raw)
	}
	ch := &JobChange{}
	if err := json.Unmarshal(pair[0], &ch.Info); err != nil || len(ch.Info) != len(fields) {
		return nil, fmt.Errorf("client: WaitForJobChange values are not %d fields: %.200s", len(fields), pair[0])
	}
	if err := json.Unmarshal(pair[1], &ch.Logs); err != nil {
		return nil, fmt.Errorf("client: WaitForJobChange log entries: %w", err)
	}
	return ch, nil
}

// WatchJob follows job id until it is final, calling fn with each of its
// log entries, in order, as they appear (a job that already ended has all
// of them at once), and returns the job's final status. If fn returns an
// error, watching stops with that error.
func (c *Client) WatchJob(ctx context.Context, id int64, fn func(LogEntry) error) (Status, error) {
	var status Status
	var ferr error
	for e, err := range c.watch(ctx, id, &status) {
		if err != nil {
			return "", err
		}
		if fn != nil {
			if ferr = fn(e); ferr != nil {
				return status, ferr
			}
		}
	}
	return status, nil
}

// LogEntries is WatchJob as an iterator: it yields job id's log entries
// as they appear until the job is final. A failure is yielded last, with
// a zero entry.
func (c *Client) LogEntries(ctx context.Context, id int64) iter.Seq2[LogEntry, error] {
	var status Status
	return c.watch(ctx, id, &status)
}

func (c *Client) watch(ctx context.Context, id int64, status *Status) iter.Seq2[LogEntry, error] {
	return func(yield func(LogEntry, error) bool) {
		fields := []string{"status"}
		var prev []json.RawMessage
		serial := int64(-1)
		for {
			ch, err := c.WaitForJobChange(ctx, id, fields, prev, serial, waitTimeout)
			if err != nil {
				yield(LogEntry{}, err)
				return
			}
			for _, e := range ch.Logs {
				if e.Serial > serial {
					serial = e.Serial
				}
				if !yield(e, nil) {
					return
				}
			}
			var st Status
			if err := json.Unmarshal(ch.Info[0], &st); err != nil {
				yield(LogEntry{}, fmt.Errorf("client: job %d status: %w", id, err))
				return
			}
			*status = st
			if st.Final() {
				return
			}
			prev = ch.Info
		}
	}
}

// CancelJob cancels a job that has not started running: a queued job ends
// canceled at once, a waiting one before it runs. It returns whether the
// job was canceled and jobqd's message (e.g. "Job no longer waiting, can't
// cancel (informed it anyway)" for a running job, as Ganeti says).
func (c *Client) CancelJob(ctx context.Context, id int64) (bool, string, error) {
	return c.cancel(ctx, id, false)
}

// KillJob is CancelJob that also interrupts a running opcode (the job
// ends canceled).
func (c *Client) KillJob(ctx context.Context, id int64) (bool, string, error) {
	return c.cancel(ctx, id, true)
}

func (c *Client) cancel(ctx context.Context, id int64, kill bool) (bool, string, error) {
	var res [2]any
	args := []any{id}
	if kill {
		args = append(args, true)
	}
	if err := c.call(ctx, &res, "CancelJob", args...); err != nil {
		return false, "", err
	}
	ok, _ := res[0].(bool)
	msg, _ := res[1].(string)
	return ok, msg, nil
}

// ChangeJobPriority changes the priority of a job's opcodes that have not
// started; it returns whether it did and jobqd's message.
func (c *Client) ChangeJobPriority(ctx context.Context, id int64, priority int) (bool, string, error) {
	var res [2]any
	if err := c.call(ctx, &res, "ChangeJobPriority", id, priority); err != nil {
		return false, "", err
	}
	ok, _ := res[0].(bool)
	msg, _ := res[1].(string)
	return ok, msg, nil
}

// ArchiveJob moves a final job to the archive (it stays queryable by id).
// It returns false if the job is not live or not final.
func (c *Client) ArchiveJob(ctx context.Context, id int64) (bool, error) {
	var ok bool
	err := c.call(ctx, &ok, "ArchiveJob", id)
	return ok, err
}

// AutoArchiveJobs archives the final jobs that ended at least age ago
// (every final job when age is negative), spending at most timeout. It
// returns how many were archived and how many were left unchecked.
func (c *Client) AutoArchiveJobs(ctx context.Context, age, timeout time.Duration) (archived, left int, err error) {
	secs := int64(-1)
	if age >= 0 {
		secs = int64(age / time.Second)
	}
	var res [2]int
	if err := c.call(ctx, &res, "AutoArchiveJobs", secs, timeout.Seconds()); err != nil {
		return 0, 0, err
	}
	return res[0], res[1], nil
}

// SetDrainFlag drains (true) or undrains the queue: a drained queue
// refuses submissions; queued jobs still run.
func (c *Client) SetDrainFlag(ctx context.Context, drained bool) error {
	return c.call(ctx, nil, "SetDrainFlag", drained)
}
