package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/jsonobj"
)

// The "gnt-node" equivalents: list, modify and remove. The node and
// replication types are shared with "jobq cluster" (cluster.go).

// Replication states of a node, as seen from the node that answers.
const (
	replSelf        = "self"
	replInSync      = "in sync"
	replBehind      = "behind"
	replUnreachable = "unreachable"
)

// nodeInfo is one node as JobqClusterInfo and JobqNodeList return it.
type nodeInfo struct {
	Name            string          `json:"name"`
	Address         string          `json:"address"`
	Role            string          `json:"role"`
	Online          bool            `json:"online"`
	MasterCandidate bool            `json:"master_candidate"`
	Replication     replicationInfo `json:"replication"`
	Voter           bool            `json:"voter"`
}

// replicationInfo is a node's replication state.
type replicationInfo struct {
	State  string `json:"state"`
	Behind int64  `json:"behind"`
	// UnreachableSince is in Unix seconds; nil when the node answers.
	UnreachableSince *float64 `json:"unreachable_since"`
	LastError        string   `json:"last_error"`
	Position         struct {
		Epoch int64 `json:"epoch"`
		Seq   int64 `json:"seq"`
	} `json:"position"`
}

// replicationText renders a replication state for a table cell: "-" for
// the answering node itself, "in sync", "behind by 3 log entries",
// "unreachable since 2026-11-27 10:01:02 (connection refused)", or the
// state as jobqd names it ("catching up", "not a member", "unknown").
func replicationText(r replicationInfo, loc *time.Location) string {
	switch r.State {
	case replSelf:
		return "-"
	case replBehind:
		return fmt.Sprintf("behind by %d log entr%s", r.Behind, map[bool]string{true: "y", false: "ies"}[r.Behind == 1])
	case replUnreachable:
		s := "unreachable"
		if r.UnreachableSince != nil {
			s += " since " + unixTime(*r.UnreachableSince, loc)
		}
		if r.LastError != "" {
			s += " (" + format.SafeEncode(r.LastError) + ")"
		}
		return s
	case "":
		return "unknown"
	}
	return format.SafeEncode(r.State)
}

// unixTime formats Unix seconds as local time in loc, "2026-11-27 10:01:02".
func unixTime(sec float64, loc *time.Location) string {
	if math.IsNaN(sec) || math.IsInf(sec, 0) {
		return "?"
	}
	return time.Unix(int64(math.Floor(sec)), 0).In(loc).Format(time.DateTime)
}

