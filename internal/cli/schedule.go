package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/duration"
	"github.com/jobq-dev/jobq/internal/schedule"
)

// scheduleInfo is one schedule of JobqScheduleList's answer.
type scheduleInfo struct {
	schedule.Spec
	LastFire *float64 `json:"last_fire"`
	NextFire *float64 `json:"next_fire"`
	LastJob  int64    `json:"last_job"`
	Jobs     []int64  `json:"jobs"`
	Skipped  int64    `json:"skipped"`
	LastSkip string   `json:"last_skip"`
}

func (a *app) newScheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule add|list|info|pause|resume|remove",
		Short: "Run jobs on a schedule, once per fire time across the cluster",
		Long: `A schedule makes a job at each of its fire times: every fixed interval
(--every 1h; fire times are multiples of it since the epoch) or by a cron
expression (--cron "0 3 * * *", five fields or @daily and the like, in
--timezone, default UTC). Schedules are cluster configuration: kept across
failovers, and each fire time makes exactly one job whoever is master (the
fire is recorded with the job it made). "gnt-cluster watcher pause" and a
drained queue skip fire times.

--concurrency says what a fire does while the previous fire's job has not
ended: allow (default), forbid (skip the fire) or replace (kill the previous
job). --catch-up says what to do about fire times missed while no master
ran: skip (default; fire only when on time) or once (one job for the latest
missed time).`,
		Example: `  jobq schedule add nightly --cron "0 3 * * *" --timezone Europe/Zurich -- '{"OP_ID": "OP_TEST_DELAY", "duration": 1}'
  jobq schedule add tick --every 10m --concurrency forbid -- '{"OP_ID": "OP_TEST_DELAY", "duration": 1}'
  jobq schedule list
  jobq schedule info nightly
  jobq schedule pause nightly
  jobq schedule remove tick`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var (
		every                     time.Duration
		cronExpr, tz, conc, catch string
		asJSON                    bool
	)
	add := &cobra.Command{
		Use:   "add NAME (--every DURATION | --cron EXPR) [flags] -- OPCODE...",
		Short: "Add a schedule",
		Long: `Add schedule NAME (1 to 64 of a-z, 0-9 and -) whose job is the OPCODEs, each
a JSON object with its OP_ID, such as '{"OP_ID": "OP_TEST_DELAY", "duration": 1}'.
Its first fire time is the first after now.`,
		Example: `  jobq schedule add nightly --cron "0 3 * * *" --timezone Europe/Zurich -- '{"OP_ID": "OP_TEST_DELAY", "duration": 1}'
  jobq schedule add tick --every 10m --concurrency forbid --catch-up once -- '{"OP_ID": "OP_TEST_DELAY", "duration": 1}'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef(cmd, "give the job's opcodes after the name, each a JSON object such as '{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 1}'")
			}
			sp := schedule.Spec{Name: args[0], Every: every.Seconds(), Cron: cronExpr, TZ: tz, Concurrency: conc, CatchUp: catch}
			for i, o := range args[1:] {
				var m map[string]any
				if json.Unmarshal([]byte(o), &m) != nil || m == nil {
					return usagef(cmd, "opcode %d is not a JSON object; give one such as '{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 1}'", i+1)
				}
				sp.Ops = append(sp.Ops, json.RawMessage(o))
			}
			if err := sp.Check(); err != nil {
				return usagef(cmd, "%s", err)
			}
			return a.call(cmd.Context(), nil, "JobqScheduleAdd", sp)
		},
	}
	af := add.Flags()
	af.Var(duration.Var(&every, 0), "every", "fire every `DURATION` (at its multiples since the epoch)")
	af.StringVar(&cronExpr, "cron", "", "fire by the cron expression `EXPR` (\"0 3 * * *\", @daily)")
	af.StringVar(&tz, "timezone", "", "the cron expression's time zone `TZ` (default UTC)")
	af.StringVar(&conc, "concurrency", schedule.Allow, "while the previous job runs: allow, forbid (skip) or replace (kill it)")
	af.StringVar(&catch, "catch-up", schedule.CatchSkip, "fire times missed while no master ran: skip, or once")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the schedules",
		Long: `List every schedule: its name, when it fires, whether it is paused, its next
and last fire times and the last job it made. With --json, one object per
schedule with every detail (as "jobq schedule info --json").`,
		Example: `  jobq schedule list
  jobq schedule list --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, err := a.schedules(cmd)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.env.Stdout, ss)
			}
			t := &format.Table{Columns: []format.Column{{Title: "Name"}, {Title: "When"}, {Title: "State"}, {Title: "Next"}, {Title: "Last"}, {Title: "LastJob", AlignRight: true}}}
			for _, s := range ss {
				last := "-"
				if s.LastJob > 0 {
					last = strconv.FormatInt(s.LastJob, 10)
				}
				t.Rows = append(t.Rows, []string{s.Name, when(s.Spec), state(s), a.fmtSecs(s.NextFire), a.fmtSecs(s.LastFire), last})
			}
			_, err = t.WriteTo(a.env.Stdout)
			return err
		},
	}
	info := &cobra.Command{
		Use:   "info NAME",
		Short: "Show a schedule: its job, last and next fire, the jobs it made",
		Long: `Show schedule NAME: when it fires, its policies, its last and next fire
times, why its last fire time was skipped (if it was), how many were, its
recent jobs and its opcodes.`,
		Example: `  jobq schedule info nightly
  jobq schedule info --json nightly`,
		Args: exactArgs(1, "one schedule name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, err := a.schedules(cmd)
			if err != nil {
				return err
			}
			for _, s := range ss {
				if s.Name != args[0] {
					continue
				}
				if asJSON {
					return writeJSON(a.env.Stdout, s)
				}
				w := a.env.Stdout
				fmt.Fprintf(w, "Schedule: %s\n  When: %s\n  State: %s\n  Concurrency: %s\n  Catch-up: %s\n", s.Name, when(s.Spec), state(s), s.Concurrency, s.CatchUp)
				fmt.Fprintf(w, "  Last fire: %s\n  Next fire: %s\n", a.fmtSecs(s.LastFire), a.fmtSecs(s.NextFire))
				if s.LastSkip != "" {
					fmt.Fprintf(w, "  Last fire time skipped: %s\n", s.LastSkip)
				}
				fmt.Fprintf(w, "  Fire times skipped: %d\n", s.Skipped)
				ids := make([]string, len(s.Jobs))
				for i, id := range s.Jobs {
					ids[i] = strconv.FormatInt(id, 10)
				}
				fmt.Fprintf(w, "  Recent jobs: %s\n  Opcodes:\n", orNone(strings.Join(ids, ", ")))
				for _, op := range s.Ops {
					fmt.Fprintf(w, "    - %s\n", op)
				}
				return nil
			}
			return failf("There is no schedule %s ('jobq schedule list' lists them)", args[0])
		},
	}
	setPaused := func(use, short, long string, paused bool) *cobra.Command {
		return &cobra.Command{
			Use:     use + " NAME",
			Short:   short,
			Long:    long,
			Example: "  jobq schedule " + use + " nightly",
			Args:    exactArgs(1, "one schedule name"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.call(cmd.Context(), nil, "JobqScheduleSet", args[0], map[string]bool{"paused": paused})
			},
		}
	}
	remove := &cobra.Command{
		Use:     "remove NAME",
		Short:   "Remove a schedule (its jobs stay)",
		Long:    "Remove schedule NAME from the cluster: it makes no more jobs; the jobs it made stay.",
		Example: "  jobq schedule remove nightly",
		Args:    exactArgs(1, "one schedule name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd.Context(), nil, "JobqScheduleRemove", args[0])
		},
	}
	addJSONFlag(list.Flags(), &asJSON)
	addJSONFlag(info.Flags(), &asJSON)
	cmd.AddCommand(add, list, info,
		setPaused("pause", "Pause a schedule: its fire times are skipped",
			"Pause schedule NAME: its fire times pass without a job until it is resumed.", true),
		setPaused("resume", "Resume a paused schedule",
			"Resume schedule NAME: its next fire time makes a job again (the catch-up policy says what becomes of those missed).", false),
		remove)
	return cmd
}

func (a *app) schedules(cmd *cobra.Command) ([]scheduleInfo, error) {
	var ss []scheduleInfo
	if err := a.call(cmd.Context(), &ss, "JobqScheduleList"); err != nil {
		return nil, err
	}
	return ss, nil
}

func (a *app) fmtSecs(s *float64) string {
	if s == nil {
		return "-"
	}
	sec := math.Floor(*s)
	return time.Unix(int64(sec), 0).In(a.env.Location).Format("2006-01-02 15:04:05")
}

func when(s schedule.Spec) string {
	if s.Every > 0 {
		return "every " + shortDuration(time.Duration(s.Every*float64(time.Second)))
	}
	tz := s.TZ
	if tz == "" {
		tz = "UTC"
	}
	return fmt.Sprintf("cron %q %s", s.Cron, tz)
}

func state(s scheduleInfo) string {
	if s.Paused {
		return "paused"
	}
	return "active"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
