package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
	"github.com/jobq-dev/jobq/internal/jsonobj"
)

// The gnt-filter equivalents: job filter rules.

// filterFields are the fields of a filter, in gnt-filter list's default
// order (and info's).
var filterFields = []string{"uuid", "watermark", "priority", "predicates", "action", "reason_trail"}

// filterInfoTitles are gnt-filter info's labels of the fields after the
// uuid.
var filterInfoTitles = []string{"Watermark", "Priority", "Predicates", "Action", "Reason trail"}

const filterLong = `A filter rule decides what happens to the jobs it matches before they
run, as Ganeti's gnt-filter: ACCEPT (run, no further rule applies), PAUSE
(stay queued), REJECT (canceled, those already queued too), CONTINUE (no
effect) or "RATE_LIMIT N" (at most N matching jobs run at once). Rules
apply by priority (0 first), then watermark (the highest job id when the
rule was added), then uuid; the first rule whose predicates all match and
whose action is not CONTINUE decides.

Predicates are a JSON list of [name, expression], the expression in the
query filter language (as jobq list's JSON filters):
  ["jobid", [">", "id", "watermark"]]         jobs after the rule's watermark
  ["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]] jobs with such an opcode
  ["reason", ["=~", "reason", "maintenance"]] jobs with such a reason

Besides rules, a job whose reason trail has "rate-limit:N:LABEL" (jobq
debug delay --reason=...) runs only while fewer than N jobs with that
reason run.`

func (a *app) newFilterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "filter add|replace|delete|list|list-fields|info",
		Short: "Manage job filter rules (pause, reject, rate-limit jobs)",
		Long:  filterLong,
		Example: `  jobq filter add --predicates='[["jobid", [">", "id", "watermark"]]]' --action=PAUSE --reason=maintenance
  jobq filter add --predicates='[["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]]' --action='RATE_LIMIT 2'
  jobq filter list
  jobq filter delete 2828f17b-e475-435d-bd95-3e8a7d97210d`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.newFilterSetCmd(false), a.newFilterSetCmd(true), a.newFilterDeleteCmd(),
		a.newFilterListCmd(), a.newFilterListFieldsCmd(), a.newFilterInfoCmd())
	return cmd
}

// filterRuleFlags are add's and replace's options.
type filterRuleFlags struct {
	priority   int
	predicates string
	action     string
	reason     string
}

func (a *app) newFilterSetCmd(replace bool) *cobra.Command {
	var fl filterRuleFlags
	cmd := &cobra.Command{
		Use:   "add [flags]",
		Short: "Add a filter rule",
		Long: `Add a filter rule and print its uuid, like "gnt-filter add". Its watermark is
the highest job id so far. Without options the rule has priority 0, no
predicates (it matches every job) and the action CONTINUE.

` + filterLong,
		Example: `  jobq filter add --predicates='[["jobid", [">", "id", "watermark"]]]' --action=REJECT
  jobq filter add --priority=99 --predicates='[["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]]' --action='RATE_LIMIT 10'`,
		Args: noArgs,
	}
	if replace {
		cmd.Use = "replace [flags] UUID"
		cmd.Short = "Replace a filter rule, or add it with that uuid"
		cmd.Long = `Replace the filter rule UUID with one made of the options (the same as for
"jobq filter add"), or add it with that uuid when there is none, and print the
uuid, like "gnt-filter replace". The rule gets a new watermark.`
		cmd.Example = `  jobq filter replace --action=PAUSE --predicates='[["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]]' 2828f17b-e475-435d-bd95-3e8a7d97210d`
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd, "give the uuid of the filter to replace (\"jobq filter list\" shows them)")
			}
			return nil
		}
	}
	f := cmd.Flags()
	f.IntVar(&fl.priority, "priority", 0, "the rule's `PRIORITY`, 0 or more (0 applies first)")
	f.StringVar(&fl.predicates, "predicates", "", "the rule's predicates, a JSON list of [name, expression] (default: [], every job)")
	f.StringVar(&fl.action, "action", "CONTINUE", "`ACTION`: ACCEPT, PAUSE, REJECT, CONTINUE or \"RATE_LIMIT N\"")
	f.StringVar(&fl.reason, "reason", "", "why the rule is there (its reason trail)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if fl.priority < 0 {
			return usagef(cmd, "--priority must be 0 or more, got %d", fl.priority)
		}
		preds := any([]any{})
		if fl.predicates != "" {
			if err := json.Unmarshal([]byte(fl.predicates), &preds); err != nil {
				return usagef(cmd, "--predicates must be JSON, such as '[[\"jobid\", [\">\", \"id\", \"watermark\"]]]' (%v)", err)
			}
		}
		action := any(strings.TrimSpace(fl.action))
		if n, ok := strings.CutPrefix(action.(string), "RATE_LIMIT"); ok && strings.TrimSpace(n) != "" {
			var lim int64
			if _, err := fmt.Sscan(n, &lim); err != nil || lim <= 0 {
				return usagef(cmd, "the limit of --action=\"RATE_LIMIT N\" must be a positive integer, got %q", strings.TrimSpace(n))
			}
			action = []any{"RATE_LIMIT", lim}
		}
		reason := []any{}
		if fl.reason != "" {
			reason = append(reason, []any{"gnt:user", fl.reason, a.env.Now().UnixNano()})
		}
		var uuid any
		if replace {
			uuid = args[0]
		}
		var res string
		if err := a.call(cmd.Context(), &res, "ReplaceFilter", uuid, fl.priority, preds, action, reason); err != nil {
			return err
		}
		fmt.Fprintln(a.env.Stdout, res)
		return nil
	}
	return cmd
}

