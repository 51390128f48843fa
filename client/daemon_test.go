package client_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/daemon"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startDaemon runs a jobqd in this process on a fresh data directory and
// returns its socket and a function that stops it. maxRunning limits the
// jobs that run at once (0: the default).
func startDaemon(maxRunning int) (socket string, stop func()) {
	// A short directory: a socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "jq")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			DataDir:         dir,
			NodeName:        "node1.example.com",
			MaxRunning:      maxRunning,
			ShutdownTimeout: 10 * time.Second,
			Logger:          slog.New(slog.DiscardHandler),
			Ready:           func() { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		log.Fatalf("jobqd did not start: %v", err)
	}
	return filepath.Join(dir, "socket", "jobq-query"), func() {
		cancel()
		if err := <-done; err != nil {
			log.Fatalf("jobqd: %v", err)
		}
		os.RemoveAll(dir)
	}
}
