// Package config reads jobqd's configuration file, /etc/jobq/jobqd.conf,
// and applies it to the command's flags, so that the file and the command
// line mean the same thing: a key is named like the long flag, its value
// is parsed by the flag itself, and a flag given on the command line wins
// over the file.
//
// The format is one setting per line:
//
//	# a comment
//	data-dir = /var/lib/jobq
//	luxi-socket = /run/ganeti/socket/ganeti-query   # repeatable keys may appear again
//
// Blank lines and lines starting with "#" are ignored; " #" (a "#" after
// white space) starts a comment at the end of a line. White space around
// keys and values is dropped. A key that is not one of the allowed keys, a
// line without "=", a value the flag refuses, and a key given twice (other
// than a repeatable one) are errors naming the file, the line and the key.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// DefaultPath is where jobqd looks for its configuration file when
// --config is not given. A missing file there is not an error.
const DefaultPath = "/etc/jobq/jobqd.conf"

// Setting is one "key = value" line of a file.
type Setting struct {
	Key   string
	Value string
	Line  int
}

// Error is a problem with one line of a configuration file.
type Error struct {
	File string
	Line int
	Key  string // "" when the line has no key
	Msg  string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// Parse reads the settings of a file; name is used in errors.
func Parse(r io.Reader, name string) ([]Setting, error) {
	var out []Setting
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(stripComment(sc.Text()))
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok {
			return nil, &Error{File: name, Line: n, Msg: fmt.Sprintf("%q is not a \"key = value\" setting", line)}
		}
		if key == "" {
			return nil, &Error{File: name, Line: n, Msg: "the setting has no key before \"=\""}
		}
		out = append(out, Setting{Key: key, Value: value, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, err)
	}
	return out, nil
}

// stripComment drops a comment: the whole line when it starts with "#"
// (after white space), else from the first "#" that follows white space.
func stripComment(line string) string {
	if strings.HasPrefix(strings.TrimSpace(line), "#") {
		return ""
	}
	for i := 1; i < len(line); i++ {
		if line[i] == '#' && (line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// Load reads the file at path. A missing file is an error only when
// explicit (the path was given with --config); otherwise Load returns no
// settings and found false.
func Load(path string, explicit bool) (settings []Setting, found bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("cannot read the configuration file: %w", err)
	}
	defer f.Close()
	settings, err = Parse(f, path)
	return settings, err == nil, err
}

// Source says where a setting's value came from.
type Source struct {
	File string // "" for the command line or the default
	Line int    // 0 for the command line or the default
	Flag bool   // given on the command line
}

func (s Source) String() string {
	switch {
	case s.Flag:
		return "command line"
	case s.File != "":
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return "default"
}

// Errorf is an error about the setting key from this source: "FILE:LINE:
// key: ..." for the file, "--key: ..." for the command line or default.
func (s Source) Errorf(key, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	if s.File != "" && !s.Flag {
		return &Error{File: s.File, Line: s.Line, Key: key, Msg: msg}
	}
	return fmt.Errorf("--%s: %s", key, msg)
}

// Sources maps each allowed key to where its value came from.
type Sources map[string]Source

// Apply sets the flags of fs named by keys from settings read from file.
// A flag already changed (given on the command line) keeps its value and
// its file settings are ignored. Repeatable flags (slices) take every
// value the file gives, in order; any other key may appear once.
func Apply(flags *pflag.FlagSet, file string, settings []Setting, keys []string) (Sources, error) {
	src := Sources{}
	for _, k := range keys {
		if flags.Lookup(k) == nil {
			return nil, fmt.Errorf("config: key %q is not a flag", k)
		}
		src[k] = Source{Flag: flags.Changed(k)}
	}
	for _, s := range settings {
		f := flags.Lookup(s.Key)
		if f == nil || !slices.Contains(keys, s.Key) {
			return nil, &Error{File: file, Line: s.Line, Key: s.Key,
				Msg: fmt.Sprintf("unknown key (the keys are %s)", strings.Join(keys, ", "))}
		}
		prev := src[s.Key]
		if prev.Flag {
			continue
		}
		if prev.File != "" && !repeatable(f) {
			return nil, &Error{File: file, Line: s.Line, Key: s.Key,
				Msg: fmt.Sprintf("given twice (first on line %d)", prev.Line)}
		}
		if err := flags.Set(s.Key, s.Value); err != nil {
			return nil, &Error{File: file, Line: s.Line, Key: s.Key, Msg: badValue(f, s.Value, err)}
		}
		if prev.File == "" {
			src[s.Key] = Source{File: file, Line: s.Line}
		}
	}
	return src, nil
}

func repeatable(f *pflag.Flag) bool {
	_, ok := f.Value.(pflag.SliceValue)
	return ok
}

// badValue says why the flag refused value, in words for the usual kinds.
func badValue(f *pflag.Flag, value string, err error) string {
	switch f.Value.Type() {
	case "int", "int64", "uint", "uint64":
		return fmt.Sprintf("%q is not a whole number", value)
	case "duration":
		return fmt.Sprintf("%q is not a duration such as 30s, 2m or 1h30m", value)
	case "bool":
		return fmt.Sprintf("%q is not true or false", value)
	case "DURATION":
		// package duration's Value: its error says it all (after
		// pflag's "invalid argument ... flag: ").
		msg := err.Error()
		if _, after, ok := strings.Cut(msg, " flag: "); ok {
			msg = after
		}
		return msg
	}
	return fmt.Sprintf("bad value %q: %v", value, err)
}

// SecretAnnotation marks a flag (pflag annotation, value "true") whose
// value Write does not print.
const SecretAnnotation = "jobq-secret"

// Write prints the effective value of every key in the file's syntax, each
// with where it came from, so that the output is itself a configuration
// file. A repeatable key prints one line per value, or a comment when it
// has none.
func Write(w io.Writer, flags *pflag.FlagSet, keys []string, src Sources) error {
	width := 0
	for _, k := range keys {
		width = max(width, len(k))
	}
	for _, k := range keys {
		f := flags.Lookup(k)
		if f == nil {
			return fmt.Errorf("config: key %q is not a flag", k)
		}
		var vals []string
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			vals = sv.GetSlice()
		} else {
			vals = []string{f.Value.String()}
		}
		if a := f.Annotations[SecretAnnotation]; len(a) > 0 && a[0] == "true" && f.Value.String() != "" {
			vals = []string{"(secret, not shown)"}
		}
		if len(vals) == 0 {
			if _, err := fmt.Fprintf(w, "# %-*s = (none)   # %s\n", width, k, src[k]); err != nil {
				return err
			}
		}
		for _, v := range vals {
			if _, err := fmt.Fprintf(w, "%-*s = %s   # %s\n", width, k, v, src[k]); err != nil {
				return err
			}
		}
	}
	return nil
}
