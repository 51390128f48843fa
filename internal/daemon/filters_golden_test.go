package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/ganetiref"
	"github.com/jobq-dev/jobq/internal/settings"
)

var socatChunk = regexp.MustCompile(`([<>]) \d{4}/\d\d/\d\d \S+\s+length=(\d+) from=\d+ to=\d+\n`)

// filterConversation reads a socat transcript of the filters folder, whose
// calls each came on a connection of their own (offsets restart at 0):
// requests and replies alternate, each ends in the terminator (shown as
// '.').
func filterConversation(t *testing.T, name string) (reqs, reps [][]byte) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(ganetiref.Dir(t), "filters", name))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range socatChunk.FindAllSubmatchIndex(text, -1) {
		length, _ := strconv.Atoi(string(text[m[4]:m[5]]))
		end := m[1] + length
		if end > len(text) || text[end-1] != '.' {
			t.Fatalf("%s: chunk %d does not end in the terminator", name, i)
		}
		data := bytes.Clone(text[m[1]:end])
		data[len(data)-1] = 0x03
		if fromClient := string(text[m[2]:m[3]]) == ">"; fromClient != (i%2 == 0) {
			t.Fatalf("%s: chunk %d: requests and replies do not alternate", name, i)
		} else if fromClient {
			reqs = append(reqs, data)
		} else {
			reps = append(reps, data)
		}
	}
	if len(reqs) == 0 || len(reqs) != len(reps) {
		t.Fatalf("%s: %d requests, %d replies", name, len(reqs), len(reps))
	}
	return reqs, reps
}

func resultString(t *testing.T, v any) string {
	t.Helper()
	s, ok := v.(map[string]any)["result"].(string)
	if !ok {
		t.Fatalf("result of %s is not a string", show(v))
	}
	return s
}

