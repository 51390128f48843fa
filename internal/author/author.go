// Package author says who asked for an action: the author a job records
// in its reason trail, the actor of a cancel, a priority change or an
// archive, and whether a LUXI peer may make administrative calls. Pure:
// the I/O edge (the LUXI server's SO_PEERCRED, the user database) hands
// in what it read.
//
// A job's author is a reason entry [SOURCE, WHO, NANOS] that jobqd
// appends to each opcode's reason trail at submission, just before
// Ganeti's own ["gnt:opcode:NAME", "job=N;index=I", NANOS]:
//
//	["jobq:luxi", "uid=1000(alice)", …]   a LUXI client (the socket's peer)
//	["jobq:rapi", "alice", …]             a RAPI user
//	["jobq:dashboard", "alice", …]        a dashboard user
//	["jobq:node", "node1", …]             the node itself (no client)
//	["jobq:schedule:NAME", "node1", …]    a schedule's fire, on that master
//
// The server adds it; a client's own entries come before it, so an entry
// a client forges is never the one read back (see Of).
package author

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// Sources of an author entry.
const (
	SourceLUXI      = "jobq:luxi"
	SourceRAPI      = "jobq:rapi"
	SourceDashboard = "jobq:dashboard"
	SourceNode      = "jobq:node"
	// SourceSchedule prefixes a schedule's name.
	SourceSchedule = "jobq:schedule:"
)

// Actor is who asked for something.
type Actor struct {
	// Source is one of the Source constants (a schedule's is
	// SourceSchedule+NAME).
	Source string
	// Who names the actor within its source: "uid=1000(alice)" for LUXI,
	// the user name for RAPI and the dashboard, the node's name.
	Who string
}

// IsZero reports whether a is unknown.
func (a Actor) IsZero() bool { return a.Source == "" }

// String is "SOURCE WHO", as the log lines and the audit log write it;
// "unknown" for the zero Actor.
func (a Actor) String() string {
	if a.IsZero() {
		return "unknown"
	}
	if a.Who == "" {
		return a.Source
	}
	return a.Source + " " + a.Who
}

// Entry is a's reason entry at nanos.
func (a Actor) Entry(nanos int64) []any { return []any{a.Source, a.Who, nanos} }

// LUXIUser is a LUXI peer as an actor: "uid=UID(NAME)", or "uid=UID"
// when the user has no name.
func LUXIUser(uid uint32, name string) Actor {
	who := fmt.Sprintf("uid=%d", uid)
	if name != "" {
		who += "(" + name + ")"
	}
	return Actor{Source: SourceLUXI, Who: who}
}

// RAPIUser, DashboardUser, Node and Schedule are the other actors.
func RAPIUser(name string) Actor      { return Actor{Source: SourceRAPI, Who: name} }
func DashboardUser(name string) Actor { return Actor{Source: SourceDashboard, Who: name} }
func Node(name string) Actor          { return Actor{Source: SourceNode, Who: name} }
func Schedule(name, node string) Actor {
	return Actor{Source: SourceSchedule + name, Who: node}
}

// Of reads the author of a job from its first opcode's input: the entry
// just before the last reason entry, when that last one is Ganeti's
// "gnt:opcode:" entry and the one before has a "jobq:" source (both
// appended by the server at submission, after whatever the client sent).
// ok is false for a job without one (submitted before jobq recorded
// authors, or by Ganeti).
func Of(input json.RawMessage) (a Actor, ok bool) {
	var m struct {
		Reason []json.RawMessage `json:"reason"`
	}
	if err := json.Unmarshal(input, &m); err != nil || len(m.Reason) < 2 {
		return Actor{}, false
	}
	last, ok1 := entry(m.Reason[len(m.Reason)-1])
	prev, ok2 := entry(m.Reason[len(m.Reason)-2])
	if !ok1 || !ok2 || !strings.HasPrefix(last.Source, "gnt:opcode:") || !strings.HasPrefix(prev.Source, "jobq:") {
		return Actor{}, false
	}
	return prev, true
}

