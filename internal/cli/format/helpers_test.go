package format

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The reference captures were taken on a cluster whose local time is UTC.
var refLoc = time.UTC

// golden returns testdata/<name>.golden: the output of a reference capture
// (ganeti-reference/<name>.txt) without the command line, the exit code
// line and the "[... lines omitted ...]" marker.
func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goldenLines returns the golden lines for which keep is true.
func goldenLines(t *testing.T, name string, keep func(line string) bool) string {
	t.Helper()
	var out strings.Builder
	for _, l := range strings.SplitAfter(golden(t, name), "\n") {
		if l != "" && keep(l) {
			out.WriteString(l)
		}
	}
	return out.String()
}

// decode decodes JSON the way the CLI decodes LUXI replies.
func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// decodeFloat decodes JSON without UseNumber (every number a float64).
func decodeFloat(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func checkText(t *testing.T, what, got, want string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, diff)
	}
}

func writeString(t *testing.T, f func(w *bytes.Buffer) error) string {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
