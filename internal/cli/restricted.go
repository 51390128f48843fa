package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
)

// The "gnt-node restricted-command" equivalent: jobq command NAME --nodes.

// restrictedCommandOp is an OP_RESTRICTED_COMMAND opcode.
type restrictedCommandOp struct {
	Command    string   `json:"command"`
	Nodes      []string `json:"nodes"`
	UseLocking bool     `json:"use_locking"`
	DryRun     bool     `json:"dry_run"`
	DebugLevel int      `json:"debug_level"`
	Priority   int      `json:"priority"`
	Depends    []any    `json:"depends"`
	Comment    *string  `json:"comment"`
	Reason     [][]any  `json:"reason"`
	OpCode     string   `json:"OP_ID"`
}

// OpID implements client.Opcode.
func (restrictedCommandOp) OpID() string { return "OP_RESTRICTED_COMMAND" }

// nodeOutcome is one node's outcome in `jobq command --json`.
type nodeOutcome struct {
	Node    string `json:"node"`
	Success bool   `json:"success"`
	Output  string `json:"output"`
}

func (a *app) newRestrictedCommandCmd() *cobra.Command {
	var (
		nodes                      []string
		useLocking, submit, asJSON bool
		prio                       string
		timing                     timingFlags
	)
	cmd := &cobra.Command{
		Use:   "command NAME --nodes NODE[,NODE...]",
		Short: "Run a restricted command on nodes (OP_RESTRICTED_COMMAND)",
		Long: `Submit a job with one OP_RESTRICTED_COMMAND opcode that runs the restricted
command NAME on each node given with --nodes, like "gnt-node
restricted-command". NAME is a bare file name (letters, digits, '-', '_'
and '.') of an executable that the node's administrator put into the node's
DATA_DIR/restricted-commands directory; nothing else can be run. The
directory and the file must belong to root (or to jobqd's user) and not be
writable by group or others. The command runs without a shell, arguments
or environment (only PATH), for at most 60 seconds, and at most 1 MiB of
its output (stdout and stderr together) is kept. It runs in a cgroup v2 of
its own when jobqd can make one (as root, or with systemd's Delegate=yes):
when it ends, times out, or a newer master stops an older one's work,
everything it started is killed, a child that called setsid too.

The nodes' locks are taken shared, so that commands may run on a node at
the same time; --use-locking takes them exclusively.

Without --submit, jobq waits for the job, then prints for each node
"NODE: success" or "NODE: failure" followed by the command's output,
indented by two spaces. With --json it prints a list of {"node", "success",
"output"} objects instead. The exit code is 0 if the command succeeded on
every node, else 1 (a sentence on stderr names the nodes where it failed).
With --submit it prints "JobID: N" (with --json: {"id": N}) and returns at
once; "jobq info N" shows the result later.

--at TIME or --in DURATION keeps the job queued until then; --timeout and
--op-timeout limit how long it runs (past the limit it is killed and ends
in error saying it timed out).`,
		Example: `  jobq command uptime --nodes node1,node2
  jobq command restart-agent -n node3 --use-locking
  jobq command --json check-disks --nodes node1 -n node2
  jobq command --submit uptime --nodes node1`,
		Args: exactArgs(1, "one command name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if len(nodes) == 0 {
				return usagef(cmd, "give the nodes to run %q on with --nodes NODE[,NODE...]", name)
			}
			for _, n := range nodes {
				if strings.TrimSpace(n) == "" {
					return usagef(cmd, "--nodes has an empty node name")
				}
			}
			p, err := optionalPriority(cmd, prio)
			if err != nil {
				return err
			}
			tm, err := timing.timing(cmd, a.env.Now(), a.env.Location)
			if err != nil {
				return err
			}
			op := restrictedCommandOp{
				Command:    name,
				Nodes:      nodes,
				UseLocking: useLocking,
				Priority:   p,
				Reason:     [][]any{{reasonSource, "command", a.env.Now().UnixNano()}},
			}
			op.OpCode = op.OpID()
			ctx := cmd.Context()
			id, err := a.submitTimed(ctx, tm, timing.key, op)
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
			outcomes, err := a.restrictedResults(ctx, id, nodes)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(a.env.Stdout, outcomes); err != nil {
					return err
				}
			} else {
				printOutcomes(a, outcomes)
			}
			return failedNodes(name, outcomes)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&nodes, "nodes", "n", nil, "run the command on each `NODE` (comma-separated, repeatable)")
	f.BoolVar(&useLocking, "use-locking", false, "take the nodes' locks exclusively while the command runs")
	addTimingFlags(f, &timing)
	f.BoolVar(&submit, "submit", false, "submit the job and print its ID without waiting for it")
	f.StringVar(&prio, "priority", "", "run at priority `PRIO`: high, normal or low (jobqd takes -10, 0 and 10, as Ganeti)")
	addJSONFlag(f, &asJSON)
	return cmd
}

// restrictedResults reads the result of the finished OP_RESTRICTED_COMMAND
// job id: one [success, output] pair per node, in the order given.
func (a *app) restrictedResults(ctx context.Context, id int64, nodes []string) ([]nodeOutcome, error) {
	var rows [][]any
	if err := a.call(ctx, &rows, "QueryJobs", []int64{id}, []string{"opresult"}); err != nil {
		return nil, err
	}
	bad := failf("The result of job %d is not one [success, output] pair per node", id)
	if len(rows) != 1 || len(rows[0]) != 1 {
		return nil, bad
	}
	opresult, ok := rows[0][0].([]any)
	if !ok || len(opresult) != 1 {
		return nil, bad
	}
	pairs, ok := opresult[0].([]any)
	if !ok || len(pairs) != len(nodes) {
		return nil, bad
	}
	out := make([]nodeOutcome, len(nodes))
	for i, p := range pairs {
		pair, ok := p.([]any)
		if !ok || len(pair) != 2 {
			return nil, bad
		}
		success, ok1 := pair[0].(bool)
		output, ok2 := pair[1].(string)
		if !ok1 || !ok2 {
			return nil, bad
		}
		out[i] = nodeOutcome{Node: nodes[i], Success: success, Output: output}
	}
	return out, nil
}

// printOutcomes prints "NODE: success|failure" and the output indented.
func printOutcomes(a *app, outcomes []nodeOutcome) {
	var b strings.Builder
	for _, o := range outcomes {
		status := "success"
		if !o.Success {
			status = "failure"
		}
		fmt.Fprintf(&b, "%s: %s\n", o.Node, status)
		text := strings.TrimSuffix(o.Output, "\n")
		if text == "" {
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			if line != "" {
				b.WriteString("  ")
				b.WriteString(line)
			}
			b.WriteByte('\n')
		}
	}
	fmt.Fprint(a.env.Stdout, b.String())
}

// failedNodes returns nil if the command succeeded everywhere, else an
// exit error naming where it failed (each node once).
func failedNodes(name string, outcomes []nodeOutcome) error {
	var failed []string
	seen := map[string]bool{}
	for _, o := range outcomes {
		if seen[o.Node] {
			continue
		}
		seen[o.Node] = true
		if !o.Success {
			failed = append(failed, o.Node)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return failf("Restricted command '%s' failed on %d of %d node%s: %s", name, len(failed), len(seen), plural(len(seen)), strings.Join(failed, ", "))
}
