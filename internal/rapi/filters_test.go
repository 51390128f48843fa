package rapi

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/jobq-dev/jobq/internal/filter"
)

// memFilters keeps rules in memory, as jobqd does in its settings.
type memFilters struct {
	mu    sync.Mutex
	rules []filter.Rule
	next  int
}

func (m *memFilters) Rules() []filter.Rule {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := append([]filter.Rule(nil), m.rules...)
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out
}

func (m *memFilters) Replace(_ context.Context, in filter.Input) (string, error) {
	r, err := filter.NewRule(in, 42)
	if err != nil {
		return "", StatusError(http.StatusBadRequest, "Invalid filter: "+err.Error())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.UUID == "" {
		m.next++
		r.UUID = fmt.Sprintf("00000000-0000-4000-8000-%012d", m.next)
	}
	m.rules = filter.Replace(m.rules, r)
	return r.UUID, nil
}

func (m *memFilters) Delete(_ context.Context, uuid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rest, found := filter.Delete(m.rules, uuid)
	if !found {
		return StatusError(http.StatusNotFound, "Filter "+uuid+" does not exist")
	}
	m.rules = rest
	return nil
}

func TestFilterResources(t *testing.T) {
	mem := &memFilters{}
	e := newEnv(t, 1, func(c *Config) { c.Filters = mem })
	check := func(r reply, code int, body string) {
		t.Helper()
		if r.code != code || r.body != body {
			t.Errorf("got %d %q, want %d %q", r.code, r.body, code, body)
		}
	}
	check(e.do("GET", "/2/filters", "", "", ""), 200, "[]\n")
	// Changes need a write user.
	check(e.do("POST", "/2/filters", "", "", `{"action": "PAUSE"}`), 401,
		`{"code": 401, "message": "Unauthorized", "explain": "No permission -- see authorization schemes"}`+"\n")
	check(e.do("POST", "/2/filters", "ro", "ropw", `{"action": "PAUSE"}`), 403,
		`{"code": 403, "message": "Forbidden", "explain": "Request forbidden -- authorization will not help"}`+"\n")
	// A write user, as in Ganeti (jobq's admin option is not needed).
	u1 := "00000000-0000-4000-8000-000000000001"
	check(e.do("POST", "/2/filters", "writer", "writerpw",
		`{"priority": 1, "predicates": [["jobid", [">", "id", "watermark"]]], "action": "REJECT", "reason": [["luxid", "someFilterReason", 1409249801259897000]]}`),
		200, `"`+u1+`"`+"\n")
	check(e.do("GET", "/2/filters", "", "", ""), 200, `[{"uuid": "`+u1+`", "uri": "/2/filters/`+u1+`"}]`+"\n")
	want := `{"uuid": "` + u1 + `", "watermark": 42, "reason_trail": [["luxid", "someFilterReason", 1409249801259897000]], "priority": 1, "action": "REJECT", "predicates": [["jobid", [">", "id", "watermark"]]]}`
	check(e.do("GET", "/2/filters?bulk=1", "", "", ""), 200, "["+want+"]\n")
	check(e.do("GET", "/2/filters/"+u1, "", "", ""), 200, want+"\n")
	u2 := "2828f17b-e475-435d-bd95-3e8a7d97210d"
	check(e.do("PUT", "/2/filters/"+u2, "admin", "adminpw", `{"uuid": "`+u2+`", "action": ["RATE_LIMIT", 3]}`), 200, `"`+u2+`"`+"\n")
	check(e.do("GET", "/2/filters/"+u2, "", "", ""), 200,
		`{"uuid": "`+u2+`", "watermark": 42, "reason_trail": [], "priority": 0, "action": ["RATE_LIMIT", 3], "predicates": []}`+"\n")
	// Invalid bodies are refused with the member at fault.
	for _, tc := range []struct{ body, msg string }{
		{`{"action": "STOP"}`, `Invalid filter: action must be one of ACCEPT, PAUSE, REJECT, CONTINUE or [&quot;RATE_LIMIT&quot;, n], got &quot;STOP&quot;`},
		{`{"priority": -1}`, `Invalid filter: priority must be a non-negative integer (0 is the highest), got -1`},
		{`{"predicates": [["status", null]]}`, `Invalid filter: predicates[0]: unknown predicate &quot;status&quot;: use jobid, opcode or reason`},
		{`{"actions": "PAUSE"}`, `Unknown parameter &#x27;actions&#x27;; a filter takes priority, predicates, action and reason`},
		{`{"uuid": "` + u1 + `"}`, `The &#x27;uuid&#x27; parameter must be the filter&#x27;s uuid of the path, /2/filters/UUID`},
	} {
		check(e.do("PUT", "/2/filters/"+u2, "admin", "adminpw", tc.body), 400,
			`{"code": 400, "message": "`+tc.msg+`", "explain": "Bad request syntax or unsupported method"}`+"\n")
	}
	check(e.do("DELETE", "/2/filters/"+u2, "admin", "adminpw", "{}"), 200, "null\n") // Ganeti's client sends {}
	check(e.do("DELETE", "/2/filters/"+u2, "admin", "adminpw", ""), 404,
		`{"code": 404, "message": "Filter `+u2+` does not exist", "explain": "Nothing matches the given URI"}`+"\n")
	check(e.do("GET", "/2/filters/"+u2, "", "", ""), 404,
		`{"code": 404, "message": "Filter `+u2+` not found; GET /2/filters lists the filters", "explain": "Nothing matches the given URI"}`+"\n")
	if r := e.do("PATCH", "/2/filters", "admin", "adminpw", ""); r.code != 501 || !strings.Contains(r.body, "PATCH is unsupported") {
		t.Errorf("PATCH: %d %s", r.code, r.body)
	}
	if len(mem.Rules()) != 1 {
		t.Errorf("rules left: %+v", mem.Rules())
	}
}

// Without Config.Filters the resources do not exist.
func TestFilterResourcesOff(t *testing.T) {
	e := newEnv(t, 1, nil)
	if r := e.do("GET", "/2/filters", "", "", ""); r.code != 404 {
		t.Errorf("GET /2/filters without filters: %d %s", r.code, r.body)
	}
}
