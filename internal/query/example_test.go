package query_test

import (
	"encoding/json"
	"fmt"

	"github.com/jobq-dev/jobq/internal/query"
)

// A Query(["job", ["id", "status", "start_ts", "nosuch"], filter]) with the
// filter `gnt-job list --finished` would send.
func Example() {
	jobs := []map[string]any{
		{"id": 1, "status": "success", "start_ts": []int64{1795756390, 405199}},
		{"id": 2, "status": "running", "start_ts": []int64{1795756391, 0}},
		{"id": 3, "status": "canceled", "start_ts": nil},
	}
	filter := json.RawMessage(`["|", ["==", "status", "canceled"], ["==", "status", "success"], ["==", "status", "error"]]`)

	f, err := query.ParseFilter(filter)
	if err != nil {
		fmt.Println(err.(*query.Error).Result())
		return
	}
	_, byID := f.RequestedIDs()
	fmt.Println("filter reads:", f.Fields(), "lookup by id:", byID)

	defs := query.LookupJobFields([]string{"id", "status", "start_ts", "nosuch"})
	var rows [][]any
	for _, job := range jobs {
		get := func(field string) (any, bool) { v, ok := job[field]; return v, ok }
		ok, err := f.Match(get)
		if err != nil {
			fmt.Println(err)
			return
		}
		if ok {
			rows = append(rows, query.MakeRow(defs, get))
		}
	}
	out, _ := json.Marshal(query.BuildQueryResult(defs, rows))
	fmt.Println(string(out))
	// Output:
	// filter reads: [status] lookup by id: false
	// {"fields":[{"name":"id","title":"ID","kind":"number","doc":"Job ID"},{"name":"status","title":"Status","kind":"text","doc":"Job status"},{"name":"start_ts","title":"Start","kind":"other","doc":"Timestamp of job start (tuple containing seconds and microseconds)"},{"name":"nosuch","title":"nosuch","kind":"unknown","doc":"Unknown field 'nosuch'"}],"data":[[[0,1],[0,"success"],[0,[1795756390,405199]],[1,null]],[[0,3],[0,"canceled"],[3,null],[1,null]]]}
}

// gnt-job info 20 and QueryJobs name jobs by id; the engine looks them up
// directly (archived ones too) instead of scanning the queue.
func ExampleFilter_RequestedIDs() {
	f, _ := query.ParseFilter(json.RawMessage(`["|", ["==", "id", 20], ["==", "id", 7], ["==", "id", 20]]`))
	fmt.Println(f.RequestedIDs())

	f, _ = query.ParseFilter(json.RawMessage(`["&", ["|", ["==", "id", 20]], ["|", ["==", "status", "error"]]]`))
	fmt.Println(f.RequestedIDs())
	// Output:
	// [20 7] true
	// [] false
}

// Errors carry Ganeti's class and the reply luxid would send.
func ExampleError() {
	for _, filter := range []string{`["==", "name", "web1"]`, `["==", "status"]`} {
		_, err := query.ParseFilter(json.RawMessage(filter))
		reply, _ := json.Marshal(map[string]any{"success": false, "result": err.(*query.Error).Result()})
		fmt.Println(string(reply))
	}
	// Output:
	// {"result":["ParameterError",["Can't find field named 'name'"]],"success":false}
	// {"result":"Failed to parse request: Cannot deserialise field/value pair, expected [fieldname, value] but got [\"status\"]","success":false}
}
