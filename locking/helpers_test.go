package locking

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// levelInstance is a level registered the way an opcode author would.
var levelInstance = RegisterLevel("instance")

// checkState verifies every structural invariant of s:
//   - holders of a lock are pairwise compatible (an exclusive holder is
//     alone) and the per-mode counts match;
//   - queues are sorted by (priority, seq, owner), and no waiter could be
//     granted (compatible with the holders and everyone ahead): grants are
//     eager, nothing waits for no reason;
//   - every waiter is its owner's pending request, waiting at its current
//     step, and holds exactly the steps before it;
//   - owners' held maps mirror the locks' holders, and nobody holds a
//     level above a pending request's level;
//   - no empty lock and no empty owner is kept.
func checkState(s *State) error {
	for id, l := range s.locks {
		if l.id != id {
			return fmt.Errorf("lock %s stored as %s", l.id, id)
		}
		if len(l.holders) == 0 && len(l.queue) == 0 {
			return fmt.Errorf("lock %s kept while unused", id)
		}
		var count [IntentExclusive + 1]int
		var mask uint8
		for o, m := range l.holders {
			count[m]++
			if !compatible(m, mask) {
				return fmt.Errorf("lock %s: holder %d in %s conflicts with other holders %v", id, o, m, l.holders)
			}
			mask |= 1 << m
			os := s.owners[o]
			if os == nil || os.held[id] != m {
				return fmt.Errorf("lock %s: holder %d not mirrored in owner state", id, o)
			}
		}
		if count != l.count {
			return fmt.Errorf("lock %s: counts %v, holders say %v", id, l.count, count)
		}
		var ahead uint8
		for i, p := range l.queue {
			if q := l.queue[max(i-1, 0)]; i > 0 && cmp.Or(cmp.Compare(q.prio, p.prio), cmp.Compare(q.seq, p.seq), cmp.Compare(q.owner, p.owner)) >= 0 {
				return fmt.Errorf("lock %s: queue out of order at %d", id, i)
			}
			if st := p.steps[p.next]; st.id != id {
				return fmt.Errorf("lock %s: waiter %d waits for %s", id, p.owner, st.id)
			}
			m := p.steps[p.next].mode
			if compatible(m, mask) && compatible(m, ahead) {
				return fmt.Errorf("lock %s: waiter %d (%s) could be granted", id, p.owner, m)
			}
			ahead |= 1 << m
			if os := s.owners[p.owner]; os == nil || os.pending != p {
				return fmt.Errorf("lock %s: waiter %d is not its owner's pending request", id, p.owner)
			}
		}
	}
	for o, os := range s.owners {
		if os.pending == nil && len(os.held) == 0 {
			return fmt.Errorf("owner %d kept while empty", o)
		}
		for id, m := range os.held {
			l := s.locks[id]
			if l == nil || l.holders[o] != m {
				return fmt.Errorf("owner %d holds %s %s, lock disagrees", o, id, m)
			}
		}
		if p := os.pending; p != nil {
			if p.owner != o {
				return fmt.Errorf("owner %d: pending request of %d", o, p.owner)
			}
			l := s.locks[p.steps[p.next].id]
			if l == nil || slices.Index(l.queue, p) < 0 {
				return fmt.Errorf("owner %d: pending request not queued at %s", o, p.steps[p.next].id)
			}
			for i, st := range p.steps {
				_, held := os.held[st.id]
				if held != (i < p.next) {
					return fmt.Errorf("owner %d: step %d (%s) held=%v, next=%d", o, i, st.id, held, p.next)
				}
			}
			for id := range os.held {
				if id.Level > p.level {
					return fmt.Errorf("owner %d holds %s above its pending level %s", o, id, p.level)
				}
				if id.Level == p.level && !slices.ContainsFunc(p.steps[:p.next], func(st step) bool { return st.id == id }) {
					return fmt.Errorf("owner %d holds %s at its pending level from elsewhere", o, id)
				}
			}
		}
	}
	return nil
}

func ownersString(os []Owner) string {
	parts := make([]string, len(os))
	for i, o := range os {
		parts[i] = fmt.Sprint(o)
	}
	return strings.Join(parts, ",")
}

// formatSnapshot renders a Snapshot like gnt-debug locks, one lock a line.
func formatSnapshot(infos []LockInfo) string {
	var b strings.Builder
	for _, li := range infos {
		mode := "-"
		if li.Mode != 0 {
			mode = li.Mode.String()
		}
		fmt.Fprintf(&b, "%s %s owners=%s", li.Name, mode, ownersString(li.Owners))
		if len(li.Pending) > 0 {
			b.WriteString(" pending=")
			for i, pg := range li.Pending {
				if i > 0 {
					b.WriteString(" ")
				}
				fmt.Fprintf(&b, "%s:%s", pg.Mode, ownersString(pg.Owners))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// formatQueues renders the active locks with holders and queues, with
// each waiter's priority and sequence number.
func formatQueues(s *State) string {
	ids := make([]LockID, 0, len(s.locks))
	for id := range s.locks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, CompareLockID)
	var b strings.Builder
	for _, id := range ids {
		l := s.locks[id]
		owners := make([]Owner, 0, len(l.holders))
		for o := range l.holders {
			owners = append(owners, o)
		}
		slices.Sort(owners)
		fmt.Fprintf(&b, "  %s: held by", id)
		if len(owners) == 0 {
			b.WriteString(" nobody")
		}
		for _, o := range owners {
			fmt.Fprintf(&b, " %d(%s)", o, l.holders[o])
		}
		if len(l.queue) > 0 {
			b.WriteString("; queue:")
			for _, p := range l.queue {
				fmt.Fprintf(&b, " %d(%s p%d #%d)", p.owner, p.steps[p.next].mode, p.prio, p.seq)
			}
		}
		b.WriteString("\n")
	}
	if len(ids) == 0 {
		b.WriteString("  (none)\n")
	}
	return b.String()
}
