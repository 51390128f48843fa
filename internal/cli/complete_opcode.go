package cli

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/opdef"
)

// Completion of declared opcodes (issue 19 item 9): the OP_IDs that
// "jobq submit OP_ID" and "jobq opcode info|remove OP_ID" take, then
// submit's KEY= parameters of that OP_ID, and the values of an enum,
// a boolean or the parameter naming the nodes the program runs on. Built-in
// opcodes are not offered: "jobq submit" takes them only as JSON objects.
// Without jobqd nothing is offered (never file names).

const noFiles = cobra.ShellCompDirectiveNoFileComp

// completeOpcodeIDs offers the declared OP_IDs starting with toComplete,
// with their summaries, as the one argument of opcode info and remove.
func (a *app) completeOpcodeIDs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	return a.opcodeIDs(cmd, toComplete)
}

func (a *app) opcodeIDs(cmd *cobra.Command, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx, cancel := completeCtx(cmd)
	defer cancel()
	var defs []opcodeInfo
	if err := a.call(ctx, &defs, "JobqOpcodeList"); err != nil {
		return nil, noFiles | cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, d := range defs {
		if strings.HasPrefix(d.ID, toComplete) {
			out = append(out, cobra.CompletionWithDesc(d.ID, d.Summary))
		}
	}
	return out, noFiles
}

// completeSubmit completes "jobq submit": a declared OP_ID first, then
// its parameters not given yet as KEY= (no space after), then a
// parameter's value where the definition says which ones it takes.
// Opcodes given as JSON and --file get nothing.
func (a *app) completeSubmit(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if f := cmd.Flags().Lookup("file"); f != nil && f.Changed {
		return nil, noFiles
	}
	if len(args) == 0 {
		return a.opcodeIDs(cmd, toComplete)
	}
	if !strings.HasPrefix(args[0], "OP_") {
		return nil, noFiles
	}
	ctx, cancel := completeCtx(cmd)
	defer cancel()
	var d opcodeInfo
	if err := a.call(ctx, &d, "JobqOpcodeInfo", args[0]); err != nil {
		return nil, noFiles | cobra.ShellCompDirectiveError
	}
	if name, value, ok := strings.Cut(toComplete, "="); ok {
		return a.completeParamValue(cmd, &d.Def, name, value)
	}
	var given []string
	for _, kv := range args[1:] {
		k, _, _ := strings.Cut(kv, "=")
		given = append(given, k)
	}
	var out []cobra.Completion
	for _, p := range d.Params {
		if strings.HasPrefix(p.Name, toComplete) && !slices.Contains(given, p.Name) {
			out = append(out, cobra.CompletionWithDesc(p.Name+"=", paramDesc(&p)))
		}
	}
	return out, noFiles | cobra.ShellCompDirectiveNoSpace
}

// paramDesc describes a parameter in a completion: its type, whether it
// is required, its doc line.
func paramDesc(p *opdef.Param) string {
	s := p.Type
	if p.Required {
		s += ", required"
	}
	if p.Doc != "" {
		s += ": " + p.Doc
	}
	return s
}

// completeParamValue offers the values of parameter name starting with
// value: an enum's values, true and false, or the cluster's nodes for
// the parameter naming where the program runs (comma-separated for a
// list). Other parameters get nothing.
func (a *app) completeParamValue(cmd *cobra.Command, d *opdef.Def, name, value string) ([]cobra.Completion, cobra.ShellCompDirective) {
	p := d.Param(name)
	if p == nil {
		return nil, noFiles
	}
	prefix := name + "="
	dir := noFiles
	var values []string
	switch {
	case p.Type == opdef.TEnum:
		values = p.Values
	case p.Type == opdef.TBoolean:
		values = []string{"true", "false"}
	case d.Run.On == opdef.OnParam && d.Run.Param == name:
		names, ok := a.nodeNames(cmd)
		if !ok {
			return nil, noFiles | cobra.ShellCompDirectiveError
		}
		values = names
		if p.Type == opdef.TList {
			dir |= cobra.ShellCompDirectiveNoSpace
			if i := strings.LastIndex(value, ","); i >= 0 {
				given := strings.Split(value[:i], ",")
				prefix, value = prefix+value[:i+1], value[i+1:]
				values = slices.DeleteFunc(slices.Clone(values), func(n string) bool { return slices.Contains(given, n) })
			}
		}
	}
	var out []cobra.Completion
	for _, v := range values {
		if strings.HasPrefix(v, value) {
			out = append(out, prefix+v)
		}
	}
	return out, dir
}
