// Command jobq is the command-line client of the jobq job queue: the
// equivalent of Ganeti's gnt-job, "gnt-cluster queue" and "gnt-debug delay".
// It talks to jobqd over its LUXI socket; see "jobq --help".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/jobq-dev/jobq/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{})
	stop()
	os.Exit(code)
}
