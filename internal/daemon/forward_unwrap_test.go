package daemon

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/luxi"
)

// TestUnwrapForwarded: a forwarded call gives back the call, its author
// and the admin decision; anything else on the nodes' stream is refused,
// a forwarded call or a hand-over wrapped in one included.
func TestUnwrapForwarded(t *testing.T) {
	who := author.LUXIUser(1000, "alice")
	wrap := func(method string, args string) *luxi.Request {
		b, err := json.Marshal([]any{who, true, method, json.RawMessage(args)})
		if err != nil {
			t.Fatal(err)
		}
		return &luxi.Request{Method: forwardedMethod, Args: b}
	}
	req, gotWho, admin, err := unwrapForwarded(wrap("QueryJobs", `[[1],["id"]]`))
	if err != nil || req.Method != "QueryJobs" || string(req.Args) != `[[1],["id"]]` || gotWho != who || !admin {
		t.Fatalf("unwrap: %+v %v %v %v", req, gotWho, admin, err)
	}
	for name, r := range map[string]*luxi.Request{
		"another method":      {Method: "QueryJobs", Args: json.RawMessage(`[]`)},
		"three members":       {Method: forwardedMethod, Args: json.RawMessage(`[{}, true, "QueryJobs"]`)},
		"not a list":          {Method: forwardedMethod, Args: json.RawMessage(`{}`)},
		"admin not a boolean": {Method: forwardedMethod, Args: json.RawMessage(`[{}, "yes", "QueryJobs", []]`)},
		"nested":              wrap(forwardedMethod, `[]`),
		"hand-over":           wrap(handOverMethod, `["node2"]`),
	} {
		if _, _, _, err := unwrapForwarded(r); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "another method" && !strings.Contains(err.Error(), "a forwarded call is [actor, admin, method, arguments]") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
