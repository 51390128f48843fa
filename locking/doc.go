// Package locking is jobq's lock manager: named locks in ordered levels,
// held shared or exclusive by owners (jobs), the way Ganeti's opcodes
// declare and take them.
//
// # Levels and order
//
// Locks live at levels: LevelCluster (one lock, BGL), LevelNode (one lock
// per node), then the levels opcode authors add with RegisterLevel. An
// owner takes its locks one level at a time, each level above every level
// it already holds, and within a level in sorted name order (a Request
// takes a set of names and orders them itself). Every owner thus acquires
// locks in the same global order, so waiting owners can never form a
// cycle: there are no deadlocks, and no deadlock detection.
//
// A Request with All takes a whole level — every name, also names that
// appear later — like Ganeti's ALL_SET. It is multiple-granularity
// locking: the level has a lock named LocksetName, taken Shared or
// Exclusive for the whole level, and in an intent mode (IntentShared,
// IntentExclusive) before individual names. A whole-level exclusive
// holder thus excludes every holder of a name at that level, a whole-level
// shared holder excludes exclusive holders of names, and holders of
// different names do not disturb each other.
//
// # Fairness
//
// Each lock has a queue of waiters ordered by priority (lower first, -20
// to 19 as in Ganeti), then arrival. A waiter is granted a lock when it is
// compatible with every holder and with every waiter queued before it. So
// an exclusive waiter holds back every later shared request of its
// priority or a lower one: a stream of shared holders cannot starve it.
// Only more urgent requests overtake it, and its Acquire schedule raises
// its priority over time (see Schedule) until nothing can.
//
// # Structure
//
// State is the pure decision core: no goroutines, clocks or channels;
// Request, Release, ReleaseAll, Cancel and SetPriority return the grants
// they made possible. Manager wraps it for the queue engine: Acquire
// blocks until granted, with the lock-attempt Schedule and context
// cancellation; ReleaseAll frees everything when a job ends; Snapshot
// feeds `jobq locks` and LUXI Query on "lock".
//
// # Differences from Ganeti
//
//   - Ganeti groups every shared waiter of one priority together, so a
//     later shared request can overtake an earlier exclusive one of the
//     same priority; here arrival order is kept among all waiters of a
//     priority.
//   - When a timed lock attempt expires, Ganeti releases all of the
//     opcode's locks and requests them again, losing its place; after
//     the last timed attempt of a round it raises the priority by one.
//     Here a waiter never loses its place or the locks it holds (order
//     already rules out deadlock, fair queues rule out starvation); the
//     end of a round raises its priority in place, and at the highest
//     priority it waits without a timeout, as Ganeti's final blocking
//     acquire does.
//   - Lock upgrades, downgrades and opportunistic acquisition are not
//     provided; an owner may release some names of a level it holds.
//   - Whole-level locks use intent modes (see above) instead of Ganeti's
//     lockset-internal lock plus every current name; LockInfo reports a
//     level's LocksetName lock only while someone holds the whole level
//     or waits for it.
package locking
