package server_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/opcodes"
	"github.com/jobq-dev/jobq/server"
)

// TestOpcodeConflicts: a program whose opcodes cannot be registered stops
// at start, exit 1, with a sentence naming the opcode and what to fix,
// before it touches the data directory.
func TestOpcodeConflicts(t *testing.T) {
	for _, tc := range []struct {
		name string
		defs []opcodes.Definition
		want string
	}{
		{"built-in ID", []opcodes.Definition{{ID: "OP_TEST_DELAY", New: func() opcodes.Params { return nil }}},
			"jobqd: this program's own opcodes: opcode OP_TEST_DELAY is already registered (fix its server.Options.Opcodes)\n"},
		{"twice", []opcodes.Definition{{ID: "OP_X", New: func() opcodes.Params { return nil }}, {ID: "OP_X", New: func() opcodes.Params { return nil }}},
			"jobqd: this program's own opcodes: opcode OP_X is already registered (fix its server.Options.Opcodes)\n"},
		{"no New", []opcodes.Definition{{ID: "OP_Y"}},
			`jobqd: this program's own opcodes: opcode definition "OP_Y" needs an ID starting with OP_ and a New function (fix its server.Options.Opcodes)` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var stdout, stderr bytes.Buffer
			code := server.Main(context.Background(), []string{"--data-dir", dir, "--config", "/dev/null"},
				server.Options{Opcodes: tc.defs, Stdout: &stdout, Stderr: &stderr})
			if code != 1 || stderr.String() != tc.want {
				t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr.String(), tc.want)
			}
			if strings.Contains(stdout.String(), "ready") {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}
