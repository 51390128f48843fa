package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/luxi"
)

func TestResolveSocket(t *testing.T) {
	t.Setenv(client.SocketEnv, "")
	if got, want := client.ResolveSocket("", ""), daemon.SocketPath(daemon.DefaultDataDir()); got != want {
		t.Errorf("default: %s, want %s", got, want)
	}
	if got := client.ResolveSocket("", "/d"); got != "/d/socket/jobq-query" {
		t.Errorf("data dir: %s", got)
	}
	t.Setenv(client.SocketEnv, "/env.sock")
	if got := client.ResolveSocket("", "/d"); got != "/d/socket/jobq-query" {
		t.Errorf("the data dir given beats $JOBQ_SOCKET, as in jobq: %s", got)
	}
	if got := client.ResolveSocket("", ""); got != "/env.sock" {
		t.Errorf("$JOBQ_SOCKET beats the default: %s", got)
	}
	if got := client.ResolveSocket("/flag.sock", "/d"); got != "/flag.sock" {
		t.Errorf("explicit socket: %s", got)
	}
	if client.DefaultDataDir() != daemon.DefaultDataDir() || client.SocketPath("/x") != daemon.SocketPath("/x") {
		t.Error("client and daemon disagree on the default paths")
	}
}

// myOp is an opcode type of a program's own: json tags and an OpID.
type myOp struct {
	Messages []string `json:"log_messages"`
}

func (myOp) OpID() string { return "OP_TEST_JQUEUE" }

func TestOpcodes(t *testing.T) {
	socket, stop := startDaemon(0)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	when := time.Unix(1700000000, 5)
	id, err := c.SubmitJob(ctx,
		myOp{Messages: []string{"a"}},
		client.RawOp{"OP_ID": "OP_TEST_JQUEUE", "log_messages": []string{"b"}},
		client.OpTestDelay{Duration: 10 * time.Millisecond, Common: client.Common{
			Priority: client.PriorityLow, Comment: "c",
			Reason: []client.ReasonEntry{{Source: "gnt:client:test", Text: "why", Time: when}}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	st, err := c.WatchJob(ctx, id, func(e client.LogEntry) error {
		logs = append(logs, e.Text())
		return nil
	})
	if err != nil || st != client.StatusSuccess || strings.Join(logs, ",") != "a,b" {
		t.Fatalf("job: %s %v %v", st, logs, err)
	}
	j, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var delay map[string]any
	json.Unmarshal(j.Ops[2], &delay)
	if delay["duration"] != 0.01 || delay["on_master"] != true || delay["priority"] != 10.0 || delay["comment"] != "c" {
		t.Errorf("OP_TEST_DELAY as stored: %s", j.Ops[2])
	}
	if r := delay["reason"].([]any)[0].([]any); r[0] != "gnt:client:test" || r[1] != "why" || r[2] != float64(when.UnixNano()) {
		t.Errorf("reason: %v", r)
	}
	if len(j.OpLog) != 3 || j.OpLog[0][0].Serial != 1 || j.OpLog[1][0].Serial != 2 || j.OpLog[0][0].Time.IsZero() {
		t.Errorf("op logs: %+v", j.OpLog)
	}

	if _, err := c.SubmitJob(ctx, client.RawOp{"duration": 1}); err == nil || !strings.Contains(err.Error(), "no OP_ID") {
		t.Errorf("opcode without OP_ID: %v", err)
	}
	if _, err := c.WatchJob(ctx, 4242, nil); !errors.Is(err, client.ErrJobNotFound) {
		t.Errorf("watching an unknown job: %v", err)
	}
	// The callback's error ends the watch.
	stopErr := errors.New("enough")
	id, _ = c.SubmitJob(ctx, client.OpTestJqueue{LogMessages: []string{"x", "y"}})
	n := 0
	if _, err := c.WatchJob(ctx, id, func(client.LogEntry) error { n++; return stopErr }); err != stopErr || n != 1 {
		t.Errorf("WatchJob with a failing callback: %v after %d entries", err, n)
	}
	ok, msg, err := c.ChangeJobPriority(ctx, id, 5)
	if err != nil || ok || msg == "" {
		t.Errorf("ChangeJobPriority of a finished job: %v %q %v", ok, msg, err)
	}
	c.WatchJob(ctx, id, nil)
	if n, left, err := c.AutoArchiveJobs(ctx, -1, time.Minute); err != nil || n != 2 || left != 0 {
		t.Errorf("AutoArchiveJobs: %d %d %v", n, left, err)
	}
	if rows, err := c.QueryJobs(ctx, nil, "id"); err != nil || len(rows) != 0 {
		t.Errorf("live jobs after archiving all: %v %v", rows, err)
	}
}

func TestCallErrors(t *testing.T) {
	socket, stop := startDaemon(0)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A failure reply is a *luxi.Error (client.Error), as from every
	// method.
	err = c.Call(ctx, nil, "NoSuchMethod")
	var le *luxi.Error
	if !errors.As(err, &le) || le.Class != "RequestError" {
		t.Errorf("unknown method: %v", err)
	}
	// An answer that does not decode is a *DecodeError with the JSON error.
	var id int64
	err = c.Call(ctx, &id, "QueryConfigValues", []string{"drain_flag"})
	var de *client.DecodeError
	var te *json.UnmarshalTypeError
	if !errors.As(err, &de) || de.Method != "QueryConfigValues" || !errors.As(err, &te) || errors.As(err, &le) {
		t.Errorf("answer of the wrong shape: %v", err)
	}
	// Numbers in interface values keep their digits.
	var raw []any
	if err := c.Call(ctx, &raw, "QueryJobs", []int64{1}, []string{"id"}); err != nil || len(raw) != 1 || raw[0] != nil {
		t.Errorf("QueryJobs of a missing job: %v %v", raw, err)
	}
	var keep json.RawMessage
	if err := c.Call(ctx, &keep, "QueryConfigValues", []string{"drain_flag"}); err != nil || string(keep) != "[false]" {
		t.Errorf("raw answer: %s %v", keep, err)
	}
}
