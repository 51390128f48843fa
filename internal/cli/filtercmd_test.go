package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/ganetiref"
	"github.com/jobq-dev/jobq/luxi"
)

var socatChunk = regexp.MustCompile(`([<>]) \d{4}/\d\d/\d\d \S+\s+length=(\d+) from=\d+ to=\d+\n`)

// filterReplies are the "result" members of luxid's replies in a socat
// transcript of the filters folder, in order.
func filterReplies(t *testing.T, name string) []string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(ganetiref.Dir(t), "filters", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range socatChunk.FindAllSubmatchIndex(text, -1) {
		if string(text[m[2]:m[3]]) != "<" {
			continue
		}
		length, _ := strconv.Atoi(string(text[m[4]:m[5]]))
		var rep struct{ Result json.RawMessage }
		if err := json.Unmarshal(bytes.TrimSuffix(text[m[1]:m[1]+length], []byte(".")), &rep); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(rep.Result))
	}
	return out
}

// gntFilterOutputs are the outputs of the commands of cli-filters.txt,
// keyed by command line (the first of repeated commands).
func gntFilterOutputs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ganetiref.Dir(t), "filters", "cli-filters.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var cmd string
	var body strings.Builder
	for _, line := range strings.SplitAfter(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "$ "):
			cmd = strings.TrimSpace(line[2:])
			body.Reset()
		case strings.HasPrefix(line, "[rc="):
			if _, seen := out[cmd]; !seen && cmd != "" {
				out[cmd] = body.String()
			}
			cmd = ""
		case cmd != "":
			body.WriteString(line)
		}
	}
	return out
}

// jobq filter prints what gnt-filter prints, from the same LUXI replies
// (those luxid gave gnt-filter in the captured session).
func TestFilterCommandsAsGntFilter(t *testing.T) {
	reps := filterReplies(t, "luxi-filters-socat-v.txt")
	gnt := gntFilterOutputs(t)
	f := startFake(t)
	f.script("Query", reps[0], reps[3], reps[8])
	f.script("QueryFields", reps[1])
	f.script("ReplaceFilter", reps[2])
	f.script("QueryFilters", reps[4])
	f.script("DeleteFilter", reps[7])
	const uuid = "da500483-e40c-48fa-990d-9ce0250e908d"

	checkResult(t, run(t, f.path, "filter", "list"), result{stdout: gnt["gnt-filter list"]})
	checkResult(t, run(t, f.path, "filter", "list-fields"), result{stdout: gnt["gnt-filter list-fields"]})
	checkResult(t, run(t, f.path, "filter", "add", "--priority=5", "--action=REJECT",
		`--predicates=[["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]]`, "--reason=maintenance"),
		result{stdout: uuid + "\n"})
	// The second "gnt-filter list" of the session, with the filter.
	b, _ := os.ReadFile(filepath.Join(ganetiref.Dir(t), "filters", "cli-filters.txt"))
	second := strings.Split(string(b), "$ gnt-filter list\n")[2]
	second = second[:strings.Index(second, "[rc=")]
	checkResult(t, run(t, f.path, "filter", "list"), result{stdout: second})
	checkResult(t, run(t, f.path, "filter", "info", uuid), result{stdout: gnt["gnt-filter info "+uuid]})
	checkResult(t, run(t, f.path, "filter", "delete", uuid), result{})
	checkResult(t, run(t, f.path, "filter", "list", "--no-headers"), result{stdout: gnt["gnt-filter list --no-headers"]})
	ns := strconv.FormatInt(testNow.UnixNano(), 10)
	f.checkCalls(t,
		`Query ["filter",["uuid","watermark","priority","predicates","action","reason_trail"],null]`,
		`QueryFields ["filter",null]`,
		`ReplaceFilter [null,5,[["opcode",["=","OP_ID","OP_TEST_DELAY"]]],"REJECT",[["gnt:user","maintenance",`+ns+`]]]`,
		`Query ["filter",["uuid","watermark","priority","predicates","action","reason_trail"],null]`,
		`QueryFilters [["`+uuid+`"],["uuid","watermark","priority","predicates","action","reason_trail"]]`,
		`DeleteFilter ["`+uuid+`"]`,
		`Query ["filter",["uuid","watermark","priority","predicates","action","reason_trail"],null]`,
	)
}

