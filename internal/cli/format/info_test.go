package format

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Jobs as QueryJobs returns them for JobInfoFields (luxid's encoding:
// floats such as 1.0e-2, opcode parameters in luxid's order), transcribed
// from the gnt-job info captures (local time there is UTC, so 05:47:02 is
// 1795758422).
var infoJobs = map[string]string{
	// cli-09 and cli-33 (the same job before and after archiving).
	"6040": `{"id":6040,"status":"success",
 "ops":[{"debug_level":0,"priority":0,"depends":null,"comment":null,
   "reason":[["gnt:client:gnt-debug","delay",1795758422124506368],["gnt:opcode:test_delay","job=6040;index=0",1795758422125936000]],
   "OP_ID":"OP_TEST_DELAY","duration":1.0e-2,"on_master":true,"on_nodes":[],
   "on_node_uuids":["6b124f5f-060a-4771-9a2c-e520a3dffe72"],"repeat":0,"interruptible":false,"no_locks":false,"dry_run":false}],
 "opresult":[null],"opstatus":["success"],"oplog":[[]],
 "opstart":[[1795758422,321059]],"opexec":[[1795758422,328691]],"opend":[[1795758422,417200]],
 "received_ts":[1795758422,125936],"start_ts":[1795758422,321059],"end_ts":[1795758422,417209]}`,
	// cli-14: three iterations with log messages.
	"6046": `{"id":6046,"status":"success",
 "ops":[{"debug_level":0,"priority":0,"depends":null,"comment":null,
   "reason":[["gnt:client:gnt-debug","delay",1795758425943657472],["gnt:opcode:test_delay","job=6046;index=0",1795758425948157000]],
   "OP_ID":"OP_TEST_DELAY","duration":0.3,"on_master":true,"on_nodes":[],
   "on_node_uuids":["6b124f5f-060a-4771-9a2c-e520a3dffe72"],"repeat":3,"interruptible":false,"no_locks":false,"dry_run":false}],
 "opresult":[null],"opstatus":["success"],
 "oplog":[[[1,[1795758426,180542],"message"," - INFO: Test delay iteration 0/2"],
           [2,[1795758426,540756],"message"," - INFO: Test delay iteration 1/2"],
           [3,[1795758426,957475],"message"," - INFO: Test delay iteration 2/2"]]],
 "opstart":[[1795758426,169379]],"opexec":[[1795758426,177077]],"opend":[[1795758427,334714]],
 "received_ts":[1795758425,948157],"start_ts":[1795758426,169379],"end_ts":[1795758427,334874]}`,
	// cli-23: waiting for a lock, not finished.
	"6050": `{"id":6050,"status":"waiting",
 "ops":[{"debug_level":0,"priority":0,"depends":null,"comment":null,
   "reason":[["gnt:client:gnt-debug","delay",1795758429964674560],["gnt:opcode:test_delay","job=6050;index=0",1795758429967481000]],
   "OP_ID":"OP_TEST_DELAY","duration":1.0e-2,"on_master":true,"on_nodes":["node1.ganeti.test"],
   "repeat":0,"interruptible":false,"no_locks":false,"dry_run":false}],
 "opresult":[null],"opstatus":["waiting"],"oplog":[[]],
 "opstart":[[1795758430,239608]],"opexec":[null],"opend":[null],
 "received_ts":[1795758429,967481],"start_ts":[1795758430,239608],"end_ts":null}`,
	// cli-27.
	"6049": `{"id":6049,"status":"success",
 "ops":[{"debug_level":0,"priority":0,"depends":null,"comment":null,
   "reason":[["gnt:client:gnt-debug","delay",1795758429777330176],["gnt:opcode:test_delay","job=6049;index=0",1795758429782269000]],
   "OP_ID":"OP_TEST_DELAY","duration":1.0e-2,"on_master":true,"on_nodes":["node1.ganeti.test"],
   "on_node_uuids":["6b124f5f-060a-4771-9a2c-e520a3dffe72"],"repeat":0,"interruptible":false,"no_locks":false,"dry_run":false}],
 "opresult":[null],"opstatus":["success"],"oplog":[[]],
 "opstart":[[1795758429,999592]],"opexec":[[1795758432,44086]],"opend":[[1795758432,126018]],
 "received_ts":[1795758429,782269],"start_ts":[1795758429,999592],"end_ts":[1795758432,126031]}`,
}

func infoJob(t *testing.T, id string) map[string]any {
	t.Helper()
	return decode(t, infoJobs[id]).(map[string]any)
}

func TestJobInfoReference(t *testing.T) {
	for _, tc := range []struct{ golden, id string }{
		{"cli-09-job-info", "6040"},
		{"cli-14-job-info-repeat", "6046"},
		{"cli-23-job-info-after-prio", "6050"},
		{"cli-27-job-info-canceled", "6049"},
		{"cli-33-job-info-archived", "6040"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got := writeString(t, func(w *bytes.Buffer) error { return JobInfo(w, infoJob(t, tc.id), refLoc) })
			checkText(t, "info", got, golden(t, tc.golden))
		})
	}
}