func (a *app) newFilterDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete UUID...",
		Short:   "Delete filter rules",
		Long:    `Delete the filter rules with the given uuids, like "gnt-filter delete". Jobs the rules paused or rate-limited may start at once.`,
		Example: `  jobq filter delete 2828f17b-e475-435d-bd95-3e8a7d97210d`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef(cmd, "give the uuid of the filter to delete (\"jobq filter list\" shows them)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, u := range args {
				if err := a.call(cmd.Context(), nil, "DeleteFilter", u); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// uuidFilter is gnt-filter's query filter for uuid arguments.
func uuidFilter(uuids []string) any {
	if len(uuids) == 0 {
		return nil
	}
	out := []any{"|"}
	for _, u := range uuids {
		out = append(out, []any{"=", "uuid", u})
	}
	return out
}

func (a *app) newFilterListCmd() *cobra.Command {
	var (
		tab    tableOptions
		output string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [flags] [UUID...]",
		Short: "List the filter rules",
		Long: `List the filter rules (or only the given ones), like "gnt-filter list": by
default uuid, watermark, priority, predicates, action and reason_trail; -o
replaces the fields, or with a leading "+" adds to them. "jobq filter
list-fields" shows the fields.`,
		Example: `  jobq filter list
  jobq filter list --no-headers -o uuid,action
  jobq filter list --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			fields := format.ParseFields(output, filterFields)
			var res queryResult
			if err := a.call(cmd.Context(), &res, "Query", "filter", fields, uuidFilter(args)); err != nil {
				return err
			}
			if asJSON {
				return a.printQueryJSON(res)
			}
			unknown := a.warnUnknownFields(res.Fields)
			t := &format.Table{NoHeaders: tab.noHeaders, Separator: tab.sep(cmd)}
			for _, f := range res.Fields {
				t.Columns = append(t.Columns, format.Column{Title: f.Title, AlignRight: numericKind(f.Kind)})
			}
			for _, row := range res.Data {
				cells := make([]string, len(res.Fields))
				for i, f := range res.Fields {
					if i < len(row) {
						cells[i] = filterCell(f.Kind, row[i])
					}
				}
				t.Rows = append(t.Rows, cells)
			}
			if _, err := t.WriteTo(a.env.Stdout); err != nil {
				return err
			}
			if unknown {
				return silentExit(exitUnknownField)
			}
			return nil
		},
	}
	tab.addFlags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "the `FIELDS` to show, comma-separated; \"+FIELDS\" adds to the default ones")
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

// filterCell formats one [status, value] cell of a filter listing.
func filterCell(kind string, cell any) string {
	c, ok := cell.([]any)
	if !ok || len(c) != 2 {
		return "?"
	}
	if st, _ := c[0].(json.Number); st != "0" {
		n, _ := st.Int64()
		return format.ResultStatusText(int(n), false)
	}
	return format.FormatQueryValue(kind, c[1], nil)
}

func (a *app) newFilterListFieldsCmd() *cobra.Command {
	var (
		tab    tableOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "list-fields [flags] [FIELD...]",
		Short:   "List the fields filter rules have",
		Long:    `List the fields "jobq filter list -o" accepts (or only the given ones), with their type, title and description, like "gnt-filter list-fields".`,
		Example: `  jobq filter list-fields`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var names any
			if len(args) > 0 {
				names = args
			}
			var res fieldsResult
			if err := a.call(cmd.Context(), &res, "QueryFields", "filter", names); err != nil {
				return err
			}
			if asJSON {
				defs := res.Fields
				if defs == nil {
					defs = []format.FieldDef{}
				}
				return writeJSON(a.env.Stdout, defs)
			}
			unknown := a.warnUnknownFields(res.Fields)
			if _, err := format.ListFieldsTable(res.Fields, tab.noHeaders, tab.sep(cmd)).WriteTo(a.env.Stdout); err != nil {
				return err
			}
			if unknown {
				return silentExit(exitUnknownField)
			}
			return nil
		},
	}
	tab.addFlags(cmd)
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

func (a *app) newFilterInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "info [flags] [UUID...]",
		Short:   "Show filter rules in detail",
		Long:    `Show the given filter rules (or all), one block each, like "gnt-filter info".`,
		Example: `  jobq filter info 2828f17b-e475-435d-bd95-3e8a7d97210d`,
		RunE: func(cmd *cobra.Command, args []string) error {
			uuids := args
			if uuids == nil {
				uuids = []string{}
			}
			var rows [][]json.RawMessage
			if err := a.call(cmd.Context(), &rows, "QueryFilters", uuids, filterFields); err != nil {
				return err
			}
			if asJSON {
				out := make([]*jsonobj.Object, 0, len(rows))
				for _, r := range rows {
					obj := &jsonobj.Object{}
					for i, f := range filterFields {
						if i < len(r) {
							obj.Add(f, r[i])
						}
					}
					out = append(out, obj)
				}
				return writeJSON(a.env.Stdout, out)
			}
			var b strings.Builder
			for _, r := range rows {
				if len(r) != len(filterFields) {
					return failf("jobqd answered QueryFilters with %d values for %d fields", len(r), len(filterFields))
				}
				vals := make([]any, len(r))
				for i, raw := range r {
					if err := decodeExact(raw, &vals[i]); err != nil {
						return failf("jobqd's answer to QueryFilters is not what jobq expects (%v)", err)
					}
				}
				fmt.Fprintf(&b, "UUID: %s\n", format.PyStr(vals[0]))
				for i, title := range filterInfoTitles {
					fmt.Fprintf(&b, "  %s: %s\n", title, format.PyStr(vals[i+1]))
				}
			}
			_, err := fmt.Fprint(a.env.Stdout, b.String())
			return err
		},
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

func decodeExact(raw json.RawMessage, v *any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	return dec.Decode(v)
}
