package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// Submit a job and follow its log until it ends.
func Example() {
	socket, stop := startDaemon(0) // a jobqd for this example
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	id, err := c.SubmitJob(ctx, client.OpTestJqueue{LogMessages: []string{"checking", "done"}})
	if err != nil {
		log.Fatal(err)
	}
	status, err := c.WatchJob(ctx, id, func(e client.LogEntry) error {
		fmt.Printf("job %d log %d: %s\n", id, e.Serial, e.Text())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("job", id, status)
	// Output:
	// job 1 log 1: checking
	// job 1 log 2: done
	// job 1 success
}

func ExampleClient_LogEntries() {
	socket, stop := startDaemon(0)
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	id, err := c.SubmitJob(ctx, client.OpTestDelay{Duration: time.Millisecond, Repeat: 3})
	if err != nil {
		log.Fatal(err)
	}
	for e, err := range c.LogEntries(ctx, id) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Text())
	}
	// Output:
	//  - INFO: Test delay iteration 0/2
	//  - INFO: Test delay iteration 1/2
	//  - INFO: Test delay iteration 2/2
}

func ExampleClient_SubmitManyJobs() {
	socket, stop := startDaemon(0)
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.SubmitManyJobs(ctx,
		[]client.Opcode{client.OpTestJqueue{}},
		// Runs once the job before it (-1) has succeeded.
		[]client.Opcode{client.OpTestJqueue{Common: client.Common{
			Depends: []client.Dependency{{JobID: -1, Statuses: []client.Status{client.StatusSuccess}}},
		}}},
		[]client.Opcode{}, // refused: a job needs an opcode
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		fmt.Println(r.ID, r.Err)
	}
	status, err := c.WatchJob(ctx, res[1].ID, nil)
	fmt.Println(status, err)
	// Output:
	// 1 <nil>
	// 2 <nil>
	// 0 a job needs at least one opcode
	// success <nil>
}

func ExampleClient_QueryJobs() {
	socket, stop := startDaemon(0)
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	id, _ := c.SubmitJob(ctx, client.OpTestJqueue{Fail: true})
	c.WatchJob(ctx, id, nil)

	rows, err := c.QueryJobs(ctx, []int64{id, 99}, "id", "status", "opresult")
	if err != nil {
		log.Fatal(err)
	}
	for _, row := range rows {
		if row == nil {
			fmt.Println("no such job")
			continue
		}
		fmt.Printf("%s %s %s\n", row[0], row[1], row[2])
	}

	j, err := c.Job(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(j.Status, j.Summary, j.Ended.After(j.Received))
	_, err = c.Job(ctx, 99)
	fmt.Println(errors.Is(err, client.ErrJobNotFound))
	// Output:
	// 1 "error" [["OpExecError",["Opcode failure was requested"]]]
	// no such job
	// error [TEST_JQUEUE] true
	// true
}

func ExampleClient_CancelJob() {
	socket, stop := startDaemon(1) // one job at a time
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	long, _ := c.SubmitJob(ctx, client.OpTestDelay{Duration: time.Hour})
	queued, _ := c.SubmitJob(ctx, client.OpTestDelay{Duration: time.Second})

	// The second job waits in the queue behind the first: cancel it.
	fmt.Println(c.CancelJob(ctx, queued))

	// The first one runs: only killing ends it.
	info := []json.RawMessage{json.RawMessage(`"queued"`)}
	for string(info[0]) != `"running"` {
		ch, err := c.WaitForJobChange(ctx, long, []string{"status"}, info, -1, time.Minute)
		if err != nil {
			log.Fatal(err)
		}
		info = ch.Info
	}
	fmt.Println(c.CancelJob(ctx, long))
	fmt.Println(c.KillJob(ctx, long))
	fmt.Println(c.WatchJob(ctx, long, nil))
	// Output:
	// true Dequeued job 2 <nil>
	// false Job no longer waiting, can't cancel (informed it anyway) <nil>
	// true Job 1 will be killed <nil>
	// canceled <nil>
}

func ExampleClient_ArchiveJob() {
	socket, stop := startDaemon(0)
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	id, _ := c.SubmitJob(ctx, client.OpTestJqueue{})
	c.WatchJob(ctx, id, nil)
	fmt.Println(c.ArchiveJob(ctx, id))
	fmt.Println(c.ArchiveJob(ctx, id)) // no longer live
	j, _ := c.Job(ctx, id)             // but still there
	fmt.Println(j.Status, j.Archived)
	// Output:
	// true <nil>
	// false <nil>
	// success true
}

func ExampleClient_SetDrainFlag() {
	socket, stop := startDaemon(0)
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	c.SetDrainFlag(ctx, true)
	_, err = c.SubmitJob(ctx, client.OpTestJqueue{})
	var e *client.Error
	fmt.Println(errors.As(err, &e), e.Class, e.Args)
	c.SetDrainFlag(ctx, false)
	// Output:
	// true GenericError [Queue drained]
}

// Call LUXI methods this package has no method for: Ganeti's
// QueryConfigValues and Query (query2).
func ExampleClient_Call() {
	socket, stop := startDaemon(0)
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var values []any
	if err := c.Call(ctx, &values, "QueryConfigValues", []string{"drain_flag"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("drained:", values[0])

	id, _ := c.SubmitJob(ctx, client.OpTestJqueue{})
	c.WatchJob(ctx, id, nil)
	// Query answers {"fields": [...], "data": rows of [status, value]}.
	var res struct {
		Data [][][2]any `json:"data"`
	}
	if err := c.Call(ctx, &res, "Query", "job", []string{"id", "status"}, nil); err != nil {
		log.Fatal(err)
	}
	for _, row := range res.Data {
		fmt.Println("job", row[0][1], row[1][1])
	}

	// An answer of another shape than result.
	var n int
	err = c.Call(ctx, &n, "QueryConfigValues", []string{"drain_flag"})
	var de *client.DecodeError
	fmt.Println(errors.As(err, &de), de.Method)
	// Output:
	// drained: false
	// job 1 success
	// true QueryConfigValues
}

// The JSON of typed opcodes, as jobqd receives it.
func ExampleOpTestDelay() {
	op := client.OpTestDelay{Duration: 1500 * time.Millisecond, Repeat: 2,
		Common: client.Common{Priority: client.PriorityHigh}}
	b, _ := json.Marshal(op)
	fmt.Println(string(b))
	b, _ = json.Marshal(client.OpTestJqueue{LogMessages: []string{"hello"}, Fail: true})
	fmt.Println(string(b))
	// Output:
	// {"OP_ID":"OP_TEST_DELAY","priority":-10,"repeat":2,"interruptible":false,"no_locks":false,"duration":1.5,"on_master":true,"on_nodes":[]}
	// {"OP_ID":"OP_TEST_JQUEUE","notify_waitlock":false,"notify_exec":false,"log_messages":["hello"],"fail":true}
}
