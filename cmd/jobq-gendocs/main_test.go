package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobq-dev/jobq/internal/cli"
	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/internal/jobqd"
)

func TestGenerate(t *testing.T) {
	out := t.TempDir()
	if err := generate(out, "9.8.7", "2025-01-02"); err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	page := read("man/man8/jobqd.8")
	if !strings.HasPrefix(page, `.TH "JOBQD" "8" "Jan 2025" "jobq 9.8.7" "jobq Manual"`+"\n") {
		t.Errorf("jobqd.8 header: %.80q", page)
	}
	// Every flag of jobqd is in its page: the page is the command.
	jobqd.Command(jobqd.Env{}).Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !strings.Contains(page, bold("--"+f.Name)) {
			t.Errorf("jobqd.8 does not mention --%s", f.Name)
		}
	})
	for _, want := range []string{"/etc/jobq/jobqd.conf", bold("--version"), roff(dataDirDefault), bold("--data-dir") + "=" + italic("DIR"),
		".SH OPTIONS", ".SH ENVIRONMENT", bold("JOBQ_JOIN_TOKEN")} {
		if !strings.Contains(page, want) {
			t.Errorf("jobqd.8 does not mention %s", want)
		}
	}
	if home := daemon.DefaultDataDir(); home != "/var/lib/jobq" && strings.Contains(page, home) {
		t.Errorf("jobqd.8 names the generating user's data directory %s", home)
	}
	// One jobq(8) with every command, its options and examples, as
	// Ganeti's gnt-job(8); no page per command.
	jobq := read("man/man8/jobq.8")
	for _, want := range []string{".SH NAME", ".SH SYNOPSIS", ".SH GLOBAL OPTIONS", ".SH COMMANDS", ".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH SEE ALSO",
		".SS LIST\n", ".SS QUEUE DRAIN\n", ".SS DEBUG DELAY\n", ".SS CLUSTER JOIN\\-TOKEN\n", ".SS VERSION\n", bold("--socket") + "=" + italic("PATH")} {
		if !strings.Contains(jobq, want) {
			t.Errorf("jobq.8 does not have %q", want)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() || c.Name() == "help" {
			return
		}
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && !strings.Contains(jobq, bold("--"+f.Name)) {
				t.Errorf("jobq.8 does not mention %s --%s", c.CommandPath(), f.Name)
			}
		})
		if !c.HasAvailableSubCommands() && c.HasParent() && !strings.Contains(jobq, ".SS "+roff(strings.ToUpper(strings.TrimPrefix(c.CommandPath(), "jobq ")))+"\n") {
			t.Errorf("jobq.8 has no section for %s", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cli.Command())
	for _, p := range []string{page, jobq} {
		for _, bad := range []string{`=""`, "[=false]", "\\-\\-help", "help\\fP"} {
			if strings.Contains(p, bad) {
				t.Errorf("a page has %q", bad)
			}
		}
	}
	ents, err := os.ReadDir(filepath.Join(out, "man/man8"))
	if err != nil || len(ents) != 2 {
		t.Errorf("man pages: %v %v, want jobq.8 and jobqd.8", ents, err)
	}
	if s := read("completion/bash/jobq"); !strings.Contains(s, "__start_jobq") || !strings.Contains(s, "complete -o default -F __start_jobq jobq") {
		t.Errorf("bash completion of jobq: %.200q", s)
	}
	if s := read("completion/bash/jobqd"); !strings.Contains(s, "__start_jobqd") {
		t.Errorf("bash completion of jobqd: %.200q", s)
	}
	for _, p := range []string{"jobq", "jobqd"} {
		if s := read("completion/zsh/_" + p); !strings.HasPrefix(s, "#compdef "+p+"\n") {
			t.Errorf("zsh completion of %s: %.80q", p, s)
		}
	}
	if err := generate(t.TempDir(), "1", "02/01/2025"); err == nil || !strings.Contains(err.Error(), "YYYY-MM-DD") {
		t.Errorf("bad date: %v", err)
	}
}
