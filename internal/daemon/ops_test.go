package daemon

// Tests of what the operating system's service manager sees: the sd_notify
// datagram (sdnotify.go) and the socket group (socketgroup.go).

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

// notifySocket listens for sd_notify datagrams at a path that $NOTIFY_SOCKET
// names for the rest of the test, and returns a function that reads the
// next one.
func notifySocket(t *testing.T, name string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv(NotifySocketEnv, name)
	return func() string {
		t.Helper()
		// The deadline only turns a missing datagram into a failure.
		c.SetReadDeadline(time.Now().Add(time.Minute))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifySendsOneDatagram(t *testing.T) {
	next := notifySocket(t, filepath.Join(t.TempDir(), "notify"))
	for _, state := range []string{"READY=1", "STOPPING=1\nSTATUS=stopping"} {
		sent, err := Notify(state)
		if !sent || err != nil {
			t.Fatalf("Notify(%q) = %v, %v", state, sent, err)
		}
		if got := next(); got != state {
			t.Errorf("datagram %q, want %q", got, state)
		}
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	next := notifySocket(t, fmt.Sprintf("@jobq-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if sent, err := Notify("READY=1"); !sent || err != nil {
		t.Fatalf("Notify = %v, %v", sent, err)
	}
	if got := next(); got != "READY=1" {
		t.Errorf("datagram %q", got)
	}
}

func TestNotifyWithoutServiceManager(t *testing.T) {
	t.Setenv(NotifySocketEnv, "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Errorf("Notify without $NOTIFY_SOCKET = %v, %v", sent, err)
	}
	t.Setenv(NotifySocketEnv, "vsock:2:9999")
	if _, err := Notify("READY=1"); err == nil || !strings.Contains(err.Error(), "not a unix socket path") {
		t.Errorf("Notify to vsock: %v", err)
	}
	t.Setenv(NotifySocketEnv, filepath.Join(t.TempDir(), "nobody-listens"))
	if sent, err := Notify("READY=1"); sent || err == nil {
		t.Errorf("Notify to a missing socket = %v, %v", sent, err)
	}
}

// TestReadyNotificationMeansSocketAccepts: READY=1 sent from the Ready
// hook (as jobqd does) arrives when the LUXI socket already accepts calls.
func TestReadyNotificationMeansSocketAccepts(t *testing.T) {
	dir := t.TempDir()
	next := notifySocket(t, filepath.Join(dir, "notify"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{DataDir: dir, NodeName: "n1", RAPIAddr: RAPIOff, ShutdownTimeout: time.Second,
			Logger: slog.New(slog.DiscardHandler),
			Ready: func() {
				if _, err := Notify("READY=1"); err != nil {
					t.Error(err)
				}
			}})
	}()
	if got := next(); got != "READY=1" {
		t.Fatalf("datagram %q", got)
	}
	c, err := luxi.Dial(SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, "QueryConfigValues", []string{"drain_flag"}); err != nil {
		t.Errorf("call after READY=1: %v", err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// otherGroup returns a group this process may give its files to, other than
// its own: any for root, else one of its supplementary groups.
func otherGroup(t *testing.T) *user.Group {
	t.Helper()
	if os.Geteuid() == 0 {
		for _, name := range []string{"nogroup", "daemon", "users", "bin"} {
			if g, err := user.LookupGroup(name); err == nil && g.Gid != strconv.Itoa(os.Getegid()) {
				return g
			}
		}
	}
	gids, _ := os.Getgroups()
	for _, gid := range gids {
		if gid != os.Getegid() {
			if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
				return g
			}
		}
	}
	t.Skip("no group other than the process's own to give the socket to")
	return nil
}

func TestSocketGroup(t *testing.T) {
	g := otherGroup(t)
	dir := t.TempDir()
	dirMode, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(t.TempDir(), "extra.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- Run(ctx, Options{DataDir: dir, NodeName: "n1", RAPIAddr: RAPIOff, ShutdownTimeout: time.Second,
			LUXISockets: []string{extra}, SocketGroup: g.Name,
			Logger: slog.New(slog.DiscardHandler), Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	for p, mode := range map[string]os.FileMode{
		SocketPath(dir): 0o660, extra: 0o660,
		dir: dirMode.Mode().Perm(), filepath.Dir(SocketPath(dir)): 0o750, // groups change, modes do not
	} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if gid := fi.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != g.Gid {
			t.Errorf("%s: group %d, want %s (%s)", p, gid, g.Gid, g.Name)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSocketGroupMissingIsAWarning(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	err := Run(ctx, Options{DataDir: dir, NodeName: "n1", RAPIAddr: RAPIOff, ShutdownTimeout: time.Second,
		SocketGroup: "jobq-no-such-group-x", Logger: slog.New(slog.NewTextHandler(&logs, nil)), Ready: cancel})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="the socket group does not exist: only the socket's owner can use it" group=jobq-no-such-group-x`) {
		t.Errorf("logs:\n%s", logs.String())
	}
}
