package hostile

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// dialTLS opens a TLS connection to RAPI that the test drives by hand.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRAPISlowloris: HTTPS clients stuck before their TLS handshake, in
// the middle of their headers or of their body do not hold up others,
// over RAPI or LUXI. (jobqd cuts them after rapi.DefaultReadHeaderTimeout
// and DefaultBodyTimeout; package rapi's tests show that with short
// timeouts.)
func TestRAPISlowloris(t *testing.T) {
	d := start(t, t.TempDir())
	addr, cfg := d.rapi()
	for range 50 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.Write([]byte{0x16, 0x03})
	}
	for range 50 {
		c := dialTLS(t, addr, cfg)
		c.Write([]byte("GET /2/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: a"))
	}
	var slowBody []*tls.Conn
	for range 20 {
		c := dialTLS(t, addr, cfg)
		// (A resource that takes a body: the others refuse one at once.)
		c.Write([]byte("POST /2/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + basic(adminUser, adminPassword) +
			"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + slowStart))
		slowBody = append(slowBody, c)
	}

	for range 3 {
		if code, body := https(t, addr, cfg, "GET", "/version", nil, 0); code != 200 || body != "2\n" {
			t.Fatalf("GET /version: %d %q", code, body)
		}
		ops := `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]}`
		code, body := https(t, addr, cfg, "POST", "/2/jobs", strings.NewReader(ops), int64(len(ops)))
		if _, err := strconv.ParseInt(strings.TrimSpace(body), 10, 64); code != 200 || err != nil {
			t.Fatalf("POST /2/jobs: %d %q", code, body)
		}
		served(t, d.client())
	}
	// A slow body that finally arrives is answered.
	c := slowBody[0]
	c.Write([]byte(slowEnd + strings.Repeat(" ", 1000-len(slowStart+slowEnd))))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("slow body, finished: %d", resp.StatusCode)
	}
	d.alive()
}

// TestOversizedRAPIBody: a body over rapi.MaxBodySize (64 MiB) gets 413
// with Ganeti's error body, before it is read when its length is
// declared, at the limit when it is chunked; memory stays bounded and
// other clients are served.
func TestOversizedRAPIBody(t *testing.T) {
	d := start(t, t.TempDir())
	addr, cfg := d.rapi()
	const limit, size = 64 << 20, 65 << 20
	want := fmt.Sprintf(`{"code": 413, "message": "Request body larger than %d bytes", "explain": "Entity is too large"}`+"\n", limit)
	base := d.rss()

	for _, chunked := range []bool{false, true} {
		c := dialTLS(t, addr, cfg)
		hdr := "POST /2/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
			"Authorization: Basic " + basic(adminUser, adminPassword) + "\r\n"
		if chunked {
			hdr += "Transfer-Encoding: chunked\r\n\r\n"
		} else {
			hdr += fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
		}
		go func() {
			// Stops when jobqd closes the connection.
			if _, err := c.Write([]byte(hdr)); err != nil {
				return
			}
			chunk := bytes.Repeat([]byte(" "), 1<<20)
			for n := 0; n < size; n += len(chunk) {
				var err error
				if chunked {
					_, err = fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk)
				} else {
					_, err = c.Write(chunk)
				}
				if err != nil {
					return
				}
			}
		}()
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("chunked=%v: %v", chunked, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || string(b) != want {
			t.Errorf("chunked=%v: %d %q", chunked, resp.StatusCode, b)
		}
		// jobqd reads no more of it: the connection ends.
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			t.Errorf("chunked=%v: after the answer: %q", chunked, rest)
		}
		c.Close()
		if code, body := https(t, addr, cfg, "GET", "/version", nil, 0); code != 200 || body != "2\n" {
			t.Fatalf("GET /version after an oversized body: %d %q", code, body)
		}
	}
	grown := d.rss() - base
	t.Logf("jobqd RSS grew by %s over two oversized bodies", mib(grown))
	if grown > 4*limit {
		t.Errorf("RSS grew by %s, more than four times the body limit", mib(grown))
	}
	served(t, d.client())
	d.alive()
}

// The two halves of the slow clients' body.
const slowStart, slowEnd = `{"ops": [{"OP_ID": "OP_TEST_DELAY", `, `"duration": 0.001}]}`

func basic(user, password string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, password)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}
