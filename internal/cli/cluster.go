package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/duration"
)

// The "gnt-cluster" equivalents for a jobq cluster: info, join-token,
// verify-queue and master-failover (the queue's drain flag is "jobq
// queue", queue.go).

// clusterInfo is the answer of JobqClusterInfo.
type clusterInfo struct {
	Name              string            `json:"name"`
	Master            string            `json:"master"`
	Epoch             int64             `json:"epoch"`
	Serial            int64             `json:"serial"`
	Node              string            `json:"node"`
	CandidatePoolSize int64             `json:"candidate_pool_size"`
	Nodes             []json.RawMessage `json:"nodes"`
	// Drained and Jobs (live jobs by status) come from the master only.
	Drained *bool          `json:"drained"`
	Jobs    map[string]int `json:"jobs"`
	// What QueryClusterInfo tells Ganeti's clients too (absent from an
	// older jobqd's answer; uuid and times null until a master set them).
	UUID            *string  `json:"uuid"`
	CTime           *float64 `json:"ctime"`
	MTime           *float64 `json:"mtime"`
	SoftwareVersion *string  `json:"software_version"`
	MaxRunningJobs  *int64   `json:"max_running_jobs"`
	MaxTrackedJobs  *int64   `json:"max_tracked_jobs"`
	Tags            []string `json:"tags"`
}

// clusterInfoFields are the columns of the node table of "jobq cluster
// info".
var clusterInfoFields = []string{"name", "address", "role", "online", "replication"}

func (a *app) newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster info|join-token|verify-queue|master-failover|modify|watcher|add-tags|list-tags|remove-tags",
		Short: "Show the cluster, add nodes, check the queues, fail over the master",
		Long: `Manage the jobq cluster, like "gnt-cluster": show its nodes and how far each
is replicated, make a token for a node to join with, compare (and repair)
the queues of all nodes, and make this node the master.`,
		Example: `  jobq cluster info
  jobqd --join master.example.com:1821 --token-file FILE   # FILE: the token from "jobq cluster join-token"
  jobq cluster verify-queue --repair
  jobq cluster master-failover`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.newClusterInfoCmd(), a.newJoinTokenCmd(), a.newVerifyQueueCmd(), a.newMasterFailoverCmd(), a.newRenewCryptoCmd(),
		a.newWatcherCmd(), a.newClusterModifyCmd())
	cmd.AddCommand(a.newTagsCmds("cluster")...)
	return cmd
}