// yesNo is how gnt-* listings show a boolean.
func yesNo(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// nodeField is a field of "jobq node list -o": a member of jobqd's node
// object, with its column title and its rendering in a table.
type nodeField struct {
	name, title, doc string
	text             func(n *nodeInfo, loc *time.Location) string
}

var nodeFields = []nodeField{
	{"name", "Node", "the node's name", func(n *nodeInfo, _ *time.Location) string { return n.Name }},
	{"address", "Address", "its node RPC address (HOST:PORT)", func(n *nodeInfo, _ *time.Location) string { return n.Address }},
	{"role", "Role", "master, candidate (a master candidate) or regular", func(n *nodeInfo, _ *time.Location) string { return n.Role }},
	{"online", "Online", "Y, or N when marked offline", func(n *nodeInfo, _ *time.Location) string { return yesNo(n.Online) }},
	{"master_candidate", "Candidate", "Y when the node is a master candidate (the master is one)", func(n *nodeInfo, _ *time.Location) string { return yesNo(n.MasterCandidate) }},
	{"replication", "Replication", "its copy of the log as the answering node sees it (known on the master)", func(n *nodeInfo, loc *time.Location) string { return replicationText(n.Replication, loc) }},
	{"voter", "Voter", "Y when the node votes in the cluster's log (the master chooses up to five voters among the online candidates)", func(n *nodeInfo, _ *time.Location) string { return yesNo(n.Voter) }},
}

// defaultNodeFields are the columns of "jobq node list" without -o.
var defaultNodeFields = []string{"name", "address", "role", "online"}

func lookupNodeField(name string) (nodeField, bool) {
	for _, f := range nodeFields {
		if f.name == name {
			return f, true
		}
	}
	return nodeField{name: name, title: name}, false
}

// nodeFieldsHelp lists the fields for the help of "jobq node list".
func nodeFieldsHelp() string {
	var b strings.Builder
	for _, f := range nodeFields {
		fmt.Fprintf(&b, "  %-17s %s\n", f.name, f.doc)
	}
	return strings.TrimRight(b.String(), "\n")
}

// rawNodes is a list of nodes as received: each node's JSON text and its
// decoded form.
type rawNodes struct {
	raw   []json.RawMessage
	nodes []nodeInfo
}

// decodeNodes decodes a JSON list of node objects.
func decodeNodes(raw []json.RawMessage) (rawNodes, error) {
	r := rawNodes{raw: raw, nodes: make([]nodeInfo, len(raw))}
	for i, m := range raw {
		if err := decodeJSON(m, &r.nodes[i]); err != nil {
			return rawNodes{}, err
		}
	}
	return r, nil
}

// nodeTable makes a table of nodes with the given fields.
func (a *app) nodeTable(nodes []nodeInfo, fields []string, tab tableOptions, sep *string) *format.Table {
	t := &format.Table{NoHeaders: tab.noHeaders, Separator: sep}
	defs := make([]nodeField, len(fields))
	for i, name := range fields {
		defs[i], _ = lookupNodeField(name)
		t.Columns = append(t.Columns, format.Column{Title: defs[i].title})
	}
	for i := range nodes {
		row := make([]string, len(defs))
		for j, d := range defs {
			if d.text == nil {
				row[j] = "??"
				continue
			}
			row[j] = d.text(&nodes[i], a.env.Location)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func (a *app) newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node list|modify|remove|add-tags|list-tags|remove-tags",
		Short: "List, modify or remove the cluster's nodes",
		Long: `Manage the nodes of the cluster, like "gnt-node". A node joins the cluster
with "jobqd --join HOST:PORT --token TOKEN" (see "jobq cluster join-token");
"jobq node modify" makes it a master candidate or marks it offline, and
"jobq node remove" takes it out of the cluster. Changes are made by the
master.`,
		Example: `  jobq node list
  jobq node modify node3 --master-candidate yes
  jobq node remove node3`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.newNodeListCmd(), a.newNodeModifyCmd(), a.newNodeRemoveCmd())
	cmd.AddCommand(a.newTagsCmds("node")...)
	return cmd
}

func (a *app) newNodeListCmd() *cobra.Command {
	var (
		tab    tableOptions
		output string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the cluster's nodes",
		Long: `List the nodes of the cluster, one line each, like "gnt-node list". The
default fields are name, address, role and online; -o replaces them
("-o name,replication") or, with a leading "+", adds to them
("-o +master_candidate"). The fields are:

` + nodeFieldsHelp() + `

With --json, print a JSON array with one object per node as jobqd describes
it (name, address, role, online, master_candidate, voter and replication,
an object with state and behind); with -o, only the chosen members.

Unknown fields are shown as "??" (null in JSON), with a warning and exit
code 14.`,
		Example: `  jobq node list
  jobq node list -o +master_candidate,replication
  jobq node list --no-headers --separator=' ' -o name,address
  jobq node list --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []json.RawMessage
			if err := a.call(cmd.Context(), &raw, "JobqNodeList"); err != nil {
				return err
			}
			nodes, err := decodeNodes(raw)
			if err != nil {
				return failf("jobqd's answer to JobqNodeList is not what jobq expects (%v)", err)
			}
			fields := format.ParseFields(output, defaultNodeFields)
			var unknown []string
			for _, name := range fields {
				if _, ok := lookupNodeField(name); !ok {
					unknown = append(unknown, name)
				}
			}
			if len(unknown) > 0 {
				fmt.Fprintf(a.env.Stderr, "Warning: Queried for unknown fields %s\n", strings.Join(unknown, ", "))
			}
			switch {
			case asJSON && output == "":
				if raw == nil {
					raw = []json.RawMessage{}
				}
				err = writeJSON(a.env.Stdout, raw)
			case asJSON:
				err = printNodesJSON(a, nodes.raw, fields)
			default:
				_, err = a.nodeTable(nodes.nodes, fields, tab, tab.sep(cmd)).WriteTo(a.env.Stdout)
			}
			if err != nil {
				return err
			}
			if len(unknown) > 0 {
				return silentExit(exitUnknownField)
			}
			return nil
		},
	}
	tab.addFlags(cmd)
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "`FIELDS` to show, comma-separated; a leading \"+\" adds them to the defaults")
	addJSONFlag(f, &asJSON)
	return cmd
}

// printNodesJSON prints the chosen members of each node object (null for
// an unknown field or a member jobqd did not send).
func printNodesJSON(a *app, raw []json.RawMessage, fields []string) error {
	out := make([]*jsonobj.Object, len(raw))
	for i, r := range raw {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(r, &members); err != nil {
			return failf("jobqd's answer to JobqNodeList is not what jobq expects (%v)", err)
		}
		obj := &jsonobj.Object{}
		for _, name := range fields {
			var val json.RawMessage
			if _, known := lookupNodeField(name); known {
				val = members[name]
			}
			obj.Add(name, nullIfEmpty(val))
		}
		out[i] = obj
	}
	return writeJSON(a.env.Stdout, out)
}

// yesNoValue is a flag taking yes or no (or true or false), as Ganeti's
// boolean options do; unset, it is nil.
type yesNoValue struct{ p **bool }

func (v yesNoValue) String() string {
	if v.p == nil || *v.p == nil {
		return ""
	}
	if **v.p {
		return "yes"
	}
	return "no"
}

func (v yesNoValue) Set(s string) error {
	var b bool
	switch strings.ToLower(s) {
	case "yes", "true":
		b = true
	case "no", "false":
	default:
		return errors.New("give yes or no")
	}
	*v.p = &b
	return nil
}

func (yesNoValue) Type() string { return "yes|no" }

// nodeModifyArgs is the argument of JobqNodeModify.
type nodeModifyArgs struct {
	Name            string `json:"name"`
	MasterCandidate *bool  `json:"master_candidate"`
	Offline         *bool  `json:"offline"`
}

// pyBool is Python's str() of a boolean, as gnt-node modify prints it.
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// printWarnings prints jobqd's warnings on stderr, one "Warning: ..." line
// each.
func (a *app) printWarnings(warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(a.env.Stderr, "Warning: "+format.SafeEncode(w))
	}
}

func (a *app) newNodeModifyCmd() *cobra.Command {
	var candidate, offline *bool
	cmd := &cobra.Command{
		Use:   "modify [flags] NAME",
		Short: "Make a node a master candidate or not, or mark it offline or online",
		Long: `Change a node's role, like "gnt-node modify", and print what changed.

--master-candidate yes makes the node a master candidate: it receives every
change to the queue, counts in the majority a submission waits for and can
become master. --master-candidate no makes it a regular node.

--offline yes marks the node offline: it no longer counts in majorities and
nothing is sent to it. It is always allowed on the master, with a warning
when the node still answers; this is how a cluster whose candidates are down
goes on taking jobs, by an explicit decision. --offline no brings it back:
the master resynchronises it.

jobqd's warnings are printed on stderr.`,
		Example: `  jobq node modify node2 --master-candidate yes
  jobq node modify node3 --offline yes
  jobq node modify node3 -O no -C yes`,
		Args: exactArgs(1, "one node name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if candidate == nil && offline == nil {
				return usagef(cmd, "give --master-candidate or --offline (or both) to say what to change on node %s", args[0])
			}
			var res struct {
				Node     nodeInfo `json:"node"`
				Warnings []string `json:"warnings"`
			}
			if err := a.call(cmd.Context(), &res, "JobqNodeModify", nodeModifyArgs{args[0], candidate, offline}); err != nil {
				return err
			}
			a.printWarnings(res.Warnings)
			name := res.Node.Name
			if name == "" {
				name = args[0]
			}
			fmt.Fprintf(a.env.Stdout, "Modified node %s\n", name)
			if candidate != nil {
				fmt.Fprintf(a.env.Stdout, " - master_candidate -> %s\n", pyBool(res.Node.MasterCandidate))
			}
			if offline != nil {
				fmt.Fprintf(a.env.Stdout, " - offline -> %s\n", pyBool(!res.Node.Online))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.VarP(yesNoValue{&candidate}, "master-candidate", "C", "make the node a master candidate (yes) or a regular node (no)")
	f.VarP(yesNoValue{&offline}, "offline", "O", "mark the node offline (yes) or online again (no)")
	return cmd
}

func (a *app) newNodeRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a node from the cluster",
		Long: `Remove a node from the cluster, like "gnt-node remove": the master stops
replicating to it and forgets it. The master itself cannot be removed (fail
over to another node first). jobqd's warnings (for instance that the node
could not be told) are printed on stderr; on success nothing else is
printed.`,
		Example: `  jobq node remove node3`,
		Args:    exactArgs(1, "one node name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				Warnings []string `json:"warnings"`
			}
			if err := a.call(cmd.Context(), &res, "JobqNodeRemove", args[0]); err != nil {
				return err
			}
			a.printWarnings(res.Warnings)
			return nil
		},
	}
}
