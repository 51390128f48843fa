package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/duration"
)

// timingFlags are the flags of the commands that submit a job: when it
// may start (--at, --in) and its time limits (--timeout, --op-timeout).
type timingFlags struct {
	at, in             string
	timeout, opTimeout time.Duration
	key                string // --idempotency-key
}

func addTimingFlags(f *pflag.FlagSet, t *timingFlags) {
	f.StringVar(&t.at, "at", "", "keep the job queued until `TIME` (2026-12-24 18:00, 18:00 for the next such time, RFC 3339, or @UNIX-SECONDS)")
	f.StringVar(&t.in, "in", "", "keep the job queued for `DURATION` (10m, 2h, 1d)")
	f.Var(duration.Var(&t.timeout, 0), "timeout", "fail the job when it runs longer than `DURATION` from its start (its opcode is killed)")
	f.Var(duration.Var(&t.opTimeout, 0), "op-timeout", "fail an opcode that executes longer than `DURATION` (it is killed)")
	f.StringVar(&t.key, "idempotency-key", "", "submit with `KEY` (such as a UUID): submitting again with the same KEY and the same job within jobqd's --idempotency-ttl (24h) prints the first job's ID instead of making another, so a submission whose outcome is unknown can be retried safely")
}

// timing is what the flags ask for, the time now being now.
func (t *timingFlags) timing(cmd *cobra.Command, now time.Time, loc *time.Location) (client.Timing, error) {
	var tm client.Timing
	switch {
	case t.at != "" && t.in != "":
		return tm, usagef(cmd, "give either --at or --in, not both")
	case t.at != "":
		at, err := parseAt(t.at, now, loc)
		if err != nil {
			return tm, usagef(cmd, "--at: %s", err)
		}
		tm.NotBefore = at
	case t.in != "":
		d, err := duration.Parse(t.in)
		if err != nil {
			return tm, usagef(cmd, "--in: %s", err)
		}
		tm.NotBefore = now.Add(d)
	}
	tm.Timeout, tm.OpTimeout = t.timeout, t.opTimeout
	return tm, nil
}

// atLayouts are the forms of --at besides RFC 3339 and @SECONDS, in the
// local time zone.
var atLayouts = []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

// parseAt reads --at's TIME: RFC 3339, a date and time or a date in loc,
// a time of day (the next such time after now), or @SECONDS since the
// epoch. The error says which forms are taken.
func parseAt(s string, now time.Time, loc *time.Location) (time.Time, error) {
	bad := fmt.Errorf("%q is not a time; give one such as \"2026-12-24 18:00\", \"18:00\", \"2026-12-24T18:00:00Z\" or \"@1893456000\"", s)
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		f, err := strconv.ParseFloat(rest, 64)
		if err != nil || f < 0 || f > 253402300799 {
			return time.Time{}, bad
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).Round(time.Microsecond), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, l := range atLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	for _, l := range []string{"15:04:05", "15:04"} {
		clock, err := time.ParseInLocation(l, s, loc)
		if err != nil {
			continue
		}
		n := now.In(loc)
		t := time.Date(n.Year(), n.Month(), n.Day(), clock.Hour(), clock.Minute(), clock.Second(), 0, loc)
		if !t.After(n) {
			t = time.Date(n.Year(), n.Month(), n.Day()+1, clock.Hour(), clock.Minute(), clock.Second(), 0, loc)
		}
		return t, nil
	}
	return time.Time{}, bad
}

// submitTimed submits a job of one opcode, with its timing when it has
// one (without, the call is Ganeti's SubmitJob as it is).
func (a *app) submitTimed(ctx context.Context, tm client.Timing, key string, op client.Opcode) (int64, error) {
	if tm.NotBefore.IsZero() && tm.Timeout == 0 && tm.OpTimeout == 0 && len(tm.OpTimeouts) == 0 && key == "" {
		return a.submitJob(ctx, op)
	}
	var id int64
	err := a.do(ctx, "SubmitJob", func(c *client.Client) (err error) {
		id, err = c.SubmitJobWith(ctx, client.SubmitOptions{Timing: tm, IdempotencyKey: key}, op)
		return err
	})
	return id, err
}
