package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/jsonobj"
	"github.com/jobq-dev/jobq/internal/query"
)

// The gnt-job equivalents: list, list-fields, info, cancel,
// change-priority, archive and autoarchive (watch and wait are in poll.go).

// Job status sets of gnt-job list's status options (Ganeti's
// JOBS_PENDING and JOBS_FINALIZED).
var (
	statusPending  = []any{"queued", "waiting", "canceling"}
	statusRunning  = []any{"running"}
	statusError    = []any{"error"}
	statusFinished = []any{"canceled", "success", "error"}
)

// queryResult is the result of a LUXI Query call.
type queryResult struct {
	Fields []format.FieldDef `json:"fields"`
	// Data holds [status, value] cells, decoded with exact numbers.
	Data queryData `json:"data"`
}

// fieldsResult is the result of a LUXI QueryFields call.
type fieldsResult struct {
	Fields []format.FieldDef `json:"fields"`
}

// numericKind reports whether Ganeti right-aligns a column of this kind.
func numericKind(kind string) bool {
	return kind == format.KindNumber || kind == format.KindFloat || kind == format.KindUnit
}

// warnUnknownFields prints Ganeti's warning about unknown fields and
// reports whether there were any.
func (a *app) warnUnknownFields(defs []format.FieldDef) bool {
	var unknown []string
	for _, d := range defs {
		if d.Kind == format.KindUnknown {
			unknown = append(unknown, d.Name)
		}
	}
	if len(unknown) == 0 {
		return false
	}
	fmt.Fprintf(a.env.Stderr, "Warning: Queried for unknown fields %s\n", strings.Join(unknown, ", "))
	return true
}

// tableOptions are the layout options of a text listing.
type tableOptions struct {
	noHeaders bool
	separator string
}

func (o *tableOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.noHeaders, "no-headers", false, "do not print the header line")
	f.StringVar(&o.separator, "separator", "", "separate the columns with `SEP` instead of aligning them")
}

func (o *tableOptions) sep(cmd *cobra.Command) *string {
	if cmd.Flags().Changed("separator") {
		return format.Sep(o.separator)
	}
	return nil
}

