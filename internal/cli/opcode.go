package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/opdef"
)

// opcodeInfo is a declared opcode as JobqOpcodeList/Info answer it.
type opcodeInfo struct {
	opdef.Def
	Version string  `json:"version"`
	Added   float64 `json:"added"`
}

// newOpcodeCmd is "jobq opcode": the cluster's declared opcodes.
func (a *app) newOpcodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "opcode",
		Short: "Declare your own opcodes (add, replace, remove, list, info)",
		Long: `Declared opcodes are operations an operator defines in a TOML file, with no
Go: typed parameters, the locks taken, where the program runs (the master,
the node a parameter names, every node of a list parameter), the program
(an absolute path and arguments, no shell), its timeout and retries. They
are cluster configuration, agreed through the cluster's log and kept across
a master failover. "jobq submit OP_ID key=value..." runs one.

A job records the version (a hash of the definition) it was submitted with
and runs that version even if the definition is replaced or removed
meanwhile. See the README's "Your own operations" and examples/opcodes/.`,
	}
	addOrReplace := func(mode string) *cobra.Command {
		var asJSON bool
		c := &cobra.Command{
			Use:   mode + " FILE",
			Short: map[string]string{"add": "Add a declared opcode from its TOML file", "replace": "Replace a declared opcode by a new version of its file"}[mode],
			Long: `Check the definition FILE (every error is printed, named by its field) and
` + map[string]string{"add": "add it to the cluster; its OP_ID must be new.", "replace": "make it the current version of its OP_ID; queued jobs keep theirs."}[mode] + `
Prints "OP_ID version VERSION".`,
			Example: "  jobq opcode " + mode + " examples/opcodes/disk-free.toml",
			Args:    exactArgs(1, "one definition file"),
			RunE: func(cmd *cobra.Command, args []string) error {
				text, err := os.ReadFile(args[0])
				if err != nil {
					return failf("Cannot read the definition: %v", err)
				}
				if _, err := opdef.Parse(text); err != nil {
					return failf("%s has errors:\n%s", args[0], err)
				}
				var res struct {
					ID      string `json:"id"`
					Version string `json:"version"`
				}
				if err := a.call(cmd.Context(), &res, "JobqOpcodeAdd", string(text), mode); err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.env.Stdout, res)
				}
				fmt.Fprintf(a.env.Stdout, "%s version %s\n", res.ID, res.Version)
				return nil
			},
		}
		addJSONFlag(c.Flags(), &asJSON)
		return c
	}
	remove := &cobra.Command{
		Use:   "remove OP_ID",
		Short: "Remove a declared opcode (its queued jobs still run)",
		Long: `Remove OP_ID from the cluster's declared opcodes: new submissions of it are
refused; jobs already queued run the version they were submitted with.`,
		Example: "  jobq opcode remove OP_DISK_FREE",
		Args:    exactArgs(1, "one OP_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ok bool
			return a.call(cmd.Context(), &ok, "JobqOpcodeRemove", args[0])
		},
	}
	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the declared opcodes",
		Long: `List the cluster's declared opcodes: OP_ID, current version, where each runs,
its parameters (optional ones marked "?") and summary; --json prints the
whole definitions.`,
		Example: "  jobq opcode list\n  jobq opcode list --json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var defs []opcodeInfo
			if err := a.call(cmd.Context(), &defs, "JobqOpcodeList"); err != nil {
				return err
			}
			if listJSON {
				return writeJSON(a.env.Stdout, defs)
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "OP_ID\tVersion\tRuns on\tParameters\tSummary")
			for _, d := range defs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Version, opdef.RunsOn(&d.Def), paramNames(&d.Def), d.Summary)
			}
			return tw.Flush()
		},
	}
	addJSONFlag(list.Flags(), &listJSON)
	var infoJSON bool
	info := &cobra.Command{
		Use:   "info OP_ID",
		Short: "Show a declared opcode: its parameters, locks, program",
		Long: `Show the current definition of the declared opcode OP_ID: each parameter with
its type, default, pattern or range and doc line, where it runs, the
program, timeout, locks and retries; --json prints it as JSON.`,
		Example: "  jobq opcode info OP_DISK_FREE",
		Args:    exactArgs(1, "one OP_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d opcodeInfo
			if err := a.call(cmd.Context(), &d, "JobqOpcodeInfo", args[0]); err != nil {
				return err
			}
			if infoJSON {
				return writeJSON(a.env.Stdout, d)
			}
			fmt.Fprint(a.env.Stdout, describeOpcode(&d))
			return nil
		},
	}
	addJSONFlag(info.Flags(), &infoJSON)
	var outJSON bool
	output := &cobra.Command{
		Use:   "output JOB_ID",
		Short: "Print the whole output of a job's declared opcodes, from every node",
		Long: `Print the output files the nodes kept of job JOB_ID's declared opcodes (each
node keeps what its programs wrote in DIR/output/job-N/opI-attemptA.log,
every line prefixed "stdout: " or "stderr: "), each after a line
"==> NODE:FILE <==". The job file itself keeps a bounded log. A node that
cannot be asked is named on stderr; a reply holds at most 64 MiB (the end
of larger files, saying so).`,
		Example: "  jobq opcode output 42\n  jobq opcode output 42 | grep '^stderr: '",
		Args:    exactArgs(1, "one job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id < 0 {
				return usagef(cmd, "%q is not a job ID", args[0])
			}
			var nodes []struct {
				Node  string `json:"node"`
				Error string `json:"error"`
				Files []struct {
					Name      string `json:"name"`
					Data      []byte `json:"data"`
					Truncated int64  `json:"truncated"`
				} `json:"files"`
			}
			if err := a.call(cmd.Context(), &nodes, "JobqJobOutput", id); err != nil {
				return err
			}
			if len(nodes) == 0 {
				// No output anywhere: say so of a job that does not exist
				// (an error, as for info and watch).
				var rows []json.RawMessage
				if err := a.call(cmd.Context(), &rows, "QueryJobs", []int64{id}, []string{"id"}); err != nil {
					return err
				}
				if len(rows) != 1 || string(rows[0]) == "null" {
					return a.jobsNotFound([]int64{id})
				}
			}
			if outJSON {
				return writeJSON(a.env.Stdout, nodes)
			}
			failed := false
			for _, n := range nodes {
				if n.Error != "" {
					fmt.Fprintf(a.env.Stderr, "Cannot read the output kept on node %s: %s\n", n.Node, n.Error)
					failed = true
				}
				for _, f := range n.Files {
					fmt.Fprintf(a.env.Stdout, "==> %s:%s <==\n", n.Node, f.Name)
					if f.Truncated > 0 {
						fmt.Fprintf(a.env.Stdout, "[the first %d bytes are left out]\n", f.Truncated)
					}
					a.env.Stdout.Write(f.Data)
				}
			}
			if len(nodes) == 0 {
				fmt.Fprintf(a.env.Stderr, "No node kept output of job %d (its opcodes printed nothing, or are not declared ones)\n", id)
			}
			if failed {
				return silentExit(exitFailure)
			}
			return nil
		},
	}
	addJSONFlag(output.Flags(), &outJSON)
	cmd.AddCommand(addOrReplace("add"), addOrReplace("replace"), remove, list, info, output)
	return cmd
}

