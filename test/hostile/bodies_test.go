package hostile

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// vm reads a Vm* line of jobqd's /proc status (VmRSS now, VmHWM its peak)
// in bytes.
func (d *daemon) vm(key string) int64 {
	d.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid()))
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				d.t.Fatalf("%s line %q", key, line)
			}
			return kb << 10
		}
	}
	d.t.Fatalf("no %s in /proc/%d/status", key, d.Pid())
	return 0
}

// TestAnonymousBigBodiesEverywhere (issue 16, finding 2): 64 anonymous
// clients at once, each sending a 64 MiB body to one of every resource
// (declared or chunked, fast or slowly), do not take jobqd's memory
// anywhere near what they send: its peak resident memory (VmHWM) stays
// under 300 MB, and an authenticated client is served meanwhile. (Before,
// one anonymous GET /2/info with a 60 MB body raised RSS by 2.3 GB.)
func TestAnonymousBigBodiesEverywhere(t *testing.T) {
	d := start(t, t.TempDir())
	addr, cfg := d.rapi()
	id := submitRAPI(t, addr, cfg)
	resources := []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/2"}, {"GET", "/version"}, {"GET", "/2/info"}, {"GET", "/2/features"},
		{"GET", "/2/jobs"}, {"POST", "/2/jobs"}, {"GET", fmt.Sprintf("/2/jobs/%d", id)},
		{"DELETE", fmt.Sprintf("/2/jobs/%d", id)}, {"GET", fmt.Sprintf("/2/jobs/%d/wait", id)},
		{"GET", "/metrics"}, {"GET", "/ui/"}, {"POST", "/ui/login"}, {"GET", "/nosuch"}, {"PUT", "/2/jobs"},
	}
	const clients, size = 64, 64 << 20
	baseRSS := d.vm("VmRSS")
	var wg sync.WaitGroup
	statuses := make([]string, clients)
	for i := range clients {
		res := resources[i%len(resources)]
		chunked, slow := i%2 == 1, i%4 >= 2
		c := dialTLS(t, addr, cfg)
		hdr := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", res.method, res.path)
		if chunked {
			hdr += "Transfer-Encoding: chunked\r\n\r\n"
		} else {
			hdr += fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
		}
		wg.Add(2)
		go func() {
			// Writes until it has sent the body or jobqd closed the
			// connection; the slow ones 64 KiB every 10 ms (pacing, not
			// a wait).
			defer wg.Done()
			if _, err := c.Write([]byte(hdr)); err != nil {
				return
			}
			chunk := bytes.Repeat([]byte("["), 1<<20)
			if slow {
				chunk = chunk[:64<<10]
			}
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for n := 0; n < size; n += len(chunk) {
				var err error
				if chunked {
					_, err = fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk)
				} else {
					_, err = c.Write(chunk)
				}
				if err != nil {
					return
				}
				if slow {
					<-tick.C
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				statuses[i] = fmt.Sprintf("%s %s: no answer within 2 minutes: %v", res.method, res.path, err)
				return
			}
			resp.Body.Close()
			statuses[i] = fmt.Sprintf("%s %s chunked=%v slow=%v: %d", res.method, res.path, chunked, slow, resp.StatusCode)
		}()
	}
	// Meanwhile an authenticated client submits and reads jobs.
	for range 3 {
		n := submitRAPI(t, addr, cfg)
		if code, body := https(t, addr, cfg, "GET", fmt.Sprintf("/2/jobs/%d", n), nil, 0); code != 200 || !strings.Contains(body, `"id": `+strconv.FormatInt(n, 10)) {
			t.Fatalf("GET /2/jobs/%d meanwhile: %d %q", n, code, body)
		}
	}
	served(t, d.client())
	wg.Wait()
	for _, s := range statuses {
		if !strings.HasSuffix(s, ": 401") && !strings.HasSuffix(s, ": 404") && !strings.HasSuffix(s, ": 413") &&
			!strings.HasSuffix(s, ": 501") && !strings.HasSuffix(s, ": 400") && !strings.HasSuffix(s, ": 303") {
			t.Errorf("anonymous big body: %s, want a refusal (or the dashboard's redirect to its login page)", s)
		}
	}
	peak := d.vm("VmHWM")
	t.Logf("jobqd VmRSS before %s, peak (VmHWM) %s, now %s; %d anonymous clients each sending %s",
		mib(baseRSS), mib(peak), mib(d.vm("VmRSS")), clients, mib(size))
	if peak >= 300e6 {
		t.Errorf("jobqd's peak resident memory %s, want under 300 MB", mib(peak))
	}
	d.alive()
}

// submitRAPI submits a job as the admin over RAPI and returns its id.
func submitRAPI(t *testing.T, addr string, cfg *tls.Config) int64 {
	t.Helper()
	ops := `{"ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 0.001}]}`
	code, body := https(t, addr, cfg, "POST", "/2/jobs", strings.NewReader(ops), int64(len(ops)))
	id, err := strconv.ParseInt(strings.TrimSpace(body), 10, 64)
	if code != 200 || err != nil {
		t.Fatalf("POST /2/jobs: %d %q", code, body)
	}
	return id
}
