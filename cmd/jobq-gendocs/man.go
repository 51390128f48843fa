package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The man pages are written here rather than by cobra/doc, whose pages
// show every flag as "--data-dir=\"\"" and "--help[=false]" and give jobq
// one page per command. jobq(8) is one page with every command, as
// Ganeti's gnt-job(8) is: NAME, SYNOPSIS, DESCRIPTION, the global options,
// then one section per command (its synopsis, its text, its options and
// examples), EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO. jobqd(8) is a
// daemon's page: its options with their arguments and defaults.

// manHeader is the .TH line's fields.
type manHeader struct {
	date    time.Time
	version string
}

// pageInfo is what a page says besides its command's own text.
type pageInfo struct {
	name, summary string
	exitStatus    string
	environment   [][2]string
	files         [][2]string
	seeAlso       string
}

var jobqPage = pageInfo{
	name:    "jobq",
	summary: "command-line client of the jobq cluster job queue",
	exitStatus: "0: success. 1: the operation failed (a job that does not exist, a job that " +
		"failed, jobqd unreachable). 2: the command line is wrong. 14: a listing asked for unknown fields.",
	environment: [][2]string{
		{"JOBQ_SOCKET", "jobqd's LUXI socket, when neither --socket nor --data-dir is given (a flag on the command line wins)."},
		{"JOBQ_RETRY_TIMEOUT", "how long a call is sent again while no master takes it or jobqd restarts (a duration; default 30s; 0: never): reads whenever they failed, other calls only when they were not carried out."},
		{"XDG_STATE_HOME", "the default data directory is $XDG_STATE_HOME/jobq for users other than root (~/.local/state/jobq when unset)."},
	},
	files: [][2]string{
		{"/var/lib/jobq/socket/jobq-query", "the LUXI socket of the packaged jobqd (DIR/socket/jobq-query for --data-dir DIR); its group's members may use it."},
	},
	seeAlso: "jobqd(8), gnt-job(8)",
}

var jobqdPage = pageInfo{
	name:    "jobqd",
	summary: "the jobq node daemon: job queue, workers and LUXI socket",
	environment: [][2]string{
		{"JOBQ_JOIN_TOKEN", "the join token, when --join is given without --token or --token-file (it does not show in ps)."},
		{"NOTIFY_SOCKET", "set by systemd (Type=notify): jobqd sends READY=1 once its socket accepts connections and STOPPING=1 when it begins to stop."},
	},
	files: [][2]string{
		{"/etc/jobq/jobqd.conf", "the configuration file (key = value, keys named like the long options)."},
		{"/var/lib/jobq", "the data directory of the packaged service: queue, socket, cluster certificate, RAPI users."},
	},
	seeAlso: "jobq(8), gnt-job(8), ganeti-noded(8)",
}

// roff escapes text for a man page: backslashes, hyphens (so that options
// are typed as printed) and a leading dot or quote.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func bold(s string) string   { return `\fB` + roff(s) + `\fP` }
func italic(s string) string { return `\fI` + roff(s) + `\fP` }

// text writes cobra help text as roff: paragraphs at blank lines, indented
// lines (commands, examples) as they are.
func text(w io.Writer, s string) {
	fmt.Fprintln(w, ".PP")
	inBlock := false
	for _, line := range strings.Split(strings.Trim(s, "\n"), "\n") {
		indented := strings.HasPrefix(line, "  ")
		switch {
		case strings.TrimSpace(line) == "":
			if inBlock {
				fmt.Fprintln(w, ".fi\n.RE")
				inBlock = false
			}
			fmt.Fprintln(w, ".PP")
			continue
		case indented && !inBlock:
			fmt.Fprintln(w, ".RS 4\n.nf")
			inBlock = true
		case !indented && inBlock:
			fmt.Fprintln(w, ".fi\n.RE")
			inBlock = false
		}
		if inBlock {
			line = strings.TrimPrefix(line, "  ")
		}
		fmt.Fprintln(w, roff(line))
	}
	if inBlock {
		fmt.Fprintln(w, ".fi\n.RE")
	}
}

// flagSyntax is how a flag is typed: "--output=FIELDS", "-o FIELDS",
// "--json".
func flagSyntax(f *pflag.Flag, italicArg bool) (long, short string) {
	arg, _ := pflag.UnquoteUsage(f)
	if f.Value.Type() == "bool" {
		arg = ""
	}
	a := func(s string) string {
		if italicArg {
			return italic(s)
		}
		return roff(s)
	}
	long = bold("--" + f.Name)
	if arg != "" {
		long += "=" + a(arg)
	}
	if f.Shorthand != "" {
		short = bold("-" + f.Shorthand)
		if arg != "" {
			short += " " + a(arg)
		}
	}
	return long, short
}

// visibleFlags are the flags of fs a page lists: not --help, not hidden.
func visibleFlags(fs *pflag.FlagSet) []*pflag.Flag {
	var out []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden {
			out = append(out, f)
		}
	})
	return out
}

// options writes fs's flags as a list: syntax, then what it does and its
// default when it has one worth saying.
func options(w io.Writer, flags []*pflag.Flag) {
	for _, f := range flags {
		long, short := flagSyntax(f, true)
		fmt.Fprintln(w, ".TP")
		if short != "" {
			fmt.Fprintf(w, "%s, %s\n", short, long)
		} else {
			fmt.Fprintln(w, long)
		}
		_, usage := pflag.UnquoteUsage(f)
		if def := f.DefValue; def != "" && def != "false" && def != "[]" && def != "0" && f.Value.Type() != "bool" {
			usage += " (default: " + def + ")"
		}
		fmt.Fprintln(w, roff(usage))
	}
}

