// Command jobqd is the jobq node daemon. On a data directory without a
// cluster it starts a one-node cluster with itself as master: the
// zero-configuration default. Its command line, configuration file
// (/etc/jobq/jobqd.conf) and service manager notifications are in
// internal/jobqd; see "jobqd --help".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/jobq-dev/jobq/internal/jobqd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := jobqd.Main(ctx, os.Args[1:], jobqd.Env{})
	stop()
	os.Exit(code)
}
