package noderpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// execHandler is a fakeHandler that runs programs: it sends lines, waits
// for the test between them, and fails as told.
type execHandler struct {
	*fakeHandler
	step     chan struct{} // one value per line to send
	failAt   int           // before line failAt (0: never)
	refuse   error         // returned before any line
	canceled chan struct{}
	entered  chan struct{} // gets a value (if room) as a call starts
}

func (h *execHandler) Exec(ctx context.Context, req *ExecRequest, line func(stream, text string)) (any, error) {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	if h.refuse != nil {
		return nil, h.refuse
	}
	for i := 1; i <= 3; i++ {
		select {
		case <-h.step:
		case <-ctx.Done():
			close(h.canceled)
			return nil, ctx.Err()
		}
		if i == h.failAt {
			return nil, &Error{Code: CodeStaleEpoch, Message: "stopped", Epoch: 9}
		}
		line(Stdout, fmt.Sprintf("%s line %d", req.OpID, i))
	}
	return map[string]int{"lines": 3}, nil
}

const Stdout = "stdout"

func TestExecStreams(t *testing.T) {
	cert := newTestCert(t, "node1")
	h := &execHandler{fakeHandler: newFakeHandler(), step: make(chan struct{}, 3), canceled: make(chan struct{})}
	// Every wait of this test ends: the calls have a deadline.
	bg, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	_, addr, _ := startServer(t, cert, h)
	c := newTestClient(t, cert)

	// Each line arrives while the handler still runs: the next line is
	// allowed only once the previous one was received.
	h.step <- struct{}{}
	var got []string
	var res struct{ Lines int }
	err := c.Exec(bg, addr, &ExecRequest{OpID: "OP_X"}, func(stream, text string) {
		got = append(got, stream+":"+text)
		if len(got) < 3 {
			h.step <- struct{}{}
		}
	}, &res)
	if err != nil || res.Lines != 3 || strings.Join(got, ",") != "stdout:OP_X line 1,stdout:OP_X line 2,stdout:OP_X line 3" {
		t.Fatalf("%v %+v %q", err, res, got)
	}

	// An error after some lines arrives as the last event, code kept.
	h.failAt = 2
	h.step <- struct{}{}
	h.step <- struct{}{}
	err = c.Exec(bg, addr, &ExecRequest{OpID: "OP_Y"}, nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeStaleEpoch || e.Epoch != 9 {
		t.Fatalf("error after lines: %#v", err)
	}

	// An error before any line is the call's error.
	h.refuse = &Error{Code: CodeRefused, Message: "Program '/x' is not allowed"}
	err = c.Exec(bg, addr, &ExecRequest{}, nil, nil)
	if !errors.As(err, &e) || e.Code != CodeRefused || e.Message != "Program '/x' is not allowed" {
		t.Fatalf("refusal: %#v", err)
	}

	// The caller going away cancels the handler's context.
	h.refuse, h.failAt = nil, 0
	h.entered = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(bg)
	h2done := make(chan error, 1)
	go func() { h2done <- c.Exec(ctx, addr, &ExecRequest{}, nil, nil) }()
	<-h.entered
	cancel()
	<-h.canceled
	if err := <-h2done; err == nil || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("canceled call: %v", err)
	}
}

// A handler without Exec refuses the call.
func TestExecUnsupported(t *testing.T) {
	cert := newTestCert(t, "node1")
	_, addr, _ := startServer(t, cert, newFakeHandler())
	err := newTestClient(t, cert).Exec(context.Background(), addr, &ExecRequest{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "does not run programs") {
		t.Fatal(err)
	}
}
