package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// TestSubmitJobWithIdempotencyKey: a retry with the same key answers the
// first id (SubmitJobWith and SubmitManyJobsWith); another job with the key
// is refused, saying so.
func TestSubmitJobWithIdempotencyKey(t *testing.T) {
	socket, stop := startDaemon(0)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := client.SubmitOptions{IdempotencyKey: "nightly-2026-12-07"}
	id, err := c.SubmitJobWith(ctx, o, client.OpTestDelay{Duration: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.SubmitJobWith(ctx, o, client.OpTestDelay{Duration: time.Millisecond})
	if err != nil || again != id {
		t.Fatalf("retry: %d %v, want %d", again, err, id)
	}
	if _, err := c.SubmitJobWith(ctx, o, client.OpTestDelay{Duration: time.Second}); err == nil || !strings.Contains(err.Error(), "was used") {
		t.Fatalf("another job with the key: %v", err)
	}
	many := client.SubmitOptions{IdempotencyKey: "batch-1", Timing: client.Timing{Timeout: time.Minute}}
	jobs := [][]client.Opcode{{client.OpTestDelay{Duration: time.Millisecond}}, {client.OpTestDelay{Duration: 2 * time.Millisecond}}}
	r1, err := c.SubmitManyJobsWith(ctx, many, jobs...)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.SubmitManyJobsWith(ctx, many, jobs...)
	if err != nil || len(r2) != 2 || r2[0].ID != r1[0].ID || r2[1].ID != r1[1].ID {
		t.Fatalf("many retried: %+v %v, want %+v", r2, err, r1)
	}
	for _, id := range []int64{id, r1[0].ID, r1[1].ID} {
		if _, err := c.WatchJob(ctx, id, func(client.LogEntry) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
}
