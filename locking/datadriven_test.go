package locking

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestDataDriven runs the scripts in testdata/*.txt against a State.
// Rewrite the expected output with
// `go test ./locking -run TestDataDriven -rewrite`.
//
// Commands (owner, prio and seq are integers; level is a level name;
// names=(a,b) is a list; seq defaults to one more than the last request's):
//
//	request owner=N level=L (names=(...) | all) mode=shared|exclusive [prio=P] [seq=S]
//	release owner=N level=L [names=(...)]
//	release-all owner=N
//	cancel owner=N
//	set-priority owner=N prio=P
//	declare level=L names=(...)
//	undeclare level=L names=(...)
//	locks          the public Snapshot, one lock a line
//	holds owner=N  State.Holds
//	waiting owner=N
//
// Every changing command prints the grants it returned (owner, lock, mode,
// "done" on the grant completing a request), or the error, then every
// active lock with its holders and queue (waiter: owner(mode, priority,
// sequence)). After every command the State's invariants are checked.
func TestDataDriven(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			s := NewState()
			var seq uint64
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				out := runCommand(t, d, s, &seq)
				if err := checkState(s); err != nil {
					d.Fatalf(t, "invariant broken after %s: %v\n%s", d.Pos, err, formatQueues(s))
				}
				return out
			})
		})
	}
}

func runCommand(t *testing.T, d *datadriven.TestData, s *State, seq *uint64) string {
	owner := func() Owner {
		var o int64
		d.ScanArgs(t, "owner", &o)
		return Owner(o)
	}
	level := func() Level {
		var name string
		d.ScanArgs(t, "level", &name)
		l, ok := LevelByName(name)
		if !ok {
			d.Fatalf(t, "unknown level %q", name)
		}
		return l
	}
	names := func() []string {
		if !d.HasArg("names") {
			return nil
		}
		var ns []string
		d.ScanArgs(t, "names", &ns)
		return ns
	}
	intArg := func(key string, def int) int {
		if !d.HasArg(key) {
			return def
		}
		var v int
		d.ScanArgs(t, key, &v)
		return v
	}
	result := func(grants []Grant, err error) string {
		var b strings.Builder
		if err != nil {
			fmt.Fprintf(&b, "error: %v\n", err)
		} else if len(grants) == 0 {
			b.WriteString("grants: none\n")
		} else {
			b.WriteString("grants:\n")
			for _, g := range grants {
				fmt.Fprintf(&b, "  %s\n", g)
			}
		}
		b.WriteString("locks:\n")
		b.WriteString(formatQueues(s))
		return b.String()
	}

	switch d.Cmd {
	case "request":
		var modeName string
		d.ScanArgs(t, "mode", &modeName)
		mode, err := ParseMode(modeName)
		if err != nil {
			mode = 0 // let Request report it
		}
		r := Request{Level: level(), Names: names(), Mode: mode, All: d.HasArg("all")}
		*seq++
		if d.HasArg("seq") {
			*seq = uint64(intArg("seq", 0))
		}
		return result(s.Request(owner(), r, intArg("prio", 0), *seq))
	case "release":
		return result(s.Release(owner(), level(), names()), nil)
	case "release-all":
		return result(s.ReleaseAll(owner()), nil)
	case "cancel":
		return result(s.Cancel(owner()), nil)
	case "set-priority":
		return result(s.SetPriority(owner(), intArg("prio", 0)), nil)
	case "declare":
		if err := s.Declare(level(), names()...); err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return formatSnapshot(s.Snapshot())
	case "undeclare":
		s.Undeclare(level(), names()...)
		return formatSnapshot(s.Snapshot())
	case "locks":
		return formatSnapshot(s.Snapshot())
	case "holds":
		var b strings.Builder
		for _, h := range s.Holds(owner()) {
			if h.All {
				fmt.Fprintf(&b, "%s: all %s\n", h.Level, h.Mode)
			} else {
				fmt.Fprintf(&b, "%s: %s %s\n", h.Level, h.Mode, strings.Join(h.Names, ","))
			}
		}
		if b.Len() == 0 {
			return "nothing\n"
		}
		return b.String()
	case "waiting":
		o := owner()
		id, mode, ok := s.WaitingOn(o)
		if !ok {
			return "not waiting\n"
		}
		prio, _ := s.Priority(o)
		return fmt.Sprintf("%s %s prio %d\n", id, mode, prio)
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
		return ""
	}
}
