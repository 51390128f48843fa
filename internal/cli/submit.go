package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/opdef"
)

// newSubmitCmd is "jobq submit": one job of any opcodes, given as JSON,
// or of a declared opcode with key=value parameters, or of a file.
func (a *app) newSubmitCmd() *cobra.Command {
	var (
		timing  timingFlags
		prio    string
		asJSON  bool
		submit  bool
		file    string
		depends []int64
	)
	cmd := &cobra.Command{
		Use:   "submit [flags] OP_ID [KEY=VALUE...] | --file JOB.json | -- OPCODE...",
		Short: "Submit a job: a declared opcode with its parameters, or opcodes as JSON",
		Long: `"jobq submit OP_ID KEY=VALUE..." submits a job of the declared opcode OP_ID
(see "jobq opcode"): each parameter is checked against its definition
before anything is stored (a missing or mistyped parameter, a value out of
range or not matching its pattern is refused with a sentence naming the
parameter and what it allows); lists are comma-separated, booleans
true/false. jobq then waits for the job, printing each line the program
writes as it comes, and prints the program's result (JSON) at the end; the
exit code is 0 when the job succeeded. --submit prints "JobID: N" instead
of waiting. --file JOB.json submits the opcodes of a file (a JSON list of
opcode objects), waiting in the same way. --depends ID waits for job ID to
succeed first (repeatable).

"jobq submit -- OPCODE..." submits one job whose opcodes are the OPCODEs, each a JSON object with its
OP_ID and parameters, such as '{"OP_ID": "OP_TEST_DELAY", "duration": 1}'
(what Ganeti's "gnt-job submit" reads from a file), and print "JobID: N"
(with --json: {"id": N}). jobqd checks the opcodes at submission; "jobq
watch N" follows the job.

--priority sets every opcode's priority (low, normal, high or -10, 0, 10)
unless the opcode gives its own. --at TIME or --in DURATION keeps the job
queued until then ("jobq info" shows its "Not before" time; cancel and
change-priority work meanwhile); --timeout and --op-timeout limit how long
the job and each opcode run (past the limit the opcode is killed and the
job ends in error saying it timed out).`,
		Example: `  jobq submit OP_DISK_FREE nodes=node1,node2 min_free_percent=10
  jobq submit --submit --priority low OP_ARCHIVE_DIR dir=/srv/www node=node2
  jobq submit --file job.json
  jobq submit -- '{"OP_ID": "OP_TEST_DELAY", "duration": 1}'
  jobq submit --in 10m --priority high -- '{"OP_ID": "OP_TEST_DELAY", "duration": 1}' '{"OP_ID": "OP_TEST_DELAY", "duration": 2}'
  jobq submit --at 18:00 --timeout 1h -- '{"OP_ID": "OP_RESTRICTED_COMMAND", "command": "backup", "nodes": ["node1"]}'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				if len(args) > 0 {
					return usagef(cmd, "give either --file or opcodes, not both")
				}
				return nil
			}
			if len(args) == 0 {
				return usagef(cmd, "give the job's opcodes, each a JSON object such as '{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 1}'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var p *int
			if cmd.Flags().Changed("priority") {
				v, err := optionalPriority(cmd, prio)
				if err != nil {
					return err
				}
				p = &v
			}
			tm, err := timing.timing(cmd, a.env.Now(), a.env.Location)
			if err != nil {
				return err
			}
			if file != "" || strings.HasPrefix(args[0], "OP_") {
				return a.submitDeclared(cmd, args, file, p, depends, tm, submit, asJSON)
			}
			var ops []client.Opcode
			for i, arg := range args {
				var m map[string]any
				if err := json.Unmarshal([]byte(arg), &m); err != nil || m == nil {
					return usagef(cmd, "opcode %d is not a JSON object; give one such as '{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 1}'", i+1)
				}
				if id, _ := m["OP_ID"].(string); id == "" {
					return usagef(cmd, "opcode %d has no OP_ID; give one such as '{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 1}'", i+1)
				}
				if _, ok := m["priority"]; !ok && p != nil {
					m["priority"] = *p
				}
				ops = append(ops, client.RawOp(m))
			}
			ctx := cmd.Context()
			var id int64
			err = a.do(ctx, "SubmitJob", func(c *client.Client) (err error) {
				switch {
				case timing.key != "":
					id, err = c.SubmitJobWith(ctx, client.SubmitOptions{Timing: tm, IdempotencyKey: timing.key}, ops...)
				case tm.NotBefore.IsZero() && tm.Timeout == 0 && tm.OpTimeout == 0:
					id, err = c.SubmitJob(ctx, ops...)
				default:
					id, err = c.SubmitJobTimed(ctx, tm, ops...)
				}
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				fmt.Fprintf(a.env.Stdout, "{\"id\": %d}\n", id)
			} else {
				fmt.Fprintf(a.env.Stdout, "JobID: %d\n", id)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&prio, "priority", "", "the opcodes' `PRIORITY`: low, normal, high, or -10, 0, 10")
	f.BoolVar(&asJSON, "json", false, `print {"id": N}`)
	f.BoolVar(&submit, "submit", false, "with OP_ID or --file: print the job's ID without waiting for it")
	f.StringVar(&file, "file", "", "submit the opcodes of `JOB.json` (a JSON list of opcode objects)")
	f.Int64SliceVar(&depends, "depends", nil, "wait for job `ID` to succeed before running (repeatable)")
	addTimingFlags(f, &timing)
	return cmd
}

// submitDeclared submits OP_ID KEY=VALUE... (checked against the
// definition first) or the opcodes of a file, then follows the job
// unless submit.
func (a *app) submitDeclared(cmd *cobra.Command, args []string, file string, prio *int, depends []int64, tm client.Timing, submit, asJSON bool) error {
	ctx := cmd.Context()
	var ops []map[string]any
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return failf("Cannot read the job file: %v", err)
		}
		if err := json.Unmarshal(b, &ops); err != nil || len(ops) == 0 {
			return usagef(cmd, "%s must hold a JSON list of opcode objects such as [{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 1}]", file)
		}
		for i, op := range ops {
			if id, _ := op["OP_ID"].(string); id == "" || op == nil {
				return usagef(cmd, "opcode %d of %s has no OP_ID", i+1, file)
			}
		}
	} else {
		id := args[0]
		var d opcodeInfo
		if err := a.call(ctx, &d, "JobqOpcodeInfo", id); err != nil {
			return err
		}
		fields := map[string]json.RawMessage{}
		op := map[string]any{"OP_ID": id, opdef.VersionParam: d.Version}
		for _, kv := range args[1:] {
			k, v, err := opdef.ParseArg(&d.Def, kv)
			if err != nil {
				return usagef(cmd, "%s", err)
			}
			op[k] = v
			fields[k], _ = json.Marshal(v)
		}
		if _, err := opdef.Check(&d.Def, fields); err != nil {
			return usagef(cmd, "%s", err)
		}
		ops = []map[string]any{op}
	}
	for _, op := range ops {
		if _, ok := op["priority"]; !ok && prio != nil {
			op["priority"] = *prio
		}
	}
	if len(depends) > 0 {
		var deps [][]any
		for _, id := range depends {
			deps = append(deps, []any{id, []string{"success"}})
		}
		ops[0]["depends"] = deps
	}
	cops := make([]client.Opcode, len(ops))
	for i, op := range ops {
		cops[i] = client.RawOp(op)
	}
	var id int64
	err := a.do(ctx, "SubmitJob", func(c *client.Client) (err error) {
		if tm.NotBefore.IsZero() && tm.Timeout == 0 && tm.OpTimeout == 0 {
			id, err = c.SubmitJob(ctx, cops...)
		} else {
			id, err = c.SubmitJobTimed(ctx, tm, cops...)
		}
		return err
	})
	if err != nil {
		return err
	}
	if submit {
		if asJSON {
			return writeJSON(a.env.Stdout, map[string]int64{"id": id})
		}
		fmt.Fprintln(a.env.Stdout, format.JobSubmitted(id))
		return nil
	}
	var rep pollReporter = &stdioReporter{a: a, id: id}
	if asJSON {
		rep = silentReporter{}
	}
	if err := a.followJob(ctx, id, rep); err != nil {
		return err
	}
	var rows [][]any
	if err := a.call(ctx, &rows, "QueryJobs", []int64{id}, []string{"opresult"}); err != nil {
		return err
	}
	if len(rows) == 1 && len(rows[0]) == 1 {
		if res, ok := rows[0][0].([]any); ok {
			if asJSON {
				return writeJSON(a.env.Stdout, map[string]any{"id": id, "results": res})
			}
			for _, r := range res {
				if r != nil {
					b, _ := json.Marshal(r)
					fmt.Fprintln(a.env.Stdout, string(b))
				}
			}
		}
	}
	return nil
}