// TestGoldenFilters plays Ganeti 3.0.2's gnt-filter session
// (filters/luxi-filters-socat-v.txt): Query and QueryFields on the
// "filter" resource, ReplaceFilter, QueryFilters, a job submitted under a
// REJECT filter, DeleteFilter. The uuid is ours, the watermark our
// highest job id, luxid's reason trail entry has our timestamp.
func TestGoldenFilters(t *testing.T) {
	reqs, reps := filterConversation(t, "luxi-filters-socat-v.txt")
	cp := func(i int) ganetiref.Capture {
		return ganetiref.Capture{Name: fmt.Sprintf("luxi-filters-socat-v call %d", i+1), ReqRaw: reqs[i], RepRaw: reps[i]}
	}
	n := startNode(t, 2, nil)
	first := n.gateJob("first")
	n.gates.open("first")
	n.waitStatus(first, "success")
	c := n.dialRaw()

	checkReply(t, cp(0), c.roundTrip(reqs[0]), expect{})
	checkReply(t, cp(1), c.roundTrip(reqs[1]), expect{})
	uuid := resultString(t, checkReply(t, cp(2), c.roundTrip(reqs[2]), expect{free: []string{"result"}}))
	if len(uuid) != 36 {
		t.Fatalf("ReplaceFilter answered %q, not a uuid", uuid)
	}
	row := "result/data/0/"
	checkReply(t, cp(3), c.roundTrip(reqs[3]), expect{
		ours: map[string]string{row + "0/1": `"` + uuid + `"`, row + "1/1": itoa(first)},
		free: []string{row + "5/1/1/2"}})
	ids := []string{"da500483-e40c-48fa-990d-9ce0250e908d", uuid}
	classic := expect{ids: ids, ours: map[string]string{"result/0/0": `"` + uuid + `"`, "result/0/1": itoa(first)},
		free: []string{"result/0/5/1/2"}}
	checkReply(t, cp(4), c.roundTrip(rewrite(t, reqs[4], ids)), classic)
	// A job submitted under the REJECT filter gets its id, then is
	// canceled.
	got := checkReply(t, cp(5), c.roundTrip(reqs[5]), expect{ours: map[string]string{"result": itoa(first + 1)}})
	n.waitStatus(resultInt(t, got, "result"), "canceled")
	checkReply(t, cp(6), c.roundTrip(rewrite(t, reqs[6], ids)), classic)
	checkReply(t, cp(7), c.roundTrip(rewrite(t, reqs[7], ids)), expect{})
	checkReply(t, cp(8), c.roundTrip(reqs[8]), expect{})

	// gnt-cluster watcher pause 60, info, continue (the capture's time has
	// passed: ours is a minute from now).
	until := float64(time.Now().Add(time.Minute).UnixMicro()) / 1e6
	untilText := strconv.FormatFloat(until, 'f', -1, 64)
	checkReply(t, cp(9), c.roundTrip(rewrite(t, reqs[9], []string{"1796663215.4243946", untilText})), expect{ours: map[string]string{"result": untilText}})
	checkReply(t, cp(10), c.roundTrip(reqs[10]), expect{ours: map[string]string{"result/0": strconv.FormatInt(int64(until), 10)}})
	checkReply(t, cp(11), c.roundTrip(reqs[11]), expect{})
	if got := strings.TrimSpace(strings.TrimSuffix(string(c.roundTrip(reqs[10])), "\x03")); got != `{"success":true,"result":[null]}` {
		t.Errorf("watcher_pause after SetWatcherPause(null): %s", got)
	}

	// Errors say what to do.
	for _, tc := range []struct{ method, args, want string }{
		{"DeleteFilter", `["` + uuid + `"]`, `{"success":false,"result":["OpPrereqError",["Filter ` + uuid + ` does not exist; 'gnt-filter list' or 'jobq filter list' shows the filters","unknown_entity"]]}`},
		{"ReplaceFilter", `[null, -1, [], "REJECT", []]`, `{"success":false,"result":["OpPrereqError",["Invalid filter: priority must be a non-negative integer (0 is the highest), got -1","wrong_input"]]}`},
		{"ReplaceFilter", `[null, 0, [["status", null]], "REJECT", []]`, `{"success":false,"result":["OpPrereqError",["Invalid filter: predicates[0]: unknown predicate \"status\": use jobid, opcode or reason","wrong_input"]]}`},
		{"ReplaceFilter", `[null, 0, [], "STOP", []]`, `{"success":false,"result":["OpPrereqError",["Invalid filter: action must be one of ACCEPT, PAUSE, REJECT, CONTINUE or [\"RATE_LIMIT\", n], got \"STOP\"","wrong_input"]]}`},
		{"Query", `["filter", ["uuid"], ["==", "name", "x"]]`, `{"success":false,"result":["ParameterError",["Can't find field named 'name'"]]}`},
	} {
		got := strings.TrimSuffix(string(c.pyCall(tc.method, tc.args)), "\x03")
		got = strings.TrimSpace(got)
		if got != tc.want {
			t.Errorf("%s %s:\n got  %s\n want %s", tc.method, tc.args, got, tc.want)
		}
	}
}

