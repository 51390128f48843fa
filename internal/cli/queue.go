package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/cli/format"
)

// The "gnt-cluster queue" equivalents.

func (a *app) newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue drain|undrain|info|housekeeping",
		Short: "Drain, undrain or show the state of the job queue",
		Long: `Control the job queue like "gnt-cluster queue". A drained queue refuses new
jobs; jobs already queued still run.`,
		Example: `  jobq queue drain
  jobq queue info
  jobq queue undrain`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	setDrain := func(use, short, long string, on bool) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Long:  long,
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx := cmd.Context()
				return a.do(ctx, "SetDrainFlag", func(c *client.Client) error {
					return c.SetDrainFlag(ctx, on)
				})
			},
		}
	}
	var asJSON bool
	info := &cobra.Command{
		Use:   "info",
		Short: "Show whether the queue is drained",
		Long: `Print whether the queue's drain flag is set, and the built-in housekeeping
(automatic archiving, the archive's retention: see "jobq queue
housekeeping"). With --json, print an object with drain_flag, cluster_name,
master_node and housekeeping.`,
		Example: `  jobq queue info
  jobq queue info --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var vals []any
			if err := a.call(cmd.Context(), &vals, "QueryConfigValues", []string{"drain_flag", "cluster_name", "master_node"}); err != nil {
				return err
			}
			if len(vals) != 3 {
				return failf("jobqd answered QueryConfigValues with %d values for 3 names", len(vals))
			}
			drained, _ := vals[0].(bool)
			hk, err := a.housekeeping(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.env.Stdout, struct {
					DrainFlag    bool              `json:"drain_flag"`
					ClusterName  any               `json:"cluster_name"`
					MasterNode   any               `json:"master_node"`
					Housekeeping *housekeepingInfo `json:"housekeeping,omitempty"`
				}{drained, vals[1], vals[2], hk})
			}
			fmt.Fprintln(a.env.Stdout, format.DrainFlag(drained))
			if hk != nil {
				return printHousekeeping(a.env.Stdout, hk, a.env.Location)
			}
			return nil
		},
	}
	addJSONFlag(info.Flags(), &asJSON)
	cmd.AddCommand(
		setDrain("drain", "Stop accepting new jobs", "Set the drain flag: the queue refuses new jobs until \"jobq queue undrain\"; queued jobs still run.", true),
		setDrain("undrain", "Accept new jobs again", "Unset the drain flag, so that the queue accepts new jobs again.", false),
		info,
		a.newHousekeepingCmd(),
	)
	return cmd
}
