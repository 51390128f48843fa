package queue

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/retention"
	"github.com/jobq-dev/jobq/internal/schedule"
	"github.com/jobq-dev/jobq/internal/store"
)

// Recurring schedules, the engine's side (the decisions are package
// schedule's). The master runs every schedule of the cluster's setting:
// at each due fire time it makes the schedule's job (or skips the time,
// as the policies say) and records the fire in the queue directory's
// schedule-NAME file, written in the same store batch as the job file
// and only if it is (store.WriteTogether). So a fire time is handled once
// whoever is master: the record travels with the job through the log or
// the replication, and a crash between the two files of the batch leaves
// the job, whose "schedule" member (ignored by Ganeti's readers) the next
// master reads back (scheduleStatesLocked). Fires while the queue is
// drained or the watcher paused are skipped.

// errQueueClosing: a fire met the queue's shutdown; nothing was stored.
var errQueueClosing = errors.New("the job queue is shutting down")

// ScheduleFile is the fire record's file name of schedule name.
func ScheduleFile(name string) string { return "schedule-" + name }

// ScheduleState is a schedule as the master runs it.
type ScheduleState struct {
	Spec  schedule.Spec
	State schedule.State
	// Next is the next fire time (zero: none).
	Next time.Time
	// LastSkip says why the last handled fire time made no job.
	LastSkip string
}

