package cli

import "github.com/spf13/cobra"

// Command returns jobq's command tree as Main runs it, for generating its
// man pages and shell completion (cmd/jobq-gendocs); running it talks to
// the process's own stdout, stderr and environment.
func Command() *cobra.Command {
	a := &app{env: Env{}.withDefaults()}
	return a.newRoot()
}
