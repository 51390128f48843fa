package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

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
	if !strings.Contains(page, "\n"+`.TH "JOBQD" "8" "Jan 2025" "jobq 9.8.7" "jobq Manual"`) {
		t.Errorf("jobqd.8 header: %.80q", page)
	}
	// Every flag of jobqd is in its page: the page is the command.
	jobqd.Command(jobqd.Env{}).Flags().VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(page, `\fB--`+f.Name+`\fP`) {
			t.Errorf("jobqd.8 does not mention --%s", f.Name)
		}
	})
	for _, want := range []string{"/etc/jobq/jobqd.conf", `\fB--version\fP`, dataDirDefault} {
		if !strings.Contains(page, want) {
			t.Errorf("jobqd.8 does not mention %s", want)
		}
	}
	if home := daemon.DefaultDataDir(); home != "/var/lib/jobq" && strings.Contains(page, home) {
		t.Errorf("jobqd.8 names the generating user's data directory %s", home)
	}
	for _, p := range []string{"man/man8/jobq.8", "man/man8/jobq-list.8", "man/man8/jobq-queue-drain.8", "man/man8/jobq-version.8"} {
		if s := read(p); !strings.Contains(s, ".SH NAME") {
			t.Errorf("%s is not a man page: %.80q", p, s)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "man/man8/jobq-help.8")); err == nil {
		t.Error("a page for the help command")
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
