package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
)

// Shell completion (cobra's, through "jobq __complete"): the commands that
// take job IDs complete the live jobs' IDs (with their status and summary
// as descriptions), those that take node names complete the cluster's
// nodes, those that take filter uuids the filters', those that take a
// declared OP_ID the declared opcodes' (complete_opcode.go), and -o
// completes field names. Completion asks jobqd over the
// socket the command line points at, for at most completeTimeout; when
// jobqd does not answer it offers nothing (never file names).

const (
	completeTimeout = 3 * time.Second
	// completeMaxJobs caps the IDs offered (newest first).
	completeMaxJobs = 200
)

func completeCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, completeTimeout)
}

// completeJobIDs offers the live jobs' IDs that start with toComplete and
// are not on the command line yet, newest first. With one set, only one
// ID is offered (watch, wait).
func (a *app) completeJobIDs(one bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if one && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := completeCtx(cmd)
		defer cancel()
		var res queryResult
		if err := a.call(ctx, &res, "Query", "job", []string{"id", "status", "summary"}, nil); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for i := len(res.Data) - 1; i >= 0 && len(out) < completeMaxJobs; i-- {
			row := res.Data[i]
			if len(row) != 3 {
				continue
			}
			id := cellText(row[0])
			if id == "" || !strings.HasPrefix(id, toComplete) || slices.Contains(args, id) {
				continue
			}
			out = append(out, cobra.CompletionWithDesc(id, strings.TrimSpace(cellText(row[1])+" "+summaryText(row[2]))))
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}

// cellText is a query cell's value as text ("" when it has none).
func cellText(cell any) string {
	c, ok := cell.([]any)
	if !ok || len(c) != 2 || c[0] != json.Number("0") {
		return ""
	}
	return format.PyStr(c[1])
}

// summaryText is a job's summary (a list of opcode summaries), joined.
func summaryText(cell any) string {
	c, ok := cell.([]any)
	if !ok || len(c) != 2 {
		return ""
	}
	list, _ := c[1].([]any)
	parts := make([]string, 0, len(list))
	for _, s := range list {
		parts = append(parts, fmt.Sprint(s))
	}
	return strings.Join(parts, ",")
}

// completeFilterUUIDs offers the filter rules' uuids (with their action
// and priority) not on the command line yet; with one set, only one.
func (a *app) completeFilterUUIDs(one bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if one && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := completeCtx(cmd)
		defer cancel()
		var res queryResult
		if err := a.call(ctx, &res, "Query", "filter", []string{"uuid", "action", "priority"}, nil); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, row := range res.Data {
			if len(row) != 3 {
				continue
			}
			u := cellText(row[0])
			if u == "" || !strings.HasPrefix(u, toComplete) || slices.Contains(args, u) {
				continue
			}
			out = append(out, cobra.CompletionWithDesc(u, cellText(row[1])+", priority "+cellText(row[2])))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// nodeNames asks jobqd for the cluster's node names.
func (a *app) nodeNames(cmd *cobra.Command) ([]string, bool) {
	ctx, cancel := completeCtx(cmd)
	defer cancel()
	var raw []json.RawMessage
	if err := a.call(ctx, &raw, "JobqNodeList"); err != nil {
		return nil, false
	}
	nodes, err := decodeNodes(raw)
	if err != nil {
		return nil, false
	}
	var names []string
	for _, n := range nodes.nodes {
		names = append(names, n.Name)
	}
	return names, true
}

// completeNodes offers node names: as the one argument (node modify,
// remove) or as a flag's value; for a comma-separated flag (--nodes) the
// names already given before the last comma are kept and not offered
// again.
func (a *app) completeNodes(argument, commas bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if argument && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, ok := a.nodeNames(cmd)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		prefix, given := "", []string(nil)
		if commas {
			if i := strings.LastIndex(toComplete, ","); i >= 0 {
				prefix, toComplete = toComplete[:i+1], toComplete[i+1:]
				given = strings.Split(prefix[:i], ",")
			}
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) && !slices.Contains(given, n) {
				out = append(out, prefix+n)
			}
		}
		dir := cobra.ShellCompDirectiveNoFileComp
		if commas {
			dir |= cobra.ShellCompDirectiveNoSpace
		}
		return out, dir
	}
}

// completeFields offers the job fields jobq knows, for -o and list-fields
// (after a leading "+" or a comma as typed).
func completeFields(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	prefix := ""
	if i := strings.LastIndexAny(toComplete, ",+"); i >= 0 {
		prefix, toComplete = toComplete[:i+1], toComplete[i+1:]
	}
	var out []cobra.Completion
	for _, f := range append(append([]format.FieldDef{}, format.JobFields...), format.ExtraJobFields...) {
		if strings.HasPrefix(f.Name, toComplete) {
			out = append(out, prefix+f.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeTOML offers a definition file (*.toml) as the one argument of
// opcode add and replace.
func completeTOML(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []cobra.Completion{"toml"}, cobra.ShellCompDirectiveFilterFileExt
}

// addCompletion registers the completion functions on root's commands.
func (a *app) addCompletion(root *cobra.Command) {
	find := func(path ...string) *cobra.Command {
		c, _, err := root.Find(path)
		if err != nil || c == root {
			panic(fmt.Sprintf("completion: no command %q", path))
		}
		return c
	}
	for _, name := range []string{"list", "info", "cancel", "change-priority", "archive"} {
		find(name).ValidArgsFunction = a.completeJobIDs(false)
	}
	for _, name := range []string{"watch", "wait"} {
		find(name).ValidArgsFunction = a.completeJobIDs(true)
	}
	for _, path := range [][]string{{"node", "modify"}, {"node", "remove"}, {"node", "add-tags"}, {"node", "list-tags"}, {"node", "remove-tags"}} {
		find(path...).ValidArgsFunction = a.completeNodes(true, false)
	}
	_ = find("debug", "delay").RegisterFlagCompletionFunc("on-nodes", a.completeNodes(false, false))
	_ = find("command").RegisterFlagCompletionFunc("nodes", a.completeNodes(false, true))
	for _, path := range [][]string{{"filter", "delete"}, {"filter", "info"}, {"filter", "list"}} {
		find(path...).ValidArgsFunction = a.completeFilterUUIDs(false)
	}
	find("filter", "replace").ValidArgsFunction = a.completeFilterUUIDs(true)
	find("submit").ValidArgsFunction = a.completeSubmit
	for _, path := range [][]string{{"opcode", "info"}, {"opcode", "remove"}} {
		find(path...).ValidArgsFunction = a.completeOpcodeIDs
	}
	find("opcode", "output").ValidArgsFunction = a.completeJobIDs(true)
	for _, path := range [][]string{{"opcode", "add"}, {"opcode", "replace"}} {
		find(path...).ValidArgsFunction = completeTOML
	}
	_ = find("list").RegisterFlagCompletionFunc("output", completeFields)
	find("list-fields").ValidArgsFunction = completeFields
}