func (a *app) newClusterInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info [flags]",
		Short: "Show the cluster's name, master, epoch and nodes",
		Long: `Show the cluster as the answering node knows it: its name and uuid, when it
was created and last modified (its tags or queue settings), the master, the
epoch (raised at every master failover), the serial of the cluster
configuration, jobqd's version, the cluster's tags, the number of master
candidates wanted, max_running_jobs and max_tracked_jobs (kept for Ganeti's
clients, no effect in jobq: see "jobq cluster modify"), on the master the
drain flag and the live jobs by status, and a table of the
nodes with their address, role, whether they are online and their
replication state: "in sync", "behind by N updates", "unreachable since
TIME (error)", "resyncing", "catching up" (a new or returning master
candidate receiving the queue: it counts in majorities once the master
has it in sync), or "-" for the answering node itself.

With --json, print jobqd's answer as a JSON object (name, master, epoch,
serial, node, candidate_pool_size, uuid, ctime, mtime, software_version,
protocol_version, max_running_jobs, max_tracked_jobs, tags and nodes, each
as "jobq node list --json" prints it). Ganeti's "gnt-cluster info" works
against jobqd too (LUXI QueryClusterInfo), with the same facts.`,
		Example: `  jobq cluster info
  jobq cluster info --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := a.call(cmd.Context(), &raw, "JobqClusterInfo"); err != nil {
				return err
			}
			var info clusterInfo
			if err := decodeJSON(raw, &info); err != nil {
				return failf("jobqd's answer to JobqClusterInfo is not what jobq expects (%v)", err)
			}
			nodes, err := decodeNodes(info.Nodes)
			if err != nil {
				return failf("jobqd's answer to JobqClusterInfo is not what jobq expects (%v)", err)
			}
			if asJSON {
				return writeJSON(a.env.Stdout, raw)
			}
			w := a.env.Stdout
			fmt.Fprintf(w, "Cluster name: %s\n", info.Name)
			if info.UUID != nil {
				fmt.Fprintf(w, "Cluster UUID: %s\n", *info.UUID)
			}
			for _, tm := range []struct {
				label string
				v     *float64
			}{{"Creation time", info.CTime}, {"Modification time", info.MTime}} {
				if tm.v != nil {
					fmt.Fprintf(w, "%s: %s\n", tm.label, time.Unix(0, int64(*tm.v*1e9)).Format("2006-01-02 15:04:05"))
				}
			}
			fmt.Fprintf(w, "Master node: %s\n", info.Master)
			fmt.Fprintf(w, "Epoch: %d\n", info.Epoch)
			fmt.Fprintf(w, "Configuration serial: %d\n", info.Serial)
			if info.SoftwareVersion != nil {
				fmt.Fprintf(w, "Software version: %s\n", *info.SoftwareVersion)
			}
			if info.Tags != nil {
				tags := "(none)"
				if len(info.Tags) > 0 {
					tags = strings.Join(info.Tags, ", ")
				}
				fmt.Fprintf(w, "Tags: %s\n", tags)
			}
			fmt.Fprintf(w, "Candidate pool size: %d\n", info.CandidatePoolSize)
			if info.MaxRunningJobs != nil {
				fmt.Fprintf(w, "Maximal number of jobs running simultaneously: %d\n", *info.MaxRunningJobs)
			}
			if info.MaxTrackedJobs != nil {
				fmt.Fprintf(w, "Maximal number of jobs tracked (Ganeti's; no effect in jobq): %d\n", *info.MaxTrackedJobs)
			}
			fmt.Fprintf(w, "Answering node: %s\n", info.Node)
			if info.Drained != nil {
				state := "open (submissions accepted)"
				if *info.Drained {
					state = "drained (submissions refused)"
				}
				fmt.Fprintf(w, "Queue: %s\n", state)
			}
			if info.Jobs != nil {
				var parts []string
				for _, st := range []string{"queued", "waiting", "running", "canceling", "success", "error", "canceled"} {
					parts = append(parts, fmt.Sprintf("%d %s", info.Jobs[st], st))
				}
				fmt.Fprintf(w, "Live jobs: %s\n", strings.Join(parts, ", "))
			}
			fmt.Fprintln(w)
			_, err = a.nodeTable(nodes.nodes, clusterInfoFields, tableOptions{}, nil).WriteTo(w)
			return err
		},
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

func (a *app) newJoinTokenCmd() *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "join-token [flags]",
		Short: "Print a token for a new node to join the cluster",
		Long: `Ask the master for a token that lets one new node join the cluster, and print
it alone on stdout. On the new node, give it to jobqd in a file only root
reads, or in $JOBQ_JOIN_TOKEN (--token TOKEN works too, but shows in ps):

  (umask 077; jobq cluster join-token > /root/jobq-token)   # on the master
  jobqd --join MASTER:1821 --token-file /root/jobq-token     # on the new node

The token is valid for --ttl (a number of seconds, or a duration such as
30m, 1h or 2d; default: jobqd's default); when it expires is said on stderr.
Keep it secret: whoever holds it can join a node.`,
		Example: `  jobq cluster join-token
  jobq cluster join-token --ttl 15m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				Token   string   `json:"token"`
				Expires *float64 `json:"expires"`
			}
			if err := a.call(cmd.Context(), &res, "JobqJoinToken", ttl.Seconds()); err != nil {
				return err
			}
			if res.Token == "" {
				return failf("jobqd answered JobqJoinToken without a token")
			}
			fmt.Fprintln(a.env.Stdout, res.Token)
			if res.Expires != nil {
				fmt.Fprintf(a.env.Stderr, "The token is valid until %s.\n", unixTime(*res.Expires, a.env.Location))
			}
			return nil
		},
	}
	cmd.Flags().Var(duration.Value{P: &ttl}, "ttl", "how long the token stays valid, e.g. 30m (0: jobqd's default)")
	return cmd
}

// verifyQueueResult is the answer of JobqVerifyQueue.
type verifyQueueResult struct {
	OK        bool   `json:"ok"`
	Reference string `json:"reference"`
	Repaired  bool   `json:"repaired"`
	Nodes     []struct {
		Name       string   `json:"name"`
		OK         bool     `json:"ok"`
		Error      string   `json:"error"`
		CatchingUp bool     `json:"catching_up"`
		Missing    []string `json:"missing"`
		Extra      []string `json:"extra"`
		Differ     []string `json:"differ"`
	} `json:"nodes"`
}

// maxListedFiles is how many file names verify-queue lists per kind of
// difference and node.
const maxListedFiles = 10

