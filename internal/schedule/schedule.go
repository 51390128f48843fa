// Package schedule is the pure core of recurring schedules: a schedule
// (a fixed interval or a cron expression in a time zone, the opcodes of
// the job it makes, a concurrency and a catch-up policy), its fire times,
// and at a given time what to do (fire, skip, wait). Cron expressions are
// robfig/cron's (v3, the standard five fields and its descriptors such as
// @daily). Nothing here reads a clock: package queue runs the decisions
// on a timer, and the schedules are a cluster-wide setting (Key).
package schedule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/jobq-dev/jobq/internal/settings"
)

// Key is the cluster-wide setting holding every schedule (a Doc).
const Key = "schedules"

// Concurrency policies: what a fire does while the job of the previous
// fire has not ended (Kubernetes CronJob's).
const (
	Allow   = "allow"   // fire anyway
	Forbid  = "forbid"  // skip this fire
	Replace = "replace" // cancel (kill) the previous job, then fire
)

// Catch-up policies: what a schedule does about fire times missed while no
// master ran it (or it was paused, or the watcher was).
const (
	CatchSkip = "skip" // skip them; fire only when on time
	CatchOnce = "once" // run once for the latest of them
)

// OnTime is how late a fire may come and still count as on time for the
// skip policy: the timer's own delay, an election.
const OnTime = 10 * time.Second

// MaxOps bounds the opcodes of a schedule's job.
const MaxOps = 100

// Spec is one schedule.
type Spec struct {
	Name string `json:"name"`
	// Every is a fixed interval (fire times are its multiples since the
	// epoch); Cron a cron expression in TZ (default UTC). Exactly one.
	Every       float64           `json:"every,omitempty"`
	Cron        string            `json:"cron,omitempty"`
	TZ          string            `json:"timezone,omitempty"`
	Ops         []json.RawMessage `json:"ops"`
	Paused      bool              `json:"paused,omitempty"`
	Concurrency string            `json:"concurrency"`
	CatchUp     string            `json:"catch_up"`
	// Created is when the schedule was added (seconds): its first fire
	// time is the first after it.
	Created float64 `json:"created"`
}

// Doc is the setting's value.
type Doc struct {
	Schedules []Spec `json:"schedules"`
}

// ParseDoc reads the setting's value (nil: no schedules), checking every
// schedule.
func ParseDoc(b []byte) (Doc, error) {
	var d Doc
	if len(bytes.TrimSpace(b)) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("the schedules setting is not valid: %v", err)
	}
	seen := map[string]bool{}
	for _, s := range d.Schedules {
		if err := s.Check(); err != nil {
			return d, err
		}
		if seen[s.Name] {
			return d, fmt.Errorf("the schedules setting has the schedule %q twice", s.Name)
		}
		seen[s.Name] = true
	}
	return d, nil
}

// JSON is the setting's value, schedules by name.
func (d Doc) JSON() []byte {
	sort.Slice(d.Schedules, func(i, j int) bool { return d.Schedules[i].Name < d.Schedules[j].Name })
	if d.Schedules == nil {
		d.Schedules = []Spec{}
	}
	b, _ := json.Marshal(d)
	return b
}

