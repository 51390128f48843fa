package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The write-back buffer. A batch the log keeps (ApplyBatch with durable
// false) is not written at once: its changes wait in a buffer, where a
// later change of the same file replaces an earlier one (a job's file is
// replaced two or three times within milliseconds: queued, running,
// success; serial once per batch), and a flusher writes the buffer to
// the directory every FlushInterval, or as soon as it holds FlushOps
// changes. Every read of the directory through the store flushes first
// (a read of one file only when that file has a change waiting), and so
// do Sync (a snapshot: flush, then fsync, and only then may the log drop
// its entries), Flush and Close; the files are thus a pure function of
// the applied entries, as without the buffer, at most FlushInterval
// behind them for a reader outside the store (Ganeti's tools).
//
// Order is kept: a write or removal of a file whose last change in the
// buffer is a write or removal of it replaces that change in place (no
// change after it touches the file, so the result is the same); a
// rename is appended, and later changes of either of its names come
// after it.

// Write-back defaults (see WithFlushInterval).
const (
	DefaultFlushInterval = 50 * time.Millisecond
	// FlushOps changes waiting make the flusher write at once.
	FlushOps = 4096
	// flushBytes of contents waiting do too.
	flushBytes = 32 << 20
	// MaxWaiting changes waiting make ApplyBatch write them itself
	// before it returns (the flusher is behind), or refuse more when
	// writing fails.
	MaxWaiting = 8 * FlushOps
	// retryInterval: how soon a failed flush (a full disk) is retried.
	retryInterval = 200 * time.Millisecond
)

// defaultFlushInterval is DefaultFlushInterval, or for measurements
// $JOBQ_TEST_FLUSH_INTERVAL (a Go duration; negative: no buffer).
func defaultFlushInterval() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("JOBQ_TEST_FLUSH_INTERVAL")); err == nil && d != 0 {
		return d
	}
	return DefaultFlushInterval
}

// WithFlushInterval sets how long a change applied without sync may wait
// in the write-back buffer (0: DefaultFlushInterval; negative: no
// buffer, every batch is written when applied).
func WithFlushInterval(d time.Duration) Option {
	return func(s *Store) {
		if d == 0 {
			d = defaultFlushInterval()
		}
		s.flushEvery = d
	}
}

// newWriteBack is an empty buffer: written without syncs.
func newWriteBack() *batch {
	b := newBatch()
	b.noSync = true
	return b
}

// WithMaxWaiting sets how many changes may wait in the write-back
// buffer (0: MaxWaiting) before ApplyBatch writes them itself, or, when
// writing fails, refuses more.
func WithMaxWaiting(n int) Option {
	return func(s *Store) {
		if n <= 0 {
			n = MaxWaiting
		}
		s.maxWaiting = n
	}
}

// wbAdd adds one change to the buffer (under wbMu).
func (s *Store) wbAdd(o op) {
	b := s.wb
	if len(b.ops) == 0 {
		s.wbSince = time.Now()
	}
	if o.kind != opRename {
		if i, ok := b.last[o.name]; ok && b.ops[i].kind != opRename {
			// b.ops[i] writes or removes o.name, and nothing after it
			// touches o.name: o takes its place.
			s.wbBytes += len(o.data) - len(b.ops[i].data)
			b.ops[i] = o
			return
		}
	}
	b.ops = append(b.ops, o)
	i := len(b.ops) - 1
	b.last[o.name] = i
	if o.kind == opRename {
		b.last[o.dst] = i
	}
	s.wbBytes += len(o.data)
}

// buffer applies changes through the write-back buffer; ok is false when
// there is none (closed, or disabled).
func (s *Store) buffer(changes []Change) (ok bool, err error) {
	s.wbMu.Lock()
	if s.flushEvery < 0 || s.wbClosed {
		s.wbMu.Unlock()
		return false, nil
	}
	if w := s.waitingLocked(); w >= s.maxWaiting && s.wbErr != nil {
		// Writing fails and the buffer is full: this batch is not
		// taken (the node is behind the log until it restarts).
		err := s.wbErr
		s.wbMu.Unlock()
		return true, fmt.Errorf("%d changes wait to be written and writing fails: %w", w, err)
	}
	wasEmpty := len(s.wb.ops) == 0
	s.wbApplied += int64(len(changes))
	for _, c := range changes {
		o := op{name: c.Name, dst: c.Dst, data: c.Data}
		switch c.Kind {
		case "rename":
			o.kind = opRename
		case "remove":
			o.kind = opRemove
		}
		s.wbAdd(o)
	}
	n, size, w := len(s.wb.ops), s.wbBytes, s.waitingLocked()
	s.wbMu.Unlock()
	if wasEmpty || n >= FlushOps || size >= flushBytes {
		select {
		case s.wbKick <- struct{}{}:
		default:
		}
	}
	if w >= s.maxWaiting {
		// The flusher is behind: write here (bounded memory).
		_ = s.Flush()
	}
	return true, nil
}

