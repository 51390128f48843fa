package locking

import (
	"fmt"
	"sync"
)

// Level is a lock level. Locks are always acquired level by level in
// increasing Level order, and within a level in sorted name order, so two
// owners can never wait for each other in a cycle.
//
// LevelCluster and LevelNode are predefined; opcode authors add their own
// levels with RegisterLevel, which orders them after LevelNode in
// registration order.
type Level int

const (
	// LevelCluster holds a single lock, BGL (Ganeti's "big ganeti lock").
	// Most operations take it shared; an operation that needs the whole
	// cluster to itself takes it exclusive.
	LevelCluster Level = 0
	// LevelNode has one lock per node, named after the node.
	LevelNode Level = 1
)

// BGL is the name of the only lock at LevelCluster.
const BGL = "BGL"

var levels = struct {
	sync.RWMutex
	names  []string
	byName map[string]Level
}{
	names:  []string{"cluster", "node"},
	byName: map[string]Level{"cluster": LevelCluster, "node": LevelNode},
}

// RegisterLevel adds a lock level after every level registered so far and
// returns it. It is meant to be called from package initialisation (a
// package-level variable) by the author of an opcode that needs locks of
// its own kind. It panics if name is empty, contains '/', or is already
// registered.
func RegisterLevel(name string) Level {
	if name == "" {
		panic("locking: RegisterLevel with empty name")
	}
	for _, c := range name {
		if c == '/' {
			panic(fmt.Sprintf("locking: level name %q contains '/'", name))
		}
	}
	levels.Lock()
	defer levels.Unlock()
	if _, dup := levels.byName[name]; dup {
		panic(fmt.Sprintf("locking: level %q registered twice", name))
	}
	l := Level(len(levels.names))
	levels.names = append(levels.names, name)
	levels.byName[name] = l
	return l
}

// LevelByName returns the level registered under name.
func LevelByName(name string) (Level, bool) {
	levels.RLock()
	defer levels.RUnlock()
	l, ok := levels.byName[name]
	return l, ok
}

// Levels returns every registered level in acquisition order.
func Levels() []Level {
	levels.RLock()
	defer levels.RUnlock()
	out := make([]Level, len(levels.names))
	for i := range out {
		out[i] = Level(i)
	}
	return out
}

// String returns the level's name ("cluster", "node", ...).
func (l Level) String() string {
	levels.RLock()
	defer levels.RUnlock()
	if l < 0 || int(l) >= len(levels.names) {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levels.names[l]
}

func (l Level) valid() bool {
	levels.RLock()
	defer levels.RUnlock()
	return l >= 0 && int(l) < len(levels.names)
}
