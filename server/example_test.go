package server_test

import (
	"context"
	"fmt"
	"io"

	"github.com/jobq-dev/jobq/opcodes"
	"github.com/jobq-dev/jobq/server"
)

// Hello is an opcode of a program's own: it logs a greeting.
type Hello struct {
	Name string `json:"name"`
}

func (h *Hello) Validate() error {
	if h.Name == "" {
		return opcodes.PrereqError("wrong_input", "Parameter 'name' must not be empty")
	}
	return nil
}

func (h *Hello) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	opcodes.LogInfo(env, "hello %s", h.Name)
	return "hello " + h.Name, nil
}

// A program's main function: jobqd, flags and all, with OP_HELLO. Build it
// and run it in place of jobqd on every node; see examples/embed for a
// complete program with its test.
func Example() {
	hello := opcodes.Definition{
		ID:           "OP_HELLO",
		New:          func() opcodes.Params { return &Hello{} },
		SummaryField: "name",
		Required:     []string{"name"},
	}
	// In main: server.Run(server.Options{Opcodes: []opcodes.Definition{hello}})
	code := server.Main(context.Background(), []string{"--version"}, server.Options{Opcodes: []opcodes.Definition{hello}, Stdout: io.Discard})
	fmt.Println("exit", code)
	// Output: exit 0
}
