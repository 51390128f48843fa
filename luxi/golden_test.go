package luxi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobq-dev/jobq/internal/ganetiref"
)

// The captures are Ganeti's testdata/ganeti-reference/luxi-*.txt, read by
// ganetiref: LUXI traffic between Ganeti 3.0.2's Python client and its
// luxid.

// loadCaptures returns every LUXI exchange (all captures but the socat
// transcript).
func loadCaptures(t testing.TB) []ganetiref.Capture {
	t.Helper()
	cs := ganetiref.LoadCaptures(t)
	if len(cs) < 30 {
		t.Fatalf("found only %d captures in %s", len(cs), ganetiref.Dir(t))
	}
	return cs
}

// oneMessage splits wire bytes holding exactly one message.
func oneMessage(t *testing.T, raw []byte) []byte {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(raw))
	msg, err := readMessage(br, nil, DefaultMaxMessageSize, nil)
	if err != nil {
		t.Fatalf("framing %q: %v", raw, err)
	}
	if _, err := readMessage(br, nil, DefaultMaxMessageSize, nil); err != io.EOF {
		t.Fatalf("framing %q: want exactly one message, got more (%v)", raw, err)
	}
	return msg
}

func decodeAny(t *testing.T, data []byte, useNumber bool) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	if useNumber {
		d.UseNumber()
	}
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return v
}

// hasObject reports whether v (decoded JSON) contains an object anywhere.
func hasObject(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return true
	case []any:
		for _, e := range v {
			if hasObject(e) {
				return true
			}
		}
	}
	return false
}