// Find is the schedule named name, or nil.
func (d Doc) Find(name string) *Spec {
	for i := range d.Schedules {
		if d.Schedules[i].Name == name {
			return &d.Schedules[i]
		}
	}
	return nil
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Check refuses a schedule that cannot run, in one sentence saying what
// to give.
func (s Spec) Check() error {
	if err := settings.ValidKey(s.Name); err != nil {
		return fmt.Errorf("schedule name %q must have 1 to 64 characters, each a-z, 0-9 or -", s.Name)
	}
	switch {
	case (s.Every > 0) == (s.Cron != ""):
		return fmt.Errorf("schedule %s needs exactly one of an interval (--every 1h) and a cron expression (--cron \"0 3 * * *\")", s.Name)
	case s.Every != 0 && s.Every < 1:
		return fmt.Errorf("schedule %s: the interval must be at least 1s", s.Name)
	case s.Every > 0 && s.TZ != "":
		return fmt.Errorf("schedule %s: a time zone goes with a cron expression, not with an interval", s.Name)
	case len(s.Ops) == 0:
		return fmt.Errorf("schedule %s needs at least one opcode, such as '{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 1}'", s.Name)
	case len(s.Ops) > MaxOps:
		return fmt.Errorf("schedule %s has %d opcodes; give at most %d", s.Name, len(s.Ops), MaxOps)
	}
	switch s.Concurrency {
	case Allow, Forbid, Replace:
	default:
		return fmt.Errorf("schedule %s: the concurrency policy %q is not one of allow, forbid, replace", s.Name, s.Concurrency)
	}
	switch s.CatchUp {
	case CatchSkip, CatchOnce:
	default:
		return fmt.Errorf("schedule %s: the catch-up policy %q is not one of skip, once", s.Name, s.CatchUp)
	}
	for i, op := range s.Ops {
		var m map[string]json.RawMessage
		if json.Unmarshal(op, &m) != nil || m == nil {
			return fmt.Errorf("schedule %s: opcode %d is not a JSON object; give one such as '{\"OP_ID\": \"OP_TEST_DELAY\", \"duration\": 1}'", s.Name, i+1)
		}
		var id string
		if json.Unmarshal(m["OP_ID"], &id) != nil || id == "" {
			return fmt.Errorf("schedule %s: opcode %d has no OP_ID; give one such as \"OP_TEST_DELAY\"", s.Name, i+1)
		}
	}
	if s.Cron != "" {
		if _, err := s.cron(); err != nil {
			return err
		}
	}
	return nil
}

// parsed caches parsed cron expressions by expression and time zone
// (loading a zone reads its file): a master decides for every schedule at
// every wake-up.
var parsed sync.Map // cronKey -> cron.Schedule

type cronKey struct{ expr, tz string }

func (s Spec) cron() (cron.Schedule, error) {
	if c, ok := parsed.Load(cronKey{s.Cron, s.TZ}); ok {
		return c.(cron.Schedule), nil
	}
	c, err := s.parseCron()
	if err == nil {
		parsed.Store(cronKey{s.Cron, s.TZ}, c)
	}
	return c, err
}

func (s Spec) parseCron() (cron.Schedule, error) {
	if strings.HasPrefix(strings.TrimSpace(s.Cron), "TZ=") || strings.HasPrefix(strings.TrimSpace(s.Cron), "CRON_TZ=") {
		return nil, fmt.Errorf("schedule %s: give the time zone with --timezone, not in the cron expression", s.Name)
	}
	loc := time.UTC
	if s.TZ != "" {
		l, err := time.LoadLocation(s.TZ)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: unknown time zone %q; give one such as Europe/Zurich or UTC", s.Name, s.TZ)
		}
		loc = l
	}
	c, err := parser.Parse(s.Cron)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: the cron expression %q is not valid (%v); give five fields such as \"0 3 * * *\"", s.Name, s.Cron, err)
	}
	if sc, ok := c.(*cron.SpecSchedule); ok {
		sc.Location = loc
	}
	return c, nil
}

// Next is the schedule's first fire time strictly after t; zero when it
// has none (a cron expression that never matches).
func (s Spec) Next(t time.Time) time.Time {
	if s.Every > 0 {
		step := time.Duration(s.Every * float64(time.Second))
		n := t.UnixNano()
		k := n / int64(step)
		if n < 0 && n%int64(step) != 0 {
			k--
		}
		return time.Unix(0, (k+1)*int64(step))
	}
	c, err := s.cron()
	if err != nil {
		return time.Time{}
	}
	return c.Next(t)
}