// The QueryJobs row form (values in JobInfoFields order) gives the same.
func TestJobInfoFromRow(t *testing.T) {
	job := infoJob(t, "6046")
	row := make([]any, len(JobInfoFields))
	for i, f := range JobInfoFields {
		row[i] = job[f]
	}
	got := writeString(t, func(w *bytes.Buffer) error {
		return JobInfo(w, RowToMap(JobInfoFields, row), refLoc)
	})
	checkText(t, "info", got, golden(t, "cli-14-job-info-repeat"))
	if RowToMap(JobInfoFields, nil) != nil {
		t.Error("RowToMap(nil row) is not nil")
	}
}

func TestJobInfoNotFound(t *testing.T) {
	got := writeString(t, func(w *bytes.Buffer) error {
		return JobsInfo(w, []JobInfoEntry{{ID: 999999}}, refLoc)
	})
	checkText(t, "info", got, golden(t, "cli-39-job-info-nonexistent"))
	if err := JobInfo(&bytes.Buffer{}, nil, refLoc); err == nil {
		t.Error("JobInfo(nil) did not fail")
	}
}

// Several jobs: one list item each, in order.
func TestJobsInfoSeveral(t *testing.T) {
	got := writeString(t, func(w *bytes.Buffer) error {
		return JobsInfo(w, []JobInfoEntry{
			{ID: "6040", Job: infoJob(t, "6040")},
			{ID: "999999"},
			{ID: "6046", Job: infoJob(t, "6046")},
		}, refLoc)
	})
	want := golden(t, "cli-09-job-info") + "- Job ID 999999 not found\n" + golden(t, "cli-14-job-info-repeat")
	checkText(t, "info", got, want)

	got = writeString(t, func(w *bytes.Buffer) error { return JobsInfo(w, nil, refLoc) })
	checkText(t, "no jobs", got, "\n")
}

// Without UseNumber the integers still print as integers; what cannot be
// recovered is the exact value of integers beyond 2^53 (the nanosecond
// timestamps of "reason").
func TestJobInfoFloat64Input(t *testing.T) {
	job := decodeFloat(t, infoJobs["6046"]).(map[string]any)
	got := writeString(t, func(w *bytes.Buffer) error { return JobInfo(w, job, refLoc) })
	want := golden(t, "cli-14-job-info-repeat")
	want = strings.NewReplacer(
		"1795758425943657472", "1.7957584259436575e+18",
		"1795758425948157000", "1.795758425948157e+18",
	).Replace(want)
	checkText(t, "info", got, want)
}

