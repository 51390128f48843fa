package ganeti_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// This file holds what turns a Ganeti transcript ("$ command", the
// command's combined stdout and stderr, "[rc=N]") into a form where only
// what legitimately differs between two runs has been replaced by
// placeholders, and a model of Ganeti's table layout (lib/cli.py
// FormatTable) used to build expected listings from reference rows.

var (
	// FormatTimestamp in gnt-job info: "2026-11-27 05:47:02.125936".
	reInfoDate = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\b`)
	// time.ctime() in gnt-job watch: "Fri Nov 27 05:47:06 2026" (the day
	// is space-padded).
	reCtime = regexp.MustCompile(`\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d{2}:\d{2}:\d{2} \d{4}\b`)
	// "(delta 0.195123s)" after job timestamps in gnt-job info.
	reDelta = regexp.MustCompile(`\(delta -?\d+\.\d{6}s\)`)
	// "  Total processing time: 0.291273 seconds".
	reTotal = regexp.MustCompile(`(?m)^(  Total processing time: )-?\d+\.\d{6}( seconds)$`)
	// Timestamps as Python prints them in lists: "[1795758165, 207640]".
	reTS = regexp.MustCompile(`\[\d{9,}, \d{1,6}\]`)
	// The nanosecond timestamps of reason trail entries, one per line in
	// gnt-job info ("            - 1795758422124506368").
	reReasonNS = regexp.MustCompile(`(?m)^( +- )\d{16,}$`)
	// jobq's additions that Ganeti has no counterpart of (issue 16: every
	// action has an author): the author entry of a reason trail in
	// gnt-job info ("          - - jobq:luxi\n            - uid=0(root)\n
	// - <NS>"), and the jobq-action log entries of cancels, priority
	// changes and archives.
	reAuthorEntry = regexp.MustCompile(`(?m)^ +- - jobq:[a-z:._-]+\n +- [^\n]*\n +- <NS>\n`)
	reActionLog   = regexp.MustCompile(`(?m)^ +- Time: <DATE>\n +Content: \[\d+, jobq-action, [^\n]*\]\n`)
	// A node UUID, should one be left outside an on_node_uuids block.
	reUUID = regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	// Candidate job ids, once every timestamp is gone.
	reNumber = regexp.MustCompile(`\b\d+\b`)
)

// normalise replaces in a transcript what legitimately differs between
// Ganeti's run and jobq's: dates, times, time deltas, timestamps, reason
// timestamps, node UUIDs, the on_node_uuids input field (Ganeti's LU writes
// the master's UUID there, jobq has no node UUIDs), jobq's author entries
// and jobq-action log entries (who submitted, who canceled), and, through ids, job
// ids (our id -> the reference's id for the same step; nil for the
// reference itself). Everything else is left alone, byte for byte.
//
// Column widths need no placeholder: the test seeds jobqd's queue serial
// so that its job ids have as many digits as the reference's, and listings
// whose rows differ from the reference are rebuilt with Ganeti's own layout
// rules (renderTable) rather than compared loosely.
func normalise(s string, ids map[string]string) string {
	s = reInfoDate.ReplaceAllString(s, "<DATE>")
	s = reCtime.ReplaceAllString(s, "<CTIME>")
	s = reDelta.ReplaceAllString(s, "(delta <SECONDS>s)")
	s = reTotal.ReplaceAllString(s, "${1}<SECONDS>${2}")
	s = reTS.ReplaceAllString(s, "[<TS>]")
	s = reReasonNS.ReplaceAllString(s, "${1}<NS>")
	s = reAuthorEntry.ReplaceAllString(s, "")
	s = reActionLog.ReplaceAllString(s, "")
	s = dropOnNodeUUIDs(s)
	s = reUUID.ReplaceAllString(s, "<UUID>")
	if len(ids) > 0 {
		// One pass, so that mapping 6043->6046 and 6046->6049 cannot chain.
		s = reNumber.ReplaceAllStringFunc(s, func(n string) string {
			if r, ok := ids[n]; ok {
				return r
			}
			return n
		})
	}
	return s
}

// dropOnNodeUUIDs removes the "on_node_uuids:" line of gnt-job info's
// input fields together with the list items nested under it. Ganeti shows
// the master node's UUID there (written by LUTestDelay.ExpandNames), or no
// line at all for a job whose LU has not started; jobq shows "None".
func dropOnNodeUUIDs(s string) string {
	lines := strings.SplitAfter(s, "\n")
	out := lines[:0]
	skipDeeperThan := -1
	for _, l := range lines {
		indent := len(l) - len(strings.TrimLeft(l, " "))
		if skipDeeperThan >= 0 {
			if indent > skipDeeperThan && strings.HasPrefix(strings.TrimLeft(l, " "), "- ") {
				continue
			}
			skipDeeperThan = -1
		}
		if strings.HasPrefix(strings.TrimLeft(l, " "), "on_node_uuids:") {
			skipDeeperThan = indent
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

// transcript is the reference files' format.
func transcript(args []string, output string, rc int) string {
	return fmt.Sprintf("$ %s\n%s[rc=%d]\n", strings.Join(args, " "), output, rc)
}

// rightAligned are the job fields Ganeti shows right-aligned (QFT_NUMBER),
// by title.
var rightAligned = map[string]bool{"ID": true, "Priority": true}

// renderTable lays out a table as Ganeti's FormatTable does without a
// separator: each column as wide as its widest cell (header included),
// numbers right-aligned, text left-aligned, columns joined by one space,
// and a left-aligned last column not padded.
func renderTable(header []string, rows [][]string) string {
	width := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	if n := len(header); n > 0 && !rightAligned[header[n-1]] {
		width[n-1] = 0
	}
	var b strings.Builder
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			if i > 0 {
				b.WriteByte(' ')
			}
			if rightAligned[header[i]] {
				fmt.Fprintf(&b, "%*s", width[i], c)
			} else {
				fmt.Fprintf(&b, "%-*s", width[i], c)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// refTable is a listing captured from Ganeti: its command line, header and
// rows (by job id). No cell of a job listing contains a space, so a line's
// fields are its cells.
type refTable struct {
	command string // "$ gnt-job list ..."
	header  []string
	rows    map[string][]string
	order   []string
	rc      string // "[rc=0]"
	// body is the table as printed, without the "... [N lines omitted]"
	// line the capture has in place of most of the 1000 bench jobs.
	body string
}

func parseRefTable(text string) (*refTable, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "$ ") || !strings.HasPrefix(lines[len(lines)-1], "[rc=") {
		return nil, fmt.Errorf("not a transcript of a listing: %q", text)
	}
	t := &refTable{command: lines[0], rc: lines[len(lines)-1], rows: map[string][]string{},
		header: strings.Fields(lines[1])}
	var body strings.Builder
	for i, l := range lines[1 : len(lines)-1] {
		if strings.HasPrefix(l, "... [") {
			continue
		}
		body.WriteString(l + "\n")
		if i == 0 {
			continue
		}
		f := strings.Fields(l)
		if len(f) != len(t.header) {
			return nil, fmt.Errorf("row %q has %d cells, the header %d", l, len(f), len(t.header))
		}
		t.rows[f[0]] = f
		t.order = append(t.order, f[0])
	}
	t.body = body.String()
	return t, nil
}

// pick returns copies of the rows with these ids, in this order.
func (t *refTable) pick(ids ...string) ([][]string, error) {
	out := make([][]string, 0, len(ids))
	for _, id := range ids {
		r, ok := t.rows[id]
		if !ok {
			return nil, fmt.Errorf("the reference %q has no row for job %s", t.command, id)
		}
		out = append(out, append([]string(nil), r...))
	}
	return out, nil
}

func readRef(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("reading the Ganeti reference: %v", err)
	}
	return string(b)
}

// refDir is the repository's copy of the Ganeti 3.0 captures.
const refDir = "../../testdata/ganeti-reference"

func skipWithoutRefs(t *testing.T) {
	if _, err := os.Stat(refDir); err != nil {
		t.Skipf("no Ganeti reference captures at %s: %v", refDir, err)
	}
}

// TestRenderTableReproducesGaneti checks the table model against every
// listing Ganeti printed: the model is what builds expected listings.
func TestRenderTableReproducesGaneti(t *testing.T) {
	skipWithoutRefs(t)
	for _, name := range []string{
		"cli-06-job-list.txt", "cli-16-job-list-error.txt", "cli-20-job-list-pending.txt",
		"cli-26-job-list-after-cancel.txt", "cli-34-job-list-archived.txt",
		"cli-38-job-list-after-autoarchive.txt",
	} {
		tab, err := parseRefTable(readRef(t, refDir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rows, err := tab.pick(tab.order...)
		if err != nil {
			t.Fatal(err)
		}
		if diff := lineDiff(tab.body, renderTable(tab.header, rows)); diff != "" {
			t.Errorf("%s: renderTable does not lay out the table as Ganeti did (-ganeti +model):\n%s", name, diff)
		}
	}
}

// TestNormalise checks that the normaliser makes two captures of the same
// job equal (before and after archiving), keeps what must be compared,
// and replaces what must not.
func TestNormalise(t *testing.T) {
	skipWithoutRefs(t)
	info := normalise(readRef(t, refDir, "cli-09-job-info.txt"), nil)
	archived := normalise(readRef(t, refDir, "cli-33-job-info-archived.txt"), nil)
	if diff := lineDiff(info, archived); diff != "" {
		t.Errorf("cli-09 and cli-33 show the same job, yet differ after normalisation:\n%s", diff)
	}
	for _, gone := range []string{"2026-", "1795758", "on_node_uuids", "6b124f5f", "0.291273", "0.195123"} {
		if strings.Contains(info, gone) {
			t.Errorf("normalised cli-09 still contains %q:\n%s", gone, info)
		}
	}
	for _, kept := range []string{"- Job ID: 6040\n", "  Processing start: <DATE> (delta <SECONDS>s)\n",
		"  Total processing time: <SECONDS> seconds\n", "            - job=6040;index=0\n            - <NS>\n",
		"        on_nodes: \n        priority: 0\n", "      Execution start:  <DATE>\n"} {
		if !strings.Contains(info, kept) {
			t.Errorf("normalised cli-09 lacks %q:\n%s", kept, info)
		}
	}
	watch := normalise(readRef(t, refDir, "cli-12-job-watch-running.txt"), map[string]string{"6046": "6099"})
	want := "$ gnt-job watch 6099\nOutput from job 6099 follows\n----------------------------\n" +
		"<CTIME>  - INFO: Test delay iteration 0/2\n<CTIME>  - INFO: Test delay iteration 1/2\n" +
		"<CTIME>  - INFO: Test delay iteration 2/2\n[rc=0]\n"
	if diff := lineDiff(want, watch); diff != "" {
		t.Errorf("normalised cli-12 (-want +got):\n%s", diff)
	}
	// Ids map in one pass, and numbers that are not ids stay.
	got := normalise("6043 6046 0.3 [1795758165, 6043] 60430\n", map[string]string{"6043": "6046", "6046": "6049"})
	if want := "6046 6049 0.3 [<TS>] 60430\n"; got != want {
		t.Errorf("id mapping: got %q, want %q", got, want)
	}
	// The on_node_uuids block ends at the next field, nested or not.
	got = dropOnNodeUUIDs("        on_master: True\n        on_node_uuids: \n          - a\n          - b\n        on_nodes: \n          - n1\n        on_node_uuids: None\n      Result: None\n")
	if want := "        on_master: True\n        on_nodes: \n          - n1\n      Result: None\n"; got != want {
		t.Errorf("dropOnNodeUUIDs: got %q, want %q", got, want)
	}
}

// TestNormaliseAuthors: jobq's author entry and jobq-action log entries
// are dropped, and nothing else of the reason trail or the log.
func TestNormaliseAuthors(t *testing.T) {
	in := "        reason: \n          - - gnt:client:gnt-debug\n            - delay\n            - 1795758429777330176\n" +
		"          - - jobq:luxi\n            - uid=0(root)\n            - 1796687649778649000\n" +
		"          - - gnt:opcode:test_delay\n            - job=6049;index=0\n            - 1795758429782269000\n" +
		"      Execution log: \n        - Time: 2026-12-07 23:54:10.140597\n          Content: [1, jobq-action, Canceled by jobq:luxi uid=0(root)]\n" +
		"        - Time: 2026-12-07 23:54:10.140597\n          Content: [2, message, kept]\n"
	want := "        reason: \n          - - gnt:client:gnt-debug\n            - delay\n            - <NS>\n" +
		"          - - gnt:opcode:test_delay\n            - job=6049;index=0\n            - <NS>\n" +
		"      Execution log: \n        - Time: <DATE>\n          Content: [2, message, kept]\n"
	if got := normalise(in, nil); got != want {
		t.Errorf("normalised:\n%s\nwant:\n%s", got, want)
	}
}
