package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/jsonobj"
)

// pollReporter is told what pollJob sees while it waits, as Ganeti's
// JobPollReportCbBase is.
type pollReporter interface {
	// logEntry is a new log entry of the job: [serial, [sec, usec], type, message].
	logEntry(entry []any)
	// notChanged says the job stayed in status for a whole wait.
	notChanged(status string)
	// found says the job exists: jobqd's first answer about it came.
	found()
}

// silentReporter ignores everything (gnt-job wait).
type silentReporter struct{}

func (silentReporter) logEntry([]any)    {}
func (silentReporter) notChanged(string) {}
func (silentReporter) found()            {}

// stdioReporter prints log entries to stdout and, once each, a note on
// stderr when the job stays queued or waiting (Ganeti's
// StdioJobPollReportCb, used by gnt-job watch and a synchronous
// gnt-debug delay).
type stdioReporter struct {
	a                         *app
	id                        int64
	notedQueued, notedWaiting bool
	// header, when not empty, is printed on stdout once the job is found
	// (gnt-job watch's "Output from job N follows").
	header string
}

func (r *stdioReporter) found() {
	if r.header != "" {
		fmt.Fprintln(r.a.env.Stdout, r.header)
		r.header = ""
	}
}

func (r *stdioReporter) logEntry(entry []any) {
	if line, ok := format.WatchLogEntry(entry, r.a.env.Location); ok {
		fmt.Fprintln(r.a.env.Stdout, line)
	}
}

func (r *stdioReporter) notChanged(status string) {
	switch {
	case status == "queued" && !r.notedQueued:
		fmt.Fprintln(r.a.env.Stderr, format.JobWaitingInQueue(r.id))
		r.notedQueued = true
	case status == "waiting" && !r.notedWaiting:
		fmt.Fprintln(r.a.env.Stderr, format.JobAcquiringLocks(r.id))
		r.notedWaiting = true
	}
}

// pollJob waits until job id has finished, reporting its log entries as
// they arrive, as Ganeti's cli.PollJob does. jobErr is nil when the job
// succeeded, else the encoded error it ended with (for format.FormatError
// and format.JobFailed), e.g. a JobLost error for a job that does not
// exist. err is a failure to talk to jobqd.
func (a *app) pollJob(ctx context.Context, id int64, rep pollReporter) (jobErr any, err error) {
	lost := format.EncodeError("JobLost", fmt.Sprintf("Job with id %d lost", id))
	var (
		prevInfo   json.RawMessage // null at first
		prevSerial *int64          // null at first
	)
	for {
		var res json.RawMessage
		if err := a.call(ctx, &res, "WaitForJobChange", id, []string{"status"}, prevInfo, prevSerial, wfjcTimeout); err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(res), []byte("null")) {
			if prevInfo == nil {
				// Never seen: a job that does not exist (or one archived
				// before its first answer, which QueryJobs still finds).
				jobErr, err := a.jobResult(ctx, id, nil)
				if err == nil {
					rep.found()
				}
				return jobErr, err
			}
			return lost, nil
		}
		if prevInfo == nil {
			rep.found()
		}
		var change []json.RawMessage
		if err := json.Unmarshal(res, &change); err != nil || len(change) != 2 {
			return nil, failf("jobqd's answer to WaitForJobChange is not [values, log entries]")
		}
		var info []any
		var entries [][]any
		if decodeJSON(change[0], &info) != nil || len(info) != 1 || decodeJSON(change[1], &entries) != nil {
			return nil, failf("jobqd's answer to WaitForJobChange is not [[status], log entries]")
		}
		status := format.PyStr(info[0])
		switch {
		case len(entries) > 0:
			for _, e := range entries {
				rep.logEntry(e)
				if len(e) > 0 {
					if n, ok := e[0].(json.Number); ok {
						if s, err := n.Int64(); err == nil && (prevSerial == nil || s > *prevSerial) {
							prevSerial = &s
						}
					}
				}
			}
		case isFinishedStatus(status):
			return a.jobResult(ctx, id, lost)
		case prevInfo != nil && jsonEqual(prevInfo, change[0]):
			rep.notChanged(status)
		}
		prevInfo = change[0]
	}
}

// isFinishedStatus reports whether polling stops at this job status (as in
// Ganeti, canceling counts).
func isFinishedStatus(s string) bool {
	switch s {
	case "success", "error", "canceling", "canceled":
		return true
	}
	return false
}

