// Command jobqd is the jobq node daemon. On a data directory without a
// cluster it starts a one-node cluster with itself as master: the
// zero-configuration default.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/internal/queue"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "jobqd:", err)
		os.Exit(1)
	}
}

func version() string {
	v, commit := "devel", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
		return fmt.Sprintf("jobqd %s (commit %s, %s)", v, commit, bi.GoVersion)
	}
	return "jobqd " + v
}

func newCommand() *cobra.Command {
	var o daemon.Options
	var join, token, logLevel, cpuProfile string
	cmd := &cobra.Command{
		Use:   "jobqd",
		Short: "The jobq node daemon: job queue, workers and LUXI socket",
		Long: `jobqd runs one jobq node. With a data directory that holds no cluster it
creates a one-node cluster with itself as master, so that

    jobqd --data-dir /tmp/jobq

is a working job queue: submit with "jobq --data-dir /tmp/jobq debug delay 1".
The LUXI socket is DIR/socket/jobq-query (mode 0660); --luxi-socket serves it
on more paths, e.g. Ganeti's /var/run/ganeti/socket/ganeti-query.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if join != "" || token != "" {
				return errors.New("joining a cluster (--join/--token) is not available in this version of jobqd; start without them for a one-node cluster")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q is not one of debug, info, warn, error", logLevel)
			}
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("cannot create the CPU profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("cannot start the CPU profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return daemon.Run(ctx, o)
		},
	}
	cmd.SetVersionTemplate("{{.Version}}\n")
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", daemon.DefaultDataDir(), "directory holding all of this node's state")
	f.StringVar(&o.NodeName, "node-name", "", "this node's name (default: the host name)")
	f.StringVar(&o.RPCAddr, "rpc-addr", ":1811", "node RPC address HOST:PORT (used once the node joins a cluster)")
	f.StringVar(&o.RAPIAddr, "rapi-addr", ":5080", "RAPI (HTTPS, Ganeti's remote API) address HOST:PORT on the master; \"off\" serves none (users: DATA_DIR/rapi/users)")
	f.StringArrayVar(&o.LUXISockets, "luxi-socket", nil, "serve LUXI on this socket path too (repeatable)")
	f.StringVar(&o.MetricsAddr, "metrics-addr", "off", "serve Prometheus metrics at HOST:PORT/metrics over plain HTTP, unauthenticated; \"off\": only on RAPI, to its users")
	f.IntVar(&o.MaxRunning, "max-running-jobs", queue.DefaultMaxRunning, "how many jobs execute at once")
	f.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long running opcodes may go on before they are interrupted")
	f.StringVar(&join, "join", "", "join the cluster whose node listens at HOST:PORT")
	f.StringVar(&token, "token", "", "join token from 'jobq cluster join-token'")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to FILE (for performance work)")
	return cmd
}
