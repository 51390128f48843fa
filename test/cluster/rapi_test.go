package cluster

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/testbin"
)

// TestRAPIOnAnyNode: every node serves RAPI on its --rapi-addr; a node
// that is not the master relays the connection to the master's RAPI over
// node RPC. A job submitted through a follower's RAPI runs on the master,
// and after a kill of the master the same follower's RAPI answers with the
// new master's queue.
func TestRAPIOnAnyNode(t *testing.T) {
	nodes := startCluster(t, 3)
	rapiAddr := map[*cnode]string{}
	for _, n := range nodes {
		// The master's users file decides: the same on every node.
		if err := os.MkdirAll(filepath.Join(n.dir, "rapi"), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "rapi", "users"), []byte("admin secret write\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := n.d.Stop(); err != nil {
			t.Fatal(err)
		}
		rapiAddr[n] = testbin.FreePort(t, "127.0.0.1")
		n.extra = append(n.extra, "--rapi-addr", rapiAddr[n])
		n.start(t)
		waitMaster(t, nodes...)
	}
	waitVoters(t, waitMaster(t, nodes...), "node1", "node2", "node3")
	m := waitMaster(t, nodes...)
	f := followers(m, nodes...)[0]

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	do := func(n *cnode, method, path, body string) (int, string, error) {
		req, _ := http.NewRequest(method, "https://"+rapiAddr[n]+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.SetBasicAuth("admin", "secret")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	code, body, err := do(f, "POST", "/2/jobs", `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.01}]}`)
	if err != nil || code != 200 {
		t.Fatalf("POST /2/jobs on follower %s: %d %q %v", f.name, code, body, err)
	}
	id := strings.TrimSpace(body)
	idn, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("POST /2/jobs answered %q", body)
	}
	cf := f.client(t)
	if st, err := cf.WatchJob(t.Context(), idn, nil); err != nil || st != "success" {
		t.Fatalf("job %s submitted through %s's RAPI: %v %v", id, f.name, st, err)
	}
	if code, body, err := do(f, "GET", "/2/jobs/"+id, ""); err != nil || code != 200 || !strings.Contains(body, `"status": "success"`) {
		t.Fatalf("GET /2/jobs/%s on follower %s: %d %q %v", id, f.name, code, body, err)
	}
	// A wrong password is refused by the master, through the relay.
	req, _ := http.NewRequest("GET", "https://"+rapiAddr[f]+"/2/jobs/"+id, nil)
	req.SetBasicAuth("admin", "wrong")
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("a wrong password through %s's RAPI: %v %v", f.name, resp, err)
	} else {
		resp.Body.Close()
	}

	m.d.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := do(f, "GET", "/2/jobs/"+id, "")
		if err == nil && code == 200 && strings.Contains(body, `"status": "success"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /2/jobs/%s on %s after the master's kill: %d %q %v", id, f.name, code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
