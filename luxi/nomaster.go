package luxi

import (
	"errors"
	"strings"
)

// The answers of a jobqd node while the cluster has no master that takes
// calls (an election is under way, or the new master is starting): the
// call was not handed to any queue, so it may be sent again, a
// submission included. They are Ganeti's OpPrereqError of kind
// "wrong_state", so that Ganeti's clients print them as they print
// luxid's refusals.
const (
	// NoMasterPrefix begins the answer of a node that knows no master.
	NoMasterPrefix = "No master is elected"
	// MasterStartingPrefix begins the answer of a master that does not
	// run its queue yet.
	MasterStartingPrefix = "This node is the master but does not accept jobs yet"
)

// OutcomeUnknownPrefix begins the answer of a node that handed a call to
// the master, which went away before it answered: the call may or may
// not have been carried out.
const OutcomeUnknownPrefix = "Outcome unknown"

// IsOutcomeUnknown reports whether err says that a call handed to the
// master may or may not have been carried out (OutcomeUnknownPrefix).
func IsOutcomeUnknown(err error) bool {
	var le *Error
	if !errors.As(err, &le) || le.Class != "GenericError" || len(le.Args) != 1 {
		return false
	}
	msg, _ := le.Args[0].(string)
	return strings.HasPrefix(msg, OutcomeUnknownPrefix)
}

// NoMasterError is the answer of a node that cannot hand a call to a
// master now; msg must begin with NoMasterPrefix or MasterStartingPrefix.
func NoMasterError(msg string) *Error { return NewError("OpPrereqError", msg, "wrong_state") }

// IsNoMaster reports whether err is a NoMasterError: no master took the
// call, which may be sent again once one is elected.
func IsNoMaster(err error) bool {
	var le *Error
	if !errors.As(err, &le) || le.Class != "OpPrereqError" || len(le.Args) != 2 || le.Args[1] != "wrong_state" {
		return false
	}
	msg, _ := le.Args[0].(string)
	return strings.HasPrefix(msg, NoMasterPrefix) || strings.HasPrefix(msg, MasterStartingPrefix)
}