// State is what a schedule did: its last fire time (the latest fire time
// it handled, with a job or skipped), the job of its last fire that made
// one, and its recent jobs. It is the schedule's fire record, written in
// the same store batch as the job it made.
type State struct {
	LastFire float64 `json:"last_fire"`
	LastJob  int64   `json:"last_job"`
	Jobs     []int64 `json:"jobs"`
	// Skipped counts fire times that made no job (policies, pauses).
	Skipped int64 `json:"skipped"`
}

// KeepJobs is how many recent job ids a State keeps.
const KeepJobs = 20

// Seconds is t as a State's or a Spec's seconds.
func Seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Time is seconds back as a time.
func Time(s float64) time.Time { return time.Unix(0, int64(s*1e9)) }

// Action is what to do with a schedule at a time.
type Action int

// The actions.
const (
	Wait Action = iota // nothing due: wait until Decision.Next
	Fire               // make a job for Decision.At
	Skip               // record Decision.At as handled, make no job
)

func (a Action) String() string { return [...]string{"wait", "fire", "skip"}[a] }

// Decision is what Decide says.
type Decision struct {
	Action Action
	// At is the fire time handled (Fire, Skip).
	At time.Time
	// Missed is how many earlier due fire times are passed over.
	Missed int
	// CancelPrevious: kill the previous job first (Replace).
	CancelPrevious bool
	// Next is the next fire time after this decision.
	Next time.Time
	// Why says why a fire is skipped.
	Why string
}

// maxScan bounds the fire times Decide counts as missed.
const maxScan = 100000

// Decide says what schedule s, in state st, does at now: prevRunning is
// whether the job of its last fire is still unfinished, paused whether
// the watcher is paused. One decision handles at most one fire time (the
// latest due one); earlier missed ones are passed over (Missed), as the
// catch-up policy says.
func Decide(s Spec, st State, now time.Time, prevRunning, paused bool) Decision {
	base := Time(s.Created)
	if st.LastFire > 0 {
		base = Time(st.LastFire)
	}
	first := s.Next(base)
	if first.IsZero() || now.Before(first) {
		return Decision{Action: Wait, Next: first}
	}
	// The latest due fire time, and how many come before it.
	latest, missed := first, 0
	for n := s.Next(latest); !n.IsZero() && !now.Before(n); n = s.Next(latest) {
		latest, missed = n, missed+1
		if missed >= maxScan {
			// Far behind (a schedule every second down for a day):
			// jump near now.
			if j := s.Next(now.Add(-OnTime)); !j.After(now) && j.After(latest) {
				latest = j
			}
			break
		}
	}
	d := Decision{At: latest, Missed: missed, Next: s.Next(latest)}
	switch {
	case s.Paused:
		d.Action, d.Why = Skip, "the schedule is paused"
	case paused:
		d.Action, d.Why = Skip, "the watcher is paused"
	case s.CatchUp == CatchSkip && now.Sub(latest) > OnTime:
		d.Action, d.Why = Skip, fmt.Sprintf("missed by %s (catch-up policy skip)", now.Sub(latest).Round(time.Second))
	case prevRunning && s.Concurrency == Forbid:
		d.Action, d.Why = Skip, fmt.Sprintf("job %d of the previous fire still runs (concurrency policy forbid)", st.LastJob)
	default:
		d.Action = Fire
		d.CancelPrevious = prevRunning && s.Concurrency == Replace
	}
	return d
}

// Record is st after decision d made job (0: none).
func (st State) Record(d Decision, job int64) State {
	st.LastFire = Seconds(d.At)
	st.Skipped += int64(d.Missed)
	if job > 0 {
		st.LastJob = job
		st.Jobs = append(append([]int64(nil), st.Jobs...), job)
		if len(st.Jobs) > KeepJobs {
			st.Jobs = st.Jobs[len(st.Jobs)-KeepJobs:]
		}
	} else {
		st.Skipped++
	}
	return st
}
