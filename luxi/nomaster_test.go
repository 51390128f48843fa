package luxi

import (
	"errors"
	"fmt"
	"testing"
)

// TestIsNoMasterAndOutcomeUnknown: the answers that say no master took a
// call, or that its outcome is unknown, and their near misses.
func TestIsNoMasterAndOutcomeUnknown(t *testing.T) {
	for _, tc := range []struct {
		err               error
		noMaster, unknown bool
	}{
		{NoMasterError(NoMasterPrefix + ": an election"), true, false},
		{NoMasterError(MasterStartingPrefix + ": it is starting"), true, false},
		{fmt.Errorf("wrapped: %w", NoMasterError(NoMasterPrefix)), true, false},
		{NewError("OpPrereqError", NoMasterPrefix+": x", "wrong_input"), false, false},
		{NewError("OpPrereqError", NoMasterPrefix+": x"), false, false},
		{NewError("GenericError", NoMasterPrefix+": x"), false, false},
		{NewError("OpPrereqError", "This is not the master node, please connect to node n1", "wrong_state"), false, false},
		{NewError("OpPrereqError", 42, "wrong_state"), false, false},
		{NewError("GenericError", OutcomeUnknownPrefix+": the master went away"), false, true},
		{NewError("GenericError", OutcomeUnknownPrefix+": x", "more"), false, false},
		{NewError("OpExecError", OutcomeUnknownPrefix+": x"), false, false},
		{NewError("GenericError", "outcome unknown"), false, false},
		{errors.New(NoMasterPrefix), false, false},
		{&DialError{Err: errors.New("refused")}, false, false},
		{nil, false, false},
	} {
		if got := IsNoMaster(tc.err); got != tc.noMaster {
			t.Errorf("IsNoMaster(%v) = %v", tc.err, got)
		}
		if got := IsOutcomeUnknown(tc.err); got != tc.unknown {
			t.Errorf("IsOutcomeUnknown(%v) = %v", tc.err, got)
		}
	}
}
