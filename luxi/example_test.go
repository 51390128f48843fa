package luxi_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/jobq-dev/jobq/luxi"
)

func ExampleClient() {
	dir, err := os.MkdirTemp("", "luxi-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "socket", "jobq-query")

	// A server with a toy handler.
	l, err := luxi.ListenUnix(path, 0o660)
	if err != nil {
		log.Fatal(err)
	}
	drained := false
	srv := &luxi.Server{Handler: luxi.HandlerFunc(func(ctx context.Context, req *luxi.Request) (any, error) {
		switch req.Method {
		case "SetDrainFlag":
			if err := req.UnmarshalArgs(&drained); err != nil {
				return nil, err
			}
			return true, nil
		case "SubmitJob":
			if drained {
				return nil, luxi.NewError("GenericError", "Queue drained")
			}
			return 20, nil
		}
		return nil, luxi.UnknownMethod(req.Method)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Shutdown(context.Background())
		<-served
	}()

	// A client calling it.
	c, err := luxi.Dial(path)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	ops := []map[string]any{{"OP_ID": "OP_TEST_DELAY", "duration": 0.01}}

	id, err := c.Call(ctx, "SubmitJob", ops)
	fmt.Println(string(id), err)
	c.Call(ctx, "SetDrainFlag", true)
	_, err = c.Call(ctx, "SubmitJob", ops)
	fmt.Println(err)
	_, err = c.Call(ctx, "NoSuchMethod")
	fmt.Println(err)
	// Output:
	// 20 <nil>
	// GenericError: Queue drained
	// RequestError: Failed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: "NoSuchMethod"
}
