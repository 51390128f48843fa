package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/duration"

	"github.com/jobq-dev/jobq/client"
)

// "gnt-cluster modify", for the queue's parameters.

func (a *app) newClusterModifyCmd() *cobra.Command {
	var maxRunning, maxTracked, poolSize int
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "modify [flags]",
		Short: "Change the queue's parameters and the candidate pool cluster-wide",
		Long: `Change how many jobs run at once (--max-running-jobs) and how many master
candidates vote in the cluster's Raft group (--candidate-pool-size, default
5), like "gnt-cluster modify" (which works against jobqd too): a job with
OP_CLUSTER_SET_PARAMS agrees the values cluster-wide and they apply at once,
on this master and on the next. --idempotency-window (jobq's) sets how long
submissions' idempotency keys are kept (jobqd's --idempotency-ttl applies
until it is set). jobq waits for the job; its failure is the command's.

A larger pool makes online nodes candidates, in the order they joined, until
it is full; the master then promotes them to voters one at a time, each once
it holds the log. A smaller pool demotes the voters beyond it. Every commit
waits for a majority of the voters: 3 or 5 suit most clusters (5 tolerates
two failures).

--max-tracked-jobs is accepted, stored and reported (jobq cluster info,
gnt-cluster info) for Ganeti's clients, but has no effect in jobq: in Ganeti
it is how many job files luxid watches with inotify before it falls back to
polling them; jobq's master keeps the live jobs in memory and watches no
job file.`,
		Example: `  jobq cluster modify --max-running-jobs=40
  jobq cluster modify --candidate-pool-size=3`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			op := client.RawOp{"OP_ID": "OP_CLUSTER_SET_PARAMS",
				"reason": [][]any{{reasonSource, "modify", a.env.Now().UnixNano()}}}
			given := false
			for _, f := range []struct {
				flag, param string
				v           int
			}{{"max-running-jobs", "max_running_jobs", maxRunning}, {"max-tracked-jobs", "max_tracked_jobs", maxTracked}, {"candidate-pool-size", "candidate_pool_size", poolSize}} {
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
				return usagef(cmd, "give --max-running-jobs, --max-tracked-jobs, --candidate-pool-size or --idempotency-window")
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
	f.IntVar(&maxTracked, "max-tracked-jobs", 0, "Ganeti's limit of job files luxid watches with inotify (`N`): kept and reported, no effect in jobq")
	f.IntVar(&poolSize, "candidate-pool-size", 0, "let `N` master candidates vote (1 to 9; 3 or 5 suit most clusters)")
	f.Var(duration.Var(&window, 0), "idempotency-window", "keep submissions' idempotency keys for `DURATION` (1m to 30d)")
	return cmd
}
