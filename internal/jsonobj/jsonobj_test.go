package jsonobj

import (
	"encoding/json"
	"testing"
)

func TestOrderAndEscaping(t *testing.T) {
	o := new(Object).Add("z", 1).Add("a", "<b>&").Add("m", json.RawMessage(`[1, 2]`)).Add("n", nil)
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	// Members in insertion order; an outer json.Marshal escapes HTML, the
	// object itself does not.
	own, _ := o.MarshalJSON()
	if string(own) != `{"z":1,"a":"<b>&","m":[1,2],"n":null}` {
		t.Fatalf("MarshalJSON %s", own)
	}
	if string(b) != `{"z":1,"a":"\u003cb\u003e\u0026","m":[1,2],"n":null}` {
		t.Fatalf("json.Marshal %s", b)
	}
	if _, err := new(Object).Add("bad", func() {}).MarshalJSON(); err == nil {
		t.Fatal("a function was encoded")
	}
	if b, _ := new(Object).MarshalJSON(); string(b) != "{}" {
		t.Fatalf("empty: %s", b)
	}
}
