package ganeti_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

// TestGanetiClusterInfoTags runs Ganeti's own "gnt-cluster info",
// "gnt-cluster add-tags|list-tags|search-tags|remove-tags" and
// "gnt-node add-tags|list-tags" against jobqd. gnt-cluster info's head and
// queue parameters are compared with Ganeti 3.0.2's (filters/cli-filters.txt),
// the cluster's name, uuid, times and master replaced on both sides.
func TestGanetiClusterInfoTags(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test bind-mounts jobqd's socket directory over /var/run/ganeti/socket in a private mount namespace")
	}
	if _, err := os.Stat("/usr/sbin/gnt-cluster"); err != nil {
		t.Skipf("Ganeti's clients are not installed (apt-get install -y --no-install-recommends ganeti-3.0): %v", err)
	}
	skipWithoutRefs(t)
	for _, d := range []string{"/var/run/ganeti/socket", "/var/lib/ganeti"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sockDir := startJobqdWith(t, buildJobqd(t), serialSeed, 20)
	s := &scenario{t: t, sockDir: sockDir, ids: map[string]string{}}

	// The reference's head and cluster parameters.
	var ref string
	for _, tr := range filterTranscripts(t) {
		if strings.HasPrefix(tr, "$ gnt-cluster info\n") {
			ref = tr
		}
	}
	if ref == "" {
		t.Fatal("no gnt-cluster info in the filter captures")
	}
	pick := func(text string) string {
		var out []string
		for _, l := range strings.Split(text, "\n") {
			for _, p := range []string{"$ ", "Cluster name:", "Cluster UUID:", "Creation time:", "Modification time:", "Master node:",
				"Architecture (this node):", "Tags:", "Cluster parameters:", "  candidate pool size:",
				"  maximal number of jobs running simultaneously:", "  maximal number of jobs simultaneously tracked by the scheduler:", "[rc="} {
				if strings.HasPrefix(l, p) {
					out = append(out, l)
				}
			}
		}
		return strings.Join(out, "\n")
	}
	facts := regexp.MustCompile(`(?m)^(Cluster name|Master node): \S+$`)
	uuid := regexp.MustCompile(`(?m)^Cluster UUID: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	times := regexp.MustCompile(`(?m)^(Creation|Modification) time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)
	// jobq's candidate pool is its voters (default 5), Ganeti's the copies
	// of its configuration (default 10): the value is checked below.
	pool := regexp.MustCompile(`(?m)^  candidate pool size: \d+$`)
	norm := func(text string) string {
		text = pool.ReplaceAllString(text, "  candidate pool size: <N>")
		text = facts.ReplaceAllString(text, "$1: <NAME>")
		text = uuid.ReplaceAllString(text, "Cluster UUID: <UUID>")
		return times.ReplaceAllString(text, "$1 time: <TIME>")
	}
	want := norm(pick(ref))
	got := s.gnt("gnt-cluster", "info")
	if !strings.Contains(got, "Cluster name: "+nodeName+"\n") || !strings.Contains(got, "Master node: "+nodeName+"\n") {
		t.Errorf("gnt-cluster info does not name the cluster and master %s:\n%s", nodeName, got)
	}
	var jq struct {
		CandidatePoolSize int `json:"candidate_pool_size"`
	}
	jobqCall(t, filepath.Join(sockDir, "ganeti-query"), &jq, "JobqClusterInfo")
	if line := fmt.Sprintf("\n  candidate pool size: %d\n", jq.CandidatePoolSize); !strings.Contains(got, line) {
		t.Errorf("gnt-cluster info lacks %q (jobq's pool):\n%s", line, got)
	}
	if diff := lineDiff(want, norm(pick(got))); diff != "" {
		t.Errorf("gnt-cluster info against jobqd (-Ganeti reference +jobqd, the lines jobq has):\n%s\nwhole output:\n%s", diff, got)
	}

	// Tags, as qa_tags.py's _TestTags does them, with the outputs checked.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gnt-cluster", "add-tags", "b-tag", "a:tag"}, "[rc=0]\n"},
		{[]string{"gnt-cluster", "list-tags"}, "a:tag\nb-tag\n[rc=0]\n"},
		{[]string{"gnt-node", "add-tags", nodeName, "n-tag"}, "[rc=0]\n"},
		{[]string{"gnt-node", "list-tags", nodeName}, "n-tag\n[rc=0]\n"},
		{[]string{"gnt-cluster", "search-tags", "tag$"}, "/cluster a:tag\n/cluster b-tag\n/nodes/" + nodeName + " n-tag\n[rc=0]\n"},
		{[]string{"gnt-cluster", "add-tags", "bad tag"}, "Failure: invalid tag(s) given:\nTag contains invalid characters\n[rc=1]\n"},
		{[]string{"gnt-cluster", "remove-tags", "nosuch"}, "Failure: prerequisites not met for this operation:\nerror type: unknown_entity, error details:\nTag(s) 'nosuch' not found\n[rc=1]\n"},
		{[]string{"gnt-cluster", "remove-tags", "a:tag"}, "[rc=0]\n"},
		{[]string{"gnt-cluster", "list-tags"}, "b-tag\n[rc=0]\n"},
	} {
		got := s.gnt(c.args...)
		_, out, _ := strings.Cut(got, "\n")
		if out != c.want {
			t.Errorf("%s printed\n%s\nwant\n%s", strings.Join(c.args, " "), out, c.want)
		}
	}
	if got := s.gnt("gnt-cluster", "info"); !strings.Contains(got, "\nTags: b-tag\n") {
		t.Errorf("gnt-cluster info after add-tags:\n%s", got)
	}
}

// jobqCall calls a LUXI method on sock and decodes the answer into out.
func jobqCall(t *testing.T, sock string, out any, method string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := luxi.DialContext(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.Call(ctx, method, args...)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s answered %s: %v", method, raw, err)
	}
}
