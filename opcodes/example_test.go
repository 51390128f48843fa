package opcodes_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jobq-dev/jobq/opcodes"
)

// Greet is an opcode a program embedding jobq might register.
type Greet struct {
	Name string `json:"name"`
}

func (g *Greet) Validate() error {
	if g.Name == "" {
		return opcodes.PrereqError("wrong_input", "Parameter 'name' must not be empty")
	}
	return nil
}

func (g *Greet) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	opcodes.LogInfo(env, "greeting %s", g.Name)
	return "hello " + g.Name, nil
}

type printEnv struct{}

func (printEnv) JobID() int64         { return 1 }
func (printEnv) NodeName() string     { return "node1" }
func (printEnv) Nodes() opcodes.Nodes { return nil }
func (printEnv) Log(msg string)       { fmt.Println("log:", msg) }

func Example() {
	reg := opcodes.Builtin()
	err := reg.Register(opcodes.Definition{
		ID:           "OP_GREET",
		New:          func() opcodes.Params { return &Greet{} },
		SummaryField: "name",
		Required:     []string{"name"},
	})
	if err != nil {
		panic(err)
	}
	input := json.RawMessage(`{"OP_ID": "OP_GREET", "name": "world"}`)
	fmt.Println(reg.Summary(input))
	p, err := reg.Prepare(input)
	if err != nil {
		panic(err)
	}
	res, _ := p.Exec(context.Background(), printEnv{})
	fmt.Println(res)

	_, err = reg.Prepare(json.RawMessage(`{"OP_ID": "OP_GREET", "name": ""}`))
	fmt.Println(err)
	// Output:
	// GREET(world)
	// log:  - INFO: greeting world
	// hello world
	// Parameter 'name' must not be empty
}
