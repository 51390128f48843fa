package filter

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestDataDriven runs the scenarios in testdata/*.txt (rewrite the
// expected output with -rewrite).
//
//	rules                  (input: one rule per line, the stored JSON form)
//	----
//	the rules in the order they apply: uuid action, or error: …
//
//	new [watermark=N]      (input: {"uuid", "priority", "predicates", "action", "reason"})
//	----
//	the rule's JSON, or error: …
//
//	job id=N               (input: the job's opcodes, a JSON list)
//	----
//	ok
//
//	decide job=N [running=(A,B,…)]
//	----
//	run | paused | limited | rejected, with rule=UUID / bucket=TEXT, and
//	(counted) when the verdict depends on the running jobs
func TestDataDriven(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			var set *Set
			jobs := map[int64]*Job{}
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				switch d.Cmd {
				case "rules":
					rules, err := Decode([]byte("[" + strings.Join(strings.Split(strings.TrimSpace(d.Input), "\n"), ",") + "]"))
					if err != nil {
						set = nil
						return "error: " + err.Error() + "\n"
					}
					set, err = Compile(rules)
					if err != nil {
						return "error: " + err.Error() + "\n"
					}
					var b strings.Builder
					for _, r := range set.Rules() {
						fmt.Fprintf(&b, "%s %s\n", r.UUID, r.Action)
					}
					return b.String()
				case "new":
					var wm int64
					if d.HasArg("watermark") {
						d.ScanArgs(t, "watermark", &wm)
					}
					v, err := decode([]byte(d.Input))
					if err != nil {
						d.Fatalf(t, "input: %v", err)
					}
					m := v.(map[string]any)
					uuid, _ := m["uuid"].(string)
					r, err := NewRule(Input{UUID: uuid, Priority: m["priority"], Predicates: m["predicates"], Action: m["action"], Reason: m["reason"]}, wm)
					if err != nil {
						return "error: " + err.Error() + "\n"
					}
					b, err := marshal(r)
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					return string(b) + "\n"
				case "job":
					var id int64
					d.ScanArgs(t, "id", &id)
					var ops []json.RawMessage
					if err := json.Unmarshal([]byte(d.Input), &ops); err != nil {
						d.Fatalf(t, "input: %v", err)
					}
					jobs[id] = NewJob(id, ops)
					return "ok\n"
				case "decide":
					var id int64
					d.ScanArgs(t, "job", &id)
					var running []*Job
					if d.HasArg("running") {
						var ids []string
						d.ScanArgs(t, "running", &ids)
						for _, s := range ids {
							var rid int64
							fmt.Sscan(s, &rid)
							running = append(running, jobs[rid])
						}
					}
					dec := set.Decide(jobs[id], running)
					out := dec.Verdict.String()
					if dec.Rule != "" {
						out += " rule=" + dec.Rule
					}
					if dec.Bucket != "" {
						out += " bucket=" + dec.Bucket
					}
					if dec.Counted {
						out += " (counted)"
					}
					return out + "\n"
				}
				d.Fatalf(t, "unknown command %q", d.Cmd)
				return ""
			})
		})
	}
}