func jsonEqual(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// jobResult reads how a finished job ended. A job that is not found is
// jobErr lost, or the error jobNotFound when lost is nil.
func (a *app) jobResult(ctx context.Context, id int64, lost any) (jobErr any, err error) {
	var rows [][]any
	if err := a.call(ctx, &rows, "QueryJobs", []int64{id}, []string{"status", "opstatus", "opresult"}); err != nil {
		return nil, err
	}
	if len(rows) == 0 || rows[0] == nil {
		if lost == nil {
			return nil, failf("%s", jobNotFound(id))
		}
		return lost, nil
	}
	if len(rows[0]) != 3 {
		return nil, failf("jobqd's answer to QueryJobs is not [status, opstatus, opresult]")
	}
	if e, failed := format.FinishedJobError(rows[0][0], rows[0][1], rows[0][2]); failed {
		return e, nil
	}
	return nil, nil
}

// jsonHelp describes the JSON output of watch, wait and debug delay.
const jsonHelp = `With --json, stdout has one JSON object per line: each log entry as it
arrives ({"job", "serial", "time" as [seconds, microseconds], "type",
"message"}; not for wait), then the finished job ({"job", "status",
"opstatus", "opresult", "end_ts"}). The exit code and stderr are as without
--json.`

// jsonReporter prints each log entry as one line of JSON.
type jsonReporter struct {
	a  *app
	id int64
}

func (jsonReporter) notChanged(string) {}
func (jsonReporter) found()            {}

func (r jsonReporter) logEntry(e []any) {
	if len(e) != 4 {
		return
	}
	o := &jsonobj.Object{}
	o.Add("job", r.id)
	o.Add("serial", e[0])
	o.Add("time", e[1])
	o.Add("type", e[2])
	o.Add("message", e[3])
	writeJSONLine(r.a.env.Stdout, o)
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // stdout gone: nothing better to do
}

// printJobEnd prints the finished job as one line of JSON.
func (a *app) printJobEnd(ctx context.Context, id int64) error {
	fields := []string{"status", "opstatus", "opresult", "end_ts"}
	var rows [][]json.RawMessage
	if err := a.call(ctx, &rows, "QueryJobs", []int64{id}, fields); err != nil {
		return err
	}
	if len(rows) != 1 || len(rows[0]) != len(fields) {
		return nil // not found: the caller's error says so
	}
	o := &jsonobj.Object{}
	o.Add("job", id)
	for i, f := range fields {
		o.Add(f, rows[0][i])
	}
	writeJSONLine(a.env.Stdout, o)
	return nil
}

// pollJSON follows job id with --json output (its log entries when logs is
// set, then the finished job); failed turns a failure into the command's
// error as the text output does.
func (a *app) pollJSON(ctx context.Context, id int64, logs bool, failed func(jobErr any) error) error {
	var rep pollReporter = silentReporter{}
	if logs {
		rep = jsonReporter{a: a, id: id}
	}
	jobErr, err := a.pollJob(ctx, id, rep)
	if err != nil {
		return err
	}
	if err := a.printJobEnd(ctx, id); err != nil {
		return err
	}
	if jobErr != nil {
		return failed(jobErr)
	}
	return nil
}

// waitFailed is watch's and wait's error for a job that did not succeed.
func waitFailed(id int64) func(jobErr any) error {
	return func(jobErr any) error {
		code, _ := format.FormatError(jobErr)
		return &exitError{code: code, msg: format.JobFailed(id, jobErr)}
	}
}

func (a *app) newWatchCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a job's log until it finishes",
		Long: `Print the log messages of a job as they arrive, until the job has finished,
like "gnt-job watch". A finished job's whole log is printed. The exit code is
1 if the job did not succeed (the reason goes to stderr).

` + jsonHelp,
		Example: `  jobq watch 6046
  jobq watch --json 6046`,
		Args: exactArgs(1, "one job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(cmd, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return a.pollJSON(cmd.Context(), id, true, waitFailed(id))
			}
			return a.waitJob(cmd.Context(), id, &stdioReporter{a: a, id: id, header: format.WatchHeader(id)})
		},
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

func (a *app) newWaitCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for a job to finish",
		Long: `Wait silently until a job has finished, like "gnt-job wait". The exit code is
0 if it succeeded; otherwise the reason is printed on stderr and the exit
code is 1.

` + jsonHelp,
		Example: `  jobq wait 6046 && echo done
  jobq wait --json 6046`,
		Args: exactArgs(1, "one job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(cmd, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return a.pollJSON(cmd.Context(), id, false, waitFailed(id))
			}
			return a.waitJob(cmd.Context(), id, silentReporter{})
		},
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

// waitJob polls a job and fails with "Job N failed: ..." if it did not
// succeed.
func (a *app) waitJob(ctx context.Context, id int64, rep pollReporter) error {
	jobErr, err := a.pollJob(ctx, id, rep)
	if err != nil {
		return err
	}
	if jobErr != nil {
		code, _ := format.FormatError(jobErr)
		return &exitError{code: code, msg: format.JobFailed(id, jobErr)}
	}
	return nil
}

// followJob polls job id until it ends (see pollJob); a failed job is the
// command's error, formatted as Ganeti's cli does.
func (a *app) followJob(ctx context.Context, id int64, rep pollReporter) error {
	jobErr, err := a.pollJob(ctx, id, rep)
	if err != nil {
		return err
	}
	if jobErr != nil {
		code, msg := format.FormatError(jobErr)
		return &exitError{code: code, msg: msg}
	}
	return nil
}

// optionalPriority is the --priority flag's value when it was given (a
// usage error when it does not parse), else normal priority.
func optionalPriority(cmd *cobra.Command, prio string) (int, error) {
	if !cmd.Flags().Changed("priority") {
		return format.PriorityNormal, nil
	}
	p, err := format.ParsePriority(prio)
	if err != nil {
		return 0, usagef(cmd, "%s", err.Error())
	}
	return p, nil
}
