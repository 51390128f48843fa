// Command jobq-gendocs writes the man pages and shell completion scripts of
// jobq and jobqd, generated from the same cobra commands as their --help
// (so they never drift from it):
//
//	DIR/man/man8/jobqd.8, jobq.8   (man.go: jobq(8) has every command, as gnt-job(8))
//	DIR/completion/bash/jobq, jobqd                  (bash, for /usr/share/bash-completion/completions)
//	DIR/completion/zsh/_jobq, _jobqd                 (zsh, for /usr/share/zsh/vendor-completions)
//
// packaging/build-deb.sh runs it:
//
//	go run ./cmd/jobq-gendocs --out build/docs --version 1.2.3
//
// The pages' date is --date, else $SOURCE_DATE_EPOCH, else today.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobq-dev/jobq/internal/buildinfo"
	"github.com/jobq-dev/jobq/internal/cli"
	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/internal/jobqd"
)

func main() {
	out := flag.String("out", "", "write the pages and scripts under `DIR` (required)")
	version := flag.String("version", "", "version named in the pages' footer (default: this build's)")
	date := flag.String("date", "", "date of the pages, `YYYY-MM-DD` (default: $SOURCE_DATE_EPOCH, else today)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: jobq-gendocs --out DIR [--version V] [--date YYYY-MM-DD]")
		os.Exit(2)
	}
	if err := generate(*out, *version, *date); err != nil {
		fmt.Fprintln(os.Stderr, "jobq-gendocs:", err)
		os.Exit(1)
	}
}

// dataDirDefault is how the pages describe the default data directory,
// which jobq and jobqd compute from the user running them.
const dataDirDefault = "/var/lib/jobq for root, else $XDG_STATE_HOME/jobq"

// commands returns jobq's and jobqd's commands as the programs build them,
// with the data directory's default described rather than computed for
// whoever runs the generator.
func commands() []*cobra.Command {
	cmds := []*cobra.Command{jobqd.Command(jobqd.Env{}), cli.Command()}
	computed := daemon.DefaultDataDir()
	for _, c := range cmds {
		visit(c, func(c *cobra.Command) {
			for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
				if f := fs.Lookup("data-dir"); f != nil {
					if f.DefValue == computed {
						f.DefValue = dataDirDefault
					}
					f.Usage = strings.ReplaceAll(f.Usage, computed, dataDirDefault)
				}
			}
		})
	}
	return cmds
}

func visit(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		visit(sub, fn)
	}
}

func generate(out, version, date string) error {
	if version == "" {
		version = buildinfo.Get().Version
	}
	header := manHeader{version: version, date: time.Now()}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		if sec, err := strconv.ParseInt(e, 10, 64); err == nil {
			header.date = time.Unix(sec, 0).UTC()
		}
	}
	if date != "" {
		d, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return fmt.Errorf("--date %q is not YYYY-MM-DD", date)
		}
		header.date = d
	}
	manDir := filepath.Join(out, "man", "man8")
	bashDir := filepath.Join(out, "completion", "bash")
	zshDir := filepath.Join(out, "completion", "zsh")
	for _, d := range []string{manDir, bashDir, zshDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, c := range commands() {
		c.DisableAutoGenTag = true
		c.InitDefaultVersionFlag() // as Execute adds it, so that the page lists --version
		write := writeJobqMan
		if c.Name() == jobqdPage.name {
			write = writeJobqdMan
		}
		if err := writeFile(filepath.Join(manDir, c.Name()+".8"), func(w io.Writer) error {
			write(w, c, header)
			return nil
		}); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(bashDir, c.Name()), func(w io.Writer) error { return c.GenBashCompletionV2(w, true) }); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(zshDir, "_"+c.Name()), c.GenZshCompletion); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, gen func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := gen(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