// fileList renders "N kind (a, b, ...)", listing at most maxListedFiles
// names.
func fileList(kind string, names []string) string {
	s := fmt.Sprintf("%d %s", len(names), kind)
	if len(names) == 0 {
		return s
	}
	shown := names
	if len(shown) > maxListedFiles {
		shown = shown[:maxListedFiles]
	}
	enc := make([]string, len(shown))
	for i, n := range shown {
		enc[i] = format.SafeEncode(n)
	}
	s += " (" + strings.Join(enc, ", ")
	if more := len(names) - len(shown); more > 0 {
		s += fmt.Sprintf(", ... and %d more", more)
	}
	return s + ")"
}

func (a *app) newVerifyQueueCmd() *cobra.Command {
	var (
		repair, asJSON bool
		wait           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify-queue [flags]",
		Short: "Compare the queues of all nodes (and repair them)",
		Long: `Compare every node's queue (its job list and job files) with the master's,
and print one line per node: "ok", the files it is missing, has with other
contents or has in excess, or why it could not be checked. --repair also
brings every node whose queue differs back in sync with the master's.

--wait DURATION lets jobqd wait that long for the nodes to settle (updates
in flight, a repair) before it reports; 0, the default, leaves it to jobqd.

The exit code is 0 when every node's queue is identical to the master's
(after the repair with --repair), 1 otherwise. With --json, print jobqd's
answer as a JSON object (ok, reference, repaired, and nodes with name, ok,
error, missing, extra and differ); the exit code is the same.`,
		Example: `  jobq cluster verify-queue
  jobq cluster verify-queue --repair --wait 30s
  jobq cluster verify-queue --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			req := struct {
				Repair bool    `json:"repair"`
				Wait   float64 `json:"wait"`
			}{repair, wait.Seconds()}
			if err := a.call(cmd.Context(), &raw, "JobqVerifyQueue", req); err != nil {
				return err
			}
			var res verifyQueueResult
			if err := decodeJSON(raw, &res); err != nil {
				return failf("jobqd's answer to JobqVerifyQueue is not what jobq expects (%v)", err)
			}
			if asJSON {
				if err := writeJSON(a.env.Stdout, raw); err != nil {
					return err
				}
				if !res.OK {
					return silentExit(exitFailure)
				}
				return nil
			}
			return a.printVerifyQueue(res, repair)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&repair, "repair", false, "bring every node whose queue differs back in sync with the master's")
	f.Var(duration.Value{P: &wait}, "wait", "let jobqd wait up to this long for the nodes to settle, e.g. 30s (0: jobqd's default)")
	addJSONFlag(f, &asJSON)
	return cmd
}

// printVerifyQueue prints a verify-queue report and returns its outcome:
// nil when every queue is identical, else the failure to report.
func (a *app) printVerifyQueue(res verifyQueueResult, repair bool) error {
	w := a.env.Stdout
	ref := format.SafeEncode(res.Reference)
	var differ, unreachable, catching int
	for _, n := range res.Nodes {
		name := format.SafeEncode(n.Name)
		switch {
		case n.Error != "":
			unreachable++
			fmt.Fprintf(w, "%s: unreachable: %s\n", name, format.SafeEncode(n.Error))
		case n.OK:
			fmt.Fprintf(w, "%s: ok\n", name)
		case n.CatchingUp && len(n.Missing)+len(n.Differ)+len(n.Extra) == 0:
			catching++
			fmt.Fprintf(w, "%s: catching up (its files are the master's; it counts in majorities once the master marks it in sync)\n", name)
		case n.CatchingUp:
			catching++
			fmt.Fprintf(w, "%s: catching up: %s, %s, %s\n", name, fileList("missing", n.Missing), fileList("differ", n.Differ), fileList("extra", n.Extra))
		default:
			differ++
			fmt.Fprintf(w, "%s: %s, %s, %s\n", name, fileList("missing", n.Missing), fileList("differ", n.Differ), fileList("extra", n.Extra))
		}
	}
	if res.OK {
		switch {
		case res.Repaired:
			fmt.Fprintf(w, "Repaired: every node's queue is now identical to the master's (%s).\n", ref)
		default:
			fmt.Fprintf(w, "Every node's queue is identical to the master's (%s).\n", ref)
		}
		return nil
	}
	var problems []string
	if differ > 0 {
		what := fmt.Sprintf("the queues of %d nodes differ", differ)
		if differ == 1 {
			what = "the queue of 1 node differs"
		}
		if repair {
			what = strings.Replace(what, " diff", " still diff", 1)
		}
		problems = append(problems, fmt.Sprintf("%s from the master's (%s)", what, ref))
	}
	if catching > 0 {
		problems = append(problems, fmt.Sprintf("%d node%s still catching up with the master's queue (give --wait to wait for %s)",
			catching, plural(catching), map[bool]string{true: "it", false: "them"}[catching == 1]))
	}
	if unreachable > 0 {
		problems = append(problems, fmt.Sprintf("%d node%s could not be checked", unreachable, plural(unreachable)))
	}
	if len(problems) == 0 {
		problems = append(problems, "jobqd reports a difference between the queues")
	}
	msg := "Queue verification failed: " + strings.Join(problems, " and ")
	if repair {
		msg = "Queue verification failed after the repair: " + strings.Join(problems, " and ")
	} else if differ > 0 {
		msg += `; run "jobq cluster verify-queue --repair" to repair the differences`
	}
	return failf("%s.", msg)
}

func (a *app) newMasterFailoverCmd() *cobra.Command {
	var noVoting, yesDoIt bool
	cmd := &cobra.Command{
		Use:   "master-failover [--no-voting --yes-do-it]",
		Short: "Make this node the master",
		Long: `Make the node jobq talks to the master of the cluster, like "gnt-cluster
master-failover". The master is the leader the voters of the cluster's Raft
log elect: when it dies or is cut off, the others elect a new one within
seconds without this command. Run it on a voter (see "jobq node list -o
+voter") to move the mastership there gracefully: the master starts no more
jobs (it still stores submissions), lets its running opcodes finish for up
to its --shutdown-timeout, and hands the leadership over once this node
holds the whole log; jobs still running then end in error ("Unclean master
shutdown"), queued jobs run on the new master.

--no-voting is the disaster recovery for when a majority of the voters is
lost for good: this node leaves the cluster and starts a new one alone, with
its queue and settings (like etcd's --force-new-cluster). Jobs it does not
hold are lost, and the other nodes must join the new cluster again with
empty data directories (the old cluster's nodes cannot reach it: it has a
new identity). So it also needs --yes-do-it.

The message of jobqd is printed; the exit code is 0 on success, 1
otherwise.`,
		Example: `  jobq --data-dir /var/lib/jobq cluster master-failover
  jobq cluster master-failover --no-voting --yes-do-it`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if noVoting && !yesDoIt {
				return failf("Refusing to fail over without a vote: with --no-voting this node starts a new cluster alone with its queue, jobs it does not hold are lost and every other node must join again; add --yes-do-it if a majority of the voters is lost for good.")
			}
			var res struct {
				Master  string `json:"master"`
				Epoch   int64  `json:"epoch"`
				Message string `json:"message"`
			}
			if err := a.call(cmd.Context(), &res, "JobqMasterFailover", struct {
				NoVoting bool `json:"no_voting"`
			}{noVoting}); err != nil {
				return err
			}
			msg := res.Message
			if msg == "" {
				msg = fmt.Sprintf("%s is now the master (epoch %d).", res.Master, res.Epoch)
			}
			fmt.Fprintln(a.env.Stdout, msg)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&noVoting, "no-voting", false, "start a new cluster alone with this node's queue, when a majority of the voters is lost for good (needs --yes-do-it)")
	f.BoolVar(&yesDoIt, "yes-do-it", false, "confirm --no-voting")
	return cmd
}

func (a *app) newRenewCryptoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "renew-crypto [flags]",
		Short: "Replace the cluster certificate on every node",
		Long: `Replace the cluster certificate, with which the nodes authenticate each
other and RAPI serves HTTPS, by a new one on every online node, like
"gnt-cluster renew-crypto --new-cluster-certificate". Run it against the
master; jobs keep running meanwhile.

The master makes a new certificate and key and sends them to every online
node; once all have stored them, every node presents the new certificate
and still accepts the old one; then only the new one is accepted. If a node
cannot store the new certificate, nothing changes. Offline nodes keep the
old certificate and can no longer talk to the others: copy cluster/cert.pem
and cluster/key.pem from the master's data directory to them before marking
them online, or remove them and join them again. RAPI clients that pin
cluster/cert.pem need the new file; join tokens made before are void.

With --json, print jobqd's answer (fingerprint, nodes, warnings, message).`,
		Example: `  jobq cluster renew-crypto`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				Fingerprint string   `json:"fingerprint"`
				Nodes       int      `json:"nodes"`
				Warnings    []string `json:"warnings"`
				Message     string   `json:"message"`
			}
			if asJSON {
				var raw json.RawMessage
				if err := a.call(cmd.Context(), &raw, "JobqRenewCrypto"); err != nil {
					return err
				}
				return writeJSON(a.env.Stdout, raw)
			}
			if err := a.call(cmd.Context(), &res, "JobqRenewCrypto"); err != nil {
				return err
			}
			a.printWarnings(res.Warnings)
			fmt.Fprintln(a.env.Stdout, format.SafeEncode(res.Message))
			return nil
		},
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}
