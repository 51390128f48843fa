package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

var keys = []string{"data-dir", "luxi-socket", "max-running-jobs", "shutdown-timeout"}

// flags is a flag set like jobqd's, parsed from args.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("jobqd", pflag.ContinueOnError)
	fs.String("data-dir", "/var/lib/jobq", "")
	fs.StringArray("luxi-socket", nil, "")
	fs.Int("max-running-jobs", 25, "")
	fs.Duration("shutdown-timeout", 30*time.Second, "")
	fs.String("config", DefaultPath, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func parse(t *testing.T, text string) []Setting {
	t.Helper()
	s, err := Parse(strings.NewReader(text), "jobqd.conf")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParse(t *testing.T) {
	got := parse(t, `# jobqd settings

   data-dir=/srv/jobq
max-running-jobs =  4   # fewer
	luxi-socket = /run/a#b
luxi-socket = /run/c
  # indented comment
empty =
`)
	want := []Setting{
		{"data-dir", "/srv/jobq", 3},
		{"max-running-jobs", "4", 4},
		{"luxi-socket", "/run/a#b", 5},
		{"luxi-socket", "/run/c", 6},
		{"empty", "", 8},
	}
	if len(got) != len(want) {
		t.Fatalf("Parse = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("setting %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for text, want := range map[string]string{
		"data-dir = /x\nnonsense\n": `jobqd.conf:2: "nonsense" is not a "key = value" setting`,
		"\n\n = 3\n":                `jobqd.conf:3: the setting has no key before "="`,
	} {
		_, err := Parse(strings.NewReader(text), "jobqd.conf")
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %s", text, err, want)
		}
	}
}

func TestApplyFileAndFlagsAgree(t *testing.T) {
	// The same settings from the file and from the command line give the
	// same values.
	fromFile := flags(t)
	src, err := Apply(fromFile, "jobqd.conf", parse(t, "data-dir = /srv/jobq\nmax-running-jobs = 4\nshutdown-timeout = 1m\nluxi-socket = /a\nluxi-socket = /b\n"), keys)
	if err != nil {
		t.Fatal(err)
	}
	fromFlags := flags(t, "--data-dir", "/srv/jobq", "--max-running-jobs", "4", "--shutdown-timeout", "1m", "--luxi-socket", "/a", "--luxi-socket", "/b")
	for _, k := range keys {
		if a, b := fromFile.Lookup(k).Value.String(), fromFlags.Lookup(k).Value.String(); a != b {
			t.Errorf("%s: file gives %s, flags give %s", k, a, b)
		}
	}
	if s := src["data-dir"].String(); s != "jobqd.conf:1" {
		t.Errorf("data-dir source = %s", s)
	}
	if s := src["luxi-socket"].String(); s != "jobqd.conf:4" {
		t.Errorf("luxi-socket source = %s", s)
	}
}

func TestApplyFlagWins(t *testing.T) {
	fs := flags(t, "--max-running-jobs", "2", "--luxi-socket", "/cmd")
	src, err := Apply(fs, "jobqd.conf", parse(t, "max-running-jobs = 4\nluxi-socket = /a\nluxi-socket = /b\ndata-dir = /srv\n"), keys)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := fs.GetInt("max-running-jobs"); n != 2 {
		t.Errorf("max-running-jobs = %d, want the flag's 2", n)
	}
	if l, _ := fs.GetStringArray("luxi-socket"); len(l) != 1 || l[0] != "/cmd" {
		t.Errorf("luxi-socket = %q, want the flag's [/cmd]", l)
	}
	if d, _ := fs.GetString("data-dir"); d != "/srv" {
		t.Errorf("data-dir = %q, want the file's", d)
	}
	if s := src["max-running-jobs"].String(); s != "command line" {
		t.Errorf("source = %s", s)
	}
	if s := src["shutdown-timeout"].String(); s != "default" {
		t.Errorf("source = %s", s)
	}
}

func TestApplyErrorsNameKeyAndLine(t *testing.T) {
	for text, want := range map[string]string{
		"data-dir = /x\nmax-jobs = 3\n":          `jobqd.conf:2: max-jobs: unknown key (the keys are data-dir, luxi-socket, max-running-jobs, shutdown-timeout)`,
		"config = /etc/other\n":                  `jobqd.conf:1: config: unknown key (the keys are data-dir, luxi-socket, max-running-jobs, shutdown-timeout)`,
		"\nmax-running-jobs = ten\n":             `jobqd.conf:2: max-running-jobs: "ten" is not a whole number`,
		"shutdown-timeout = 30\n":                `jobqd.conf:1: shutdown-timeout: "30" is not a duration such as 30s, 2m or 1h30m`,
		"data-dir = /a\n# x\ndata-dir = /b\n":    `jobqd.conf:3: data-dir: given twice (first on line 1)`,
		"luxi-socket = /a\nluxi-socket = /b\n\n": ``,
	} {
		_, err := Apply(flags(t), "jobqd.conf", parse(t, text), keys)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", text, err)
		case want != "" && (err == nil || err.Error() != want):
			t.Errorf("%q: error %v, want %s", text, err, want)
		}
		var e *Error
		if want != "" && !errors.As(err, &e) {
			t.Errorf("%q: %T is not an *Error", text, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.conf")
	if s, found, err := Load(missing, false); err != nil || found || s != nil {
		t.Errorf("missing default file: %v %v %v", s, found, err)
	}
	if _, _, err := Load(missing, true); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing explicit file: %v", err)
	}
	p := filepath.Join(dir, "jobqd.conf")
	os.WriteFile(p, []byte("data-dir = /srv\n"), 0o644)
	if s, found, err := Load(p, false); err != nil || !found || len(s) != 1 {
		t.Errorf("Load = %v %v %v", s, found, err)
	}
	os.WriteFile(p, []byte("data-dir\n"), 0o644)
	if _, _, err := Load(p, false); err == nil || !strings.HasPrefix(err.Error(), p+":1: ") {
		t.Errorf("Load of a bad file: %v", err)
	}
}

func TestWriteRoundTrips(t *testing.T) {
	fs := flags(t, "--max-running-jobs", "3")
	src, err := Apply(fs, "jobqd.conf", parse(t, "luxi-socket = /a\nluxi-socket = /b\n"), keys)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Write(&b, fs, keys, src); err != nil {
		t.Fatal(err)
	}
	want := `data-dir         = /var/lib/jobq   # default
luxi-socket      = /a   # jobqd.conf:1
luxi-socket      = /b   # jobqd.conf:1
max-running-jobs = 3   # command line
shutdown-timeout = 30s   # default
`
	if b.String() != want {
		t.Fatalf("Write:\n%s\nwant:\n%s", b.String(), want)
	}
	// Read back, it gives the same values.
	again := flags(t)
	if _, err := Apply(again, "effective", parse(t, b.String()), keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if a, b := again.Lookup(k).Value.String(), fs.Lookup(k).Value.String(); a != b {
			t.Errorf("%s: %s after a round trip, was %s", k, a, b)
		}
	}
	// A repeatable key without values is a comment.
	b.Reset()
	Write(&b, flags(t), keys, Sources{})
	if !strings.Contains(b.String(), "# luxi-socket      = (none)   # default\n") {
		t.Errorf("Write without sockets:\n%s", b.String())
	}
}

func TestSourceErrorf(t *testing.T) {
	if err := (Source{File: "/etc/jobq/jobqd.conf", Line: 7}).Errorf("log-level", "%q is not a level", "loud"); err.Error() != `/etc/jobq/jobqd.conf:7: log-level: "loud" is not a level` {
		t.Error(err)
	}
	if err := (Source{Flag: true}).Errorf("log-level", "bad"); err.Error() != `--log-level: bad` {
		t.Error(err)
	}
}
