package format_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/internal/cli/format"
)

// Formatting a QueryJobs reply as `gnt-job list -o id,status,priority,summary`.
func Example() {
	reply := `[[6049,"waiting",0,["TEST_DELAY(1.0e-2)"]],[6050,"waiting",-10,["TEST_DELAY(1.0e-2)"]]]`
	dec := json.NewDecoder(strings.NewReader(reply))
	dec.UseNumber()
	var rows [][]any
	if err := dec.Decode(&rows); err != nil {
		panic(err)
	}
	fields := format.ParseFields("id,status,priority,summary", format.DefaultJobListFields)
	table := format.JobListTable(fields, rows, false, nil, time.UTC)
	if _, err := table.WriteTo(os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	//   ID Status  Priority Summary
	// 6049 waiting        0 TEST_DELAY(1.0e-2)
	// 6050 waiting      -10 TEST_DELAY(1.0e-2)
}

func ExamplePyRepr() {
	var v any
	dec := json.NewDecoder(strings.NewReader(`[["OpPrereqError",["Duration must be greater than zero"]],null,1.0e-2,true]`))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	fmt.Println(format.PyRepr(v))
	// Output:
	// [['OpPrereqError', ['Duration must be greater than zero']], None, 0.01, True]
}

func ExampleJobFailed() {
	e, failed := format.FinishedJobError("error", []any{"error"},
		[]any{[]any{"OpPrereqError", []any{"Duration must be greater than zero"}}})
	if failed {
		fmt.Println(format.JobFailed(6039, e))
	}
	// Output:
	// Job 6039 failed: Failure: prerequisites not met for this operation:
	// Duration must be greater than zero
}

func ExampleWatchLogLine() {
	fmt.Println(format.WatchHeader(6046))
	fmt.Println(format.WatchLogLine([]any{1795758426, 180542}, "message", " - INFO: Test delay iteration 0/2", time.UTC))
	// Output:
	// Output from job 6046 follows
	// ----------------------------
	// Fri Nov 27 05:47:06 2026  - INFO: Test delay iteration 0/2
}

func ExampleParseAge() {
	for _, s := range []string{"1h", "all", "2d", "90"} {
		age, err := format.ParseAge(s)
		fmt.Println(age, err)
	}
	_, err := format.ParseAge("1y")
	fmt.Println(err)
	// Output:
	// 3600 <nil>
	// -1 <nil>
	// 172800 <nil>
	// 90 <nil>
	// invalid age "1y": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d), or "all"
}
