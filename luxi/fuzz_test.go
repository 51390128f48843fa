package luxi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary messages to the server's request
// decoder. It is seeded with every captured request (as the server sees
// it: the Python client's JSON and newline, without the terminator).
func FuzzDecodeRequest(f *testing.F) {
	for _, c := range loadCaptures(f) {
		f.Add(bytes.TrimSuffix(c.ReqRaw, []byte{eom}))
	}
	for _, s := range []string{
		`{bad json`, `[]`, `null`, `{"method":1,"args":[]}`, `{"method":"X","args":{}}`,
		`{"method":"X","args":[],"version":"v"}`, "{\"method\":\"\xff\",\"args\":[\"\x03\"]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		e := getEncoder()
		defer putEncoder(e)
		req, err := decodeRequest(msg)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RequestError", err)
			}
			// The reply is one well-formed message with a string result.
			if encErr := e.reply(nil, err); encErr != nil {
				t.Fatal(encErr)
			}
			checkOneMessage(t, e.buf.Bytes())
			var rep struct {
				Success bool
				Result  string
			}
			if err := json.Unmarshal(bytes.TrimSuffix(e.buf.Bytes(), []byte{eom}), &rep); err != nil || rep.Success {
				t.Fatalf("reply %q: %v", e.buf.Bytes(), err)
			}
			return
		}
		var args []json.RawMessage
		if err := json.Unmarshal(req.Args, &args); err != nil {
			t.Fatalf("Args %q is not an array: %v", req.Args, err)
		}
		// What the client encodes from the decoded call decodes the same.
		anyArgs := make([]any, len(args))
		for i, a := range args {
			anyArgs[i] = a
		}
		enc, err := encodeRequest(req.Method, anyArgs)
		if err != nil {
			t.Fatalf("encodeRequest: %v", err)
		}
		checkOneMessage(t, enc)
		req2, err := decodeRequest(bytes.TrimSuffix(enc, []byte{eom}))
		if err != nil {
			t.Fatalf("re-encoded request %q: %v", enc, err)
		}
		var a1, a2 bytes.Buffer
		if json.Compact(&a1, req.Args) != nil || json.Compact(&a2, req2.Args) != nil {
			t.Fatal("Compact failed")
		}
		if req2.Method != req.Method || !bytes.Equal(a1.Bytes(), a2.Bytes()) {
			t.Fatalf("round trip: %q %s -> %q %s", req.Method, req.Args, req2.Method, req2.Args)
		}
		// Echoing the arguments back is one well-formed message.
		if err := e.reply(req.Args, nil); err != nil {
			t.Fatal(err)
		}
		checkOneMessage(t, e.buf.Bytes())
	})
}

// checkOneMessage checks that b is one message: the terminator only at its end.
func checkOneMessage(t *testing.T, b []byte) {
	t.Helper()
	if i := bytes.IndexByte(b, eom); i != len(b)-1 {
		t.Fatalf("terminator at %d in %q", i, b)
	}
}
