package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/tags"
)

// "gnt-cluster add-tags|list-tags|remove-tags" and "gnt-node
// add-tags|list-tags|remove-tags": the tags of the cluster and of its
// nodes, cluster configuration agreed through the log. Changes are jobs
// of Ganeti's OP_TAGS_SET and OP_TAGS_DEL (as Ganeti's commands submit);
// listing is LUXI QueryTags.

const tagsRules = `A tag has 1 to 128 characters: letters, digits and _ . + * / : @ -
(Ganeti's rules); an object has at most 4096 tags.`

// newTagsCmds are the three tag commands of kind ("cluster" or "node").
func (a *app) newTagsCmds(kind string) []*cobra.Command {
	obj, objArg, ex := "the cluster", "", "jobq cluster"
	if kind == tags.KindNode {
		obj, objArg, ex = "a node", "NODE ", "jobq node"
	}
	exNode := ""
	if kind == tags.KindNode {
		exNode = "node1 "
	}
	// split takes the node (for node tags) and the tags from args.
	split := func(cmd *cobra.Command, args []string, needTags bool) (name any, tt []string, err error) {
		if kind == tags.KindNode {
			if len(args) == 0 {
				return nil, nil, usagef(cmd, "give the node's name, then the tags")
			}
			name, args = args[0], args[1:]
		}
		if needTags && len(args) == 0 {
			return nil, nil, usagef(cmd, "give at least one tag")
		}
		if !needTags && len(args) > 0 {
			return nil, nil, usagef(cmd, "%q takes no tags, got %q", cmd.CommandPath(), strings.Join(args, " "))
		}
		for _, t := range args {
			if err := tags.Validate(t); err != nil {
				return nil, nil, usagef(cmd, "tag %q: %v", t, err)
			}
		}
		return name, args, nil
	}
	change := func(opID string) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			name, tt, err := split(cmd, args, true)
			if err != nil {
				return err
			}
			op := client.RawOp{"OP_ID": opID, "kind": kind, "name": name, "tags": tt,
				"reason": [][]any{{reasonSource, "tags", a.env.Now().UnixNano()}}}
			ctx := cmd.Context()
			id, err := a.submitJob(ctx, op)
			if err != nil {
				return err
			}
			return a.followJob(ctx, id, silentReporter{})
		}
	}
	add := &cobra.Command{
		Use:   "add-tags " + objArg + "TAG...",
		Short: "Add tags to " + obj,
		Long: `Add tags to ` + obj + `, as gnt-` + kind + ` add-tags: a job of OP_TAGS_SET,
which jobq waits for (its failure is the command's). Tags are cluster
configuration, agreed cluster-wide and kept across a master failover.
` + tagsRules,
		Example: "  " + ex + " add-tags " + exNode + "rack:a1 owner:ops",
		RunE:    change("OP_TAGS_SET"),
	}
	remove := &cobra.Command{
		Use:   "remove-tags " + objArg + "TAG...",
		Short: "Remove tags from " + obj,
		Long: `Remove tags from ` + obj + `, as gnt-` + kind + ` remove-tags: a job of
OP_TAGS_DEL. A tag the object does not have fails the whole job, naming it.`,
		Example: "  " + ex + " remove-tags " + exNode + "owner:ops",
		RunE:    change("OP_TAGS_DEL"),
	}
	list := &cobra.Command{
		Use:     "list-tags " + objArg,
		Short:   "List the tags of " + obj,
		Long:    `Print the tags of ` + obj + `, sorted, one a line (LUXI QueryTags).`,
		Example: "  " + ex + " list-tags " + exNode,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _, err := split(cmd, args, false)
			if err != nil {
				return err
			}
			if name == nil {
				name = ""
			}
			var out []string
			if err := a.call(cmd.Context(), &out, "QueryTags", kind, name); err != nil {
				return err
			}
			sort.Strings(out)
			for _, t := range out {
				fmt.Fprintln(a.env.Stdout, t)
			}
			return nil
		},
	}
	return []*cobra.Command{add, list, remove}
}
