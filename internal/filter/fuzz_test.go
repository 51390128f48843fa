package filter

import (
	"encoding/json"
	"testing"
)

// FuzzNewRule: whatever a client sends, NewRule answers a rule or an
// error, never a panic, and every rule it accepts survives the stored form
// (Encode, Decode) and compiles, and deciding with it does not panic.
func FuzzNewRule(f *testing.F) {
	for _, seed := range []string{
		`{"priority":5,"predicates":[["opcode",["=","OP_ID","OP_TEST_DELAY"]]],"action":"REJECT","reason":[["gnt:user","maintenance",1796663153487710976]]}`,
		`{"predicates":[["jobid",[">","id","watermark"]]],"action":"PAUSE"}`,
		`{"predicates":[["reason",["=~","reason","pink bunny"]]],"action":"ACCEPT"}`,
		`{"action":["RATE_LIMIT",10],"predicates":[["jobid",["!",["|",["<=","id","watermark"],["==","id",3]]]]]}`,
		`{"priority":"x","predicates":{},"action":[],"reason":[[1,2,3]]}`,
		`{"predicates":[["opcode",["=[]","on_nodes","node1"]],["opcode",["?","dry_run"]]]}`,
	} {
		f.Add([]byte(seed))
	}
	job := NewJob(7, []json.RawMessage{
		json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":1,"on_nodes":["node1"],"dry_run":false,"reason":[["gnt:user","pink bunny",1]]}`),
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		uuid, _ := m["uuid"].(string)
		r, err := NewRule(Input{UUID: uuid, Priority: m["priority"], Predicates: m["predicates"], Action: m["action"], Reason: m["reason"]}, 3)
		if err != nil {
			return
		}
		if r.UUID == "" {
			r.UUID = "00000000-0000-4000-8000-000000000001"
		}
		enc, err := Encode([]Rule{r})
		if err != nil {
			t.Fatalf("Encode(%+v): %v", r, err)
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(%s): %v", enc, err)
		}
		enc2, _ := Encode(back)
		if string(enc2) != string(enc) {
			t.Fatalf("stored form changed:\n%s\n%s", enc, enc2)
		}
		s, err := Compile(back)
		if err != nil {
			t.Fatalf("Compile(%s): %v", enc, err)
		}
		s.Decide(job, []*Job{job})
	})
}
