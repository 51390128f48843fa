package noderpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// pathExec runs a declared opcode's program on the node (POST /v1/exec):
// the answer streams one JSON ExecEvent per line as the program writes
// its output, then a last event with Done set.
const pathExec = "/v1/exec"

// maxExecBody bounds an exec request (the opcode's input is its stdin).
const maxExecBody = 8 << 20

// ExecRequest runs a program on the node (internal/declared checks and
// runs it; internal/execute contains it).
type ExecRequest struct {
	JobID     int64         `json:"job_id"`
	OpIndex   int           `json:"op_index"`
	Attempt   int           `json:"attempt"`
	OpID      string        `json:"op_id"`
	Path      string        `json:"path"`
	Args      []string      `json:"args"`
	Env       []string      `json:"env"`
	Stdin     []byte        `json:"stdin"`
	User      string        `json:"user,omitempty"`
	Timeout   time.Duration `json:"timeout"`
	KillGrace time.Duration `json:"kill_grace"`
	// Epoch is the calling master's (see CommandRequest): a node that
	// knows a newer one refuses the call and stops the program when it
	// learns of one.
	Epoch int64 `json:"epoch,omitempty"`
}

// ExecEvent is one line of an exec answer: an output line (Stream,
// Line), or the end (Done, with Result or Error).
type ExecEvent struct {
	Stream string          `json:"stream,omitempty"`
	Line   string          `json:"line,omitempty"`
	Done   bool            `json:"done,omitempty"`
	Result json.RawMessage `json:"result,omitempty"` // the handler's result, as JSON
	Error  *Error          `json:"error,omitempty"`
}

// ExecHandler is implemented by a Handler that runs programs. Exec
// calls line for each output line and returns the result (encoded as
// JSON in the last event).
type ExecHandler interface {
	Exec(ctx context.Context, req *ExecRequest, line func(stream, text string)) (any, error)
}

// serveExec answers an exec call: an error before any output as any
// call's error; after it, as the last event.
func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	eh, ok := s.h.(ExecHandler)
	if !ok {
		writeJSON(w, http.StatusNotFound, &Error{Code: CodeBadRequest, Message: "this node does not run programs"})
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, &Error{Code: CodeBadRequest, Message: "node RPC calls use POST"})
		return
	}
	body, err := readBody(w, r, maxExecBody, smallBodyTimeout)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("cannot read the request: %v", err)})
		return
	}
	var req ExecRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("the request is not valid JSON: %v", err)})
		return
	}
	rc := http.NewResponseController(w)
	var (
		mu      sync.Mutex
		started bool
		broken  bool
	)
	send := func(ev *ExecEvent) {
		if broken {
			return
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
		b, _ := json.Marshal(ev)
		if _, err := w.Write(append(b, '\n')); err != nil {
			broken = true // the caller went away; its context ends the run
			return
		}
		rc.Flush()
	}
	res, err := eh.Exec(r.Context(), &req, func(stream, text string) {
		mu.Lock()
		defer mu.Unlock()
		send(&ExecEvent{Stream: stream, Line: text})
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil && !started {
		s.answerError(w, r, err)
		return
	}
	ev := &ExecEvent{Done: true}
	if err != nil {
		e := &Error{Code: CodeInternal, Message: err.Error()}
		var ne *Error
		if errors.As(err, &ne) {
			e.Code, e.Epoch = ne.Code, ne.Epoch
		}
		ev.Error = e
	} else if ev.Result, err = json.Marshal(res); err != nil {
		ev.Error = &Error{Code: CodeInternal, Message: fmt.Sprintf("cannot encode the result: %v", err)}
	}
	send(ev)
}

// Exec runs a program on the node at addr, calling line for each line
// of its output as it arrives, and decodes the result into res.
func (c *Client) Exec(ctx context.Context, addr string, req *ExecRequest, line func(stream, text string), res any) error {
	if c.joinOnly {
		return fmt.Errorf("a join client cannot run programs on node at %s", addr)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("cannot encode the exec request for node at %s: %w", addr, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+pathExec, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot reach node at %s: %w", addr, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return abandoned("exec", addr, ctxErr)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach node at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Code != "" {
			return &e
		}
		return fmt.Errorf("node at %s answered the exec call with %s: %s", addr, resp.Status, snippet(data))
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && err == nil {
			var ev ExecEvent
			if jerr := json.Unmarshal(b, &ev); jerr != nil {
				return fmt.Errorf("node at %s sent a malformed exec event: %w", addr, jerr)
			}
			if ev.Done {
				if ev.Error != nil {
					return ev.Error
				}
				if res != nil {
					if err := json.Unmarshal(ev.Result, res); err != nil {
						return fmt.Errorf("node at %s sent a malformed exec result: %w", addr, err)
					}
				}
				return nil
			}
			if line != nil {
				line(ev.Stream, ev.Line)
			}
			continue
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return abandoned("exec", addr, ctxErr)
			}
			return fmt.Errorf("node at %s stopped answering the exec call before its end: %v", addr, err)
		}
	}
}

// OutputRequest asks for the output files a node kept of a job's
// declared opcodes (POST /v1/output).
type OutputRequest struct {
	JobID int64 `json:"job_id"`
}

// OutputFile is one output file: its name in the job's directory
// ("op0-attempt1.log") and its contents (the end of it, when larger than
// MaxOutputReply over all files: Truncated says how much was left out).
type OutputFile struct {
	Name      string `json:"name"`
	Data      []byte `json:"data"`
	Truncated int64  `json:"truncated,omitempty"`
}

// OutputReply is the files, in name order.
type OutputReply struct {
	Files []OutputFile `json:"files"`
}

// MaxOutputReply bounds the bytes of one output reply.
const MaxOutputReply = 64 << 20

// OutputHandler is implemented by a Handler that keeps program output.
type OutputHandler interface {
	Output(ctx context.Context, req *OutputRequest) (*OutputReply, error)
}

// Output asks the node at addr for the output files of a job.
func (c *Client) Output(ctx context.Context, addr string, req *OutputRequest) (*OutputReply, error) {
	return call[OutputReply](ctx, c, addr, pathOutput, req)
}
