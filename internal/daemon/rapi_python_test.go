package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ganetiPython returns a python3 that has Ganeti's RAPI client, or skips.
func ganetiPython(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "from ganeti.rapi import client").Run() == nil {
			return path
		}
		tried = append(tried, path)
	}
	if len(tried) == 0 {
		t.Skip("no python3: cannot run Ganeti's Python RAPI client")
	}
	t.Skipf("Ganeti's Python RAPI client is not installed for %s (Debian package python3-ganeti-rapi; .ci/run installs it when run as root)", strings.Join(tried, ", "))
	return ""
}

// rapiClientScript drives GanetiRapiClient, unchanged, against jobqd. It
// verifies the server against the cluster certificate (by IP address).
// It prints one JSON line with what each call returned, then "waiting",
// then (once the held job has finished) a second JSON line.
const rapiClientScript = `
import json, sys
from ganeti.rapi import client

cfg = json.loads(sys.argv[1])
ids = cfg["ids"]
curl = client.GenericCurlConfig(cafile=cfg["cafile"], verify_hostname=True)

def new(user, password):
    return client.GanetiRapiClient(cfg["host"], cfg["port"], username=user,
                                   password=password, curl_config_fn=curl)

def call(fn):
    try:
        return {"ok": fn()}
    except client.GanetiApiError as err:
        return {"error": err.code, "message": str(err)}

cl = new("admin", "adminpw")
r = {}
r["GetVersion"] = call(cl.GetVersion)
r["GetInfo"] = call(cl.GetInfo)
r["GetFeatures"] = call(cl.GetFeatures)
r["GetJobs"] = call(cl.GetJobs)
r["GetJobs(bulk)"] = call(lambda: [[j["id"], j["status"]] for j in cl.GetJobs(bulk=True)])
r["GetJobStatus(ok)"] = call(lambda: cl.GetJobStatus(ids["ok"]))
r["GetJobStatus(unknown)"] = call(lambda: cl.GetJobStatus(4242))
r["WaitForJobChange(ok)"] = call(lambda: cl.WaitForJobChange(ids["ok"], ["status", "opresult"], None, None))
r["WaitForJobChange(running)"] = call(lambda: cl.WaitForJobChange(ids["hold"], ["status"], ["queued"], None))
r["WaitForJobCompletion(ok)"] = call(lambda: cl.WaitForJobCompletion(ids["ok"]))
r["WaitForJobCompletion(failed)"] = call(lambda: cl.WaitForJobCompletion(ids["failed"]))
r["CancelJob(queued)"] = call(lambda: cl.CancelJob(ids["queued"]))
r["GetJobStatus(queued).status"] = call(lambda: cl.GetJobStatus(ids["queued"])["status"])
r["CancelJob(running)"] = call(lambda: cl.CancelJob(ids["hold"]))
r["CancelJob(finished)"] = call(lambda: cl.CancelJob(ids["ok"]))
r["CancelJob(unknown)"] = call(lambda: cl.CancelJob(4242))
r["GetJobs as admin with a wrong password"] = call(new("admin", "wrong").GetJobs)
r["CancelJob as reader"] = call(lambda: new("reader", "readerpw").CancelJob(ids["hold"]))
r["GetJobs as alice ({HA1})"] = call(new("alice", "wonderland").GetJobs)
print(json.dumps(r), flush=True)

# Wait for the held job: the test lets it finish once it reads "waiting".
print("waiting", flush=True)
prev = ["running"]
while True:
    change = cl.WaitForJobChange(ids["hold"], ["status"], prev, None)
    if change is not None:
        prev = change["job_info"]
        if prev[0] in ("success", "error", "canceled"):
            break
print(json.dumps({"final": prev, "WaitForJobCompletion(hold)": cl.WaitForJobCompletion(ids["hold"])}), flush=True)
`

