package opcodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/jobq-dev/jobq/locking"
)

// TestJqueue is OP_TEST_JQUEUE, Ganeti's opcode to test the job queue
// with its client ("gnt-debug test-jobqueue"). It takes the master's node
// lock; with notify_waitlock it notifies the client while the job waits
// (before the lock), with notify_exec once it runs; then it logs each of
// log_messages as "TESTMSG=<message>", notifying the client before the
// first and after each, and fails on request.
//
// Without notify_waitlock and notify_exec, the messages are logged as they
// are given, without the prefix or Ganeti's info lines, and no client is
// notified: jobq's own tests and examples use the opcode as a job that
// logs chosen messages. (Ganeti notifies for log_messages in any case,
// and so waits for a client, which only its "gnt-debug test-jobqueue",
// setting both flags, provides.)
//
// A notification is a log entry of type "jqueue-test" whose message is
// [socket, test, argument]: the opcode listens on the Unix socket, the
// client connects, checks the job's status, and closes the connection;
// the opcode goes on once it has. A client that does not connect within
// JqueueConnectTimeout or close within JqueueConfirmTimeout fails the
// opcode.
type TestJqueue struct {
	NotifyWaitlock bool     `json:"notify_waitlock"`
	NotifyExec     bool     `json:"notify_exec"`
	LogMessages    []string `json:"log_messages"`
	Fail           bool     `json:"fail"`
}

// Ganeti's names of the job queue test notifications and messages.
const (
	JqueueLogType     = "jqueue-test"
	JqueueMsgPrefix   = "TESTMSG="
	JqueueExpandNames = "expandnames"
	JqueueExec        = "exec"
	JqueueStartMsg    = "startmsg"
	JqueueLogMsg      = "logmsg"
)

// How long OP_TEST_JQUEUE waits for its client, as Ganeti's LUTestJqueue:
// to connect (less than the 30 s a client's WaitForJobChange waits), then
// to close the connection.
var (
	JqueueConnectTimeout = 20 * time.Second
	JqueueConfirmTimeout = 60 * time.Second
)

var testJqueueDef = Definition{
	ID:  "OP_TEST_JQUEUE",
	New: func() Params { return &TestJqueue{} },
}

// notifying reports whether the opcode talks to a client (Ganeti's
// behaviour) rather than only logging its messages.
func (p *TestJqueue) notifying() bool { return p.NotifyWaitlock || p.NotifyExec }

// Validate implements Params.
func (p *TestJqueue) Validate() error { return nil }

// Locks implements Locker: the master's node lock (just to take a lock,
// as Ganeti's), under the shared cluster lock.
func (p *TestJqueue) Locks(env Env) []locking.Request {
	reqs := []locking.Request{{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: locking.Shared}}
	if m := env.NodeName(); m != "" {
		reqs = append(reqs, locking.Request{Level: locking.LevelNode, Names: []string{m}, Mode: locking.Exclusive})
	}
	return reqs
}

// ExpandNames implements Expander: the "expandnames" notification, while
// the job waits.
func (p *TestJqueue) ExpandNames(ctx context.Context, env Env) error {
	if !p.notifying() {
		return nil
	}
	if p.NotifyWaitlock {
		if err := notifyClient(ctx, env, JqueueExpandNames, nil); err != nil {
			return PrereqError("", "%s", err.Error())
		}
	}
	LogInfo(env, "Expanding names")
	return nil
}

// Exec implements Params.
func (p *TestJqueue) Exec(ctx context.Context, env Env) (any, error) {
	notify := func(test string, arg any) error {
		if err := notifyClient(ctx, env, test, arg); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ExecError("%s", err.Error())
		}
		return nil
	}
	if !p.notifying() {
		for _, m := range p.LogMessages {
			env.Log(m)
		}
		if p.Fail {
			return nil, ExecError("Opcode failure was requested")
		}
		return true, ctx.Err()
	}
	if p.NotifyExec {
		if err := notify(JqueueExec, nil); err != nil {
			return nil, err
		}
	}
	LogInfo(env, "Executing")
	if len(p.LogMessages) > 0 {
		if err := notify(JqueueStartMsg, len(p.LogMessages)); err != nil {
			return nil, err
		}
		for i, m := range p.LogMessages {
			LogInfo(env, "Sending log message %d", i+1)
			env.Log(JqueueMsgPrefix + m)
			if err := notify(JqueueLogMsg, i+1); err != nil {
				return nil, err
			}
		}
	}
	if p.Fail {
		return nil, ExecError("Opcode failure was requested")
	}
	return true, ctx.Err()
}

// notifyClient sends one notification and waits until the client has
// connected to its socket and closed the connection.
func notifyClient(ctx context.Context, env Env, test string, arg any) error {
	tl, ok := env.(TypedLogger)
	if !ok {
		return errors.New("this queue cannot send job queue test notifications")
	}
	dir, err := os.MkdirTemp("", "jobq-jqueue-test-")
	if err != nil {
		return fmt.Errorf("cannot make the notification socket: %v", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("cannot make the notification socket: %v", err)
	}
	defer l.Close()
	// A cancel (or the daemon's stop) ends the waits below.
	stop := context.AfterFunc(ctx, func() { l.SetDeadline(time.Now()) })
	defer stop()

	tl.LogTyped(JqueueLogType, []any{path, test, arg})

	if err := l.SetDeadline(time.Now().Add(JqueueConnectTimeout)); err != nil {
		return err
	}
	conn, err := l.AcceptUnix()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return notifyError(fmt.Sprintf("Client didn't connect in time (%v)", err))
	}
	defer conn.Close()
	stopConn := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stopConn()
	if err := conn.SetReadDeadline(time.Now().Add(JqueueConfirmTimeout)); err != nil {
		return err
	}
	// The client closes the connection once it has checked the job; any
	// byte it sends counts as well.
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil && !errors.Is(err, io.EOF) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return notifyError(fmt.Sprintf("Client failed to confirm notification (%v)", err))
	}
	return nil
}

// notifyError is a client that did not answer a notification, in Ganeti's
// words.
type notifyError string

func (e notifyError) Error() string { return string(e) }
