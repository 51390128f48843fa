// Package retention is the pure core of the queue's housekeeping, what
// Ganeti's watcher does from cron: archive the jobs that finished long
// enough ago, every few minutes, and keep the archive within a policy
// (an age, a disk budget). Its decisions take the time as a parameter;
// package queue runs them on a timer, and the policy is a cluster-wide
// setting (Key) agreed through package settings.
package retention

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
)

// Key is the cluster-wide setting that holds the Policy.
const Key = "queue-housekeeping"

// PauseKey is the cluster-wide setting of "gnt-cluster watcher pause":
// {"until": SECONDS} (null: not paused). It pauses the housekeeping too.
const PauseKey = "watcher-pause"

// Defaults, as Ganeti's watcher: every 5 minutes, archive the jobs that
// finished more than 6 hours ago; the archive is kept whole.
const (
	DefaultArchiveAge = 6 * time.Hour
	DefaultInterval   = 5 * time.Minute
	// MinInterval bounds how often housekeeping runs.
	MinInterval = time.Second
	// MaxDuration bounds every duration of a policy (ten years).
	MaxDuration = 10 * 366 * 24 * time.Hour
)

// Policy is what the master does on its own.
type Policy struct {
	// AutoArchive: archive the jobs that finished ArchiveAge ago or more.
	AutoArchive bool
	ArchiveAge  time.Duration
	// Interval is the time between two runs.
	Interval time.Duration
	// DeleteAge, when not 0, deletes archived jobs archived that long ago
	// or more.
	DeleteAge time.Duration
	// MaxBytes, when not 0, deletes the oldest archived jobs while the
	// archive holds more bytes than that.
	MaxBytes int64
}

// Default is the policy when none was set.
func Default() Policy {
	return Policy{AutoArchive: true, ArchiveAge: DefaultArchiveAge, Interval: DefaultInterval}
}

// doc is a Policy as the setting stores it: seconds and bytes.
type doc struct {
	AutoArchive *bool    `json:"auto_archive,omitempty"`
	ArchiveAge  *float64 `json:"archive_age,omitempty"`
	Interval    *float64 `json:"interval,omitempty"`
	DeleteAge   *float64 `json:"delete_age,omitempty"`
	MaxBytes    *int64   `json:"max_bytes,omitempty"`
}

// Parse reads a stored policy; members it lacks keep Default's. nil or
// empty means Default. The error is one sentence saying what to set.
func Parse(b []byte) (Policy, error) {
	p := Default()
	if len(bytes.TrimSpace(b)) == 0 || string(bytes.TrimSpace(b)) == "null" {
		return p, nil
	}
	var d doc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return p, fmt.Errorf("the housekeeping policy is not valid (%v); set it again with 'jobq queue housekeeping'", err)
	}
	if d.AutoArchive != nil {
		p.AutoArchive = *d.AutoArchive
	}
	for _, f := range []struct {
		src *float64
		dst *time.Duration
	}{{d.ArchiveAge, &p.ArchiveAge}, {d.Interval, &p.Interval}, {d.DeleteAge, &p.DeleteAge}} {
		if f.src != nil {
			if math.IsNaN(*f.src) || math.Abs(*f.src) > MaxDuration.Seconds() {
				return p, fmt.Errorf("the housekeeping policy holds the duration %v seconds, out of range; set it again with 'jobq queue housekeeping'", *f.src)
			}
			*f.dst = time.Duration(math.Round(*f.src*1e3)) * time.Millisecond
		}
	}
	if d.MaxBytes != nil {
		p.MaxBytes = *d.MaxBytes
	}
	return p, p.Check()
}

