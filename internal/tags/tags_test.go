package tags

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		tag, err string
	}{
		{"a", ""},
		{"TEMP-Ganeti-QA-Tag0", ""},
		{"x.y+z*/w:v@u-t_s", ""},
		{"ünïcode", ""},
		{strings.Repeat("a", 128), ""},
		{strings.Repeat("é", 128), ""}, // characters, not bytes
		{strings.Repeat("a", 129), "Tag too long (>128 characters)"},
		{"", "Tags cannot be empty"},
		{"a b", "Tag contains invalid characters"},
		{"a,b", "Tag contains invalid characters"},
		{"a\n", "Tag contains invalid characters"},
		{"a=b", "Tag contains invalid characters"},
	} {
		err := Validate(c.tag)
		got := ""
		if err != nil {
			got = err.Error()
			if e := err.(*Error); e.Class != "TagError" {
				t.Errorf("Validate(%q): class %s, want TagError", c.tag, e.Class)
			}
		}
		if got != c.err {
			t.Errorf("Validate(%q) = %q, want %q", c.tag, got, c.err)
		}
	}
}

func TestAddRemove(t *testing.T) {
	var d Doc
	d, err := d.Add("", []string{"b", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	d, err = d.Add("n1", []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, d.Get("")); diff != "" {
		t.Error(diff)
	}
	if _, err := d.Add("", []string{"ok", "bad tag"}); err == nil || err.Error() != "Tag contains invalid characters" {
		t.Errorf("Add with an invalid tag: %v", err)
	}
	if _, err := d.Remove("", []string{"a", "zz", "c"}); err == nil || err.Error() != "Tag(s) 'c', 'zz' not found" {
		t.Errorf("Remove of missing tags: %v", err)
	}
	d2, err := d.Remove("", []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b"}, d2.Get("")); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"a", "b"}, d.Get("")); diff != "" {
		t.Errorf("Remove changed its receiver: %s", diff)
	}
	d3, err := d2.Remove("n1", []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d3.Nodes["n1"]; ok {
		t.Error("a node without tags keeps an entry")
	}
	back, err := Decode(d.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, back); diff != "" {
		t.Errorf("Encode/Decode: %s", diff)
	}
}

func TestTooMany(t *testing.T) {
	many := make([]string, MaxPerObj)
	for i := range many {
		many[i] = "t" + itoa(i)
	}
	d, err := Doc{}.Add("", many)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Add("", []string{many[0]}); err != nil {
		t.Errorf("adding a tag the object has at the limit: %v", err)
	}
	if _, err := d.Add("", []string{"one-more"}); err == nil || err.Error() != "Error while setting tag: Too many tags" {
		t.Errorf("tag %d: %v", MaxPerObj+1, err)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestTargetAndSearch(t *testing.T) {
	nodes := []string{"n1", "n2"}
	for _, c := range []struct{ kind, name, want, err string }{
		{"cluster", "ignored", "", ""},
		{"node", "n2", "n2", ""},
		{"node", "n3", "", "Node 'n3' not known"},
		{"instance", "i", "", "jobq has no instance objects: only the cluster and its nodes have tags"},
		{"bogus", "", "", "Wrong tag type requested (bogus)"},
	} {
		got, err := Target(c.kind, c.name, nodes)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if got != c.want || msg != c.err {
			t.Errorf("Target(%s, %s) = %q, %q; want %q, %q", c.kind, c.name, got, msg, c.want, c.err)
		}
	}
	d := Doc{Cluster: []string{"TEMP-1", "keep"}, Nodes: map[string][]string{"n2": {"TEMP-2"}, "gone": {"TEMP-3"}}}
	got, _ := json.Marshal(d.Search(regexp.MustCompile(`^TEMP-\d+$`), nodes))
	if want := `[["/cluster","TEMP-1"],["/nodes/n2","TEMP-2"]]`; string(got) != want {
		t.Errorf("Search = %s, want %s", got, want)
	}
	if _, err := CompilePattern("("); err == nil || !strings.HasPrefix(err.Error(), "Invalid search pattern '(': ") {
		t.Errorf("CompilePattern: %v", err)
	}
}