func paramNames(d *opdef.Def) string {
	var s []string
	for _, p := range d.Params {
		n := p.Name
		if !p.Required {
			n += "?"
		}
		s = append(s, n)
	}
	return strings.Join(s, " ")
}

func describeOpcode(d *opcodeInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", d.ID, d.Summary)
	fmt.Fprintf(&b, "  Version: %s\n", d.Version)
	if d.Description != "" {
		for _, l := range strings.Split(strings.TrimSpace(d.Description), "\n") {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	fmt.Fprintf(&b, "  Parameters:\n")
	for _, p := range d.Params {
		req := "optional"
		if p.Required {
			req = "required"
		} else if p.Default != nil {
			dj, _ := json.Marshal(p.Default)
			req = "default " + string(dj)
		}
		extra := ""
		if p.Pattern != "" {
			extra += " matching " + p.Pattern
		}
		if p.Min != nil {
			extra += fmt.Sprintf(" min %g", *p.Min)
		}
		if p.Max != nil {
			extra += fmt.Sprintf(" max %g", *p.Max)
		}
		if len(p.Values) > 0 {
			extra += " (" + strings.Join(p.Values, ", ") + ")"
		}
		fmt.Fprintf(&b, "    %s: %s, %s%s", p.Name, p.Type, req, extra)
		if p.Doc != "" {
			fmt.Fprintf(&b, " - %s", p.Doc)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "  Runs on: %s\n", opdef.RunsOn(&d.Def))
	fmt.Fprintf(&b, "  Program: %s %s\n", d.Program.Path, strings.Join(d.Program.Args, " "))
	if d.Program.User != "" {
		fmt.Fprintf(&b, "  User: %s\n", d.Program.User)
	}
	fmt.Fprintf(&b, "  Timeout: %s\n", d.Timeout())
	for _, l := range d.Locks {
		on := l.Level
		if l.Level == opdef.LockNode {
			on = "node of " + l.Param
			if l.Param == "" {
				on = "master node"
			}
		}
		fmt.Fprintf(&b, "  Lock: %s %s\n", on, l.Mode)
	}
	if d.Idempotent {
		fmt.Fprintf(&b, "  Idempotent: %d attempts, backoff %s\n", d.Attempts(), d.Backoff())
	}
	return b.String()
}