// TestGoldenFiltersSchedule plays the second session
// (filters/luxi-filters-2-socat-v.txt): a REJECT filter cancels a new job,
// replaced by a PAUSE filter it holds one queued until deleted, and the ad
// hoc limit rate-limit:1:mylabel holds the second of two jobs.
func TestGoldenFiltersSchedule(t *testing.T) {
	reqs, reps := filterConversation(t, "luxi-filters-2-socat-v.txt")
	cp := func(i int) ganetiref.Capture {
		return ganetiref.Capture{Name: fmt.Sprintf("luxi-filters-2-socat-v call %d", i+1), ReqRaw: reqs[i], RepRaw: reps[i]}
	}
	n := startNode(t, 5, nil)
	c := n.dialRaw()
	uuid := resultString(t, checkReply(t, cp(0), c.roundTrip(reqs[0]), expect{free: []string{"result"}}))
	got := checkReply(t, cp(1), c.roundTrip(reqs[1]), expect{ours: map[string]string{"result": "1"}})
	id := resultInt(t, got, "result")
	n.waitStatus(id, "canceled")
	checkReply(t, cp(2), c.roundTrip(rewrite(t, reqs[2], []string{"276", itoa(id)})), expect{
		// jobq records the author (this test's uid, from the socket)
		// between gnt-debug's entry and luxid's, which names our job.
		ours: map[string]string{"result/data/0/0/1": itoa(id), "result/data/0/2/1/0/reason": `[["gnt:client:gnt-debug", "delay", 0], ` +
			selfAuthorEntry(t) + `, ["gnt:opcode:test_delay", "job=` + itoa(id) + `;index=0", 0]]`},
		free: []string{"result/data/0/2/1/0/reason/*/2", "result/data/0/6/1/0", "result/data/0/8/1/0", "result/data/0/9/1", "result/data/0/11/1"}})

	ids := []string{"2828f17b-e475-435d-bd95-3e8a7d97210d", uuid}
	checkReply(t, cp(3), c.roundTrip(rewrite(t, reqs[3], ids)), expect{ours: map[string]string{"result": `"` + uuid + `"`}})
	checkReply(t, cp(4), c.roundTrip(rewrite(t, reqs[4], ids)), expect{ids: ids,
		ours: map[string]string{"result/0/0": `"` + uuid + `"`, "result/0/1": itoa(id)}, free: []string{"result/0/5/0/2"}})
	got = checkReply(t, cp(5), c.roundTrip(reqs[5]), expect{ours: map[string]string{"result": itoa(id + 1)}})
	paused := resultInt(t, got, "result")
	n.waitStatus(paused, "queued")
	checkReply(t, cp(6), c.roundTrip(rewrite(t, reqs[6], []string{"277", itoa(paused)})), expect{ours: map[string]string{"result/data/0/0/1": itoa(paused)}})
	checkReply(t, cp(7), c.roundTrip(rewrite(t, reqs[7], ids)), expect{})
	n.waitStatus(paused, "success")
	checkReply(t, cp(8), c.roundTrip(rewrite(t, reqs[8], []string{"277", itoa(paused)})), expect{ours: map[string]string{"result/data/0/0/1": itoa(paused)}})

	// Two jobs with --reason=rate-limit:1:mylabel (2 s instead of 3).
	dur := []string{`"duration": 3.0`, `"duration": 2.0`}
	a := resultInt(t, checkReply(t, cp(9), c.roundTrip(rewrite(t, reqs[9], dur)), expect{ours: map[string]string{"result": itoa(paused + 1)}}), "result")
	b := resultInt(t, checkReply(t, cp(10), c.roundTrip(rewrite(t, reqs[10], dur)), expect{ours: map[string]string{"result": itoa(paused + 2)}}), "result")
	n.waitStatus(a, "running")
	pair := []string{"278", itoa(a), "279", itoa(b)}
	rows := map[string]string{"result/data/0/0/1": itoa(a), "result/data/1/0/1": itoa(b)}
	checkReply(t, cp(11), c.roundTrip(rewrite(t, reqs[11], pair)), expect{ours: rows})
	n.waitStatus(b, "running")
	checkReply(t, cp(12), c.roundTrip(rewrite(t, reqs[12], pair)), expect{ours: rows})
}

// The rules are a cluster-wide setting: a queue that opens applies those
// stored (here written before the start, as a failover's new master finds
// them agreed through the log).
func TestFiltersLoadedFromSettings(t *testing.T) {
	n := startNode(t, 5, func(dir string) {
		st, err := settings.OpenLocal(filepath.Join(dir, "cluster", "settings"))
		if err != nil {
			t.Fatal(err)
		}
		rules := `[{"uuid":"00000000-0000-4000-8000-000000000001","watermark":0,"priority":0,` +
			`"predicates":[["opcode",["==","name","held"]]],"action":"PAUSE","reason_trail":[]}]`
		if err := st.Set(context.Background(), "filters", []byte(rules)); err != nil {
			t.Fatal(err)
		}
	})
	held := n.gateJob("held")
	free := n.gateJob("free")
	n.waitGate("free")
	if st := n.statuses(held); st[0] != "queued" {
		t.Fatalf("job under the stored PAUSE filter: %s", st[0])
	}
	var rows [][]any
	n.call(&rows, "QueryFilters", nil, []string{"uuid", "action"})
	if fmt.Sprint(rows) != "[[00000000-0000-4000-8000-000000000001 PAUSE]]" {
		t.Fatalf("QueryFilters: %v", rows)
	}
	n.call(nil, "DeleteFilter", "00000000-0000-4000-8000-000000000001")
	n.waitGate("held")
	n.gates.openAll()
	n.waitStatus(held, "success")
	n.waitStatus(free, "success")
}
