package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/duration"
	"github.com/jobq-dev/jobq/internal/retention"
)

// housekeepingInfo is jobqd's answer to JobqHousekeeping.
type housekeepingInfo struct {
	Policy        json.RawMessage `json:"policy"`
	Running       bool            `json:"running"`
	PausedUntil   *float64        `json:"paused_until"`
	LastRun       *float64        `json:"last_run"`
	NextRun       *float64        `json:"next_run"`
	Archived      int64           `json:"archived"`
	Deleted       int64           `json:"deleted"`
	TotalArchived int64           `json:"total_archived"`
	TotalDeleted  int64           `json:"total_deleted"`
	LastError     string          `json:"last_error"`
}

// housekeeping asks jobqd for the housekeeping's state; nil (and no
// error) when jobqd answers that it has none (not a jobqd with it).
func (a *app) housekeeping(ctx context.Context) (*housekeepingInfo, error) {
	var raw json.RawMessage
	var failed bool
	err := a.do(ctx, "JobqHousekeeping", func(c *client.Client) error {
		err := c.Call(ctx, &raw, "JobqHousekeeping")
		var le *client.Error
		if errors.As(err, &le) {
			failed = true
			return nil
		}
		return err
	})
	if err != nil || failed {
		return nil, err
	}
	var hk housekeepingInfo
	if err := json.Unmarshal(raw, &hk); err != nil {
		return nil, failf("jobqd's answer to JobqHousekeeping is not what jobq expects (%v)", err)
	}
	return &hk, nil
}

// printHousekeeping writes what "jobq queue info" says of housekeeping.
func printHousekeeping(w io.Writer, hk *housekeepingInfo, loc *time.Location) error {
	p, err := retention.Parse(hk.Policy)
	if err != nil {
		return failf("%s", err)
	}
	if p.AutoArchive {
		fmt.Fprintf(w, "Auto-archive: jobs finished more than %s ago, every %s\n", shortDuration(p.ArchiveAge), shortDuration(p.Interval))
	} else {
		fmt.Fprintf(w, "Auto-archive: off (archive retention checked every %s)\n", shortDuration(p.Interval))
	}
	var keep []string
	if p.DeleteAge > 0 {
		keep = append(keep, "jobs archived more than "+shortDuration(p.DeleteAge)+" ago are deleted")
	}
	if p.MaxBytes > 0 {
		keep = append(keep, "the oldest are deleted beyond "+shortBytes(p.MaxBytes))
	}
	if len(keep) == 0 {
		keep = []string{"off (archived jobs are kept)"}
	}
	fmt.Fprintf(w, "Archive retention: %s\n", strings.Join(keep, "; "))
	when := func(s *float64) string {
		if s == nil {
			return "none yet"
		}
		sec := math.Floor(*s)
		return time.Unix(int64(sec), 0).In(loc).Format("2006-01-02 15:04:05")
	}
	if hk.PausedUntil != nil {
		fmt.Fprintf(w, "Housekeeping paused until %s (watcher pause)\n", when(hk.PausedUntil))
	}
	if hk.LastRun != nil {
		fmt.Fprintf(w, "Last run: %s, %d archived, %d deleted from the archive\n", when(hk.LastRun), hk.Archived, hk.Deleted)
	}
	if hk.Running && hk.NextRun != nil {
		fmt.Fprintf(w, "Next run: %s\n", when(hk.NextRun))
	}
	if hk.LastError != "" {
		fmt.Fprintf(w, "Last run failed: %s\n", hk.LastError)
	}
	return nil
}

// shortDuration writes 6h, 5m, 30d, 1h30m.
func shortDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}}

// shortBytes writes 10G, 512M, 1000.
func shortBytes(n int64) string {
	for _, u := range byteUnits {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// parseBytes reads a size: bytes, or a number with K, M, G or T (powers
// of 1024).
func parseBytes(s string) (int64, error) {
	bad := fmt.Errorf("%q is not a size; give bytes or a number with K, M, G or T, such as 10G (0: no budget)", s)
	num, mult := strings.ToUpper(strings.TrimSpace(s)), int64(1)
	num = strings.TrimSuffix(num, "B")
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, bad
	}
	return n * mult, nil
}

func (a *app) newHousekeepingCmd() *cobra.Command {
	var (
		autoArchive           bool
		age, every, deleteAge time.Duration
		maxSize               string
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "housekeeping [flags]",
		Short: "Show or set the automatic archiving and the archive's retention",
		Long: `jobqd's master archives finished jobs by itself, as Ganeti's watcher does from
cron: by default every 5 minutes, the jobs that finished more than 6 hours
ago (no job is made for it). It can also keep the archive within a
retention: delete archived jobs older than an age, or the oldest beyond a
disk budget (off by default). The policy is cluster-wide and kept across
failovers; "gnt-cluster watcher pause" pauses it.

Without flags, print the policy; the flags given change it (the others keep
their values). A duration is seconds (90) or a number with a unit (10m, 6h,
30d); 0 turns the retention by age off. A size is bytes or a number with K,
M, G or T; 0 turns the budget off.`,
		Example: `  jobq queue housekeeping
  jobq queue housekeeping --archive-age 1d --every 10m
  jobq queue housekeeping --delete-age 30d --max-size 10G
  jobq queue housekeeping --auto-archive=false`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f := cmd.Flags()
			changes := false
			for _, name := range []string{"auto-archive", "archive-age", "every", "delete-age", "max-size"} {
				changes = changes || f.Changed(name)
			}
			var maxBytes int64
			if f.Changed("max-size") {
				var err error
				if maxBytes, err = parseBytes(maxSize); err != nil {
					return usagef(cmd, "--max-size: %s", err)
				}
			}
			hk, err := a.housekeeping(ctx)
			if err != nil {
				return err
			}
			if hk == nil {
				return failf("jobqd does not run a built-in housekeeping (an older jobqd?)")
			}
			if changes {
				p, err := retention.Parse(hk.Policy)
				if err != nil {
					return failf("%s", err)
				}
				if f.Changed("auto-archive") {
					p.AutoArchive = autoArchive
				}
				if f.Changed("archive-age") {
					p.ArchiveAge = age
				}
				if f.Changed("every") {
					p.Interval = every
				}
				if f.Changed("delete-age") {
					p.DeleteAge = deleteAge
				}
				if f.Changed("max-size") {
					p.MaxBytes = maxBytes
				}
				if err := p.Check(); err != nil {
					return usagef(cmd, "%s", err)
				}
				var raw json.RawMessage
				if err := a.call(ctx, &raw, "JobqSetHousekeeping", json.RawMessage(p.JSON())); err != nil {
					return err
				}
				var next housekeepingInfo
				if err := json.Unmarshal(raw, &next); err != nil {
					return failf("jobqd's answer to JobqSetHousekeeping is not what jobq expects (%v)", err)
				}
				hk = &next
			}
			if asJSON {
				return writeJSON(a.env.Stdout, hk)
			}
			return printHousekeeping(a.env.Stdout, hk, a.env.Location)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&autoArchive, "auto-archive", true, "archive finished jobs automatically")
	f.Var(duration.Var(&age, 0), "archive-age", "archive the jobs that finished more than `DURATION` ago")
	f.Var(duration.Var(&every, 0), "every", "run the housekeeping every `DURATION`")
	f.Var(duration.Var(&deleteAge, 0), "delete-age", "delete archived jobs older than `DURATION` (0: never)")
	f.StringVar(&maxSize, "max-size", "", "delete the oldest archived jobs beyond `SIZE` (such as 10G; 0: no budget)")
	addJSONFlag(f, &asJSON)
	return cmd
}
