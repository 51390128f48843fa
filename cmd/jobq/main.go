// Command jobq is the command-line client of the jobq job queue: the
// equivalent of Ganeti's gnt-job, "gnt-cluster queue" and "gnt-debug delay".
// It talks to jobqd over its LUXI socket; see "jobq --help".
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/jobq-dev/jobq/internal/cli"
)

func main() {
	// JOBQ_CPUPROFILE=FILE writes a CPU profile of the command, for
	// performance work on the client.
	profiling := false
	if p := os.Getenv("JOBQ_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			profiling = pprof.StartCPUProfile(f) == nil
		}
	}
	code := run()
	if profiling {
		pprof.StopCPUProfile()
	}
	os.Exit(code)
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Main(ctx, os.Args[1:], cli.Env{})
}
