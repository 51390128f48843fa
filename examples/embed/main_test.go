package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// start builds this program and runs it as a one-node cluster, as the
// package comment says, and returns a client of its socket once it logged
// "jobqd ready".
func start(t *testing.T) *client.Client {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "jobqd-embed")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--data-dir", dir, "--node-name", "node1", "--rapi-addr", "", "--rpc-addr", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan bool, 1)
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "jobqd ready") {
				ready <- true
				break
			}
		}
		ready <- false
		for sc.Scan() {
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the program exited before it was ready:\n%s", logs.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the program did not log \"jobqd ready\" within a minute")
	}
	c, err := client.Dial(context.Background(), client.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFileChecksum(t *testing.T) {
	c := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	data := []byte(strings.Repeat("a backup worth verifying\n", 1000))
	path := filepath.Join(t.TempDir(), "backup.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := c.SubmitJob(ctx, &FileChecksum{Path: path, Algorithm: "sha256"})
	if err != nil {
		t.Fatal(err)
	}
	var logged []string
	status, err := c.WatchJob(ctx, id, func(e client.LogEntry) error {
		logged = append(logged, string(e.Message))
		return nil
	})
	if err != nil || status != client.StatusSuccess {
		t.Fatalf("job %d: %s, %v", id, status, err)
	}
	if len(logged) == 0 || !strings.Contains(logged[0], "computing the sha256 digest of "+path) {
		t.Errorf("log: %q", logged)
	}
	job, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Digest string `json:"digest"`
		Bytes  int64  `json:"bytes"`
	}
	if err := json.Unmarshal(job.OpResult[0], &res); err != nil {
		t.Fatalf("result %s: %v", job.OpResult[0], err)
	}
	sum := sha256.Sum256(data)
	if res.Digest != hex.EncodeToString(sum[:]) || res.Bytes != int64(len(data)) {
		t.Errorf("result %s, want digest %x of %d bytes", job.OpResult[0], sum, len(data))
	}
	if job.Summary[0] != "FILE_CHECKSUM("+path+")" {
		t.Errorf("summary %q", job.Summary[0])
	}
}

// TestFileChecksumRefusals: bad parameters and a missing file fail the
// opcode with OpPrereqError, naming what is wrong.
func TestFileChecksumRefusals(t *testing.T) {
	c := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		op   *FileChecksum
		want string
	}{
		{&FileChecksum{Path: "backup.tar", Algorithm: "sha256"}, `Parameter 'path' must be an absolute path, not \"backup.tar\"`},
		{&FileChecksum{Path: "/etc/hostname", Algorithm: "md5"}, `Parameter 'algorithm' must be sha256 or sha512, not \"md5\"`},
		{&FileChecksum{Path: missing, Algorithm: "sha512"}, "Cannot read " + missing + " on node1: no such file or directory"},
		{&FileChecksum{Path: t.TempDir(), Algorithm: "sha512"}, "is not a regular file"},
	} {
		id, err := c.SubmitJob(ctx, tc.op)
		if err != nil {
			t.Fatal(err)
		}
		if status, err := c.WatchJob(ctx, id, nil); err != nil || status != client.StatusError {
			t.Fatalf("%+v: job %d: %s, %v; want error", tc.op, id, status, err)
		}
		job, err := c.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r := string(job.OpResult[0]); !strings.Contains(r, `["OpPrereqError",[`) || !strings.Contains(r, tc.want) {
			t.Errorf("%+v: result %s, want OpPrereqError with %s", tc.op, r, tc.want)
		}
	}
}
