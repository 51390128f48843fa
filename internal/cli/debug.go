package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/duration"
	"github.com/jobq-dev/jobq/internal/jsonobj"
)

// The "gnt-debug delay" equivalent.

// reasonSource is the source of the reason trail entry jobq puts into the
// opcodes it submits (Ganeti's "gnt:client:" + program name).
const reasonSource = "gnt:client:jobq"

func (a *app) newDebugCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug COMMAND",
		Short: "Debugging commands (delay: run a test job that sleeps)",
		Long:  `Commands for testing the job queue, like "gnt-debug".`,
		Example: `  jobq debug delay --submit 10
  jobq debug delay --repeat 3 0.5`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.newDelayCmd())
	return cmd
}

// pyFloat is a float64 that encodes as Python's repr (5.0, 0.01), as
// Ganeti's client sends a duration.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	return []byte(format.PyFloat(float64(f))), nil
}

// testDelayOp is an OP_TEST_DELAY opcode as gnt-debug delay builds it
// (every parameter sent, unlike client.OpTestDelay, which leaves out the
// defaults).
type testDelayOp struct {
	Duration      pyFloat  `json:"duration"`
	OnMaster      bool     `json:"on_master"`
	OnNodes       []string `json:"on_nodes"`
	Repeat        int      `json:"repeat"`
	Interruptible bool     `json:"interruptible"`
	NoLocks       bool     `json:"no_locks"`
	DryRun        bool     `json:"dry_run"`
	DebugLevel    int      `json:"debug_level"`
	Priority      int      `json:"priority"`
	Depends       []any    `json:"depends"`
	Comment       *string  `json:"comment"`
	Reason        [][]any  `json:"reason"`
	OpCode        string   `json:"OP_ID"`
}

// OpID implements client.Opcode.
func (testDelayOp) OpID() string { return "OP_TEST_DELAY" }

// repeatValue is the --repeat flag: a whole number, 0 or more.
type repeatValue struct{ p *int }

func (v repeatValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

func (v repeatValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("it must be a whole number, 0 or more")
	}
	*v.p = n
	return nil
}

func (repeatValue) Type() string { return "N" }

// delaySeconds is debug delay's SECONDS: a number as Ganeti's delay takes
// it (0 and negative numbers too: jobqd refuses them as Ganeti does, with
// OpPrereqError), or any duration jobq takes ("10s", "1m").
func delaySeconds(s string) (float64, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && !strings.ContainsAny(s, "nN") {
		return f, nil
	}
	d, err := duration.Parse(s)
	if err != nil {
		return 0, err
	}
	return d.Seconds(), nil
}

func (a *app) newDelayCmd() *cobra.Command {
	var (
		submit, printJobID, noMaster bool
		interruptible, noLocks       bool
		dryRun, asJSON               bool
		repeat                       int
		nodes                        []string
		prio, reason                 string
		timing                       timingFlags
	)
	cmd := &cobra.Command{
		Use:   "delay [flags] DURATION",
		Short: "Run a job that sleeps (OP_TEST_DELAY)",
		Long: `Submit a job with one OP_TEST_DELAY opcode that sleeps DURATION on the master
(and on the nodes given with -n), like "gnt-debug delay". DURATION is a
number of seconds (0.5) or a number with a unit (10s, 5m, 1h). With --repeat N it
sleeps N times, logging each iteration.

Without --submit, jobq waits for the job, printing its log messages as they
arrive; if the job fails, the error goes to stderr and the exit code is 1.
With --submit it prints "JobID: N" and returns at once. --print-jobid prints
the bare job ID first.

With --json and --submit, stdout is {"id": N}; without --submit, one JSON
object per line: each log entry as it arrives, then the finished job (as
"jobq watch --json").

--reason puts a reason into the job's reason trail; "rate-limit:N:LABEL" makes
the job wait while N jobs with that reason run (Ganeti's ad hoc rate limit).
--at TIME or --in DURATION keeps the job queued until then ("jobq info"
shows its "Not before" time; cancel and change-priority work meanwhile).
--timeout and --op-timeout limit how long the job and each opcode run:
past the limit the opcode is killed and the job ends in error saying it
timed out.`,
		Example: `  jobq debug delay 0.5
  jobq debug delay --submit --repeat=3 0.3
  jobq debug delay --print-jobid --priority high 2
  jobq debug delay --submit --reason=rate-limit:1:backup 10
  jobq debug delay --submit --in 10m 1
  jobq debug delay --submit --at 18:00 --op-timeout 30s 5`,
		Args: exactArgs(1, "one duration (seconds, or such as 10s)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := delaySeconds(args[0])
			if err != nil {
				return usagef(cmd, "%s", err.Error())
			}
			p, err := optionalPriority(cmd, prio)
			if err != nil {
				return err
			}
			tm, err := timing.timing(cmd, a.env.Now(), a.env.Location)
			if err != nil {
				return err
			}
			if nodes == nil {
				nodes = []string{}
			}
			op := testDelayOp{
				Duration:      pyFloat(d),
				OnMaster:      !noMaster,
				OnNodes:       nodes,
				Repeat:        repeat,
				Interruptible: interruptible,
				NoLocks:       noLocks,
				DryRun:        dryRun,
				Priority:      p,
				Reason:        [][]any{{reasonSource, "delay", a.env.Now().UnixNano()}},
			}
			if reason != "" {
				// As Ganeti's --reason: the user's entry first.
				op.Reason = append([][]any{{"gnt:user", reason, a.env.Now().UnixNano()}}, op.Reason...)
			}
			op.OpCode = op.OpID()
			ctx := cmd.Context()
			id, err := a.submitTimed(ctx, tm, timing.key, op)
			if err != nil {
				return err
			}
			if asJSON {
				if submit {
					o := &jsonobj.Object{}
					o.Add("id", id)
					writeJSONLine(a.env.Stdout, o)
					return nil
				}
				return a.pollJSON(ctx, id, true, func(jobErr any) error {
					code, msg := format.FormatError(jobErr)
					return &exitError{code: code, msg: msg}
				})
			}
			if printJobID {
				fmt.Fprintln(a.env.Stdout, id)
			}
			if submit {
				fmt.Fprintln(a.env.Stdout, format.JobSubmitted(id))
				return nil
			}
			return a.followJob(ctx, id, &stdioReporter{a: a, id: id})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&submit, "submit", false, "submit the job and print its ID without waiting for it")
	f.BoolVar(&printJobID, "print-jobid", false, "print the job ID (alone on a line) once submitted")
	f.VarP(repeatValue{&repeat}, "repeat", "r", "sleep this many times, logging each iteration")
	f.StringArrayVarP(&nodes, "on-nodes", "n", nil, "also sleep on this `NODE` (repeatable)")
	f.BoolVar(&noMaster, "no-master", false, "do not sleep on the master")
	f.BoolVarP(&interruptible, "interruptible", "i", false, "let the opcode be interrupted")
	f.BoolVarP(&noLocks, "no-locks", "l", false, "do not take locks while sleeping")
	f.BoolVar(&dryRun, "dry-run", false, "check the opcode and run nothing (no sleep, no locks), as Ganeti's dry run")
	f.StringVar(&prio, "priority", "", "run at priority `PRIO`: high, normal or low (jobqd takes -10, 0 and 10, as Ganeti)")
	f.StringVar(&reason, "reason", "", "put `REASON` into the job's reason trail (\"rate-limit:N:LABEL\": at most N such jobs run at once)")
	addTimingFlags(f, &timing)
	addJSONFlag(f, &asJSON)
	return cmd
}
