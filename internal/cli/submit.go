package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/client"
)

// newSubmitCmd is "jobq submit": one job of any opcodes, given as JSON.
func (a *app) newSubmitCmd() *cobra.Command {
	var (
		timing timingFlags
		prio   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "submit [flags] -- OPCODE...",
		Short: "Submit a job of the opcodes given as JSON",
		Long: `Submit one job whose opcodes are the OPCODEs, each a JSON object with its
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
		Example: `  jobq submit -- '{"OP_ID": "OP_TEST_DELAY", "duration": 1}'
  jobq submit --in 10m --priority high -- '{"OP_ID": "OP_TEST_DELAY", "duration": 1}' '{"OP_ID": "OP_TEST_DELAY", "duration": 2}'
  jobq submit --at 18:00 --timeout 1h -- '{"OP_ID": "OP_RESTRICTED_COMMAND", "command": "backup", "nodes": ["node1"]}'`,
		Args: func(cmd *cobra.Command, args []string) error {
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
	addTimingFlags(f, &timing)
	return cmd
}
