package opcodes

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// notifyEnv plays Ganeti's test-jobqueue client: on every notification it
// connects to the socket and closes the connection (unless deaf).
type notifyEnv struct {
	env
	deaf bool
}

func (e *notifyEnv) LogTyped(kind string, msg any) {
	m := msg.([]any)
	e.Log(fmt.Sprintf("%s %v %v", kind, m[1], m[2]))
	if e.deaf {
		return
	}
	c, err := net.Dial("unix", m[0].(string))
	if err != nil {
		e.Log("cannot connect: " + err.Error())
		return
	}
	c.Close()
}

func TestTestJqueueNotifies(t *testing.T) {
	p := &TestJqueue{NotifyWaitlock: true, NotifyExec: true, LogMessages: []string{"a", ""}}
	e := &notifyEnv{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.ExpandNames(ctx, e); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Exec(ctx, e); err != nil || res != true {
		t.Fatalf("Exec: %v %v", res, err)
	}
	want := []string{"jqueue-test expandnames <nil>", " - INFO: Expanding names",
		"jqueue-test exec <nil>", " - INFO: Executing", "jqueue-test startmsg 2",
		" - INFO: Sending log message 1", "TESTMSG=a", "jqueue-test logmsg 1",
		" - INFO: Sending log message 2", "TESTMSG=", "jqueue-test logmsg 2"}
	if got := strings.Join(e.logs, "|"); got != strings.Join(want, "|") {
		t.Errorf("log:\n got %q\nwant %q", e.logs, want)
	}

	// Without the notify flags, only the messages, as given.
	e = &notifyEnv{}
	p = &TestJqueue{LogMessages: []string{"a", "b"}, Fail: true}
	if err := p.ExpandNames(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, e); err == nil || err.Error() != "Opcode failure was requested" {
		t.Fatalf("Exec with fail: %v", err)
	}
	if got := strings.Join(e.logs, "|"); got != "a|b" {
		t.Errorf("log without notifications: %q", e.logs)
	}
}

// A client that does not connect fails the opcode in Ganeti's words
// (OpPrereqError while waiting, OpExecError once running); a cancel ends
// the wait at once.
func TestTestJqueueClientAway(t *testing.T) {
	old := JqueueConnectTimeout
	JqueueConnectTimeout = 50 * time.Millisecond
	defer func() { JqueueConnectTimeout = old }()
	ctx := context.Background()
	p := &TestJqueue{NotifyWaitlock: true, NotifyExec: true}
	err := p.ExpandNames(ctx, &notifyEnv{deaf: true})
	if e, ok := err.(*Error); !ok || e.Class != "OpPrereqError" || !strings.HasPrefix(e.Error(), "Client didn't connect in time (") {
		t.Errorf("ExpandNames without a client: %#v", err)
	}
	_, err = p.Exec(ctx, &notifyEnv{deaf: true})
	if e, ok := err.(*Error); !ok || e.Class != "OpExecError" || !strings.HasPrefix(e.Error(), "Client didn't connect in time (") {
		t.Errorf("Exec without a client: %#v", err)
	}
	JqueueConnectTimeout = time.Hour
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := p.Exec(cctx, &notifyEnv{deaf: true}); done <- err }()
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Exec after a cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a cancel did not end the wait for the client within a minute")
	}
}
