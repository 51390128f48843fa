package format

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// referenceDir holds the original captures; the test is skipped where it
// is not available.
const referenceDir = "../../../testdata/ganeti-reference"

// The golden files are the reference outputs, unchanged.
func TestGoldenMatchesReference(t *testing.T) {
	if _, err := os.Stat(referenceDir); err != nil {
		t.Skipf("reference captures not available: %v", err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".golden")
		raw, err := os.ReadFile(filepath.Join(referenceDir, name+".txt"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		lines := strings.SplitAfter(string(raw), "\n")
		if len(lines) < 3 || !strings.HasPrefix(lines[0], "$ ") || !strings.HasPrefix(lines[len(lines)-2], "[rc=") {
			t.Errorf("%s: unexpected capture layout", name)
			continue
		}
		var want strings.Builder
		for _, l := range lines[1 : len(lines)-2] {
			if !strings.HasPrefix(l, "... [") {
				want.WriteString(l)
			}
		}
		checkText(t, name, golden(t, name), want.String())
	}
}
