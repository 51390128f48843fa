package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rapiFilterScript drives GanetiRapiClient's filter calls, unchanged,
// against jobqd and prints one JSON object with what each returned.
const rapiFilterScript = `
import json, sys
from ganeti.rapi import client

cfg = json.loads(sys.argv[1])
curl = client.GenericCurlConfig(cafile=cfg["cafile"], verify_hostname=True)
cl = client.GanetiRapiClient(cfg["host"], cfg["port"], username="admin",
                             password="adminpw", curl_config_fn=curl)

def call(fn):
    try:
        return {"ok": fn()}
    except client.GanetiApiError as err:
        return {"error": err.code, "message": str(err)}

r = {}
r["GetFilters(none)"] = call(cl.GetFilters)
uuid = cl.AddFilter(3, [["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]], "PAUSE", [["gnt:user", "maintenance", 1]])
r["AddFilter"] = {"ok": uuid}
r["GetFilters"] = call(cl.GetFilters)
r["GetFilters(bulk)"] = call(lambda: cl.GetFilters(bulk=True))
r["GetFilter"] = call(lambda: cl.GetFilter(uuid))
r["AddFilter(invalid)"] = call(lambda: cl.AddFilter(-1, [], "PAUSE"))
print(json.dumps(r), flush=True)
sys.stdin.readline()
r = {}
r["ReplaceFilter"] = call(lambda: cl.ReplaceFilter(uuid, 3, [["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]], ["RATE_LIMIT", 1]))
r["GetFilter(replaced)"] = call(lambda: cl.GetFilter(uuid)["action"])
r["DeleteFilter"] = call(lambda: cl.DeleteFilter(uuid))
r["DeleteFilter(again)"] = call(lambda: cl.DeleteFilter(uuid))
r["GetFilter(deleted)"] = call(lambda: cl.GetFilter(uuid))
print(json.dumps(r), flush=True)
`

// Ganeti's Python RAPI client manages jobqd's filters: a PAUSE filter it
// adds holds a job queued until it deletes the filter.
func TestRAPIGanetiPythonClientFilters(t *testing.T) {
	py := ganetiPython(t)
	n := startRAPINode(t, "", 2, rapiUsers)
	host, port, _ := strings.Cut(n.addr, ":")
	var portNum int
	fmt.Sscan(port, &portNum)
	cfg, _ := json.Marshal(map[string]any{"host": host, "port": portNum, "cafile": filepath.Join(n.dir, "cluster", "cert.pem")})
	script := filepath.Join(t.TempDir(), "rapi_filters.py")
	if err := os.WriteFile(script, []byte(rapiFilterScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, string(cfg))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	var first, second map[string]map[string]any
	if err := dec.Decode(&first); err != nil {
		cmd.Wait()
		t.Fatalf("the Python client stopped: %v %s", err, stderr.String())
	}
	uuid, _ := first["AddFilter"]["ok"].(string)
	if len(uuid) != 36 {
		t.Fatalf("AddFilter returned %v", first["AddFilter"])
	}
	// The filter holds a new OP_TEST_DELAY job.
	paused := n.submit(`[{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]`)
	other := n.submit(`[{"OP_ID": "OP_TEST_JQUEUE"}]`)
	n.waitStatus(other, is("success"))
	if st := n.waitStatus(paused, is("queued")); st != "queued" {
		t.Fatalf("job under the PAUSE filter: %s", st)
	}
	fmt.Fprintln(stdin, "go on")
	if err := dec.Decode(&second); err != nil {
		cmd.Wait()
		t.Fatalf("the Python client stopped: %v %s", err, stderr.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	n.waitStatus(paused, is("success"))

	expect := func(r map[string]map[string]any, call string, want map[string]any) {
		t.Helper()
		if got := r[call]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", call, got, want)
		}
	}
	expect(first, "GetFilters(none)", map[string]any{"ok": []any{}})
	expect(first, "GetFilters", map[string]any{"ok": []any{uuid}})
	bulk, _ := first["GetFilters(bulk)"]["ok"].([]any)
	if len(bulk) != 1 {
		t.Fatalf("GetFilters(bulk) = %v", first["GetFilters(bulk)"])
	}
	rule := bulk[0].(map[string]any)
	trail := rule["reason_trail"].([]any)
	if rule["uuid"] != uuid || rule["priority"] != 3.0 || rule["action"] != "PAUSE" || rule["watermark"] != 0.0 ||
		!reflect.DeepEqual(rule["predicates"], []any{[]any{"opcode", []any{"==", "OP_ID", "OP_TEST_DELAY"}}}) ||
		len(trail) != 3 || trail[0].([]any)[1] != "maintenance" || trail[1].([]any)[0] != "gnt:client" || trail[2].([]any)[0] != "luxid" {
		t.Errorf("GetFilters(bulk) = %v", rule)
	}
	expect(first, "GetFilter", map[string]any{"ok": rule})
	if r := first["AddFilter(invalid)"]; r["error"] != 400.0 || !strings.Contains(fmt.Sprint(r["message"]), "priority must be a non-negative integer") {
		t.Errorf("AddFilter(invalid) = %v", r)
	}
	expect(second, "ReplaceFilter", map[string]any{"ok": uuid})
	expect(second, "GetFilter(replaced)", map[string]any{"ok": []any{"RATE_LIMIT", 1.0}})
	expect(second, "DeleteFilter", map[string]any{"ok": nil})
	if r := second["DeleteFilter(again)"]; r["error"] != 404.0 {
		t.Errorf("DeleteFilter(again) = %v", r)
	}
	if r := second["GetFilter(deleted)"]; r["error"] != 404.0 {
		t.Errorf("GetFilter(deleted) = %v", r)
	}
}
