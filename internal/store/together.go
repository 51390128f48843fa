package store

// FileWrite is one file's new content, for WriteTogether.
type FileWrite struct {
	Name string
	Data []byte
}

// WriteTogether queues writes that land in one batch: one group commit
// (on a replicated store, one replicated batch or log entry), so that a
// reader of the store sees all of them or, when the first fails, none of
// the others (each later write is made only if the first succeeded, as
// WriteAfter). The tickets are in the order of the writes.
func (s *Store) WriteTogether(first FileWrite, rest ...FileWrite) []Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	t0 := s.addLocked(op{kind: opWrite, name: first.Name, data: first.Data})
	out := []Ticket{t0}
	for _, w := range rest {
		out = append(out, s.addLocked(op{kind: opWrite, name: w.Name, data: w.Data, deps: []Ticket{t0}}))
	}
	return out
}