func (a *app) newListCmd() *cobra.Command {
	var (
		tab                                tableOptions
		output                             string
		pending, running, failed, finished bool
		archived, asJSON, forceFilter      bool
	)
	cmd := &cobra.Command{
		Use:   "list [flags] [ID... | FILTER]",
		Short: "List jobs and their status",
		Long: `List the jobs in the queue (or only the given job IDs), one line each, like
"gnt-job list". The default fields are id, status and summary; -o replaces
them ("-o id,status,priority") or, with a leading "+", adds to them
("-o +priority"). "jobq list-fields" shows every field.

--pending (queued, waiting or canceling), --running, --error and --finished
(canceled, success or error) select jobs by status. --archived adds the
"archived" column, which also makes archived jobs part of the listing; jobs
given by ID are found whether archived or not.

A single argument with a space, quote, parenthesis or one of ! / < = > \ ~
(or any argument with -F/--filter) is a filter in Ganeti's query language:
conditions such as status == "running", id > 100, priority != 0,
summary =~ /DELAY/i, "error" in opstatus, or a field alone, combined with
not, and, or and parentheses.

Unknown fields are shown as "??", with a warning and exit code 14. A job given
by ID that does not exist is named on stderr and the exit code is 1.`,
		Example: `  jobq list
  jobq list --pending -o id,status,priority,summary
  jobq list --no-headers --separator='|' -o id,status,received_ts 6040 6046
  jobq list --archived --json
  jobq list -F 'status == "error" and id > 6040'
  jobq list 'summary =~ /DELAY/ and not priority == 0'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var textFilter any
			if forceFilter || len(args) == 1 && query.LooksLikeFilter(args[0]) {
				if len(args) != 1 {
					return usagef(cmd, "with -F/--filter give exactly one argument, the filter (quote it)")
				}
				f, err := query.ParseText(args[0])
				if err != nil {
					return usagef(cmd, "invalid filter %q: %s", args[0], err.Error())
				}
				textFilter, args = f, nil
			}
			ids, err := parseJobIDs(cmd, args)
			if err != nil {
				return err
			}
			var statuses []any
			chosen := 0
			for _, s := range []struct {
				on  bool
				set []any
			}{{pending, statusPending}, {running, statusRunning}, {failed, statusError}, {finished, statusFinished}} {
				if s.on {
					chosen++
					statuses = s.set
				}
			}
			if chosen > 1 {
				return usagef(cmd, "give at most one of --pending, --running, --error and --finished")
			}
			fields := format.ParseFields(output, format.DefaultJobListFields)
			if archived && !contains(fields, "archived") {
				fields = append(fields, "archived")
			}
			var idFilter, statusFilter any
			if len(ids) > 0 {
				vals := make([]any, len(ids))
				for i, id := range ids {
					vals[i] = id
				}
				idFilter = query.SimpleFilter("id", vals...)
			}
			if statuses != nil {
				statusFilter = query.SimpleFilter("status", statuses...)
			}
			if textFilter != nil {
				idFilter = textFilter
			}
			var filter any
			switch {
			case idFilter != nil && statusFilter != nil:
				filter = []any{query.OpAnd, idFilter, statusFilter}
			case idFilter != nil:
				filter = idFilter
			default:
				filter = statusFilter
			}
			var res queryResult
			if err := a.call(cmd.Context(), &res, "Query", "job", fields, filter); err != nil {
				return err
			}
			var missing []int64
			if len(ids) > 0 && statuses == nil {
				// Jobs asked for by ID that do not exist are errors (Ganeti
				// lists them as a row of "-" and exits 0).
				if missing, err = a.missingJobs(cmd.Context(), ids, &res); err != nil {
					return err
				}
			}
			unknown := a.warnUnknownFields(res.Fields)
			if asJSON {
				err = a.printQueryJSON(res)
			} else {
				err = a.printQueryTable(cmd, res, tab)
			}
			if err != nil {
				return err
			}
			if err := a.jobsNotFound(missing); err != nil {
				return err
			}
			if unknown {
				return silentExit(exitUnknownField)
			}
			return nil
		},
	}
	tab.addFlags(cmd)
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "`FIELDS` to show, comma-separated; a leading \"+\" adds them to the defaults")
	f.BoolVar(&pending, "pending", false, "only jobs that are queued, waiting or canceling")
	f.BoolVar(&running, "running", false, "only running jobs")
	f.BoolVar(&failed, "error", false, "only failed jobs")
	f.BoolVar(&finished, "finished", false, "only finished jobs (canceled, success or error)")
	f.BoolVar(&archived, "archived", false, "include archived jobs and show the \"archived\" column")
	f.BoolVarP(&forceFilter, "filter", "F", false, "take the argument as a filter in Ganeti's query language, even without the characters that mark one")
	addJSONFlag(f, &asJSON)
	return cmd
}

// missingJobs returns the jobs of ids that do not exist, and takes their
// rows out of res. A Query for IDs answers one row per distinct ID, in the
// order first given; a job that does not exist has every field but "id"
// unavailable. When only "id" was asked for, QueryJobs tells.
func (a *app) missingJobs(ctx context.Context, ids []int64, res *queryResult) ([]int64, error) {
	var uniq []int64
	for _, id := range ids {
		if !slices.Contains(uniq, id) {
			uniq = append(uniq, id)
		}
	}
	onlyID := !slices.ContainsFunc(res.Fields, func(f format.FieldDef) bool { return f.Name != "id" })
	if onlyID || len(res.Data) != len(uniq) {
		var rows []json.RawMessage
		if err := a.call(ctx, &rows, "QueryJobs", uniq, []string{"id"}); err != nil {
			return nil, err
		}
		var missing []int64
		for i, raw := range rows {
			if i < len(uniq) && bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
				missing = append(missing, uniq[i])
			}
		}
		if len(res.Data) == len(uniq) {
			var kept queryData
			for i, row := range res.Data {
				if !slices.Contains(missing, uniq[i]) {
					kept = append(kept, row)
				}
			}
			res.Data = kept
		}
		return missing, nil
	}
	var missing []int64
	var kept queryData
	for i, row := range res.Data {
		absent := true
		for j, f := range res.Fields {
			if f.Name == "id" || j >= len(row) {
				continue
			}
			if cell, ok := row[j].([]any); ok && len(cell) == 2 && cell[0] == json.Number("0") {
				absent = false
			}
		}
		if absent {
			missing = append(missing, uniq[i])
			continue
		}
		kept = append(kept, row)
	}
	res.Data = kept
	return missing, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// printQueryTable prints a Query result as gnt-job list does.
func (a *app) printQueryTable(cmd *cobra.Command, res queryResult, tab tableOptions) error {
	t := &format.Table{NoHeaders: tab.noHeaders, Separator: tab.sep(cmd)}
	for _, f := range res.Fields {
		t.Columns = append(t.Columns, format.Column{Title: f.Title, AlignRight: numericKind(f.Kind)})
	}
	for _, row := range res.Data {
		cells := make([]string, len(res.Fields))
		for i, f := range res.Fields {
			var cell any
			if i < len(row) {
				cell = row[i]
			}
			cells[i] = format.FormatJobQueryCell(f.Name, cell, a.env.Location)
		}
		t.Rows = append(t.Rows, cells)
	}
	_, err := t.WriteTo(a.env.Stdout)
	return err
}

// printQueryJSON prints a Query result as a JSON array with one object per
// job, field name to value; a value the server does not have (a job that
// does not exist, an unknown field) is null.
func (a *app) printQueryJSON(res queryResult) error {
	out := make([]*jsonobj.Object, 0, len(res.Data))
	for _, row := range res.Data {
		obj := &jsonobj.Object{}
		for i, f := range res.Fields {
			var val json.RawMessage
			if i < len(row) {
				if cell, ok := row[i].([]any); ok && len(cell) == 2 && cell[0] == json.Number("0") {
					b, err := json.Marshal(cell[1])
					if err != nil {
						return failf("jobqd's answer to Query is not what jobq expects (%v)", err)
					}
					val = b
				}
			}
			obj.Add(f.Name, nullIfEmpty(val))
		}
		out = append(out, obj)
	}
	return writeJSON(a.env.Stdout, out)
}

func (a *app) newListFieldsCmd() *cobra.Command {
	var (
		tab    tableOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list-fields [flags] [FIELD...]",
		Short: "List the fields jobs have",
		Long: `List the job fields "jobq list -o" accepts (or only the given ones), with
their type, column title and description, like "gnt-job list-fields".
Unknown fields are listed with type Unknown, a warning and exit code 14.`,
		Example: `  jobq list-fields
  jobq list-fields --json id status`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var names any // null: all fields
			if len(args) > 0 {
				names = args
			}
			var res fieldsResult
			if err := a.call(cmd.Context(), &res, "QueryFields", "job", names); err != nil {
				return err
			}
			unknown := a.warnUnknownFields(res.Fields)
			var err error
			if asJSON {
				defs := res.Fields
				if defs == nil {
					defs = []format.FieldDef{}
				}
				err = writeJSON(a.env.Stdout, defs)
			} else {
				_, err = format.ListFieldsTable(res.Fields, tab.noHeaders, tab.sep(cmd)).WriteTo(a.env.Stdout)
			}
			if err != nil {
				return err
			}
			if unknown {
				return silentExit(exitUnknownField)
			}
			return nil
		},
	}
	tab.addFlags(cmd)
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

func (a *app) newInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "info [flags] [ID...]",
		Aliases: []string{"show"},
		Short:   "Show everything about jobs",
		Long: `Show the details of the given jobs like "gnt-job info": status, timestamps,
and for each opcode its parameters, result and log. Archived jobs are found
too. A job that does not exist is an error: it is named on stderr and the
exit code is 1 (the jobs that exist are shown all the same). Without IDs,
every job of the live queue is shown, as "gnt-job info" does.

With --json, each job is an object of its fields (id, status, ops, opresult,
opstatus, oplog, opstart, opexec, opend, received_ts, start_ts, end_ts, and
for a delayed job or one with time limits not_before, timeout, optimeout).`,
		Example: `  jobq info 6040
  jobq show 6040 6046
  jobq info --json 6040
  jobq info`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseJobIDs(cmd, args)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				if ids, err = a.jobIDs(cmd.Context(), nil); err != nil {
					return err
				}
				if len(ids) == 0 {
					return nil
				}
			}
			var rows []json.RawMessage
			if err := a.call(cmd.Context(), &rows, "QueryJobs", ids, format.JobInfoFields); err != nil {
				return err
			}
			if len(rows) != len(ids) {
				return failf("jobqd answered QueryJobs with %d jobs for %d job IDs", len(rows), len(ids))
			}
			// Jobs that do not exist are errors (Ganeti prints "- Job ID N
			// not found" among the jobs and exits 0).
			var missing []int64
			found := make([]json.RawMessage, 0, len(rows))
			foundIDs := make([]int64, 0, len(rows))
			for i, raw := range rows {
				if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
					missing = append(missing, ids[i])
					continue
				}
				found = append(found, raw)
				foundIDs = append(foundIDs, ids[i])
			}
			if asJSON {
				if err := a.printJobsJSON(foundIDs, found, format.JobInfoFields, "not_before", "timeout", "optimeout"); err != nil {
					return err
				}
				return a.jobsNotFound(missing)
			}
			entries := make([]format.JobInfoEntry, len(found))
			for i, raw := range found {
				var row []any
				if err := decodeJSON(raw, &row); err != nil {
					return failf("jobqd's answer to QueryJobs is not what jobq expects (%v)", err)
				}
				entries[i] = format.JobInfoEntry{ID: foundIDs[i], Job: format.RowToMap(format.JobInfoFields, row)}
			}
			if len(entries) > 0 {
				if err := format.JobsInfo(a.env.Stdout, entries, a.env.Location); err != nil {
					return err
				}
			}
			return a.jobsNotFound(missing)
		},
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

// jobNotFound is the message for a job that does not exist.
func jobNotFound(id int64) string {
	return fmt.Sprintf("Job %d not found: there is no such job in the queue or its archive ('jobq list --archived' lists the jobs)", id)
}

// jobsNotFound prints jobNotFound for each of ids on stderr and fails
// (exit 1) when there is one; nil when ids is empty.
func (a *app) jobsNotFound(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		fmt.Fprintln(a.env.Stderr, jobNotFound(id))
	}
	return silentExit(exitFailure)
}

// printJobsJSON prints QueryJobs rows as a JSON array of objects.
func (a *app) printJobsJSON(ids []int64, rows []json.RawMessage, fields []string, omitUnset ...string) error {
	out := make([]*jsonobj.Object, len(rows))
	for i, raw := range rows {
		var row []json.RawMessage
		if err := json.Unmarshal(raw, &row); err != nil {
			return failf("jobqd's answer to QueryJobs is not what jobq expects (%v)", err)
		}
		obj := &jsonobj.Object{}
		for j, f := range fields {
			var val json.RawMessage
			switch {
			case row == nil && f == "id":
				val = json.RawMessage(fmt.Sprint(ids[i]))
			case j < len(row):
				val = row[j]
			}
			if slices.Contains(omitUnset, f) && unset(val) {
				continue
			}
			obj.Add(f, nullIfEmpty(val))
		}
		out[i] = obj
	}
	return writeJSON(a.env.Stdout, out)
}

// jobAction runs one LUXI call per job that answers [success, message],
// prints each message (on stdout, as gnt-job does) and fails when one
// did not succeed.
func (a *app) jobAction(cmd *cobra.Command, ids []int64, method string, extra ...any) error {
	code := exitSuccess
	for _, id := range ids {
		var res []any
		if err := a.call(cmd.Context(), &res, method, append([]any{id}, extra...)...); err != nil {
			return err
		}
		if len(res) != 2 {
			return failf("jobqd's answer to %s is not [success, message]", method)
		}
		if ok, _ := res[0].(bool); !ok {
			code = exitFailure
		}
		fmt.Fprintln(a.env.Stdout, format.PyStr(res[1]))
	}
	if code != exitSuccess {
		return silentExit(code)
	}
	return nil
}

// jobIDs lists the ids of the live queue's jobs whose status is one of
// statuses (all jobs when nil), in id order.
func (a *app) jobIDs(ctx context.Context, statuses []any) ([]int64, error) {
	var filter any
	if statuses != nil {
		filter = query.SimpleFilter("status", statuses...)
	}
	var res queryResult
	if err := a.call(ctx, &res, "Query", "job", []string{"id"}, filter); err != nil {
		return nil, err
	}
	return rowIDs(res)
}

// rowIDs returns the job ids of a Query result whose first field is "id".
func rowIDs(res queryResult) ([]int64, error) {
	ids := make([]int64, 0, len(res.Data))
	for _, row := range res.Data {
		var id int64
		err := errors.New("a row without its id")
		if len(row) > 0 {
			if cell, ok := row[0].([]any); ok && len(cell) == 2 {
				if n, ok := cell[1].(json.Number); ok {
					id, err = n.Int64()
				}
			}
		}
		if err != nil {
			return nil, failf("jobqd's answer to Query is not what jobq expects (%v)", err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// statusSelection is gnt-job cancel's and change-priority's choice of jobs
// by status instead of by ID: --pending, --queued or --waiting, and
// --force to act without asking.
type statusSelection struct {
	pending, queued, waiting, force bool
}

func (s *statusSelection) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&s.pending, "pending", false, "act on every job that is queued, waiting or canceling (instead of job IDs)")
	f.BoolVar(&s.queued, "queued", false, "act on every queued job (instead of job IDs)")
	f.BoolVar(&s.waiting, "waiting", false, "act on every waiting job (instead of job IDs)")
	f.BoolVar(&s.force, "force", false, "with --pending, --queued or --waiting: do not ask for confirmation")
}

// selectJobs returns the jobs to act on: the IDs of args, or the jobs of
// the chosen status, listed and confirmed (unless --force) with question;
// exit code 13 when the user does not confirm.
func (a *app) selectJobs(cmd *cobra.Command, s statusSelection, args []string, question string) ([]int64, error) {
	var statuses []any
	chosen := 0
	for _, c := range []struct {
		on  bool
		set []any
	}{{s.pending, statusPending}, {s.queued, []any{"queued"}}, {s.waiting, []any{"waiting"}}} {
		if c.on {
			chosen++
			statuses = c.set
		}
	}
	switch {
	case chosen > 1:
		return nil, usagef(cmd, "give at most one of --pending, --queued and --waiting")
	case chosen == 1 && len(args) > 0:
		return nil, usagef(cmd, "give either job IDs or one of --pending, --queued and --waiting, not both")
	case chosen == 0 && len(args) == 0:
		return nil, usagef(cmd, "give job IDs or one of --pending, --queued and --waiting")
	case chosen == 0:
		if s.force {
			return nil, usagef(cmd, "--force only goes with --pending, --queued or --waiting")
		}
		return parseJobIDs(cmd, args)
	}
	ctx := cmd.Context()
	var res queryResult
	if err := a.call(ctx, &res, "Query", "job", []string{"id", "status", "summary"}, query.SimpleFilter("status", statuses...)); err != nil {
		return nil, err
	}
	if len(res.Data) == 0 {
		return nil, failf("No jobs with the requested status have been found")
	}
	ids, err := rowIDs(res)
	if err != nil {
		return nil, err
	}
	if s.force {
		return ids, nil
	}
	if err := a.printQueryTable(cmd, res, tableOptions{}); err != nil {
		return nil, err
	}
	fmt.Fprintf(a.env.Stdout, "%s y/[n]: ", question)
	line, _ := bufio.NewReader(a.env.Stdin).ReadString('\n')
	if answer := strings.ToLower(strings.TrimSpace(line)); answer != "y" && answer != "yes" {
		if line == "" {
			fmt.Fprintln(a.env.Stdout)
		}
		return nil, &exitError{code: exitConfirmation, msg: "Nothing done: not confirmed (add --force to act without asking)."}
	}
	return ids, nil
}

func (a *app) newCancelCmd() *cobra.Command {
	var (
		kill, yesDoIt bool
		sel           statusSelection
	)
	cmd := &cobra.Command{
		Use:   "cancel [--kill] {ID... | --pending | --queued | --waiting [--force]}",
		Short: "Cancel jobs that have not started",
		Long: `Cancel the given jobs, like "gnt-job cancel". A queued job is canceled at
once, a waiting one before it runs; a running or finished job is not
canceled. The daemon's answer is printed for each job; the exit code is 1 if
any job was not canceled.

Instead of IDs, --pending (queued, waiting or canceling), --queued or
--waiting cancel every job in that state: they are listed and you are asked
to confirm (exit code 13 if you do not), unless --force is given.

--kill also stops a running job by cancelling the opcode being executed.`,
		Example: `  jobq cancel 6049
  jobq cancel --kill 6048
  jobq cancel --queued --force`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_ = yesDoIt // accepted as gnt-job's (which needs it with --kill)
			action := "Cancel"
			if kill {
				action = "KILL"
			}
			ids, err := a.selectJobs(cmd, sel, args, action+" job(s) listed above?")
			if err != nil {
				return err
			}
			return a.jobAction(cmd, ids, "CancelJob", kill)
		},
	}
	cmd.Flags().BoolVar(&kill, "kill", false, "also stop jobs that are running")
	cmd.Flags().BoolVar(&yesDoIt, "yes-do-it", false, "accepted for gnt-job's \"--kill --yes-do-it\"; jobq does not need it")
	sel.addFlags(cmd)
	return cmd
}

func (a *app) newChangePriorityCmd() *cobra.Command {
	var (
		prio string
		sel  statusSelection
	)
	cmd := &cobra.Command{
		Use:   "change-priority --priority PRIO {ID... | --pending | --queued | --waiting [--force]}",
		Short: "Change the priority of jobs",
		Long: `Change the priority of the opcodes of the given jobs that have not started
yet, like "gnt-job change-priority". PRIO is high (-10), normal (0), low (10)
or a number from -20 (most urgent) to 19. The daemon's answer is printed for
each job; the exit code is 1 if any job's priority could not be changed.

Instead of IDs, --pending, --queued or --waiting select every job in that
state: they are listed and you are asked to confirm (exit code 13 if you do
not), unless --force is given.`,
		Example: `  jobq change-priority --priority=low 6050
  jobq change-priority --priority -15 6050 6051
  jobq change-priority --priority high --pending --force`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("priority") {
				return usagef(cmd, "the --priority option must be given")
			}
			p, err := format.ParsePriority(prio)
			if err != nil {
				return usagef(cmd, "%s", err.Error())
			}
			ids, err := a.selectJobs(cmd, sel, args, "Change priority of job(s) listed above?")
			if err != nil {
				return err
			}
			return a.jobAction(cmd, ids, "ChangeJobPriority", p)
		},
	}
	cmd.Flags().StringVar(&prio, "priority", "", "the new priority `PRIO`: high, normal, low or -20..19")
	sel.addFlags(cmd)
	return cmd
}

func (a *app) newArchiveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "archive ID...",
		Short: "Archive finished jobs",
		Long: `Move the given finished jobs to the archive, like "gnt-job archive". Archived
jobs no longer appear in "jobq list" (unless --archived) but "jobq info"
still shows them. The exit code is 1 if any job could not be archived; the
reason is printed (it does not exist, is already archived or has not
finished).`,
		Example: `  jobq archive 6040`,
		Args:    minArgs(1, "at least one job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseJobIDs(cmd, args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			code := exitSuccess
			for _, id := range ids {
				var ok bool
				err := a.do(ctx, "ArchiveJob", func(c *client.Client) (err error) {
					ok, err = c.ArchiveJob(ctx, id)
					return err
				})
				if err != nil {
					return err
				}
				if !ok {
					why, err := a.whyNotArchived(ctx, id)
					if err != nil {
						return err
					}
					fmt.Fprintln(a.env.Stderr, format.ArchiveFailed(id)+": "+why)
					code = exitFailure
				}
			}
			if code != exitSuccess {
				return silentExit(code)
			}
			return nil
		},
	}
}

// whyNotArchived says why ArchiveJob refused job id (Ganeti says nothing).
func (a *app) whyNotArchived(ctx context.Context, id int64) (string, error) {
	var rows [][]any
	if err := a.call(ctx, &rows, "QueryJobs", []int64{id}, []string{"status", "archived"}); err != nil {
		return "", err
	}
	switch {
	case len(rows) != 1 || rows[0] == nil:
		return "there is no such job in the queue or its archive", nil
	case len(rows[0]) == 2 && rows[0][1] == true:
		return "it is archived already", nil
	case len(rows[0]) == 2 && !isFinalStatus(format.PyStr(rows[0][0])):
		return fmt.Sprintf("it has not finished (it is %s); wait for it with 'jobq wait %d', or cancel it first", format.PyStr(rows[0][0]), id), nil
	}
	return "jobqd refused it; try again", nil
}

// isFinalStatus reports whether a job in status s has finished.
func isFinalStatus(s string) bool { return s == "success" || s == "error" || s == "canceled" }

func (a *app) newAutoArchiveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "autoarchive AGE|all",
		Short: "Archive finished jobs older than an age",
		Long: `Archive every finished job that ended more than AGE ago, like "gnt-job
autoarchive". AGE is a duration as everywhere in jobq: seconds (3600) or a
number with a unit (30m, 1h, 1h30m, 2d, 1w); "all" archives every finished
job.`,
		Example: `  jobq autoarchive 1d
  jobq autoarchive all`,
		Args: exactArgs(1, "one age (such as 1h) or \"all\""),
		RunE: func(cmd *cobra.Command, args []string) error {
			age, err := format.ParseAge(args[0])
			if err != nil {
				return usagef(cmd, "%s", err.Error())
			}
			var res []any
			if err := a.call(cmd.Context(), &res, "AutoArchiveJobs", age, autoArchiveTimeout); err != nil {
				return err
			}
			if len(res) != 2 {
				return failf("jobqd's answer to AutoArchiveJobs is not [archived, left]")
			}
			fmt.Fprintln(a.env.Stdout, format.AutoArchived(res[0], res[1]))
			return nil
		},
	}
}

// nullIfEmpty is val, or null when there is none.
func nullIfEmpty(val json.RawMessage) json.RawMessage {
	if len(val) == 0 {
		return json.RawMessage("null")
	}
	return val
}

// unset reports whether a field's value is null, or a list of nulls (a
// jobq field a job does not use).
func unset(v json.RawMessage) bool {
	var x any
	if len(bytes.TrimSpace(v)) == 0 || json.Unmarshal(v, &x) != nil || x == nil {
		return true
	}
	l, ok := x.([]any)
	if !ok {
		return false
	}
	for _, e := range l {
		if e != nil {
			return false
		}
	}
	return true
}
