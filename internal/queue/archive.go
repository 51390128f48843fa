package queue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/retention"
	"github.com/jobq-dev/jobq/internal/store"
)

// Built-in housekeeping, what Ganeti's watcher does from cron: every
// Policy.Interval the master archives the jobs that finished
// Policy.ArchiveAge ago or more (as "jobq autoarchive" does: no job is
// made, so job ids stay the users'), and deletes archived jobs beyond the
// archive's retention. The decisions are package retention's; the policy
// and the pause are cluster-wide settings the daemon hands in with
// StartHousekeeping and SetHousekeeping.

// HousekeepingState is the housekeeping's policy and what it last did.
type HousekeepingState struct {
	Policy retention.Policy
	// Running is false until StartHousekeeping (and after Shutdown).
	Running bool
	// PausedUntil is the end of a "gnt-cluster watcher pause" (zero:
	// not paused).
	PausedUntil time.Time
	// LastRun is the last run (zero: none yet); NextRun the next.
	LastRun, NextRun time.Time
	// Archived and Deleted count the jobs of the last run; the totals
	// those of every run since the queue opened.
	Archived, Deleted           int
	TotalArchived, TotalDeleted int64
	// LastError is the last run's failure ("" when it succeeded).
	LastError string
}

type housekeeping struct {
	mu      sync.Mutex
	state   HousekeepingState
	pause   []byte
	wake    chan struct{}
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// StartHousekeeping runs the housekeeping with policy p and the watcher
// pause pause (retention.PauseKey's value) until Shutdown; the first run
// comes one interval after the start, as the watcher's first cron run.
// Called again, it only changes the policy (SetHousekeeping).
func (q *Queue) StartHousekeeping(p retention.Policy, pause []byte) {
	hk := &q.hk
	hk.mu.Lock()
	if hk.started {
		hk.mu.Unlock()
		q.SetHousekeeping(p, pause)
		return
	}
	q.mu.Lock()
	closing := q.closing
	q.mu.Unlock()
	if closing {
		hk.mu.Unlock()
		return
	}
	hk.started = true
	hk.state.Policy, hk.pause, hk.state.Running = p, pause, true
	hk.wake = make(chan struct{}, 1)
	hk.done = make(chan struct{})
	ctx, cancel := context.WithCancel(q.runCtx)
	hk.cancel = cancel
	hk.mu.Unlock()
	go q.housekeepLoop(ctx)
}

// SetHousekeeping changes the policy and the pause of a running
// housekeeping; the next run is one new interval after the last.
func (q *Queue) SetHousekeeping(p retention.Policy, pause []byte) {
	hk := &q.hk
	hk.mu.Lock()
	defer hk.mu.Unlock()
	hk.state.Policy, hk.pause = p, pause
	if hk.wake != nil {
		select {
		case hk.wake <- struct{}{}:
		default:
		}
	}
}

// Housekeeping reports the housekeeping's policy and last run.
func (q *Queue) Housekeeping() HousekeepingState {
	hk := &q.hk
	hk.mu.Lock()
	defer hk.mu.Unlock()
	s := hk.state
	s.PausedUntil = time.Time{}
	if until, ok := retention.PauseUntil(hk.pause); ok && q.now().Before(until) {
		s.PausedUntil = until
	}
	return s
}

// stopHousekeeping ends the loop and waits for it (Shutdown).
func (q *Queue) stopHousekeeping() {
	hk := &q.hk
	hk.mu.Lock()
	cancel, done := hk.cancel, hk.done
	hk.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	hk.mu.Lock()
	hk.state.Running = false
	hk.mu.Unlock()
}

func (q *Queue) housekeepLoop(ctx context.Context) {
	hk := &q.hk
	defer close(hk.done)
	last := q.now()
	for {
		hk.mu.Lock()
		p, pause := hk.state.Policy, hk.pause
		next := retention.NextRun(last, p)
		hk.state.NextRun = next
		hk.mu.Unlock()
		now := q.now()
		if !now.Before(next) {
			if !retention.Paused(pause, now) {
				q.housekeepOnce(now, p)
			}
			last = now
			continue
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-t.C:
		case <-hk.wake:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// housekeepOnce archives and deletes what policy p says at now.
func (q *Queue) housekeepOnce(now time.Time, p retention.Policy) {
	var finals []retention.Final
	q.mu.Lock()
	for id, e := range q.jobs {
		if !e.final() {
			continue
		}
		if end := e.endTS(); end != nil {
			finals = append(finals, retention.Final{ID: id, Ended: end.Time()})
		}
	}
	q.mu.Unlock()
	archived, deleted := 0, 0
	var errs []error
	ids := retention.ToArchive(finals, now, p)
	const chunk = 1000
	for lo := 0; lo < len(ids); lo += chunk {
		n, err := q.archive(ids[lo:min(lo+chunk, len(ids))])
		archived += n
		if err != nil {
			errs = append(errs, err)
			break
		}
	}
	if p.DeleteAge > 0 || p.MaxBytes > 0 {
		n, err := q.applyRetention(now, p)
		deleted = n
		if err != nil {
			errs = append(errs, err)
		}
	}
	hk := &q.hk
	hk.mu.Lock()
	hk.state.LastRun, hk.state.Archived, hk.state.Deleted = now, archived, deleted
	hk.state.TotalArchived += int64(archived)
	hk.state.TotalDeleted += int64(deleted)
	hk.state.LastError = ""
	if len(errs) > 0 {
		hk.state.LastError = errs[0].Error()
	}
	hk.mu.Unlock()
	if len(errs) > 0 {
		q.log.Error("housekeeping failed; it runs again at its next interval", "archived", archived, "deleted", deleted, "err", errs[0])
	} else if archived > 0 || deleted > 0 {
		q.log.Info("housekeeping", "archived", archived, "deleted_from_archive", deleted)
	}
}

// applyRetention deletes the archived jobs beyond the archive's
// retention.
func (q *Queue) applyRetention(now time.Time, p retention.Policy) (int, error) {
	stats, err := q.store.ArchiveStats()
	if err != nil {
		return 0, fmt.Errorf("cannot list the archive: %w", err)
	}
	files := make([]retention.Archived, len(stats))
	for i, s := range stats {
		files[i] = retention.Archived{ID: s.ID, Archived: s.Archived, Size: s.Size}
	}
	del := retention.ToDelete(files, now, p)
	tickets := make([]store.Ticket, len(del))
	for i, id := range del {
		tickets[i] = q.store.Remove(store.ArchiveName(id))
	}
	n := 0
	var firstErr error
	for _, t := range tickets {
		if err := t.Wait(); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("cannot delete an archived job: %w", err)
			}
			continue
		}
		n++
	}
	return n, firstErr
}
