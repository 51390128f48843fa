// Package server is jobqd as a library: it runs a jobq node from a Go
// program, the whole daemon (its flags, the configuration file, the
// cluster, LUXI, RAPI, the dashboard and the metrics) with opcodes of your
// own registered beside jobq's built-in ones. The jobqd command is this
// package with no extra opcodes:
//
//	func main() { server.Run(server.Options{}) }
//
// A program that adds opcodes builds its own daemon binary and runs it in
// place of jobqd, on every node of the cluster: a job's opcodes run on the
// master, and any node may become the master. Clients (jobq, Ganeti's
// gnt-job, RAPI, the Go client) submit the new opcodes as any other, e.g.
//
//	jobq submit -- '{"OP_ID": "OP_FILE_CHECKSUM", "path": "/etc/hostname"}'
//
// See examples/embed for a complete program and package opcodes for how an
// opcode is declared.
package server

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	internal "github.com/jobq-dev/jobq/internal/jobqd"
	"github.com/jobq-dev/jobq/opcodes"
)

// Options are what a program adds to jobqd. The zero value is jobqd.
type Options struct {
	// Opcodes are registered beside the built-in ones (OP_TEST_DELAY,
	// OP_TEST_JQUEUE, OP_RESTRICTED_COMMAND, OP_CLUSTER_SET_PARAMS). An
	// OP_ID registered twice, or one without New, stops the daemon at
	// start with an error naming it.
	Opcodes []opcodes.Definition
	// Stdout and Stderr replace the process's own (nil: os.Stdout,
	// os.Stderr).
	Stdout, Stderr io.Writer
}

// Main runs the daemon with args (the command line without the program's
// name, e.g. os.Args[1:]) until ctx is done, which stops it gracefully as
// SIGTERM stops jobqd. It returns the exit code: 0, 2 for a wrong command
// line, or 1 for any other error, which it has printed.
func Main(ctx context.Context, args []string, o Options) int {
	return internal.Main(ctx, args, internal.Env{Stdout: o.Stdout, Stderr: o.Stderr, Opcodes: o.Opcodes})
}

// Run is a program's whole main function: Main with os.Args, stopped by
// SIGTERM or SIGINT, and the process exits with Main's code.
func Run(o Options) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := Main(ctx, os.Args[1:], o)
	stop()
	os.Exit(code)
}
