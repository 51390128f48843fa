package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// ganetiPorts are the TCP ports Ganeti's daemons listen on: noded, rapi,
// confd, mond, metad.
var ganetiPorts = []int{1811, 5080, 1814, 1815, 80}

// privateNetwork moves the calling goroutine's thread into a network
// namespace of its own with its loopback up, and keeps the goroutine on
// that thread until it ends (the thread then ends with it): sockets it
// opens and processes it starts are in that namespace, so that the test
// can hold well-known ports without touching the machine's. It skips the
// test when it cannot (not root).
func privateNetwork(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, for a private network namespace in which to hold Ganeti's ports")
	}
	runtime.LockOSThread() // never unlocked: the thread goes with the goroutine
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot make a network namespace here (%v)", err)
		}
		t.Fatalf("unshare(CLONE_NEWNET): %v", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("bringing lo up: %v", err)
	}
}

// TestDefaultsBesideGaneti: on a machine where Ganeti's daemons listen
// (their ports held by the test, in a private network namespace), jobqd
// starts with its default addresses and serves node RPC and RAPI on them
// (issue 19: the defaults were Ganeti's noded and rapi ports, and jobqd
// exited 1 on a Ganeti node).
func TestDefaultsBesideGaneti(t *testing.T) {
	testbin.Build(t) // before the namespace: go build may need the network
	privateNetwork(t)
	for _, p := range ganetiPorts {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatalf("holding Ganeti's port %d: %v", p, err)
		}
		defer l.Close()
	}
	for _, def := range []string{daemon.DefaultRPCAddr, daemon.DefaultRAPIAddr} {
		_, port, _ := net.SplitHostPort(def)
		for _, p := range ganetiPorts {
			if port == fmt.Sprint(p) {
				t.Fatalf("the default %s is Ganeti's port %d", def, p)
			}
		}
	}
	dir := t.TempDir()
	d := testbin.Start(t, dir, "--config", "", "--node-name", "node1") // every address its default
	r := testbin.Options{Env: []string{"JOBQ_SOCKET="}}.Jobq(t, "--data-dir", dir, "node", "list", "--json")
	var nodes []struct {
		Name, Address string
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &nodes) != nil || len(nodes) != 1 || nodes[0].Address != daemon.DefaultRPCAddr {
		t.Fatalf("node list: %+v", r)
	}
	// Node RPC and RAPI answer on the default ports.
	_, rpcPort, _ := net.SplitHostPort(daemon.DefaultRPCAddr)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+rpcPort, 10*time.Second)
	if err != nil {
		t.Fatalf("node RPC on its default port: %v\n%s", err, d.Logs())
	}
	c.Close()
	pem, err := os.ReadFile(filepath.Join(dir, "cluster", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	_, rapiPort, _ := net.SplitHostPort(daemon.DefaultRAPIAddr)
	// Dialled here, on the namespace's thread (an http.Client would dial
	// from another one, in the machine's namespace).
	raw, err := net.DialTimeout("tcp", "127.0.0.1:"+rapiPort, 10*time.Second)
	if err != nil {
		t.Fatalf("RAPI on its default port: %v\n%s", err, d.Logs())
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if _, err := io.WriteString(conn, "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatalf("RAPI: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("RAPI's answer to GET /version: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "2" {
		t.Errorf("GET /version: %d %q", resp.StatusCode, body)
	}

	// Ganeti's ports stay one flag away, and a taken one is a clear error
	// that writes nothing.
	dir2 := t.TempDir()
	_, err = testbin.StartErr(t, dir2, "--config", "", "--node-name", "node1", "--rpc-addr", ":1811")
	if err == nil || !strings.Contains(err.Error(), "cannot listen for node RPC on :1811") || !strings.Contains(err.Error(), "--rpc-addr") {
		t.Errorf("--rpc-addr :1811 with Ganeti's noded there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "cluster.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed start wrote its configuration: %v", err)
	}
}
