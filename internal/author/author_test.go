package author

import (
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

func TestAdminPolicy(t *testing.T) {
	const daemon = 998
	noGroup := Policy{DaemonUID: daemon}
	group := Policy{DaemonUID: daemon, AdminGID: 1500, HasAdminGroup: true}
	for _, c := range []struct {
		name string
		p    Policy
		c    Cred
		want bool
	}{
		{"root", noGroup, Cred{UID: 0, GID: 0}, true},
		{"root in no group at all", group, Cred{UID: 0, GID: 12345}, true},
		{"jobqd's own user", noGroup, Cred{UID: daemon, GID: 50}, true},
		{"uid 1: not root", noGroup, Cred{UID: 1, GID: 0}, false},
		{"gid 0 is not uid 0", noGroup, Cred{UID: 1000, GID: 0, Groups: []uint32{0}}, false},
		{"a user, no admin group set", noGroup, Cred{UID: 1000, GID: 1500, Groups: []uint32{1500}}, false},
		{"a user beside jobqd's uid", noGroup, Cred{UID: daemon + 1, GID: 1000}, false},
		{"primary group is the admin group", group, Cred{UID: 1000, GID: 1500}, true},
		{"supplementary group is the admin group", group, Cred{UID: 1000, GID: 1000, Groups: []uint32{27, 1500}}, true},
		{"neighbouring gid (a group with a similar name)", group, Cred{UID: 1000, GID: 1501, Groups: []uint32{1499, 1501}}, false},
		{"no groups", group, Cred{UID: 1000, GID: 1000}, false},
		{"max uid", group, Cred{UID: ^uint32(0), GID: 0}, false},
	} {
		if got := c.p.Admin(c.c); got != c.want {
			t.Errorf("%s: Admin(%+v) = %v, want %v", c.name, c.c, got, c.want)
		}
	}
}

func TestAdminPolicyProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := Policy{DaemonUID: rapid.Uint32().Draw(t, "daemon"), AdminGID: rapid.Uint32().Draw(t, "gid"),
			HasAdminGroup: rapid.Bool().Draw(t, "has")}
		c := Cred{UID: rapid.Uint32().Draw(t, "uid"), GID: rapid.Uint32().Draw(t, "pgid"),
			Groups: rapid.SliceOf(rapid.Uint32()).Draw(t, "groups")}
		inGroup := c.GID == p.AdminGID
		for _, g := range c.Groups {
			inGroup = inGroup || g == p.AdminGID
		}
		want := c.UID == 0 || c.UID == p.DaemonUID || (p.HasAdminGroup && inGroup)
		if got := p.Admin(c); got != want {
			t.Fatalf("Admin(%+v) under %+v = %v, want %v", c, p, got, want)
		}
	})
}

func TestOf(t *testing.T) {
	for _, c := range []struct {
		name, input string
		want        string // "" : none
	}{
		{"server's entries", `{"reason":[["gnt:client:gnt-job","x",1],["jobq:luxi","uid=1000(alice)",2],["gnt:opcode:test_delay","job=1;index=0",2]]}`, "jobq:luxi uid=1000(alice)"},
		{"a client's forged entry comes before the server's", `{"reason":[["jobq:luxi","uid=0(root)",1],["gnt:opcode:x","job=0;index=0",1],["jobq:rapi","bob",2],["gnt:opcode:test_delay","job=1;index=0",2]]}`, "jobq:rapi bob"},
		{"Ganeti's job: no author", `{"reason":[["gnt:client:gnt-debug","delay",1],["gnt:opcode:test_delay","job=8;index=0",2]]}`, ""},
		{"a forged author without the queue's entry after it", `{"reason":[["jobq:luxi","uid=0(root)",1]]}`, ""},
		{"forged entry last: not the queue's shape", `{"reason":[["gnt:opcode:x","",1],["jobq:luxi","uid=0(root)",1]]}`, ""},
		{"no reason", `{"OP_ID":"OP_TEST_DELAY"}`, ""},
		{"bad reason", `{"reason":"x"}`, ""},
		{"short entry", `{"reason":[["jobq:luxi","x"],["gnt:opcode:x","",1]]}`, ""},
		{"not an object", `[1]`, ""},
	} {
		a, ok := Of(json.RawMessage(c.input))
		got := ""
		if ok {
			got = a.String()
		}
		if got != c.want {
			t.Errorf("%s: Of = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestActorNames(t *testing.T) {
	for _, c := range []struct {
		a    Actor
		want string
	}{
		{LUXIUser(1000, "alice"), "jobq:luxi uid=1000(alice)"},
		{LUXIUser(4242, ""), "jobq:luxi uid=4242"},
		{RAPIUser("bob"), "jobq:rapi bob"},
		{DashboardUser("carol"), "jobq:dashboard carol"},
		{Node("node1"), "jobq:node node1"},
		{Schedule("nightly", "node2"), "jobq:schedule:nightly node2"},
		{Actor{}, "unknown"},
	} {
		if got := c.a.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.a, got, c.want)
		}
	}
}

func TestAdminMethodsAndOpcodes(t *testing.T) {
	for _, m := range []string{"JobqJoinToken", "JobqMasterFailover", "JobqNodeRemove", "JobqNodeModify", "JobqRenewCrypto",
		"ReplaceFilter", "DeleteFilter", "JobqScheduleAdd", "JobqScheduleRemove", "JobqScheduleSet", "JobqSetHousekeeping",
		"SetWatcherPause", "SetDrainFlag", "JobqOpcodeAdd", "JobqOpcodeRemove"} {
		if !AdminMethod(m) {
			t.Errorf("%s is not administrative", m)
		}
	}
	for _, m := range []string{"SubmitJob", "SubmitManyJobs", "QueryJobs", "Query", "CancelJob", "ArchiveJob",
		"ChangeJobPriority", "WaitForJobChange", "JobqClusterInfo", "JobqNodeList", "JobqScheduleList", "JobqHousekeeping",
		"QueryFilters", "QueryConfigValues", "JobqOpcodeList", "JobqOpcodeInfo", "JobqJobOutput", "jobqjointoken", "JobqJoinToken ", ""} {
		if AdminMethod(m) {
			t.Errorf("%q is administrative", m)
		}
	}
	for _, c := range []struct {
		args string
		want bool
	}{
		{`[{"repair":true,"wait":0}]`, true},
		{`[{"repair":false}]`, false},
		{`[{}]`, false},
		{`[{"repair":"yes"}]`, true},
		{`[{"repair":false},{"repair":true}]`, true},
		{`{"repair":false}`, true},
		{`not json`, true},
	} {
		if got := AdminCall("JobqVerifyQueue", json.RawMessage(c.args)); got != c.want {
			t.Errorf("JobqVerifyQueue %s: admin %v, want %v", c.args, got, c.want)
		}
	}
	if !AdminCall("JobqJoinToken", json.RawMessage(`[3600]`)) || AdminCall("QueryJobs", nil) {
		t.Error("AdminCall differs from AdminMethod")
	}
	for _, op := range []string{"OP_RESTRICTED_COMMAND", "OP_CLUSTER_SET_PARAMS"} {
		if !AdminOpcode(op) {
			t.Errorf("%s is not administrative", op)
		}
	}
	for _, op := range []string{"OP_TEST_DELAY", "op_restricted_command", "OP_RESTRICTED_COMMANDS", ""} {
		if AdminOpcode(op) {
			t.Errorf("%q is administrative", op)
		}
	}
}
