package hostile

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLimitFlags: jobqd's flags for the limits reach what they limit: a
// job over --max-job-opcodes is refused naming the limit, and a LUXI
// connection over --luxi-max-conns is answered so and closed.
func TestLimitFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobq")
	d := start(t, dir, "--max-job-opcodes", "2", "--luxi-max-conns", "2", "--rpc-max-conns", "8", "--rapi-max-conns", "8")
	c := d.client()
	op := map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}
	_, err := c.Call(context.Background(), "SubmitJob", []any{op, op, op})
	if err == nil || !strings.Contains(err.Error(), "more than the limit of 2 (max_ops_per_job)") {
		t.Fatalf("a job of three opcodes under --max-job-opcodes 2: %v", err)
	}
	served(t, c) // the client's one connection
	// A second connection fits, a third is over the cap.
	second, err := net.Dial("unix", d.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	third, err := net.Dial("unix", d.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 512)
	n, _ := third.Read(buf)
	if !strings.Contains(string(buf[:n]), "jobqd has 2 connections open on this socket, its limit") {
		t.Fatalf("the third connection under --luxi-max-conns 2 read %q", buf[:n])
	}
}