// Check refuses a policy that cannot run, in one sentence saying what to
// give instead.
func (p Policy) Check() error {
	switch {
	case p.ArchiveAge < 0:
		return fmt.Errorf("the archive age %s is negative; give 0 or more, such as 6h", p.ArchiveAge)
	case p.Interval < MinInterval:
		return fmt.Errorf("the housekeeping interval %s is shorter than %s; give a longer one, such as 5m", p.Interval, MinInterval)
	case p.DeleteAge < 0:
		return fmt.Errorf("the archive's retention age %s is negative; give 0 (keep everything) or more, such as 30d", p.DeleteAge)
	case p.MaxBytes < 0:
		return fmt.Errorf("the archive's disk budget %d is negative; give 0 (no budget) or more bytes, such as 10G", p.MaxBytes)
	}
	for _, d := range []time.Duration{p.ArchiveAge, p.Interval, p.DeleteAge} {
		if d > MaxDuration {
			return fmt.Errorf("the duration %s is longer than %s; give a shorter one", d, MaxDuration)
		}
	}
	return nil
}

// JSON is the policy as the setting stores it (every member written).
func (p Policy) JSON() []byte {
	aa, ag, iv, da, mb := p.AutoArchive, p.ArchiveAge.Seconds(), p.Interval.Seconds(), p.DeleteAge.Seconds(), p.MaxBytes
	b, _ := json.Marshal(doc{AutoArchive: &aa, ArchiveAge: &ag, Interval: &iv, DeleteAge: &da, MaxBytes: &mb})
	return b
}

// Paused reports whether housekeeping is paused at now by "gnt-cluster
// watcher pause" (PauseKey's value, nil when never set).
func Paused(pause []byte, now time.Time) bool {
	until, ok := PauseUntil(pause)
	return ok && now.Before(until)
}

// PauseUntil reads PauseKey's value: the end of the pause; ok is false
// when there is none.
func PauseUntil(pause []byte) (time.Time, bool) {
	var d struct {
		Until *float64 `json:"until"`
	}
	if len(pause) == 0 || json.Unmarshal(pause, &d) != nil || d.Until == nil || math.IsNaN(*d.Until) || math.IsInf(*d.Until, 0) {
		return time.Time{}, false
	}
	sec := math.Floor(*d.Until)
	return time.Unix(int64(sec), int64((*d.Until-sec)*1e9)), true
}

// PauseJSON is PauseKey's value for a pause until then (nil: none).
func PauseJSON(until *float64) []byte {
	b, _ := json.Marshal(map[string]*float64{"until": until})
	return b
}

// Final is a finished live job: its id and when it ended.
type Final struct {
	ID    int64
	Ended time.Time
}

// ToArchive are the jobs to archive at now: with AutoArchive, those that
// ended ArchiveAge ago or more, in id order.
func ToArchive(jobs []Final, now time.Time, p Policy) []int64 {
	if !p.AutoArchive {
		return nil
	}
	limit := now.Add(-p.ArchiveAge)
	var ids []int64
	for _, j := range jobs {
		if !j.Ended.After(limit) {
			ids = append(ids, j.ID)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids
}

// Archived is an archived job file: its id, when it was archived and its
// size.
type Archived struct {
	ID       int64
	Archived time.Time
	Size     int64
}

// ToDelete are the archived jobs to delete at now: with DeleteAge, those
// archived that long ago or more; with MaxBytes, then the oldest (by
// archive time, then id) while the rest holds more than MaxBytes. In id
// order.
func ToDelete(files []Archived, now time.Time, p Policy) []int64 {
	if p.DeleteAge <= 0 && p.MaxBytes <= 0 {
		return nil
	}
	sorted := append([]Archived(nil), files...)
	sort.Slice(sorted, func(a, b int) bool {
		if !sorted[a].Archived.Equal(sorted[b].Archived) {
			return sorted[a].Archived.Before(sorted[b].Archived)
		}
		return sorted[a].ID < sorted[b].ID
	})
	var total int64
	for _, f := range sorted {
		total += f.Size
	}
	var ids []int64
	limit := now.Add(-p.DeleteAge)
	for _, f := range sorted {
		old := p.DeleteAge > 0 && !f.Archived.After(limit)
		over := p.MaxBytes > 0 && total > p.MaxBytes
		if !old && !over {
			break // sorted by age: the rest are younger, and within budget
		}
		ids = append(ids, f.ID)
		total -= f.Size
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids
}

// NextRun is when housekeeping runs next after a run at last.
func NextRun(last time.Time, p Policy) time.Time { return last.Add(p.Interval) }
