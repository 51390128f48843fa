package cli

import (
	"fmt"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/duration"
)

// newWatcherCmd is "gnt-cluster watcher": in jobq the watcher's work is
// built in (housekeeping, schedules), and its pause pauses both.
func (a *app) newWatcherCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watcher pause|continue|info",
		Short: "Pause or resume the built-in housekeeping and schedules (gnt-cluster watcher)",
		Long: `What Ganeti's watcher does from cron, jobqd's master does by itself: archive
finished jobs, keep the archive's retention, fire the schedules. "pause
DURATION" stops all of it cluster-wide until then (schedules' fire times
pass without a job), "continue" ends the pause, "info" shows it. Ganeti's
own "gnt-cluster watcher" does the same against jobqd.`,
		Example: `  jobq cluster watcher pause 1h
  jobq cluster watcher info
  jobq cluster watcher continue`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	show := func(until *float64) {
		if until == nil || time.Unix(int64(math.Floor(*until)), 0).Before(a.env.Now()) {
			fmt.Fprintln(a.env.Stdout, "The watcher is not paused.")
			return
		}
		fmt.Fprintf(a.env.Stdout, "The watcher is paused until %s.\n", time.Unix(int64(math.Floor(*until)), 0).In(a.env.Location).Format("2006-01-02 15:04:05"))
	}
	pause := &cobra.Command{
		Use:     "pause DURATION",
		Short:   "Pause the housekeeping and the schedules for DURATION",
		Long:    "Pause the built-in housekeeping and every schedule, cluster-wide, for DURATION (10m, 2h, 1d).",
		Example: "  jobq cluster watcher pause 1h",
		Args:    exactArgs(1, "one duration (such as 1h)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := duration.Parse(args[0])
			if err != nil {
				return usagef(cmd, "%s", err)
			}
			until := float64(a.env.Now().Add(d).UnixNano()) / 1e9
			var res *float64
			if err := a.call(cmd.Context(), &res, "SetWatcherPause", until); err != nil {
				return err
			}
			show(res)
			return nil
		},
	}
	cont := &cobra.Command{
		Use:     "continue",
		Short:   "End the pause",
		Long:    "End a pause of the built-in housekeeping and the schedules.",
		Example: "  jobq cluster watcher continue",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.call(cmd.Context(), nil, "SetWatcherPause", nil); err != nil {
				return err
			}
			fmt.Fprintln(a.env.Stdout, "The watcher is no longer paused.")
			return nil
		},
	}
	info := &cobra.Command{
		Use:     "info",
		Short:   "Show whether the watcher is paused",
		Long:    "Show whether the built-in housekeeping and the schedules are paused, and until when.",
		Example: "  jobq cluster watcher info",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var vals []*float64
			if err := a.call(cmd.Context(), &vals, "QueryConfigValues", []string{"watcher_pause"}); err != nil {
				return err
			}
			if len(vals) != 1 {
				return failf("jobqd answered QueryConfigValues with %d values for 1 name", len(vals))
			}
			show(vals[0])
			return nil
		},
	}
	cmd.AddCommand(pause, cont, info)
	return cmd
}
