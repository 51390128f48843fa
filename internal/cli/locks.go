package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobq-dev/jobq/internal/cli/format"
)

// lockFields are what "jobq locks" shows, as "gnt-debug locks".
var lockFields = []string{"name", "mode", "owner", "pending"}

func (a *app) newLocksCmd() *cobra.Command {
	var (
		tab    tableOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "locks [flags]",
		Short: "Show every lock, its mode, owners and waiting jobs",
		Long: `Show the lock manager's state like "gnt-debug locks": every lock (cluster/BGL,
node/NAME, ...), the mode it is held in, the jobs that hold it and the jobs
waiting for it, grouped by the mode they asked for ("exclusive:job/7,job/9").`,
		Example: `  jobq locks
  jobq locks --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res queryResult
			if err := a.call(cmd.Context(), &res, "Query", "lock", lockFields, nil); err != nil {
				return err
			}
			if asJSON {
				return a.printQueryJSON(res)
			}
			t := &format.Table{NoHeaders: tab.noHeaders, Separator: tab.sep(cmd)}
			for _, f := range res.Fields {
				t.Columns = append(t.Columns, format.Column{Title: f.Title})
			}
			for _, row := range res.Data {
				cells := make([]string, len(row))
				for i, cell := range row {
					cells[i] = formatLockCell(res.Fields[i].Name, cell)
				}
				t.Rows = append(t.Rows, cells)
			}
			_, err := t.WriteTo(a.env.Stdout)
			return err
		},
	}
	tab.addFlags(cmd)
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

// formatLockCell renders a [status, value] cell of a lock query: owners
// joined by commas, pending acquires as "mode:owner,owner" separated by
// spaces, nothing as "-".
func formatLockCell(field string, cell any) string {
	pair, ok := cell.([]any)
	if !ok || len(pair) != 2 || fmt.Sprint(pair[0]) != "0" || pair[1] == nil {
		return "-"
	}
	v := pair[1]
	join := func(l any) string {
		items, _ := l.([]any)
		s := make([]string, len(items))
		for i, it := range items {
			s[i] = fmt.Sprint(it)
		}
		return strings.Join(s, ",")
	}
	switch field {
	case "owner":
		if s := join(v); s != "" {
			return s
		}
		return "-"
	case "pending":
		groups, _ := v.([]any)
		var out []string
		for _, g := range groups {
			if p, ok := g.([]any); ok && len(p) == 2 {
				out = append(out, fmt.Sprintf("%v:%s", p[0], join(p[1])))
			}
		}
		if len(out) == 0 {
			return "-"
		}
		return strings.Join(out, " ")
	}
	return fmt.Sprint(v)
}