// synopsis is a command's usage line with its flags spelt out where it
// says "[flags]", or before its arguments when it names none itself.
func synopsis(c *cobra.Command, path string) string {
	_, args, _ := strings.Cut(c.Use, " ")
	var flags []string
	for _, f := range visibleFlags(c.LocalNonPersistentFlags()) {
		long, _ := flagSyntax(f, true)
		flags = append(flags, "["+long+"]")
	}
	parts := []string{bold(path)}
	if !strings.Contains(args, "[flags]") && !strings.Contains(args, "--") {
		parts = append(parts, flags...)
	}
	for _, a := range strings.Fields(args) {
		switch {
		case a == "[flags]":
			parts = append(parts, flags...)
		case strings.HasPrefix(strings.TrimLeft(a, "["), "-"):
			parts = append(parts, bold(a))
		case strings.Trim(a, "[]|.") != "" && strings.ToUpper(a) == a:
			parts = append(parts, italic(a))
		default:
			parts = append(parts, roff(a))
		}
	}
	return strings.Join(parts, " ")
}

// leaves are the commands of c that do something, depth first, sorted as
// cobra sorts them; groups (commands with subcommands) are not listed,
// their subcommands are.
func leaves(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() || sub.Name() == "help" {
			continue
		}
		if sub.HasAvailableSubCommands() {
			out = append(out, leaves(sub)...)
			continue
		}
		out = append(out, sub)
	}
	return out
}

func th(w io.Writer, p pageInfo, h manHeader) {
	fmt.Fprintf(w, ".TH \"%s\" \"8\" \"%s\" \"jobq %s\" \"jobq Manual\"\n", strings.ToUpper(p.name), h.date.Format("Jan 2006"), h.version)
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", p.name, roff(p.summary))
}

func tail(w io.Writer, p pageInfo) {
	if p.exitStatus != "" {
		fmt.Fprintln(w, ".SH EXIT STATUS")
		fmt.Fprintln(w, roff(p.exitStatus))
	}
	for _, sec := range []struct {
		title string
		items [][2]string
	}{{"ENVIRONMENT", p.environment}, {"FILES", p.files}} {
		if len(sec.items) == 0 {
			continue
		}
		fmt.Fprintf(w, ".SH %s\n", sec.title)
		for _, it := range sec.items {
			fmt.Fprintf(w, ".TP\n%s\n%s\n", bold(it[0]), roff(it[1]))
		}
	}
	fmt.Fprintf(w, ".SH SEE ALSO\n%s\n", roff(p.seeAlso))
}

// writeJobqMan writes jobq(8): every command on one page.
func writeJobqMan(w io.Writer, root *cobra.Command, h manHeader) {
	th(w, jobqPage, h)
	fmt.Fprintln(w, ".SH SYNOPSIS")
	var global []string
	for _, f := range visibleFlags(root.PersistentFlags()) {
		long, _ := flagSyntax(f, true)
		global = append(global, long)
	}
	fmt.Fprintf(w, "%s [%s] %s [%s...]\n", bold(root.Name()), strings.Join(global, " | "), italic("command"), italic("arguments"))
	fmt.Fprintln(w, ".SH DESCRIPTION")
	text(w, root.Long)
	fmt.Fprintln(w, ".SH GLOBAL OPTIONS")
	fmt.Fprintln(w, "Every command takes these, before or after its name.")
	options(w, visibleFlags(root.PersistentFlags()))
	fmt.Fprintln(w, ".SH COMMANDS")
	for _, c := range leaves(root) {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		fmt.Fprintf(w, ".SS %s\n", roff(strings.ToUpper(path)))
		fmt.Fprintln(w, synopsis(c, path))
		if len(c.Aliases) > 0 {
			fmt.Fprintf(w, ".br\n(also: %s)\n", roff(strings.Join(c.Aliases, ", ")))
		}
		long := c.Long
		if long == "" {
			long = c.Short
		}
		text(w, long)
		if fl := visibleFlags(c.LocalNonPersistentFlags()); len(fl) > 0 {
			fmt.Fprintln(w, ".PP\nOptions:")
			options(w, fl)
		}
		if c.Example != "" {
			fmt.Fprintln(w, ".PP\nExamples:")
			text(w, c.Example)
		}
	}
	tail(w, jobqPage)
}

// writeJobqdMan writes jobqd(8).
func writeJobqdMan(w io.Writer, c *cobra.Command, h manHeader) {
	th(w, jobqdPage, h)
	fmt.Fprintln(w, ".SH SYNOPSIS")
	fmt.Fprintf(w, "%s [%s...]\n", bold(c.Name()), italic("options"))
	fmt.Fprintln(w, ".SH DESCRIPTION")
	text(w, c.Long)
	fmt.Fprintln(w, ".SH OPTIONS")
	options(w, visibleFlags(c.Flags()))
	if c.Example != "" {
		fmt.Fprintln(w, ".SH EXAMPLES")
		text(w, c.Example)
	}
	tail(w, jobqdPage)
}
