package ganetiref

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFindDir(t *testing.T) {
	want, err := filepath.Abs(filepath.Join("..", "..", filepath.FromSlash(RelDir)))
	if err != nil {
		t.Fatal(err)
	}
	for _, start := range []string{".", "", "..", filepath.Join("..", ".."), want, filepath.Join(want, "queue")} {
		got, err := FindDir(start)
		if err != nil || got != want {
			t.Errorf("FindDir(%q) = %q, %v; want %q", start, got, err, want)
		}
	}
	if got := Dir(t); got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(want, "README.md")); err != nil {
		t.Errorf("capture directory without its README: %v", err)
	}

	// A module without captures, and no module at all.
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(tmp, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := FindDir(sub); err == nil {
		t.Errorf("FindDir in a module without captures = %q, want an error", got)
	}
	if err := os.MkdirAll(filepath.Join(tmp, filepath.FromSlash(RelDir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := FindDir(sub); err != nil || got != filepath.Join(tmp, filepath.FromSlash(RelDir)) {
		t.Errorf("FindDir(%q) = %q, %v", sub, got, err)
	}
	if got, err := FindDir(string(filepath.Separator)); err == nil {
		t.Errorf("FindDir(/) = %q, want an error", got)
	}
}

func TestNames(t *testing.T) {
	dir := Dir(t)
	luxi, err := Names(dir, "luxi-*")
	if err != nil {
		t.Fatal(err)
	}
	if len(luxi) < 35 || !slices.IsSorted(luxi) || !slices.Contains(luxi, Socat) || !slices.Contains(luxi, "luxi-SubmitJob") {
		t.Errorf("Names(luxi-*) = %q", luxi)
	}
	for _, n := range luxi {
		if !strings.HasPrefix(n, "luxi-") || strings.HasSuffix(n, ".txt") {
			t.Errorf("name %q", n)
		}
	}
	cli, err := Names(dir, "cli-*")
	if err != nil || len(cli) == 0 || slices.Contains(cli, "README") {
		t.Errorf("Names(cli-*) = %q, %v", cli, err)
	}
	if none, err := Names(dir, "nothing-*"); err != nil || len(none) != 0 {
		t.Errorf("Names(nothing-*) = %q, %v", none, err)
	}
	if _, err := Names(dir, "["); err == nil {
		t.Error("Names with a bad pattern: no error")
	}
}

// TestEveryCaptureParses parses every LUXI capture of the directory and
// checks that its raw and decoded messages agree.
func TestEveryCaptureParses(t *testing.T) {
	dir := Dir(t)
	names, err := Names(dir, "luxi-*")
	if err != nil {
		t.Fatal(err)
	}
	cs := LoadCaptures(t)
	if len(cs) != len(names)-1 {
		t.Fatalf("LoadCaptures: %d captures, want %d (all luxi-* but %s)", len(cs), len(names)-1, Socat)
	}
	for i, c := range cs {
		t.Run(c.Name, func(t *testing.T) {
			if i > 0 && cs[i-1].Name >= c.Name {
				t.Errorf("not sorted: %s after %s", c.Name, cs[i-1].Name)
			}
			if !bytes.HasSuffix(c.ReqRaw, []byte("\n\x03")) || !bytes.HasSuffix(c.RepRaw, []byte("\x03")) {
				t.Errorf("terminators: %q, %q", c.ReqRaw, c.RepRaw)
			}
			for _, m := range []struct {
				raw     []byte
				decoded any
			}{{c.ReqRaw, c.ReqDecoded}, {c.RepRaw, c.RepDecoded}} {
				var v any
				if err := json.Unmarshal(bytes.TrimSuffix(m.raw, []byte{0x03}), &v); err != nil {
					t.Fatalf("raw %q: %v", m.raw, err)
				}
				if diff := cmp.Diff(m.decoded, v); diff != "" {
					t.Errorf("raw and decoded differ (-decoded +raw):\n%s", diff)
				}
			}
			if again := LoadCapture(t, c.Name); !cmp.Equal(again, c) {
				t.Errorf("LoadCapture differs from LoadCaptures")
			}
		})
	}
	if c := LoadCapture(t, "luxi-SubmitJob-drained"); c.ClientErr == "" {
		t.Error("luxi-SubmitJob-drained: no client exception")
	}
	if _, err := ReadCapture(dir, "luxi-no-such-capture"); err == nil {
		t.Error("ReadCapture of a missing capture: no error")
	}

	reqs, reps := LoadConversation(t)
	if len(reqs) != 10 || len(reps) != 10 {
		t.Fatalf("LoadConversation: %d requests, %d replies", len(reqs), len(reps))
	}
	for i := range reqs {
		for _, m := range [][]byte{reqs[i], reps[i]} {
			if bytes.IndexByte(m, 0x03) != len(m)-1 || !json.Valid(m[:len(m)-1]) {
				t.Errorf("call %d: message %q", i+1, m)
			}
		}
	}
}

func TestParsePyBytes(t *testing.T) {
	for _, tc := range []struct{ lit, want string }{
		{`b''`, ""},
		{`b""`, ""},
		{`b'abc'`, "abc"},
		{`b'{"a": "it\'s \\"x\\""}\n\x03'`, "{\"a\": \"it's \\\"x\\\"\"}\n\x03"},
		{`b"it's \"q\" \'s\'"`, `it's "q" 's'`},
		{`b'\n\t\r\\'`, "\n\t\r\\"},
		{`b'\\n'`, `\n`},
		{`b'\x00\x7f\x80\xff\xAb'`, "\x00\x7f\x80\xff\xab"},
		{`b'a"b'`, `a"b`},
		{`b"a'b"`, `a'b`},
		{"b'x'  \t", "x"},
	} {
		got, err := ParsePyBytes(tc.lit)
		if err != nil || string(got) != tc.want || got == nil {
			t.Errorf("ParsePyBytes(%s) = %q, %v; want %q", tc.lit, got, err, tc.want)
		}
	}
	for _, lit := range []string{
		``, `b`, `b'`, `'abc'`, `x'abc'`, `bytes`,
		`b'abc`,     // unterminated
		`b'abc\'`,   // the quote is escaped
		`b'a' b'b'`, // text after it
		`b'\q'`,     // unsupported escape
		`b'\x4'`,    // short \x
		`b'\x'`,
		`b'\xzz'`,
		`b'\x-1'`,
		`b'\`,
	} {
		if got, err := ParsePyBytes(lit); err == nil {
			t.Errorf("ParsePyBytes(%s) = %q, want an error", lit, got)
		}
	}
}

const sampleCapture = `# LUXI X via /socket
# raw bytes on the wire (each message terminated by \x03):
>>> b'{"method": "X", "args": ["a\'b"]}\n\x03'
<<< b'{"success":false,"result":["OpPrereqError",["no"]]}\x03'
# client exception: OpPrereqError: no

# decoded:
>>> {
 "args": [
  "a'b"
 ],
 "method": "X"
}
<<< {
 "result": ["OpPrereqError", ["no"]],
 "success": false
}
`

func TestParseCapture(t *testing.T) {
	c, err := ParseCapture(sampleCapture)
	if err != nil {
		t.Fatal(err)
	}
	want := Capture{
		ReqRaw:     []byte("{\"method\": \"X\", \"args\": [\"a'b\"]}\n\x03"),
		RepRaw:     []byte(`{"success":false,"result":["OpPrereqError",["no"]]}` + "\x03"),
		ReqDecoded: map[string]any{"method": "X", "args": []any{"a'b"}},
		RepDecoded: map[string]any{"success": false, "result": []any{"OpPrereqError", []any{"no"}}},
		ClientErr:  "OpPrereqError: no",
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ParseCapture (-want +got):\n%s", diff)
	}

	for name, text := range map[string]string{
		"no raw request":     strings.Replace(sampleCapture, ">>> b'", "# b'", 1),
		"no raw reply":       strings.Replace(sampleCapture, "<<< b'", "# b'", 1),
		"two raw requests":   strings.Replace(sampleCapture, "<<< b'", ">>> b'{}'\n<<< b'", 1),
		"bad raw literal":    strings.Replace(sampleCapture, `\n\x03'`, `\n\x0'`, 1),
		"no decoded section": sampleCapture[:strings.Index(sampleCapture, "# decoded:")],
		"no decoded reply":   sampleCapture[:strings.LastIndex(sampleCapture, "<<< ")],
		"bad decoded JSON":   strings.Replace(sampleCapture, "\n \"method\": \"X\"\n", "\n \"method\": X\n", 1),
	} {
		if _, err := ParseCapture(text); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseSocat(t *testing.T) {
	header := func(dir string, length, from int) string {
		return dir + " 2026/11/27 05:48:02.000853041  length=" + strconv.Itoa(length) +
			" from=" + strconv.Itoa(from) + " to=" + strconv.Itoa(from+length-1) + "\n"
	}
	req1, rep1, req2 := "{\"a\": 1}\n.", "{\"b\":2}.", "[]\n."
	text := "# socat -v ...\n" +
		header(">", len(req1), 0) + req1 +
		header("<", len(rep1), 0) + rep1 +
		header(">", len(req2), len(req1)) + req2 + "\n"
	got, err := ParseSocat([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Chunk{
		{true, []byte("{\"a\": 1}\n\x03")},
		{false, []byte("{\"b\":2}\x03")},
		{true, []byte("[]\n\x03")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseSocat (-want +got):\n%s", diff)
	}

	for name, bad := range map[string]string{
		"empty":            "",
		"no terminator":    header(">", 3, 0) + "abc",
		"too short":        header(">", 10, 0) + "ab.",
		"bad offsets":      header(">", 2, 5) + "a.",
		"trailing text":    header(">", 2, 0) + "a.junk",
		"text in between":  header(">", 2, 0) + "a.x" + header("<", 2, 0) + "b.",
		"offsets not next": header(">", 2, 0) + "a." + header(">", 2, 0) + "b.",
	} {
		if got, err := ParseSocat([]byte(bad)); err == nil {
			t.Errorf("%s: ParseSocat = %v, want an error", name, got)
		}
	}
}

func TestReadConversation(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, Socat+".txt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("> 2026/11/27 05:48:02.0 length=2 from=0 to=1\na.< 2026/11/27 05:48:02.0 length=2 from=0 to=1\nb.")
	reqs, reps, err := ReadConversation(dir)
	if err != nil || !cmp.Equal(reqs, [][]byte{[]byte("a\x03")}) || !cmp.Equal(reps, [][]byte{[]byte("b\x03")}) {
		t.Errorf("ReadConversation = %q, %q, %v", reqs, reps, err)
	}
	write("< 2026/11/27 05:48:02.0 length=2 from=0 to=1\nb.")
	if _, _, err := ReadConversation(dir); err == nil {
		t.Error("a reply first: no error")
	}
	if _, _, err := ReadConversation(t.TempDir()); err == nil {
		t.Error("no transcript: no error")
	}
}