// waitingLocked counts the changes not written yet (under wbMu).
func (s *Store) waitingLocked() int {
	n := len(s.wb.ops)
	if s.wbFlight != nil {
		n += len(s.wbFlight.ops)
	}
	return n
}

// Flush writes every change waiting in the write-back buffer to the
// directory (without sync) and returns the first failure; the changes
// that failed stay and are written again by the next flush (writing a
// batch again in order leaves the same files).
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.wbMu.Lock()
	b := s.wbFlight
	if b == nil {
		if len(s.wb.ops) == 0 {
			s.wbMu.Unlock()
			return nil
		}
		b = s.takeLocked()
	}
	s.wbMu.Unlock()
	for {
		s.commit(b)
		err := errors.Join(b.errs...)
		s.wbMu.Lock()
		if err != nil {
			s.wbErr = err
			s.wbMu.Unlock()
			return fmt.Errorf("cannot write the queue's applied changes: %w", err)
		}
		s.wbErr = nil
		s.flushes++
		s.wbWritten += int64(len(b.ops))
		if len(s.wb.ops) == 0 {
			s.wbFlight = nil
			s.wbMu.Unlock()
			return nil
		}
		// Changes applied meanwhile (a failed batch was retried first).
		b = s.takeLocked()
		s.wbMu.Unlock()
	}
}

// takeLocked moves the buffer's changes to the flush in flight and starts
// an empty buffer (under wbMu).
func (s *Store) takeLocked() *batch {
	b := s.wb
	s.wb = newWriteBack()
	s.wbBytes = 0
	s.wbFlight = b
	return b
}

// flushFor flushes when one of names has a change waiting (or being
// written), so that reading them from the directory is current.
func (s *Store) flushFor(names ...string) error {
	s.wbMu.Lock()
	pending := false
	for _, n := range names {
		if _, ok := s.wb.last[n]; ok {
			pending = true
		}
		if s.wbFlight != nil {
			if _, ok := s.wbFlight.last[n]; ok {
				pending = true
			}
		}
	}
	s.wbMu.Unlock()
	if pending {
		return s.Flush()
	}
	return nil
}

// flusher writes the buffer every flushEvery, at once when it is large,
// and retries a failed flush every retryInterval.
func (s *Store) flusher() {
	defer s.flushWG.Done()
	failing := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.wbMu.Lock()
		n, size, since, flight := len(s.wb.ops), s.wbBytes, s.wbSince, s.wbFlight != nil
		s.wbMu.Unlock()
		wait := time.Duration(-1) // until kicked
		retrying := failing && (n > 0 || flight)
		switch {
		case retrying:
			wait = retryInterval
		case n >= FlushOps || size >= flushBytes:
			wait = 0
		case n > 0:
			wait = max(0, time.Until(since.Add(s.flushEvery)))
		}
		if wait != 0 {
			var fire <-chan time.Time // nil: none
			if wait > 0 {
				timer.Reset(wait) // (Go 1.23 timers: no stale tick)
				fire = timer.C
			}
			kick := s.wbKick
			if retrying {
				kick = nil // a failing flush is retried on its schedule
			}
			select {
			case <-kick:
				timer.Stop()
				continue
			case <-fire:
			case <-s.wbStop:
				return
			}
		}
		err := s.Flush()
		switch {
		case err != nil && !failing:
			s.log.Error("cannot write applied changes to the queue directory; retrying (the log keeps them)", "err", err)
		case err == nil && failing:
			s.log.Info("applied changes written to the queue directory again")
		}
		failing = err != nil
	}
}

// stopFlusher ends the flusher and writes what waits; later batches are
// written when applied.
func (s *Store) stopFlusher() {
	s.wbMu.Lock()
	if s.wbClosed {
		s.wbMu.Unlock()
		return
	}
	s.wbClosed = true
	s.wbMu.Unlock()
	close(s.wbStop)
	s.flushWG.Wait()
	if err := s.Flush(); err != nil {
		s.log.Error("cannot write applied changes to the queue directory at close (the log keeps them: they are written at the next start)", "err", err)
	}
	if st := s.FlushStats(); st.Applied > 0 {
		s.log.Info("write-back buffer", "applied", st.Applied, "written", st.Written, "flushes", st.Flushes)
	}
}

// FlushStats are the write-back buffer's counters.
type FlushStats struct {
	Flushes int64 // flushes that wrote something
	Applied int64 // changes applied through the buffer
	Written int64 // changes written by flushes (fewer: coalesced)
	Waiting int   // changes waiting now
}

// FlushStats returns the write-back buffer's counters.
func (s *Store) FlushStats() FlushStats {
	s.wbMu.Lock()
	defer s.wbMu.Unlock()
	return FlushStats{Flushes: s.flushes, Applied: s.wbApplied, Written: s.wbWritten, Waiting: s.waitingLocked()}
}

// ReadFile reads the queue file name (relative to the queue directory),
// as current as the changes applied so far.
func (s *Store) ReadFile(name string) ([]byte, error) {
	if err := s.flushFor(name); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(s.dir, name))
}
