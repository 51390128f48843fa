package daemon

import (
	"encoding/json"
	"os"
	"os/user"
	"strconv"
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