type schedules struct {
	mu      sync.Mutex
	specs   []schedule.Spec
	pause   []byte
	states  map[string]schedule.State
	next    map[string]time.Time
	skips   map[string]string
	loaded  map[string]bool
	wake    chan struct{}
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// scheduleTag is the "schedule" member of a job a schedule made.
type scheduleTag struct {
	Name string  `json:"name"`
	Fire float64 `json:"fire"`
}

// SetSchedules hands the queue the cluster's schedules and the watcher
// pause (retention.PauseKey's value); the first call starts running
// them, until Shutdown.
func (q *Queue) SetSchedules(specs []schedule.Spec, pause []byte) {
	s := &q.sched
	s.mu.Lock()
	s.specs = append([]schedule.Spec(nil), specs...)
	s.pause = pause
	if s.started {
		select {
		case s.wake <- struct{}{}:
		default:
		}
		s.mu.Unlock()
		return
	}
	q.mu.Lock()
	closing := q.closing
	q.mu.Unlock()
	if closing {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.states, s.next, s.skips, s.loaded = map[string]schedule.State{}, map[string]time.Time{}, map[string]string{}, map[string]bool{}
	s.wake = make(chan struct{}, 1)
	s.done = make(chan struct{})
	ctx, cancel := context.WithCancel(q.runCtx)
	s.cancel = cancel
	s.mu.Unlock()
	go q.scheduleLoop(ctx)
}

// Schedules reports every schedule with its state, by name.
func (q *Queue) Schedules() []ScheduleState {
	s := &q.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ScheduleState, 0, len(s.specs))
	for _, sp := range s.specs {
		st := ScheduleState{Spec: sp, State: s.states[sp.Name], Next: s.next[sp.Name], LastSkip: s.skips[sp.Name]}
		if !s.loaded[sp.Name] {
			st.State, _ = q.readScheduleState(sp.Name)
		}
		if st.Next.IsZero() {
			// Not decided yet by the loop: the next fire time after the
			// last (or the creation).
			base := schedule.Time(sp.Created)
			if st.State.LastFire > 0 {
				base = schedule.Time(st.State.LastFire)
			}
			st.Next = sp.Next(base)
		}
		out = append(out, st)
	}
	return out
}

// stopSchedules ends the loop and waits for it (Shutdown).
func (q *Queue) stopSchedules() {
	s := &q.sched
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// readScheduleState reads a schedule's fire record (zero when none).
func (q *Queue) readScheduleState(name string) (schedule.State, error) {
	var st schedule.State
	b, err := q.store.ReadFile(ScheduleFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return schedule.State{}, fmt.Errorf("the fire record %s is not valid: %w", ScheduleFile(name), err)
	}
	return st, nil
}

// loadScheduleStates are the states of schedules names when the master
// starts running them: each one's record, or a later fire found in a
// live job's "schedule" member (a crash between the two files of the
// fire's batch). One pass over the live jobs serves them all.
func (q *Queue) loadScheduleStates(names []string) map[string]schedule.State {
	states := make(map[string]schedule.State, len(names))
	var since time.Time
	for i, name := range names {
		st, err := q.readScheduleState(name)
		if err != nil {
			q.log.Error("cannot read a schedule's fire record; the jobs of the queue say what it fired", "schedule", name, "err", err)
		}
		states[name] = st
		if t := schedule.Time(st.LastFire); i == 0 || t.Before(since) {
			since = t
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	// Only a job received after a recorded fire can hold a later one (a
	// fire's job is made at or after its fire time): the others are not
	// looked at, and their files not read.
	for id, e := range q.jobs {
		recv := e.idx.receivedTS(e)
		if recv == nil || recv.Time().Before(since.Truncate(time.Second)) {
			continue
		}
		j := e.job
		if j == nil {
			var err error
			if j, err = q.readLive(id); err != nil {
				continue
			}
		}
		var tag scheduleTag
		if j.Extra["schedule"] == nil || json.Unmarshal(j.Extra["schedule"], &tag) != nil {
			continue
		}
		st, ok := states[tag.Name]
		if ok && tag.Fire > st.LastFire {
			st.LastFire, st.LastJob = tag.Fire, id
			st.Jobs = append(st.Jobs, id)
			states[tag.Name] = st
		}
	}
	return states
}

func (q *Queue) scheduleLoop(ctx context.Context) {
	s := &q.sched
	defer close(s.done)
	for {
		s.mu.Lock()
		specs, pause := s.specs, s.pause
		s.mu.Unlock()
		var load []string
		s.mu.Lock()
		for _, sp := range specs {
			if !s.loaded[sp.Name] {
				load = append(load, sp.Name)
			}
		}
		s.mu.Unlock()
		if len(load) > 0 {
			states := q.loadScheduleStates(load)
			s.mu.Lock()
			for name, st := range states {
				s.states[name], s.loaded[name] = st, true
			}
			s.mu.Unlock()
		}
		now := q.now()
		var earliest time.Time
		handled := false
		for _, sp := range specs {
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			st := s.states[sp.Name]
			s.mu.Unlock()
			q.mu.Lock()
			prev, ok := q.jobs[st.LastJob]
			prevRunning := ok && st.LastJob > 0 && !prev.final()
			drained := q.drained
			q.mu.Unlock()
			d := schedule.Decide(sp, st, now, prevRunning, retention.Paused(pause, now))
			if d.Action == schedule.Fire && drained {
				d.Action, d.Why = schedule.Skip, "the queue is drained"
			}
			if d.Action != schedule.Wait {
				next, err := q.handleFire(sp, st, d)
				if errors.Is(err, errQueueClosing) || errors.Is(err, store.ErrClosed) || (err != nil && ctx.Err() != nil) {
					return // the next master handles the fire time
				}
				if err != nil {
					q.log.Error("schedule fire not recorded; it is tried again", "schedule", sp.Name, "err", err)
					// Retry after a pause rather than spin.
					d.Next = now.Add(time.Second)
				} else {
					s.mu.Lock()
					s.states[sp.Name] = next
					if d.Action == schedule.Skip {
						s.skips[sp.Name] = d.Why
					} else {
						s.skips[sp.Name] = ""
					}
					s.mu.Unlock()
					handled = true
				}
			}
			s.mu.Lock()
			s.next[sp.Name] = d.Next
			s.mu.Unlock()
			if !d.Next.IsZero() && (earliest.IsZero() || d.Next.Before(earliest)) {
				earliest = d.Next
			}
		}
		if handled {
			continue // decide again: more may be due
		}
		var timer <-chan time.Time
		var t *time.Timer
		if !earliest.IsZero() {
			t = time.NewTimer(earliest.Sub(now))
			timer = t.C
		}
		select {
		case <-timer:
		case <-s.wake:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// handleFire carries out decision d of schedule sp (Fire or Skip) and
// returns the schedule's new state once its record is durable.
func (q *Queue) handleFire(sp schedule.Spec, st schedule.State, d schedule.Decision) (schedule.State, error) {
	if d.Action == schedule.Skip {
		next := st.Record(d, 0)
		b, _ := json.Marshal(next)
		return next, q.store.Write(ScheduleFile(sp.Name), b).Wait()
	}
	if d.CancelPrevious {
		if _, _, err := q.CancelJobBy(st.LastJob, true, author.Schedule(sp.Name, q.cfg.NodeName)); err != nil {
			q.log.Warn("schedule cannot cancel the job of its previous fire", "schedule", sp.Name, "job", st.LastJob, "err", err)
		}
	}
	ops := make([]json.RawMessage, len(sp.Ops))
	copy(ops, sp.Ops)
	if err := job.CheckSubmission(ops, q.cfg.Limits); err != nil {
		// The job cannot be made: the fire time is handled (skipped), so
		// that one bad opcode does not retry for ever.
		d.Action, d.Why = schedule.Skip, "its job is refused: "+err.Error()
		q.log.Error("schedule's job refused; the fire time is skipped", "schedule", sp.Name, "err", err)
		return q.handleFire(sp, st, d)
	}
	now := q.now()
	tag, _ := json.Marshal(scheduleTag{Name: sp.Name, Fire: schedule.Seconds(d.At)})
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return st, errQueueClosing
	}
	j, err := job.New(q.serial+1, ops, job.TS(now), now.UnixMicro()*1000,
		author.Schedule(sp.Name, q.cfg.NodeName).Entry(now.UnixMicro()*1000))
	if err != nil {
		q.mu.Unlock()
		d.Action, d.Why = schedule.Skip, "its job is refused: "+err.Error()
		return q.handleFire(sp, st, d)
	}
	j.Extra = map[string]json.RawMessage{"schedule": tag}
	b, err := j.Encode()
	if err != nil {
		q.mu.Unlock()
		return st, err
	}
	e := q.newEntry(j, nil)
	q.serial++
	next := st.Record(d, j.ID)
	rec, _ := json.Marshal(next)
	// The job, the serial and the fire record in one batch (one group
	// commit, one replicated batch or log entry), the record made only
	// if the job is: never a fire recorded without its job.
	ts := q.store.WriteTogether(store.FileWrite{Name: store.JobFileName(j.ID), Data: b},
		store.FileWrite{Name: "serial", Data: store.SerialData(q.serial)},
		store.FileWrite{Name: ScheduleFile(sp.Name), Data: rec})
	jt, rt := ts[0], ts[2]
	q.mu.Unlock()
	jerr, rerr := jt.Wait(), rt.Wait()
	if jerr != nil {
		q.store.Remove(store.JobFileName(j.ID))
		return st, fmt.Errorf("the job could not be stored: %w", jerr)
	}
	q.mu.Lock()
	q.jobs[e.id] = e
	q.cfg.Metrics.JobsSubmitted(1)
	if !q.holdLocked(e) {
		heap.Push(&q.ready, e)
	}
	q.dispatchLocked()
	q.mu.Unlock()
	if rerr != nil {
		// The job is stored: its "schedule" member counts as the record.
		q.log.Warn("schedule's fire record not stored; its job stands for it", "schedule", sp.Name, "job", j.ID, "err", rerr)
	}
	return next, nil
}

// receivedTS is the received timestamp of e (from its index when it is
// evicted).
func (x *finalIndex) receivedTS(e *entry) *job.Timestamp {
	if x != nil {
		return x.received
	}
	if e.shown != nil {
		return e.shown.ReceivedTimestamp
	}
	return nil
}