func TestRAPIGanetiPythonClient(t *testing.T) {
	py := ganetiPython(t)
	n := startRAPINode(t, "", 1, rapiUsers)

	// Jobs in every state the calls need: two finished (one failed), one
	// running that holds the only worker, one queued behind it.
	ok := n.submit(`[{"OP_ID": "OP_TEST_JQUEUE", "log_messages": ["first", "second"]}]`)
	failed := n.submit(`[{"OP_ID": "OP_TEST_JQUEUE", "fail": true}]`)
	n.waitStatus(ok, is("success"))
	n.waitStatus(failed, is("error"))
	hold := n.submit(`[{"OP_ID": "OP_TEST_STEPS", "steps": 1}]`)
	n.waitStatus(hold, is("running"))
	queued := n.submit(`[{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]`)

	host, port, _ := strings.Cut(n.addr, ":")
	var portNum int
	fmt.Sscan(port, &portNum)
	cfg, _ := json.Marshal(map[string]any{
		"host": host, "port": portNum, "cafile": filepath.Join(n.dir, "cluster", "cert.pem"),
		"ids": map[string]int64{"ok": ok, "failed": failed, "hold": hold, "queued": queued},
	})
	script := filepath.Join(t.TempDir(), "rapi_client.py")
	if err := os.WriteFile(script, []byte(rapiClientScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, string(cfg))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	lines.Buffer(nil, 1<<20)
	next := func() string {
		if !lines.Scan() {
			cmd.Wait()
			t.Fatalf("the Python client stopped: %s", stderr.String())
		}
		return lines.Text()
	}
	first := next()
	if w := next(); w != "waiting" {
		t.Fatalf("Python said %q", w)
	}
	n.next <- struct{}{} // let the held job finish
	second := next()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	t.Logf("Ganeti's Python RAPI client returned:\n%s\n%s", first, second)

	var got map[string]map[string]any
	if err := json.Unmarshal([]byte(first), &got); err != nil {
		t.Fatal(err)
	}
	okOf := func(call string) any {
		t.Helper()
		r, found := got[call]
		if !found || r["error"] != nil {
			t.Errorf("%s: %v", call, r)
			return nil
		}
		return r["ok"]
	}
	errOf := func(call string, code float64) {
		t.Helper()
		if r := got[call]; r["error"] != code {
			t.Errorf("%s: %v, want error %v", call, r, code)
		}
	}
	expect := func(call string, want any) {
		t.Helper()
		if v := okOf(call); !reflect.DeepEqual(v, want) {
			t.Errorf("%s = %#v, want %#v", call, v, want)
		}
	}
	num := func(id int64) float64 { return float64(id) }

	expect("GetVersion", 2.0)
	if info, _ := okOf("GetInfo").(map[string]any); info["name"] != "node1.jobq.test" || info["master"] != "node1.jobq.test" {
		t.Errorf("GetInfo: %v", info)
	}
	expect("GetFeatures", []any{"jobs-submit"})
	expect("GetJobs", []any{num(ok), num(failed), num(hold), num(queued)})
	expect("GetJobs(bulk)", []any{
		[]any{num(ok), "success"}, []any{num(failed), "error"}, []any{num(hold), "running"}, []any{num(queued), "queued"}})
	if st, _ := okOf("GetJobStatus(ok)").(map[string]any); st["id"] != num(ok) || st["status"] != "success" ||
		!reflect.DeepEqual(st["opresult"], []any{true}) || len(st["oplog"].([]any)[0].([]any)) != 2 {
		t.Errorf("GetJobStatus(ok): %v", st)
	}
	errOf("GetJobStatus(unknown)", 404)
	if w, _ := okOf("WaitForJobChange(ok)").(map[string]any); !reflect.DeepEqual(w["job_info"], []any{"success", []any{true}}) ||
		len(w["log_entries"].([]any)) != 2 {
		t.Errorf("WaitForJobChange(ok): %v", w)
	}
	if w, _ := okOf("WaitForJobChange(running)").(map[string]any); !reflect.DeepEqual(w["job_info"], []any{"running"}) {
		t.Errorf("WaitForJobChange(running): %v", w)
	}
	expect("WaitForJobCompletion(ok)", true)
	expect("WaitForJobCompletion(failed)", false)
	expect("CancelJob(queued)", []any{true, fmt.Sprintf("Dequeued job %d", queued)})
	expect("GetJobStatus(queued).status", "canceled")
	expect("CancelJob(running)", []any{false, "Job no longer waiting, can't cancel (informed it anyway)"})
	expect("CancelJob(finished)", []any{false, fmt.Sprintf("Job %d is no longer waiting in the queue", ok)})
	errOf("CancelJob(unknown)", 404)
	errOf("GetJobs as admin with a wrong password", 401)
	errOf("CancelJob as reader", 403)
	expect("GetJobs as alice ({HA1})", []any{num(ok), num(failed), num(hold), num(queued)})

	var fin map[string]any
	if err := json.Unmarshal([]byte(second), &fin); err != nil ||
		!reflect.DeepEqual(fin, map[string]any{"final": []any{"success"}, "WaitForJobCompletion(hold)": true}) {
		t.Errorf("waiting for the held job: %s", second)
	}
}
