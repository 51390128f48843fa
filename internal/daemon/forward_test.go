package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/luxi"
)

// TestForwardDecisions: which calls are sent again after a master died
// under them, which failures mean nothing was carried out, and how the
// master's refusals come back.
func TestForwardDecisions(t *testing.T) {
	for m, want := range map[string]bool{
		"WaitForJobChange": true, "QueryJobs": true, "Query": true, "QueryFields": true, "QueryFilters": true, "QueryConfigValues": true,
		"SubmitJob": false, "SubmitManyJobs": false, "CancelJob": false, "ArchiveJob": false, "AutoArchiveJobs": false,
		"ChangeJobPriority": false, "SetDrainFlag": false, "ReplaceFilter": false, "SetWatcherPause": false, "query": false,
	} {
		if readOnlyCall(m) != want {
			t.Errorf("readOnlyCall(%s) = %v", m, !want)
		}
	}

	notLeader := fmt.Errorf("job could not be stored: %w", fmt.Errorf("no longer the master: %w", consensus.ErrNotLeader))
	unknown := fmt.Errorf("job could not be stored: %w", consensus.ErrOutcomeUnknown)
	for _, tc := range []struct {
		res  []queue.SubmitResult
		want bool
	}{
		{[]queue.SubmitResult{{Err: notLeader}}, true},
		{[]queue.SubmitResult{{Err: notLeader}, {Err: notLeader}}, true},
		{[]queue.SubmitResult{{Err: notLeader}, {ID: 4}}, false},
		{[]queue.SubmitResult{{Err: unknown}}, false},
		{[]queue.SubmitResult{{Err: errors.New("too large")}}, false},
		{nil, false},
	} {
		if got := notLeading(tc.res); got != tc.want {
			t.Errorf("notLeading(%v) = %v", tc.res, got)
		}
	}

	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errNotStored, true},
		{luxi.NewError("GenericError", queue.MsgShuttingDown), true},
		{luxi.NewError("GenericError", queue.MsgShuttingDown, "x"), false},
		{luxi.NewError("GenericError", "Queue drained"), false},
		{errors.New(queue.MsgShuttingDown), false},
	} {
		if got := notCarriedOut(tc.err); got != tc.want {
			t.Errorf("notCarriedOut(%v) = %v", tc.err, got)
		}
	}

	// A request the master could not parse comes back as the same string.
	var re *luxi.RequestError
	if err := fromForwarded(luxi.NewError("RequestError", "Failed to parse request: bad")); !errors.As(err, &re) || re.Reason != "bad" {
		t.Errorf("a parse failure forwarded back: %#v", err)
	}
	if err := fromForwarded(luxi.NewError("RequestError", "other")); !errors.As(err, new(*luxi.Error)) {
		t.Errorf("another RequestError: %#v", err)
	}
	if !shuttingDown(luxi.NewError("GenericError", "Server is shutting down")) || shuttingDown(luxi.NewError("GenericError", "Queue drained")) {
		t.Error("shuttingDown")
	}
}
