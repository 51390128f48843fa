package ganeti_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

// reInlineNS: the nanosecond timestamps of reason trails printed inline,
// as gnt-filter prints them: "['luxid', ”, 1796663153489122000]".
var reInlineNS = regexp.MustCompile(`\b\d{16,}\b`)

// filterTranscripts splits the filter session captures (cli-filters.txt,
// then cli-filters-2.txt) into their commands' transcripts, in order.
func filterTranscripts(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range []string{"cli-filters.txt", "cli-filters-2.txt"} {
		text := readRef(t, filepath.Join(refDir, "filters"), name)
		var cur strings.Builder
		for _, line := range strings.SplitAfter(text, "\n") {
			switch {
			case strings.HasPrefix(line, "$ "):
				cur.Reset()
				cur.WriteString(line)
			case strings.HasPrefix(line, "[rc="):
				cur.WriteString(line)
				out = append(out, cur.String())
				cur.Reset()
			case cur.Len() > 0:
				cur.WriteString(line)
			}
		}
	}
	return out
}

// TestGanetiFilter runs Ganeti's own gnt-filter (and the gnt-debug and
// gnt-job calls of the captured session) against jobqd and compares what
// it prints with Ganeti 3.0.2's session (filters/cli-filters*.txt): list,
// list-fields, add, info, delete, replace, gnt-cluster watcher; a job submitted under a REJECT
// filter is canceled, one under a PAUSE filter stays queued until the
// filter is deleted, and of two jobs with --reason=rate-limit:1:mylabel
// the second waits for the first. jobqd's serial is seeded with 274 so
// that watermarks and job ids are the session's.
func TestGanetiFilter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test bind-mounts jobqd's socket directory over /var/run/ganeti/socket in a private mount namespace")
	}
	if _, err := os.Stat("/usr/sbin/gnt-filter"); err != nil {
		t.Skipf("Ganeti's clients are not installed (apt-get install -y --no-install-recommends ganeti-3.0): %v", err)
	}
	skipWithoutRefs(t)
	for _, d := range []string{"/var/run/ganeti/socket", "/var/lib/ganeti"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ref := filterTranscripts(t)
	refOf := func(prefix string, nth int) string {
		t.Helper()
		for _, tr := range ref {
			if first, _, _ := strings.Cut(tr, "\n"); first == "$ "+prefix || strings.HasPrefix(first, "$ "+prefix+" ") {
				if nth == 0 {
					return reInlineNS.ReplaceAllString(normalise(tr, nil), "<NS>")
				}
				nth--
			}
		}
		t.Fatalf("no transcript of %q in the filter captures", prefix)
		return ""
	}
	sockDir := startJobqdWith(t, buildJobqd(t), 274, 5)
	sock := filepath.Join(sockDir, "ganeti-query")
	s := &scenario{t: t, sockDir: sockDir, ids: map[string]string{}}
	gnt := func(args ...string) string {
		t.Helper()
		return reInlineNS.ReplaceAllString(s.gnt(args...), "<NS>")
	}
	// check compares the outputs and exit codes (the command lines differ
	// in their shell quoting).
	check := func(step, want, got string) {
		t.Helper()
		_, want, _ = strings.Cut(want, "\n")
		_, got, _ = strings.Cut(got, "\n")
		s.check(step, want, got)
	}
	preds := `--predicates=[["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]]`

	check("gnt-filter list (none)", refOf("gnt-filter list", 0), gnt("gnt-filter", "list"))
	check("gnt-filter list-fields", refOf("gnt-filter list-fields", 0), gnt("gnt-filter", "list-fields"))
	add := gnt("gnt-filter", "add", "--priority=5", "--action=REJECT", preds, "--reason=maintenance")
	if !strings.HasPrefix(add, "$ gnt-filter add") || !strings.HasSuffix(add, "<UUID>\n[rc=0]\n") {
		t.Fatalf("gnt-filter add printed\n%s", add)
	}
	uuids := filterUUIDs(t, sock)
	if len(uuids) != 1 {
		t.Fatalf("filters after gnt-filter add: %v", uuids)
	}
	uuid := uuids[0]
	check("gnt-filter list (one REJECT filter)", refOf("gnt-filter list", 1), gnt("gnt-filter", "list"))
	check("gnt-filter info", refOf("gnt-filter info", 0), gnt("gnt-filter", "info", uuid))
	check("gnt-debug delay under REJECT", refOf("gnt-debug delay --submit 0.01", 0), gnt("gnt-debug", "delay", "--submit", "0.01"))
	waitForStatus(t, sock, 275, "canceled")
	check("gnt-filter delete", refOf("gnt-filter delete", 0), gnt("gnt-filter", "delete", uuid))
	check("gnt-filter list --no-headers", refOf("gnt-filter list --no-headers", 0), gnt("gnt-filter", "list", "--no-headers"))

	// gnt-cluster watcher: the pause is agreed and reported back.
	check("gnt-cluster watcher pause", refOf("gnt-cluster watcher pause 60", 0), gnt("gnt-cluster", "watcher", "pause", "60"))
	check("gnt-cluster watcher info (paused)", refOf("gnt-cluster watcher info", 0), gnt("gnt-cluster", "watcher", "info"))
	check("gnt-cluster watcher continue", refOf("gnt-cluster watcher continue", 0), gnt("gnt-cluster", "watcher", "continue"))
	if got := gnt("gnt-cluster", "watcher", "info"); !strings.HasSuffix(got, "\nThe watcher is not paused.\n[rc=0]\n") {
		t.Errorf("gnt-cluster watcher info after continue:\n%s", got)
	}

	// cli-filters-2: a REJECT filter, then replaced by a PAUSE filter.
	gnt("gnt-filter", "add", "--priority=5", "--action=REJECT", preds, "--reason=maintenance")
	uuids = filterUUIDs(t, sock)
	uuid = uuids[0]
	gnt("gnt-debug", "delay", "--submit", "0.01")
	waitForStatus(t, sock, 276, "canceled")
	check("gnt-job info of the rejected job", refOf("gnt-job info 276", 0), gnt("gnt-job", "info", "276"))
	check("gnt-filter replace", refOf("gnt-filter replace --action=PAUSE", 0),
		gnt("gnt-filter", "replace", "--action=PAUSE", "--priority=5", preds, uuid))
	check("gnt-filter info after replace", refOf("gnt-filter info", 2), gnt("gnt-filter", "info", uuid))
	gnt("gnt-debug", "delay", "--submit", "0.01")
	waitForStatus(t, sock, 277, "queued")
	check("paused job", refOf("gnt-job list --no-headers -o id,status 277", 0), gnt("gnt-job", "list", "--no-headers", "-o", "id,status", "277"))
	check("gnt-filter replace with --action-args", refOf("gnt-filter replace --action=RATE_LIMIT", 0),
		gnt("gnt-filter", "replace", "--action=RATE_LIMIT", "--action-args", "1", "--priority=5", preds, "2828f17b-e475-435d-bd95-3e8a7d97210d"))
	gnt("gnt-filter", "delete", uuid)
	waitForStatus(t, sock, 277, "success")
	check("job once the PAUSE filter is gone", refOf("gnt-job list --no-headers -o id,status 277", 1), gnt("gnt-job", "list", "--no-headers", "-o", "id,status", "277"))

	// The ad hoc rate limit: two jobs with rate-limit:1:mylabel.
	for range 2 {
		gnt("gnt-debug", "delay", "--submit", "--reason=rate-limit:1:mylabel", "2")
	}
	waitForStatus(t, sock, 278, "running")
	check("second job of a rate-limit:1 bucket", refOf("gnt-job list --no-headers -o id,status 278 279", 0),
		gnt("gnt-job", "list", "--no-headers", "-o", "id,status", "278", "279"))
	waitForStatus(t, sock, 279, "running")
	check("once the first has ended", refOf("gnt-job list --no-headers -o id,status 278 279", 1),
		gnt("gnt-job", "list", "--no-headers", "-o", "id,status", "278", "279"))
}

// filterUUIDs lists the filters' uuids (LUXI QueryFilters).
func filterUUIDs(t *testing.T, sock string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := luxi.DialContext(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.Call(ctx, "QueryFilters", nil, []string{"uuid"})
	if err != nil {
		t.Fatalf("QueryFilters: %v", err)
	}
	var rows [][]string
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatalf("QueryFilters answered %s", raw)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r[0])
	}
	return out
}