func TestFilterCommandArguments(t *testing.T) {
	f := startFake(t)
	f.script("ReplaceFilter", `"2828f17b-e475-435d-bd95-3e8a7d97210d"`, `"2828f17b-e475-435d-bd95-3e8a7d97210d"`)
	f.script("Query", `{"fields":[{"name":"uuid","title":"UUID","kind":"other","doc":"Filter ID"},{"name":"action","title":"Action","kind":"other","doc":"Filter action"}],`+
		`"data":[[[0,"2828f17b-e475-435d-bd95-3e8a7d97210d"],[0,["RATE_LIMIT",2]]]]}`)
	checkResult(t, run(t, f.path, "filter", "replace", "--action=RATE_LIMIT 2", "2828f17b-e475-435d-bd95-3e8a7d97210d"),
		result{stdout: "2828f17b-e475-435d-bd95-3e8a7d97210d\n"})
	checkResult(t, run(t, f.path, "filter", "add"), result{stdout: "2828f17b-e475-435d-bd95-3e8a7d97210d\n"})
	checkResult(t, run(t, f.path, "filter", "list", "--json", "-o", "uuid,action", "2828f17b-e475-435d-bd95-3e8a7d97210d"),
		result{stdout: "[\n  {\n    \"uuid\": \"2828f17b-e475-435d-bd95-3e8a7d97210d\",\n    \"action\": [\n      \"RATE_LIMIT\",\n      2\n    ]\n  }\n]\n"})
	f.checkCalls(t,
		`ReplaceFilter ["2828f17b-e475-435d-bd95-3e8a7d97210d",0,[],["RATE_LIMIT",2],[]]`,
		`ReplaceFilter [null,0,[],"CONTINUE",[]]`,
		`Query ["filter",["uuid","action"],["|",["=","uuid","2828f17b-e475-435d-bd95-3e8a7d97210d"]]]`,
	)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"filter", "replace"}, `Give the uuid of the filter to replace ("jobq filter list" shows them) (see "jobq filter replace --help")`},
		{[]string{"filter", "delete"}, `Give the uuid of the filter to delete ("jobq filter list" shows them) (see "jobq filter delete --help")`},
		{[]string{"filter", "add", "--action=RATE_LIMIT x"}, `The limit of --action="RATE_LIMIT N" must be a positive integer, got "x" (see "jobq filter add --help")`},
		{[]string{"filter", "add", "--priority=-1"}, `--priority must be 0 or more, got -1 (see "jobq filter add --help")`},
		{[]string{"filter", "add", "--predicates=[[jobid"}, `--predicates must be JSON, such as '[["jobid", [">", "id", "watermark"]]]' (invalid character 'j' looking for beginning of value) (see "jobq filter add --help")`},
		{[]string{"filter", "add", "extra"}, `"jobq filter add" takes no arguments, got "extra" (see "jobq filter add --help")`},
	} {
		checkResult(t, run(t, f.path, tc.args...), result{stderr: tc.want + "\n", code: 2})
	}
}

func TestFilterCommandServerErrors(t *testing.T) {
	f := startFake(t)
	f.fail("DeleteFilter", luxi.NewError("OpPrereqError", "Filter 2828f17b-e475-435d-bd95-3e8a7d97210d does not exist; 'gnt-filter list' or 'jobq filter list' shows the filters", "unknown_entity"))
	f.fail("ReplaceFilter", luxi.NewError("OpPrereqError", "Invalid filter: predicates[0]: unknown predicate \"status\": use jobid, opcode or reason", "wrong_input"))
	checkResult(t, run(t, f.path, "filter", "delete", "2828f17b-e475-435d-bd95-3e8a7d97210d"), result{code: 1,
		stderr: "Failure: prerequisites not met for this operation:\nerror type: unknown_entity, error details:\nFilter 2828f17b-e475-435d-bd95-3e8a7d97210d does not exist; 'gnt-filter list' or 'jobq filter list' shows the filters\n"})
	checkResult(t, run(t, f.path, "filter", "add", `--predicates=[["status", null]]`), result{code: 1,
		stderr: "Failure: prerequisites not met for this operation:\nerror type: wrong_input, error details:\nInvalid filter: predicates[0]: unknown predicate \"status\": use jobid, opcode or reason\n"})
}

// jobq debug delay --reason puts the user's reason first, as gnt-debug
// delay --reason does (rate-limit:N:LABEL is Ganeti's ad hoc rate limit).
func TestDelayReason(t *testing.T) {
	f := startFake(t)
	f.script("SubmitJob", "278")
	checkResult(t, run(t, f.path, "debug", "delay", "--submit", "--reason=rate-limit:1:mylabel", "3"), result{stdout: "JobID: 278\n"})
	f.checkCalls(t, `SubmitJob [[{"duration":3.0,"on_master":true,"on_nodes":[],"repeat":0,"interruptible":false,"no_locks":false,`+
		`"dry_run":false,"debug_level":0,"priority":0,"depends":null,"comment":null,`+
		`"reason":[["gnt:user","rate-limit:1:mylabel",1795758421569201152],["gnt:client:jobq","delay",1795758421569201152]],"OP_ID":"OP_TEST_DELAY"}]]`)
}
