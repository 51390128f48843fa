package hostile

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLUXIFloodLeavesRAPIServed (issue 16, finding 6): 20,200 idle LUXI
// connections used up jobqd's 20,000 descriptors and RAPI stopped
// answering. With jobqd's descriptor limit lowered to 256, 300 idle LUXI
// connections meet the socket's cap (a quarter of the limit): those over
// it are told why and closed, RAPI keeps answering, and once the flood
// ends LUXI clients are served again.
func TestLUXIFloodLeavesRAPIServed(t *testing.T) {
	d := start(t, t.TempDir())
	addr, cfg := d.rapi()
	lim := unix.Rlimit{Cur: 256, Max: 256}
	if err := unix.Prlimit(d.Pid(), unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatalf("lowering jobqd's descriptor limit: %v", err)
	}
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	refused := 0
	for range 300 {
		nc, err := net.Dial("unix", d.Socket())
		if err != nil {
			t.Fatalf("connecting to LUXI: %v", err)
		}
		flood = append(flood, nc)
	}
	// Those over the cap get an answer at once and are closed; the
	// others stay open and silent.
	for _, nc := range flood[64:] {
		nc.SetReadDeadline(time.Now().Add(time.Minute))
		b, err := io.ReadAll(nc)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a connection over the cap was neither answered nor closed within a minute")
		}
		if strings.Contains(string(b), "connections open on this socket, its limit") {
			refused++
		}
	}
	if refused < 300-64 {
		t.Fatalf("%d of the 236 connections over the cap were refused with an explanation", refused)
	}
	for range 3 {
		if code, body := https(t, addr, cfg, "GET", "/version", nil, 0); code != 200 || body != "2\n" {
			t.Fatalf("GET /version while LUXI is flooded: %d %q", code, body)
		}
		submitRAPI(t, addr, cfg)
	}
	if !strings.Contains(d.Logs(), "connection cap of this socket reached") {
		t.Errorf("no warning about the cap in jobqd's log")
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	// Served again once the flood is gone (its connections end as
	// jobqd notices them closed).
	deadline := time.Now().Add(time.Minute)
	for {
		c := d.dialRaw()
		c.write([]byte(`{"method": "QueryJobs", "args": [[1], ["id"]]}` + "\x03"))
		c.nc.SetReadDeadline(time.Now().Add(time.Minute))
		b, err := c.read()
		if err == nil && string(b) == `{"success":true,"result":[[1]]}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LUXI not served within a minute after the flood ended: %q %v", b, err)
		}
		c.nc.Close()
	}
	served(t, d.client())
	d.alive()
}
