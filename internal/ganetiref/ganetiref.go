// Package ganetiref is for tests: reading the Ganeti reference captures in
// testdata/ganeti-reference (see the README.md there), the golden fixtures
// taken from a real Ganeti 3.0.2 cluster.
//
// It finds the capture directory, lists captures, and parses the LUXI ones:
// a luxi-<Call>[-case].txt file holds one exchange, the raw bytes on the
// wire as Python bytes literals (`>>> b'...'` for the request of Ganeti's
// Python client, `<<< b'...'` for luxid's reply) and then, after a line
// "# decoded:", the same messages as indented JSON; luxi-socat-v.txt is a
// `socat -v` transcript of one whole conversation.
//
// The functions taking a directory return errors; those taking a
// testing.TB locate the directory themselves and end the test on error.
// Only tests should import this package.
package ganetiref

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// RelDir is the capture directory, relative to the repository root.
const RelDir = "testdata/ganeti-reference"

// Socat is the name of the LUXI capture that is a socat transcript of a
// conversation rather than one exchange (see ReadConversation).
const Socat = "luxi-socat-v"

// FindDir returns the capture directory of the repository that holds
// start: it walks up from start to the first directory with a go.mod and
// returns RelDir there, which must be a directory. Tests pass "." (go test
// runs them in their package's directory).
func FindDir(start string) (string, error) {
	dir, err := filepath.Abs(start)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			refDir := filepath.Join(dir, filepath.FromSlash(RelDir))
			fi, err := os.Stat(refDir)
			if err != nil {
				return "", err
			}
			if !fi.IsDir() {
				return "", fmt.Errorf("%s is not a directory", refDir)
			}
			return refDir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod in %s or above", start)
		}
		dir = parent
	}
}

// Names returns the names, without ".txt", of the captures in dir whose
// names match pattern (a filepath.Match pattern such as "luxi-*"), sorted.
func Names(dir, pattern string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, pattern+".txt"))
	if err != nil {
		return nil, err
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = strings.TrimSuffix(filepath.Base(f), ".txt")
	}
	slices.Sort(names)
	return names, nil
}

// Capture is one LUXI exchange: a luxi-*.txt file other than Socat.
type Capture struct {
	Name       string // the file name without ".txt"
	ReqRaw     []byte // request bytes on the wire, terminator included
	RepRaw     []byte // reply bytes on the wire, terminator included
	ReqDecoded any    // the "# decoded:" request (encoding/json's values)
	RepDecoded any    // the "# decoded:" reply
	ClientErr  string // "# client exception:", if any
}

// ParseCapture parses the text of a luxi-*.txt exchange. Each of the raw
// request, raw reply, decoded request and decoded reply must be there,
// the raw ones once.
func ParseCapture(text string) (Capture, error) {
	var c Capture
	var reqJSON, repJSON []string
	section := "" // "", "req", "rep" within "# decoded:"
	decoded := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case !decoded && (strings.HasPrefix(line, ">>> b") || strings.HasPrefix(line, "<<< b")):
			dst, what := &c.ReqRaw, "request"
			if line[0] == '<' {
				dst, what = &c.RepRaw, "reply"
			}
			if *dst != nil {
				return c, fmt.Errorf("more than one raw %s", what)
			}
			b, err := ParsePyBytes(line[len(">>> "):])
			if err != nil {
				return c, fmt.Errorf("raw %s: %v", what, err)
			}
			*dst = b
		case line == "# decoded:":
			decoded = true
		case strings.HasPrefix(line, "# client exception: "):
			c.ClientErr = strings.TrimPrefix(line, "# client exception: ")
			section = ""
		case decoded && strings.HasPrefix(line, ">>> "):
			section = "req"
			reqJSON = append(reqJSON, strings.TrimPrefix(line, ">>> "))
		case decoded && strings.HasPrefix(line, "<<< "):
			section = "rep"
			repJSON = append(repJSON, strings.TrimPrefix(line, "<<< "))
		case line == "" || strings.HasPrefix(line, "#"):
			section = ""
		case section == "req":
			reqJSON = append(reqJSON, line)
		case section == "rep":
			repJSON = append(repJSON, line)
		}
	}
	if c.ReqRaw == nil || c.RepRaw == nil || reqJSON == nil || repJSON == nil {
		return c, errors.New("missing raw or decoded request or reply")
	}
	if err := json.Unmarshal([]byte(strings.Join(reqJSON, "\n")), &c.ReqDecoded); err != nil {
		return c, fmt.Errorf("decoded request: %v", err)
	}
	if err := json.Unmarshal([]byte(strings.Join(repJSON, "\n")), &c.RepDecoded); err != nil {
		return c, fmt.Errorf("decoded reply: %v", err)
	}
	return c, nil
}

// ReadCapture reads and parses the capture name (without ".txt") in dir.
func ReadCapture(dir, name string) (Capture, error) {
	data, err := os.ReadFile(filepath.Join(dir, name+".txt"))
	if err != nil {
		return Capture{}, err
	}
	c, err := ParseCapture(string(data))
	if err != nil {
		return c, fmt.Errorf("%s: %v", name, err)
	}
	c.Name = name
	return c, nil
}

