package ganeti_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/luxi"
)

// TestGanetiDeclaredOpcode: Ganeti's own gnt-job info and watch show a
// job of a declared opcode (issue 15): its parameters, the version it
// was submitted with, and the lines its program wrote.
func TestGanetiDeclaredOpcode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test bind-mounts jobqd's socket directory over /var/run/ganeti/socket in a private mount namespace")
	}
	if _, err := os.Stat("/usr/sbin/gnt-job"); err != nil {
		t.Skipf("Ganeti's clients are not installed (apt-get install -y --no-install-recommends ganeti-3.0): %v", err)
	}
	for _, d := range []string{"/var/run/ganeti/socket", "/var/lib/ganeti"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sockDir := startJobqdWith(t, buildJobqd(t), serialSeed, 1)
	sock := filepath.Join(sockDir, "ganeti-query")
	echo, err := filepath.EvalSymlinks("/bin/echo")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := luxi.DialContext(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	def := fmt.Sprintf("id = \"OP_GREET\"\nsummary = \"Greet\"\n[[param]]\nname = \"who\"\ntype = \"string\"\nrequired = true\n[program]\npath = %q\nargs = [\"hello\", \"{who}\"]\n", echo)
	if _, err := c.Call(ctx, "JobqOpcodeAdd", def, "add"); err != nil {
		t.Fatal(err)
	}
	raw, err := c.Call(ctx, "SubmitJob", []map[string]any{{"OP_ID": "OP_GREET", "who": "ganeti"}})
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil {
		t.Fatalf("SubmitJob answered %s", raw)
	}
	waitForStatus(t, sock, id, "success")
	s := &scenario{t: t, sockDir: sockDir, ids: map[string]string{}}
	watch := s.gnt("gnt-job", "watch", fmt.Sprint(id))
	if !strings.Contains(watch, "hello ganeti") || !strings.HasSuffix(watch, "[rc=0]\n") {
		t.Errorf("gnt-job watch printed\n%s", watch)
	}
	info := s.gnt("gnt-job", "info", fmt.Sprint(id))
	for _, want := range []string{"OP_GREET", "who: ganeti", "opcode_version: ", "hello ganeti", "Status: success"} {
		if !strings.Contains(info, want) {
			t.Errorf("gnt-job info lacks %q:\n%s", want, info)
		}
	}
}
