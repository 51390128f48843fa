package query

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// ParseText gives what Ganeti's own parser gives for the same text
// (testdata/qlang-ganeti.jsonl, made with Ganeti 3.0's qlang.ParseFilter),
// and each result over job fields is a filter Query accepts.
func TestParseTextAsGaneti(t *testing.T) {
	f, err := os.Open("testdata/qlang-ganeti.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		var c []json.RawMessage
		var text string
		if err := json.Unmarshal([]byte(line), &c); err != nil || len(c) != 2 || json.Unmarshal(c[0], &text) != nil {
			t.Fatalf("bad case %s", line)
		}
		n++
		got, err := ParseText(text)
		if err != nil {
			t.Errorf("%s: %v", text, err)
			continue
		}
		b, _ := json.Marshal(got)
		var want any
		json.Unmarshal(c[1], &want)
		wb, _ := json.Marshal(want)
		if string(b) != string(wb) {
			t.Errorf("%s:\n got %s\nwant %s", text, b, wb)
		}
		// Fields that jobs do not have (Ganeti's cases include node and
		// tag fields) are refused by Query, not by the parser.
		if _, err := ParseFilter(b); err != nil && !strings.Contains(err.Error(), "Can't find field named") {
			t.Errorf("%s: Query refuses %s: %v", text, b, err)
		}
	}
	if n < 20 {
		t.Fatalf("only %d cases", n)
	}
}

func TestParseTextErrors(t *testing.T) {
	for text, want := range map[string]string{
		"":                   "cannot parse the filter at character 1: a condition is missing at the end",
		"status ==":          "cannot parse the filter at character 10: a value is missing at the end",
		`status == "running`: `cannot parse the filter at character 11: the string has no closing "`,
		"(id > 1":            "cannot parse the filter at character 8: a closing parenthesis is missing",
		"id > 1 )":           `cannot parse the filter at character 8: unexpected ")"`,
		`summary =~ /x/g`:    "cannot parse the filter at character 15: unknown regular expression flags: 'g' (i and s are known)",
		`summary =~ /(/`:     "cannot parse the filter at character 15: invalid regular expression (error parsing regexp: missing closing ): `(`)",
		`"x" tags`:           `cannot parse the filter at character 5: expected "in" or "not in" after the value x`,
		"id == running":      `cannot parse the filter at character 7: expected a whole number or a quoted string, found "running"`,
		"id > 1 and":         "cannot parse the filter at character 11: a condition is missing at the end",
		"== 3":               `cannot parse the filter at character 1: expected a field name, found "== 3"`,
	} {
		_, err := ParseText(text)
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}
