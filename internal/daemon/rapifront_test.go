package daemon

import (
	"io"
	"net"
	"testing"
)

// TestReadRelayed: a relayed RAPI connection starts with the client's
// address; the bytes after it are the client's, and a connection without
// a valid address is refused.
func TestReadRelayed(t *testing.T) {
	for _, tc := range []struct {
		sent, addr, rest string
		ok               bool
	}{
		{"192.0.2.7:4321\n\x16\x03\x01hello", "192.0.2.7:4321", "\x16\x03\x01hello", true},
		{"[2001:db8::1]:80\nGET", "[2001:db8::1]:80", "GET", true},
		{"not an address\nGET", "", "", false},
		{"192.0.2.7\nGET", "", "", false},
		{"", "", "", false},
	} {
		a, b := net.Pipe()
		go func() {
			io.WriteString(a, tc.sent)
			a.Close()
		}()
		c, err := readRelayed(b)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.sent, err, tc.ok)
			b.Close()
			continue
		}
		if err != nil {
			b.Close()
			continue
		}
		if got := c.RemoteAddr().String(); got != tc.addr {
			t.Errorf("%q: remote address %q, want %q", tc.sent, got, tc.addr)
		}
		rest, _ := io.ReadAll(c)
		if string(rest) != tc.rest {
			t.Errorf("%q: the client's bytes %q, want %q", tc.sent, rest, tc.rest)
		}
		c.Close()
	}
}
