package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The watchers' floor: the same number of connections and the same client
// as the watchers workload, answered at once by a bare server in its own
// process with no queue behind it (one goroutine per connection writing a
// ready-made answer). It is what the kernel and the Go runtime on this
// machine cost for the fan-out alone, so jobq's watcher latency can be read
// against it, as its throughput is read against the disk's limit.

// floorAnswer has the size of jobq's answer to the watchers.
var floorAnswer = []byte(`{"success":true,"result":[["success"],[]]}` + "\x03")

// watchFloor runs the bare server (this program with --fanout-server) on
// a socket in a temporary directory and measures n watchers against it,
// from the instant the server starts answering.
func watchFloor(n int) ([]time.Duration, error) {
	dir, err := os.MkdirTemp("", "jobq-bench-floor-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "sock")
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "--fanout-server", sock, "--watchers", strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	fail := func(err error) ([]time.Duration, error) {
		cmd.Process.Kill()
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w (%s)", err, msg)
		}
		return nil, fmt.Errorf("floor server: %w", err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "listening\n" {
		return fail(fmt.Errorf("did not start: %q %v", line, err))
	}
	var goErr error
	recv, replies, err := watchAll(sock, []byte("{}\x03"), n, func() { _, goErr = io.WriteString(stdin, "go\n") })
	if err != nil {
		return fail(err)
	}
	if goErr != nil {
		return fail(goErr)
	}
	line, err := out.ReadString('\n')
	if err != nil {
		return fail(err)
	}
	t0, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		return fail(fmt.Errorf("bad start time %q", line))
	}
	lat := make([]time.Duration, n)
	for i, t := range recv {
		if !bytes.Equal(replies[i], floorAnswer) {
			return fail(fmt.Errorf("watcher %d was answered %q", i, replies[i]))
		}
		lat[i] = t.Sub(time.Unix(0, t0))
	}
	return lat, nil
}

// fanoutServer is the bare server: it accepts n connections on sock, reads
// one request on each and, once all are in and "go" arrives on standard
// input, prints the time and answers all of them at once.
func fanoutServer(sock string, n int) error {
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("listening")
	start, finished := make(chan struct{}), make(chan struct{})
	var waiting sync.WaitGroup
	waiting.Add(n)
	go func() {
		for range n {
			c, err := l.Accept()
			if err != nil {
				fmt.Fprintln(os.Stderr, "accept:", err)
				os.Exit(1)
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				_, err := r.ReadSlice(0x03)
				waiting.Done()
				if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
					return
				}
				<-start
				c.Write(floorAnswer)
				<-finished
			}()
		}
	}()
	in := bufio.NewReader(os.Stdin)
	if line, err := in.ReadString('\n'); err != nil || line != "go\n" {
		return fmt.Errorf("expected go on standard input, got %q %v", line, err)
	}
	waiting.Wait()
	t0 := time.Now()
	close(start)
	fmt.Println(t0.UnixNano())
	io.Copy(io.Discard, in) // until the measuring side is done
	close(finished)
	return nil
}
