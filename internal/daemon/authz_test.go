package daemon

import (
	"encoding/json"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/author"
)

// selfAuthorEntry is the author entry (timestamp 0) jobqd records for a
// LUXI client running as this test's user.
func selfAuthorEntry(t *testing.T) string {
	t.Helper()
	name := ""
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil {
		name = u.Username
	}
	b, err := json.Marshal(author.LUXIUser(uint32(os.Getuid()), name).Entry(0))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNewAuthz: --admin-group takes a group name or a gid; a name that
// does not exist fails the start, saying what to do.
func TestNewAuthz(t *testing.T) {
	a, err := newAuthz("")
	if err != nil || a.policy.HasAdminGroup || a.policy.DaemonUID != uint32(os.Geteuid()) {
		t.Fatalf("no group: %+v %v", a, err)
	}
	a, err = newAuthz("4343")
	if err != nil || !a.policy.HasAdminGroup || a.policy.AdminGID != 4343 {
		t.Fatalf("a gid: %+v %v", a, err)
	}
	if g, err := user.LookupGroupId("0"); err == nil {
		a, err := newAuthz(g.Name)
		if err != nil || !a.policy.HasAdminGroup || a.policy.AdminGID != 0 {
			t.Fatalf("group %s: %+v %v", g.Name, a, err)
		}
	}
	_, err = newAuthz("jobq-no-such-group-x")
	if err == nil || !strings.Contains(err.Error(), `admin group "jobq-no-such-group-x"`) || !strings.Contains(err.Error(), "give --admin-group an existing one") {
		t.Fatalf("a missing group: %v", err)
	}
}