// TestGoldenRequests checks, for every capture, that the server decodes the
// Python client's request bytes into the method and args shown decoded, and
// that our client's encoding of the same call decodes to the same request.
func TestGoldenRequests(t *testing.T) {
	for _, c := range loadCaptures(t) {
		t.Run(c.Name, func(t *testing.T) {
			if !bytes.HasSuffix(c.ReqRaw, []byte("\n\x03")) {
				t.Errorf("capture request does not end in Python's \\n\\x03: %q", c.ReqRaw)
			}
			want := c.ReqDecoded.(map[string]any)
			if diff := cmp.Diff(want, decodeAny(t, oneMessage(t, c.ReqRaw), false)); diff != "" {
				t.Fatalf("capture's raw and decoded requests differ (-decoded +raw):\n%s", diff)
			}

			// Server side.
			req, err := decodeRequest(oneMessage(t, c.ReqRaw))
			if err != nil {
				t.Fatalf("decodeRequest: %v", err)
			}
			if req.Method != want["method"] {
				t.Errorf("Method = %q, want %q", req.Method, want["method"])
			}
			if diff := cmp.Diff(want["args"], decodeAny(t, req.Args, false)); diff != "" {
				t.Errorf("Args differ (-want +got):\n%s", diff)
			}
			if req.Version == nil || *req.Version != ProtocolVersion {
				t.Errorf("Version = %v, want %d", req.Version, ProtocolVersion)
			}

			// Client side: the same method and args, as Go values.
			enc, err := encodeRequest(req.Method, want["args"].([]any))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, decodeAny(t, oneMessage(t, enc), false)); diff != "" {
				t.Errorf("client request differs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGoldenReplies checks, for every capture, that our reply encoder
// produces luxid's reply bytes exactly, and that our client decodes them.
//
// What is compared byte for byte: (1) every reply, encoding the captured
// result as a json.RawMessage (results with Haskell-formatted floats such
// as 1.0e-2 or with objects, whose key order is luxid's, can only be
// reproduced this way); (2) additionally, for results without JSON objects,
// the result decoded into Go values (numbers as json.Number) and encoded
// again; (3) failure replies built from Error values or UnknownMethod.
func TestGoldenReplies(t *testing.T) {
	var fromValues int
	for _, c := range loadCaptures(t) {
		t.Run(c.Name, func(t *testing.T) {
			msg := oneMessage(t, c.RepRaw)
			if diff := cmp.Diff(c.RepDecoded, decodeAny(t, msg, false)); diff != "" {
				t.Fatalf("capture's raw and decoded replies differ (-decoded +raw):\n%s", diff)
			}
			var rep struct {
				Success bool
				Result  json.RawMessage
			}
			if err := json.Unmarshal(msg, &rep); err != nil {
				t.Fatal(err)
			}
			e := getEncoder()
			defer putEncoder(e)
			check := func(what string, result any, err error) {
				t.Helper()
				if encErr := e.reply(result, err); encErr != nil {
					t.Fatalf("%s: %v", what, encErr)
				}
				if got := e.buf.Bytes(); !bytes.Equal(got, c.RepRaw) {
					t.Errorf("%s:\n got %q\nwant %q", what, got, c.RepRaw)
				}
			}

			// The client's view of the reply.
			result, callErr := decodeReply(msg)

			if rep.Success {
				check("raw result", json.RawMessage(rep.Result), nil)
				if v := decodeAny(t, rep.Result, true); !hasObject(v) {
					check("result as Go values", v, nil)
					fromValues++
				}
				if callErr != nil || !bytes.Equal(result, rep.Result) {
					t.Errorf("decodeReply = %s, %v; want %s", result, callErr, rep.Result)
				}
				return
			}

			var le *Error
			if !errors.As(callErr, &le) {
				t.Fatalf("decodeReply error = %v, want *Error", callErr)
			}
			if c.ClientErr != "" && le.Error() != c.ClientErr {
				t.Errorf("client error %q, Ganeti's client says %q", le.Error(), c.ClientErr)
			}
			switch v := decodeAny(t, rep.Result, true).(type) {
			case string:
				// luxid's answer to a request it cannot parse.
				req, err := decodeRequest(oneMessage(t, c.ReqRaw))
				if err != nil {
					t.Fatal(err)
				}
				check("UnknownMethod", nil, UnknownMethod(req.Method))
				check("wrapped UnknownMethod", nil, fmt.Errorf("x: %w", UnknownMethod(req.Method)))
				if le.Class != "RequestError" || len(le.Args) != 1 || le.Args[0] != v {
					t.Errorf("client error = %#v, want RequestError [%q]", le, v)
				}
			case []any:
				args := v[1].([]any)
				check("Error", nil, NewError(v[0].(string), args...))
				if args[0] == "Queue drained" {
					// The shape every other error takes.
					check("plain error", nil, errors.New("Queue drained"))
				}
				if diff := cmp.Diff(c.RepDecoded.(map[string]any)["result"], []any{le.Class, le.Args}); diff != "" {
					t.Errorf("client error differs (-want +got):\n%s", diff)
				}
			default:
				t.Fatalf("unexpected failure result %#v", v)
			}
		})
	}
	if fromValues < 10 {
		t.Errorf("only %d replies were compared from Go values", fromValues)
	}
}

// TestGoldenSocatConversation replays the captured conversation through a
// real Server over a Unix socket: a raw connection sends the Python
// client's bytes (json + "\n\x03"), a handler answers with the captured
// results, and the replies must be luxid's bytes exactly.
func TestGoldenSocatConversation(t *testing.T) {
	// The transcript is parsed by ganetiref.ParseSocat: each message exactly
	// length bytes, offsets following on, 0x03 shown as '.', requests and
	// replies alternating.
	reqs, reps := ganetiref.LoadConversation(t)
	if len(reqs) != 10 || len(reps) != len(reqs) {
		t.Fatalf("got %d requests and %d replies, want 10 each", len(reqs), len(reps))
	}

	// The handler answers call i with the result of captured reply i,
	// after checking that it got captured request i.
	var (
		mu   sync.Mutex
		next int
	)
	h := HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		mu.Lock()
		i := next
		next++
		mu.Unlock()
		if i >= len(reqs) {
			return nil, fmt.Errorf("unexpected call %d", i)
		}
		var want, args any
		if err := json.Unmarshal(bytes.TrimSuffix(reqs[i], []byte{eom}), &want); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(req.Args, &args); err != nil {
			return nil, err
		}
		w := want.(map[string]any)
		if req.Method != w["method"] || !cmp.Equal(args, w["args"]) {
			return nil, fmt.Errorf("call %d: got %s %s, want %v", i, req.Method, req.Args, want)
		}
		var rep struct{ Result json.RawMessage }
		if err := json.Unmarshal(bytes.TrimSuffix(reps[i], []byte{eom}), &rep); err != nil {
			return nil, err
		}
		return rep.Result, nil
	})

	t.Run("lockstep", func(t *testing.T) {
		mu.Lock()
		next = 0
		mu.Unlock()
		_, path := startServer(t, h)
		c := dialRaw(t, path)
		for i := range reqs {
			c.write(reqs[i])
			if got := c.readRaw(); !bytes.Equal(got, reps[i]) {
				t.Errorf("reply %d:\n got %q\nwant %q", i, got, reps[i])
			}
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		mu.Lock()
		next = 0
		mu.Unlock()
		_, path := startServer(t, h)
		c := dialRaw(t, path)
		c.write(bytes.Join(reqs, nil)) // a few KiB: fits the socket buffer
		for i := range reps {
			if got := c.readRaw(); !bytes.Equal(got, reps[i]) {
				t.Errorf("reply %d:\n got %q\nwant %q", i, got, reps[i])
			}
		}
	})
}

// rawConn is a test client speaking bytes.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, path string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next message without its terminator, failing the test
// when none comes within a minute (a regression must not hang the run).
func (c *rawConn) read() ([]byte, error) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(time.Minute))
	defer c.nc.SetReadDeadline(time.Time{})
	msg, err := readMessage(c.br, nil, DefaultMaxMessageSize, nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("no reply within a minute")
	}
	return msg, err
}

// readRaw returns the next message with its terminator.
func (c *rawConn) readRaw() []byte {
	c.t.Helper()
	msg, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return append(msg, eom)
}

// call sends msg the way Ganeti's Python client does and returns the reply
// without its terminator.
func (c *rawConn) call(msg string) string {
	c.t.Helper()
	c.write([]byte(msg + "\n\x03"))
	rep, err := c.read()
	if err != nil {
		c.t.Fatalf("reading reply to %s: %v", msg, err)
	}
	return string(rep)
}
