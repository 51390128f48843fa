package web_test

// End-to-end tests in headless Chromium: a real jobqd (daemon.Run) serving
// the dashboard over HTTPS with its cluster certificate, driven through
// the Chrome DevTools protocol (chromedp). They skip when Chromium is not
// installed on a developer machine, saying so, and fail in CI (CI or
// JOBQ_CI set; .ci/run installs Debian's package chromium).
//
// JOBQ_WEB_SCREENSHOTS=DIR makes the test write the README's screenshots
// there (docs/ of the repository):
//
//	JOBQ_WEB_SCREENSHOTS=$PWD/docs go test -run TestBrowser -count=1 ./internal/web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/internal/testbin"
	"github.com/jobq-dev/jobq/opcodes"
)

// chromium finds the browser: $JOBQ_CHROMIUM, else chromium (Debian) or
// chromium-browser on $PATH.
func chromium() string {
	if p := os.Getenv("JOBQ_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// e2eSteps is OP_TEST_STEPS for the browser test: it logs "step i" and
// then waits for the test to send on next (or close it).
type e2eSteps struct {
	next  chan struct{}
	Steps int `json:"steps"`
}

func (p *e2eSteps) Validate() error { return nil }

func (p *e2eSteps) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	for i := range p.Steps {
		env.Log(fmt.Sprintf("step %d of %d", i+1, p.Steps))
		select {
		case <-p.next:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return map[string]any{"steps": p.Steps}, nil
}

// e2eFail is OP_TEST_FAIL for the browser tests: it fails with its
// message (an OpExecError), so that each failed job says its own reason.
type e2eFail struct {
	Message string `json:"message"`
}

func (p *e2eFail) Validate() error { return nil }

func (p *e2eFail) Exec(context.Context, opcodes.Env) (any, error) {
	return nil, opcodes.ExecError("%s", p.Message)
}

// node is a jobqd with RAPI (and so the dashboard) on 127.0.0.1.
type node struct {
	t    *testing.T
	base string
	hc   *http.Client
	spki string // the certificate's public key hash, for Chromium
	next chan struct{}
}

func startNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rapi"), 0o750); err != nil {
		t.Fatal(err)
	}
	users := "admin adminpw write\nviewer viewerpw read\n"
	if err := os.WriteFile(daemon.RAPIUsersFile(dir), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, next: make(chan struct{})}
	reg := opcodes.Builtin()
	if err := reg.Register(opcodes.Definition{ID: "OP_TEST_STEPS", SummaryField: "steps",
		New: func() opcodes.Params { return &e2eSteps{next: n.next} }}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(opcodes.Definition{ID: "OP_TEST_FAIL",
		New: func() opcodes.Params { return &e2eFail{} }}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	var addr net.Addr
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			DataDir: dir, NodeName: "node1.jobq.test", RAPIAddr: "127.0.0.1:0", MaxRunning: 1,
			ShutdownTimeout: 5 * time.Second, Registry: reg, Logger: slog.New(slog.DiscardHandler),
			RAPIReady: func(a net.Addr) { addr = a },
			Ready:     func() { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("jobqd did not start: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(n.next) })
		cancel()
		if err := <-done; err != nil {
			t.Errorf("jobqd: %v", err)
		}
	})
	n.base = "https://" + addr.String()
	certPEM, err := os.ReadFile(filepath.Join(dir, "cluster", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	n.spki = base64.StdEncoding.EncodeToString(sum[:])
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	n.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return n
}

// rapi calls RAPI as admin and decodes the answer into out.
func (n *node) rapi(method, path, body string, out any) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.base+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.SetBasicAuth("admin", "adminpw")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		n.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			n.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// submit submits a job of opcodes through RAPI and returns its id.
func (n *node) submit(ops ...string) int64 {
	n.t.Helper()
	var id int64
	n.rapi("POST", "/2/jobs", `{"ops": [`+strings.Join(ops, ", ")+`]}`, &id)
	return id
}

// waitStatus waits for one of the statuses with RAPI's job wait.
func (n *node) waitStatus(id int64, want ...string) {
	n.t.Helper()
	prev := "null"
	for {
		var res struct {
			JobInfo []string `json:"job_info"`
		}
		n.rapi("GET", fmt.Sprintf("/2/jobs/%d/wait", id),
			`{"fields": ["status"], "previous_job_info": `+prev+`, "previous_log_serial": 1000000}`, &res)
		if len(res.JobInfo) == 1 {
			for _, w := range want {
				if res.JobInfo[0] == w {
					return
				}
			}
			prev = `["` + res.JobInfo[0] + `"]`
		}
	}
}

func delayOp(d float64) string {
	return fmt.Sprintf(`{"OP_ID": "OP_TEST_DELAY", "duration": %g}`, d)
}

// browser runs actions, failing the test with what the page showed.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		b.t.Fatalf("%s: %v\npage: %s", what, err, body)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// waitJS waits until a JavaScript expression is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))
}

func (b *browser) login(base, user, pw string) {
	b.t.Helper()
	b.do("log in as "+user,
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#user`)),
		chromedp.SendKeys(chromedp.CSS(`#user`), user),
		chromedp.SendKeys(chromedp.CSS(`#password`), pw),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#h-counts`)),
	)
}

// a11yProblems lists basic accessibility faults of the page: form
// controls without a label, links and buttons without text, not exactly one
// h1, skipped heading levels, no language.
const a11yProblems = `(() => {
	const p = [];
	if (!document.documentElement.lang) p.push('no lang');
	for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
		if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) p.push('unlabelled ' + (el.name || el.id));
	}
	for (const el of document.querySelectorAll('a[href], button')) {
		if (!el.textContent.trim() && !el.getAttribute('aria-label')) p.push('no text: ' + el.outerHTML.slice(0, 80));
	}
	const hs = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].filter(h => h.offsetParent !== null);
	if (hs.filter(h => h.tagName === 'H1').length !== 1) p.push('h1 count');
	let last = 0;
	for (const h of hs) {
		const l = +h.tagName[1];
		if (l > last + 1) p.push('heading jumps to ' + h.tagName + ': ' + h.textContent.trim().slice(0, 40));
		last = l;
	}
	return p.join('; ');
})()`

// checkA11y fails the test on the problems a11yProblems finds.
func (b *browser) checkA11y(page string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[string](a11yProblems))
	if err != nil {
		b.t.Fatalf("accessibility check of %s: %v", page, err)
	}
	if p != "" {
		b.t.Errorf("accessibility of %s: %s", page, p)
	}
}

// screenshot writes a PNG of the page to $JOBQ_WEB_SCREENSHOTS/name when
// that is set.
func (b *browser) screenshot(name string, width, height int64, mobile bool) {
	b.t.Helper()
	dir := os.Getenv("JOBQ_WEB_SCREENSHOTS")
	if dir == "" {
		return
	}
	opts := []chromedp.EmulateViewportOption{}
	if mobile {
		opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	b.do("viewport", chromedp.EmulateViewport(width, height, opts...))
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		b.t.Fatalf("screenshot %s is no PNG", name)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.do("viewport back", chromedp.EmulateViewport(1280, 900))
	b.t.Logf("wrote %s", filepath.Join(dir, name))
}

// TestDaemonServesTheDashboard checks jobqd's wiring without a browser: the
// dashboard is on the RAPI port, with RAPI's users, next to RAPI itself.
func TestDaemonServesTheDashboard(t *testing.T) {
	n := startNode(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: n.hc.Transport, Jar: jar, Timeout: 30 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(n.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/ui/"); code != http.StatusOK || !strings.Contains(body, `<label for="user">`) {
		t.Fatalf("GET /ui/ before logging in: %d %.300s", code, body)
	}
	resp, err := hc.PostForm(n.base+"/ui/login", url.Values{"user": {"admin"}, "password": {"adminpw"}, "next": {"/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "node1.jobq.test") ||
		!strings.Contains(string(b), "holds the queue (master)") || !strings.Contains(string(b), "of 1 busy") {
		t.Fatalf("overview after logging in: %d %.500s", resp.StatusCode, b)
	}
	id := n.submit(delayOp(0.01))
	n.waitStatus(id, "success")
	if code, body := get(fmt.Sprintf("/ui/jobs/%d", id)); code != http.StatusOK || !strings.Contains(body, "OP_TEST_DELAY") {
		t.Fatalf("job page: %d %.300s", code, body)
	}
	var version int
	n.rapi("GET", "/version", "", &version)
	if version != 2 {
		t.Fatalf("RAPI /version: %d", version)
	}
	n.hc.CloseIdleConnections()
}

// startBrowser starts headless Chromium trusting n's certificate, and
// stops it at the test's end. Without Chromium the test fails in CI and
// skips, saying so, on a developer machine (testbin.Missing).
func startBrowser(t *testing.T, n *node) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests are not short")
	}
	path := chromium()
	if path == "" {
		testbin.Missing(t, "Chromium is not installed (Debian: apt-get install chromium; or set JOBQ_CHROMIUM)")
		return nil
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		// Trust jobqd's self-signed cluster certificate, and only it.
		chromedp.Flag("ignore-certificate-errors-spki-list", n.spki),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		var ee *exec.ExitError
		if errors.As(err, &ee) || strings.Contains(err.Error(), "exec") {
			t.Fatalf("Chromium (%s) did not start: %v", path, err)
		}
		t.Fatalf("Chromium: %v", err)
	}
	return &browser{t: t, ctx: bctx}
}

func TestBrowser(t *testing.T) {
	n := startNode(t)
	admin := startBrowser(t, n)
	bctx := admin.ctx

	// Some history for the overview: two successes and an error.
	for _, ops := range [][]string{{delayOp(0.01)}, {delayOp(0.01), delayOp(0.01)}, {`{"OP_ID": "OP_TEST_JQUEUE", "fail": true}`}} {
		id := n.submit(ops...)
		n.waitStatus(id, "success", "error")
	}

	// Log in; the overview shows the node.
	admin.login(n.base, "admin", "adminpw")
	if s := admin.text(`#h-nodes + .scroll tbody`); !strings.Contains(s, "node1.jobq.test") || !strings.Contains(s, "holds the queue (master)") {
		t.Fatalf("nodes: %q", s)
	}

	// A job submitted while the job list is open appears in it.
	admin.do("job list", chromedp.Navigate(n.base+"/ui/jobs"), chromedp.WaitVisible(chromedp.CSS(`#f-status`)))
	admin.checkA11y("the job list")
	run := n.submit(`{"OP_ID": "OP_TEST_STEPS", "steps": 3}`)
	link := fmt.Sprintf(`a[href="/ui/jobs/%d"]`, run)
	admin.do("the submitted job appears", chromedp.WaitVisible(chromedp.CSS(link)))

	// Its page shows the log lines as they arrive, without reloading.
	admin.do("open the job", chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.CSS(`#op-0 .log`)),
		waitJS(`document.querySelector('#op-0 .log tbody').textContent.includes('step 1 of 3')`),
		chromedp.Evaluate[chromedp.Void](`window.jobqSamePage = true`))
	if s := admin.text(`h1 [data-bind=status]`); s != "running" {
		t.Fatalf("status %q", s)
	}
	admin.checkA11y("a running job's page")
	n.next <- struct{}{}
	admin.do("the second log line arrives live",
		waitJS(`document.querySelector('#op-0 .log tbody').textContent.includes('step 2 of 3')`),
		waitJS(`window.jobqSamePage === true`))
	admin.screenshot("web-job.png", 1280, 900, false)
	admin.screenshot("web-job-phone.png", 390, 844, true)

	// A queued job (one worker, busy) is canceled after a confirmation.
	queued := n.submit(delayOp(1))
	admin.do("open the queued job", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, queued)),
		chromedp.WaitVisible(chromedp.CSS(`h1 [data-bind=status]`)))
	if s := admin.text(`h1 [data-bind=status]`); s != "queued" {
		t.Fatalf("queued job's status %q", s)
	}
	admin.do("overview", chromedp.Navigate(n.base+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`#h-counts`)))
	admin.checkA11y("the overview")
	admin.do("locks", chromedp.Navigate(n.base+"/ui/locks"), chromedp.WaitVisible(chromedp.CSS(`h1`)))
	admin.checkA11y("the locks page")
	admin.do("overview", chromedp.Navigate(n.base+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`#h-counts`)))
	admin.screenshot("web-overview.png", 1280, 900, false)
	admin.do("cancel it",
		chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, queued)),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/ui/jobs/%d/cancel"]`, queued))),
		chromedp.WaitVisible(chromedp.CSS(`form button[type=submit].danger`)))
	if h := admin.text("h1"); h != fmt.Sprintf("Cancel job %d?", queued) {
		t.Fatalf("confirmation heading %q", h)
	}
	admin.checkA11y("the cancel confirmation")
	admin.do("confirm", chromedp.Click(chromedp.CSS(`form button[type=submit].danger`)),
		chromedp.WaitVisible(chromedp.CSS(`#job .flash, main > .flash`)))
	if s := admin.text(`h1 [data-bind=status]`); s != "canceled" {
		t.Fatalf("status after cancel: %q", s)
	}
	if s := admin.text(`.flash`); !strings.Contains(s, fmt.Sprint(queued)) {
		t.Fatalf("flash after cancel: %q", s)
	}

	// The running job ends; its page says so without a reload.
	admin.do("back to the running job", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, run)),
		waitJS(`document.querySelector('#op-0 .log tbody').textContent.includes('step 2 of 3')`))
	n.next <- struct{}{}
	n.next <- struct{}{}
	admin.do("the job ends live",
		waitJS(`document.querySelector('h1 [data-bind=status]').textContent === 'success'`),
		waitJS(`document.querySelector('#op-0 [data-bind=result]').textContent.includes('"steps": 3')`),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`a[href="/ui/jobs/%d/archive"]`, run))))

	// Logging out ends the session.
	admin.do("log out", chromedp.Click(chromedp.CSS(`.who button`)), chromedp.WaitVisible(chromedp.CSS(`#user`)))
	if s := admin.text(`.flash`); s != "You are logged out." {
		t.Fatalf("after logout: %q", s)
	}
	admin.do("pages need a login again", chromedp.Navigate(n.base+"/ui/locks"), chromedp.WaitVisible(chromedp.CSS(`#user`)))
	admin.checkA11y("the login page")

	// A read-only user sees but cannot act.
	viewer := admin
	viewer.login(n.base, "viewer", "viewerpw")
	viewer.do("viewer opens the job", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, run)),
		chromedp.WaitVisible(chromedp.CSS(`#op-0`)))
	if s := viewer.text(`#job`); !strings.Contains(s, "read-only user") || strings.Contains(s, "Archive job") {
		t.Fatalf("viewer's job page: %q", s)
	}
	viewer.do("viewer tries the archive page", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d/archive", n.base, run)),
		chromedp.WaitVisible(chromedp.CSS(`h1`)))
	if h, p := viewer.text("h1"), viewer.text(".error-text"); h != "Not allowed" || !strings.Contains(p, "may only look") {
		t.Fatalf("viewer on the archive page: %q %q", h, p)
	}
	// Even a POST with the viewer's own CSRF token is refused.
	status, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf(`(async () => {
		const body = new URLSearchParams({csrf: document.querySelector('input[name=csrf]').value});
		const r = await fetch('/ui/jobs/%d/archive', {method: 'POST', body});
		return r.status;
	})()`, run), chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusForbidden {
		t.Fatalf("viewer's POST: %d %v", status, err)
	}

}