// ReadCaptures reads and parses every LUXI exchange in dir (luxi-*.txt
// but Socat), sorted by name.
func ReadCaptures(dir string) ([]Capture, error) {
	names, err := Names(dir, "luxi-*")
	if err != nil {
		return nil, err
	}
	var out []Capture
	for _, name := range names {
		if name == Socat {
			continue
		}
		c, err := ReadCapture(dir, name)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ParsePyBytes parses a Python bytes literal such as b'{"a": 1}\n\x03', in
// single or double quotes, with the escapes Python's repr writes: \\ \'
// \" \n \r \t \xNN. Nothing but white space may follow it.
func ParsePyBytes(lit string) ([]byte, error) {
	if len(lit) < 3 || lit[0] != 'b' || (lit[1] != '\'' && lit[1] != '"') {
		return nil, fmt.Errorf("not a bytes literal: %.20q", lit)
	}
	quote := lit[1]
	out := []byte{}
	for i := 2; i < len(lit); i++ {
		ch := lit[i]
		switch {
		case ch == quote:
			if rest := strings.TrimSpace(lit[i+1:]); rest != "" {
				return nil, fmt.Errorf("text after bytes literal: %q", rest)
			}
			return out, nil
		case ch != '\\':
			out = append(out, ch)
			continue
		}
		i++
		if i >= len(lit) {
			break
		}
		switch e := lit[i]; e {
		case '\\', '\'', '"':
			out = append(out, e)
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x':
			if i+2 >= len(lit) {
				return nil, errors.New("short \\x escape")
			}
			n, err := strconv.ParseUint(lit[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("bad \\x escape: %v", err)
			}
			out = append(out, byte(n))
			i += 2
		default:
			return nil, fmt.Errorf("unsupported escape \\%c", e)
		}
	}
	return nil, errors.New("unterminated bytes literal")
}

// Chunk is one message of a socat transcript.
type Chunk struct {
	FromClient bool   // ">": from Ganeti's client to luxid
	Data       []byte // the message, its terminator as 0x03
}

var socatHeader = regexp.MustCompile(`([<>]) \d{4}/\d\d/\d\d \S+\s+length=(\d+) from=(\d+) to=(\d+)\n`)

// ParseSocat parses a `socat -v` transcript: after each header come
// exactly length bytes of data, in which socat shows the 0x03 terminator
// (the last byte of every message here) as '.'. The offsets of each
// direction must follow on from each other.
func ParseSocat(text []byte) ([]Chunk, error) {
	var out []Chunk
	next := map[bool]int{true: 0, false: 0} // expected "from" per direction
	pos := -1
	for _, m := range socatHeader.FindAllSubmatchIndex(text, -1) {
		if pos >= 0 && m[0] != pos {
			return nil, fmt.Errorf("socat transcript: unexpected text %q", text[pos:m[0]])
		}
		fromClient := string(text[m[2]:m[3]]) == ">"
		length, _ := strconv.Atoi(string(text[m[4]:m[5]]))
		from, _ := strconv.Atoi(string(text[m[6]:m[7]]))
		to, _ := strconv.Atoi(string(text[m[8]:m[9]]))
		if from != next[fromClient] || to-from+1 != length {
			return nil, fmt.Errorf("socat transcript: bad offsets in %q", text[m[0]:m[1]])
		}
		next[fromClient] = to + 1
		end := m[1] + length
		if length < 1 || end > len(text) || text[end-1] != '.' {
			return nil, fmt.Errorf("socat transcript: chunk at %d does not end in the terminator", m[1])
		}
		data := bytes.Clone(text[m[1]:end])
		data[len(data)-1] = 0x03
		out = append(out, Chunk{FromClient: fromClient, Data: data})
		pos = end
	}
	if pos < 0 || strings.TrimSpace(string(text[pos:])) != "" {
		return nil, errors.New("socat transcript: no chunks or trailing text")
	}
	return out, nil
}

// ReadConversation reads the Socat transcript in dir and returns its
// requests and replies (terminators included), which must alternate,
// starting with a request.
func ReadConversation(dir string) (reqs, reps [][]byte, err error) {
	text, err := os.ReadFile(filepath.Join(dir, Socat+".txt"))
	if err != nil {
		return nil, nil, err
	}
	chunks, err := ParseSocat(text)
	if err != nil {
		return nil, nil, err
	}
	for i, c := range chunks {
		if c.FromClient != (i%2 == 0) {
			return nil, nil, fmt.Errorf("chunk %d: requests and replies do not alternate", i)
		}
		if c.FromClient {
			reqs = append(reqs, c.Data)
		} else {
			reps = append(reps, c.Data)
		}
	}
	return reqs, reps, nil
}

// Dir returns FindDir(".") or ends the test.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir, err := FindDir(".")
	if err != nil {
		tb.Fatalf("Ganeti reference captures: %v", err)
	}
	return dir
}

// LoadCapture returns the capture name (without ".txt") or ends the test.
func LoadCapture(tb testing.TB, name string) Capture {
	tb.Helper()
	c, err := ReadCapture(Dir(tb), name)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// LoadCaptures returns every LUXI exchange (see ReadCaptures) or ends the
// test.
func LoadCaptures(tb testing.TB) []Capture {
	tb.Helper()
	cs, err := ReadCaptures(Dir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// LoadConversation returns the requests and replies of the Socat
// transcript (see ReadConversation) or ends the test.
func LoadConversation(tb testing.TB) (reqs, reps [][]byte) {
	tb.Helper()
	reqs, reps, err := ReadConversation(Dir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return reqs, reps
}
