package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/duration"
	"github.com/jobq-dev/jobq/internal/jsonobj"
)

// The "gnt-cluster watcher" equivalent.

// watcherPauseText is what gnt-cluster watcher pause and info print.
func (a *app) watcherPauseText(until *float64) string {
	if until == nil || *until < float64(a.env.Now().UnixNano())/1e9 {
		return "The watcher is not paused."
	}
	sec := int64(*until)
	// Python's time.ctime.
	return "The watcher is paused until " + time.Unix(sec, 0).In(a.env.Location).Format("Mon Jan _2 15:04:05 2006") + "."
}

func (a *app) newWatcherCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watcher pause|continue|info",
		Short: "Pause the queue's automatic actions, or continue them",
		Long: `Pause the cluster's watcher for a while, or continue it, like "gnt-cluster
watcher" (which works against jobqd too). What Ganeti's watcher does from
cron, jobqd's master does by itself: archive finished jobs, keep the
archive's retention, fire the schedules. The pause holds all of it (the
schedules' fire times pass without a job) until it ends; the time is agreed
cluster-wide.`,
		Example: `  jobq cluster watcher pause 1h
  jobq cluster watcher info
  jobq cluster watcher continue`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	pause := &cobra.Command{
		Use:   "pause DURATION",
		Short: "Pause the watcher for DURATION",
		Long: `Pause the watcher for DURATION (seconds such as 90, or with a unit: 10m, 2h,
1d) and print until when, as "gnt-cluster watcher pause".`,
		Example: `  jobq cluster watcher pause 2h`,
		Args:    exactArgs(1, "one duration (seconds, or such as 1h)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := duration.Parse(args[0])
			if err != nil {
				return usagef(cmd, "%s", err.Error())
			}
			until := float64(a.env.Now().Add(d).UnixMicro()) / 1e6
			var res *float64
			if err := a.call(cmd.Context(), &res, "SetWatcherPause", until); err != nil {
				return err
			}
			fmt.Fprintln(a.env.Stdout, a.watcherPauseText(res))
			return nil
		},
	}
	cont := &cobra.Command{
		Use:     "continue",
		Short:   "End the watcher's pause",
		Long:    `End the watcher's pause, as "gnt-cluster watcher continue".`,
		Example: `  jobq cluster watcher continue`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.call(cmd.Context(), nil, "SetWatcherPause", nil); err != nil {
				return err
			}
			fmt.Fprintln(a.env.Stdout, "The watcher is no longer paused.")
			return nil
		},
	}
	var asJSON bool
	info := &cobra.Command{
		Use:   "info",
		Short: "Show whether the watcher is paused",
		Long: `Print whether the watcher is paused and until when, as "gnt-cluster watcher
info". With --json: {"paused_until": SECONDS or null}.`,
		Example: `  jobq cluster watcher info --json`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var vals []*float64
			if err := a.call(cmd.Context(), &vals, "QueryConfigValues", []string{"watcher_pause"}); err != nil {
				return err
			}
			if len(vals) != 1 {
				return failf("jobqd answered QueryConfigValues with %d values for 1 name", len(vals))
			}
			if asJSON {
				o := &jsonobj.Object{}
				var v json.RawMessage = []byte("null")
				if vals[0] != nil {
					v, _ = json.Marshal(int64(*vals[0]))
				}
				o.Add("paused_until", v)
				return writeJSON(a.env.Stdout, o)
			}
			fmt.Fprintln(a.env.Stdout, a.watcherPauseText(vals[0]))
			return nil
		},
	}
	addJSONFlag(info.Flags(), &asJSON)
	cmd.AddCommand(pause, cont, info)
	return cmd
}
