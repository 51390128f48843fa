package luxi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
)

// BenchmarkCodec encodes a SubmitJob request as the client does, frames and
// decodes it as the server does (including the handler's UnmarshalArgs),
// then encodes the reply and decodes it as the client does.
func BenchmarkCodec(b *testing.B) {
	op := map[string]any{
		"OP_ID": "OP_TEST_DELAY", "duration": 0.01, "on_master": true, "on_nodes": []string{},
		"on_node_uuids": nil, "repeat": 0, "interruptible": false, "no_locks": true,
		"dry_run": nil, "debug_level": nil, "priority": 0, "depends": nil, "comment": nil,
		"reason": []any{},
	}
	args := []any{[]any{op}}
	e := getEncoder()
	defer putEncoder(e)
	var rd bytes.Reader
	br := bufio.NewReader(&rd)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		wire, err := encodeRequest("SubmitJob", args)
		if err != nil {
			b.Fatal(err)
		}
		rd.Reset(wire)
		br.Reset(&rd)
		msg, err := readMessage(br, buf, DefaultMaxMessageSize, nil)
		if err != nil {
			b.Fatal(err)
		}
		buf = msg
		req, err := decodeRequest(msg)
		if err != nil {
			b.Fatal(err)
		}
		var ops []json.RawMessage
		if err := req.UnmarshalArgs(&ops); err != nil || len(ops) != 1 {
			b.Fatal(err)
		}
		if err := e.reply(int64(20), nil); err != nil {
			b.Fatal(err)
		}
		res, err := decodeReply(bytes.TrimSuffix(e.buf.Bytes(), []byte{eom}))
		if err != nil || string(res) != "20" {
			b.Fatal(string(res), err)
		}
	}
}