func entry(raw json.RawMessage) (Actor, bool) {
	var e []json.RawMessage
	if err := json.Unmarshal(raw, &e); err != nil || len(e) != 3 {
		return Actor{}, false
	}
	var a Actor
	if json.Unmarshal(e[0], &a.Source) != nil || json.Unmarshal(e[1], &a.Who) != nil {
		return Actor{}, false
	}
	return a, true
}

// LogType is the type of the job log entries the queue writes to say who
// canceled, killed, reprioritised or archived a job ("Canceled by
// jobq:luxi uid=1000(alice)"); opcodes cannot log entries of this type.
const LogType = "jobq-action"

// Cred is a LUXI peer's identity: its uid, primary gid (both from
// SO_PEERCRED) and the groups its user is a member of (from the user
// database).
type Cred struct {
	UID, GID uint32
	Groups   []uint32
}

// Policy says who may make administrative calls: root, the user jobqd
// runs as, and the members of the admin group, if one is set. Groups are
// compared by gid, never by name.
type Policy struct {
	// DaemonUID is the uid jobqd runs as.
	DaemonUID uint32
	// AdminGID is the admin group's gid; HasAdminGroup says whether one
	// is set.
	AdminGID      uint32
	HasAdminGroup bool
}

// Admin reports whether c may make administrative calls.
func (p Policy) Admin(c Cred) bool {
	if c.UID == 0 || c.UID == p.DaemonUID {
		return true
	}
	if !p.HasAdminGroup {
		return false
	}
	return c.GID == p.AdminGID || slices.Contains(c.Groups, p.AdminGID)
}

// Refusal is the error sentence for an administrative call refused to
// who.
func (p Policy) Refusal(what string, who Actor, groupName string) string {
	if p.HasAdminGroup {
		return fmt.Sprintf("%s is an administrative call, allowed only to root, jobqd's user and members of the group %q; %s is none of these: run it as one of them", what, groupName, who.Who)
	}
	return fmt.Sprintf("%s is an administrative call, allowed only to root and jobqd's user (jobqd has no --admin-group); %s is neither: run it as root", what, who.Who)
}

// adminMethods are the LUXI methods that change the cluster or its
// configuration.
var adminMethods = map[string]bool{
	"JobqJoinToken":       true, // hands out the cluster's private key
	"JobqNodeModify":      true,
	"JobqNodeRemove":      true,
	"JobqMasterFailover":  true, // and its no_voting
	"JobqRenewCrypto":     true,
	"JobqSetHousekeeping": true,
	"JobqScheduleAdd":     true,
	"JobqScheduleSet":     true,
	"JobqScheduleRemove":  true,
	"ReplaceFilter":       true,
	"DeleteFilter":        true,
	"SetWatcherPause":     true,
	"SetDrainFlag":        true,
	"JobqOpcodeAdd":       true, // declared opcodes: add and replace
	"JobqOpcodeRemove":    true,
}

// AdminMethod reports whether a LUXI method is administrative.
func AdminMethod(method string) bool {
	return adminMethods[method]
}

// AdminCall reports whether a LUXI call is administrative: an
// administrative method, or JobqVerifyQueue asked to repair (through the
// log); arguments it cannot read count as a repair.
func AdminCall(method string, args json.RawMessage) bool {
	if method == "JobqVerifyQueue" {
		var a []struct {
			Repair bool `json:"repair"`
		}
		if err := json.Unmarshal(args, &a); err != nil || len(a) != 1 {
			return true
		}
		return a[0].Repair
	}
	return AdminMethod(method)
}

// adminOpcodes are the opcodes a job may carry only when its author may
// make administrative calls.
var adminOpcodes = map[string]bool{
	"OP_CLUSTER_SET_PARAMS": true, // queue settings
	"OP_RESTRICTED_COMMAND": true, // runs as root on nodes
}

// AdminOpcode reports whether an OP_ID is administrative.
func AdminOpcode(opID string) bool { return adminOpcodes[opID] }

// Audit writes the audit log line of an administrative call, a cancel, a
// priority change or an archive, at INFO with the message "audit": who
// (actor) asked what (action) of which target, and what came of it
// (result: "ok", "refused: …", "failed: …", "not done: …").
func Audit(log *slog.Logger, who Actor, action, target, result string) {
	log.Info("audit", "actor", who.String(), "action", action, "target", target, "result", result)
}
