package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/duration"

	"github.com/jobq-dev/jobq/client"
)

// "gnt-cluster modify", for the queue's parameters.

func (a *app) newClusterModifyCmd() *cobra.Command {
	var maxRunning, maxTracked int
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "modify [flags]",
		Short: "Change the queue's parameters cluster-wide",
		Long: `Change how many jobs run at once (--max-running-jobs) and how many the
scheduler tracks (--max-tracked-jobs), like "gnt-cluster modify" (which works
against jobqd too): a job with OP_CLUSTER_SET_PARAMS agrees the values
cluster-wide and the queue applies them at once, on this master and on the
next. --idempotency-window (jobq's) sets how long submissions' idempotency
keys are kept (jobqd's --idempotency-ttl applies until it is set). jobq waits
for the job; its failure is the command's.`,
		Example: `  jobq cluster modify --max-running-jobs=40`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			op := client.RawOp{"OP_ID": "OP_CLUSTER_SET_PARAMS",
				"reason": [][]any{{reasonSource, "modify", a.env.Now().UnixNano()}}}
			given := false
			for _, f := range []struct {
				flag, param string
				v           int
			}{{"max-running-jobs", "max_running_jobs", maxRunning}, {"max-tracked-jobs", "max_tracked_jobs", maxTracked}} {
				if !cmd.Flags().Changed(f.flag) {
					continue
				}
				if f.v < 1 {
					return usagef(cmd, "--%s must be 1 or more, got %d", f.flag, f.v)
				}
				op[f.param] = f.v
				given = true
			}
			if cmd.Flags().Changed("idempotency-window") {
				if window < time.Minute || window > 30*24*time.Hour || window%time.Second != 0 {
					return usagef(cmd, "--idempotency-window must be whole seconds from 1m to 30d, got %s", window)
				}
				op["idempotency_window"] = int64(window / time.Second)
				given = true
			}
			if !given {
				return usagef(cmd, "give --max-running-jobs, --max-tracked-jobs or --idempotency-window")
			}
			ctx := cmd.Context()
			id, err := a.submitJob(ctx, op)
			if err != nil {
				return err
			}
			return a.followJob(ctx, id, silentReporter{})
		},
	}
	f := cmd.Flags()
	f.IntVar(&maxRunning, "max-running-jobs", 0, "run at most `N` jobs at once")
	f.IntVar(&maxTracked, "max-tracked-jobs", 0, "track at most `N` jobs in the scheduler")
	f.Var(duration.Var(&window, 0), "idempotency-window", "keep submissions' idempotency keys for `DURATION` (1m to 30d)")
	return cmd
}