// A job that failed, with two opcodes, an error result, a log message that
// is not text, and a job that is still queued.
func TestJobInfoOtherShapes(t *testing.T) {
	job := decode(t, `{"id":7,"status":"error",
 "ops":[{"OP_ID":"OP_TEST_DELAY","duration":1.0,"opts":{"b":[1,2],"a":{}}},{"OP_ID":"OP_TEST_JQUEUE"}],
 "opresult":[null,["OpExecError",["boom"]]],
 "opstatus":["success","error"],
 "oplog":[[],[[1,[1795758422,5],"remote-import",{"x":1}],[2,[1795758423,6],"message","line1\nline2 caf\u00e9"]]],
 "opstart":[[1795758422,0],[1795758422,1]],"opexec":[[1795758422,2],null],"opend":[[1795758422,3],[1795758423,7]],
 "received_ts":[1795758421,999999],"start_ts":[1795758422,0],"end_ts":[1795758423,8]}`).(map[string]any)
	want := `- Job ID: 7
  Status: error
  Received:         2026-11-27 05:47:01.999999
  Processing start: 2026-11-27 05:47:02.000000 (delta 0.000001s)
  Processing end:   2026-11-27 05:47:03.000008 (delta 1.000008s)
  Total processing time: 1.000009 seconds
  Opcodes: 
    - Opcode: OP_TEST_DELAY
      Status: success
      Processing start: 2026-11-27 05:47:02.000000
      Execution start:  2026-11-27 05:47:02.000002
      Processing end:   2026-11-27 05:47:02.000003
      Input fields: 
        OP_ID: OP_TEST_DELAY
        duration: 1.0
        opts: 
          a: 
          b: 
            - 1
            - 2
      Result: None
      Execution log: 
    - Opcode: OP_TEST_JQUEUE
      Status: error
      Processing start: 2026-11-27 05:47:02.000001
      Execution start:  N/A
      Processing end:   2026-11-27 05:47:03.000007
      Input fields: 
        OP_ID: OP_TEST_JQUEUE
      Result: 
        - OpExecError
        - - boom
      Execution log: 
        - Time: 2026-11-27 05:47:02.000005
          Content: [1, remote-import, {'x': 1}]
        - Time: 2026-11-27 05:47:03.000006
          Content: [2, message, line1\nline2 caf\xe9]
`
	got := writeString(t, func(w *bytes.Buffer) error { return JobInfo(w, job, refLoc) })
	checkText(t, "info", got, want)

	queued := decode(t, `{"id":8,"status":"queued","ops":[{"OP_ID":"OP_TEST_DELAY"}],
 "opresult":[null],"opstatus":["queued"],"oplog":[[]],"opstart":[null],"opexec":[null],"opend":[null],
 "received_ts":[1795758422,125936],"start_ts":null,"end_ts":null}`).(map[string]any)
	want = `- Job ID: 8
  Status: queued
  Received:         2026-11-27 05:47:02.125936
  Processing start: unknown (None)
  Processing end:   unknown (None)
  Total processing time: N/A
  Opcodes: 
    - Opcode: OP_TEST_DELAY
      Status: queued
      Processing start: N/A
      Execution start:  N/A
      Processing end:   N/A
      Input fields: 
        OP_ID: OP_TEST_DELAY
      Result: None
      Execution log: 
`
	got = writeString(t, func(w *bytes.Buffer) error { return JobInfo(w, queued, refLoc) })
	checkText(t, "queued", got, want)

	// Local time zone handling.
	cet := time.FixedZone("CET", 3600)
	got = writeString(t, func(w *bytes.Buffer) error { return JobInfo(w, queued, cet) })
	if !strings.Contains(got, "Received:         2026-11-27 06:47:02.125936\n") {
		t.Errorf("times not shown in the given location:\n%s", got)
	}
}

func TestWriteGenericInfo(t *testing.T) {
	data := []any{
		OrderedDict{
			{Key: "Name", Value: "node1"},
			{Key: "A", Value: 1, Align: "g"},
			{Key: "Longer", Value: 2.5, Align: "g"},
			{Key: "Other", Value: true, Align: "h"},
			{Key: "Dict", Value: map[string]any{"z": nil, "a": []any{"s", Tuple{1, "x"}, Tuple{[]any{1}}}}},
			{Key: "Empty", Value: OrderedDict{}},
			{Key: "Nested", Value: OrderedDict{{Key: "k", Value: "v"}}},
		},
		"plain",
		[]any{"x", []any{"y", "z"}},
		map[string]string{"k": "v", "e": ""},
	}
	want := `- Name: node1
  A:      1
  Longer: 2.5
  Other: True
  Dict: 
    a: 
      - s
      - [1, x]
      - - - 1
    z: None
  Empty: 
  Nested: 
    k: v
- plain
- - x
  - - y
    - z
- e: 
  k: v
`
	got := writeString(t, func(w *bytes.Buffer) error { return WriteGenericInfo(w, data) })
	checkText(t, "generic info", got, want)

	got = writeString(t, func(w *bytes.Buffer) error { return WriteGenericInfo(w, "scalar\n\n") })
	checkText(t, "scalar", got, "scalar\n")
}
