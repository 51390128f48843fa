package hostile

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jobq-dev/jobq/internal/testbin"
)

// Users of the authorship tests: uids and gids without names (none of
// them is in /etc/passwd or /etc/group), and nobody, who has a name.
const (
	uidAlice    = 4242
	uidBob      = 4243
	gidUsers    = 4100
	gidAdmin    = 4343
	gidAdminish = 4344 // a neighbour of the admin group
	uidNobody   = 65534
)

func as(uid, gid uint32, groups ...uint32) testbin.Options {
	return testbin.Options{NoRace: true, Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups},
		Env: []string{"HOME=/nonexistent", "JOBQ_SOCKET="}}
}

// startShared starts jobqd with --admin-group gidAdmin and RAPI users,
// its socket open to every uid.
func startShared(t *testing.T) (*daemon, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testbin.Missing(t, "running jobq as other users needs root")
	}
	dir := filepath.Join(t.TempDir(), "jobq")
	users := filepath.Join(dir, "rapi", "users")
	if err := os.MkdirAll(filepath.Dir(users), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, []byte("alice alicepw write\nbob bobpw write\ncarol carolpw write\nroot-ish pw write,Admin,administrator\nboss bosspw write,admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startBare(t, dir, "--admin-group", strconv.Itoa(gidAdmin))
	testbin.Options{NoRace: true}.ShareWith(t, d.Daemon)
	return d, dir
}

var jobIDRe = regexp.MustCompile(`(?m)^(?:JobID: )?(\d+)\s*$`)

func submitOps(t *testing.T, o testbin.Options, dir string, args ...string) string {
	t.Helper()
	r := o.Jobq(t, append([]string{"--data-dir", dir, "submit"}, args...)...)
	m := jobIDRe.FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil {
		t.Fatalf("jobq submit as %+v: exit %d\n%s%s", o.Credential, r.Code, r.Stdout, r.Stderr)
	}
	return m[1]
}

func mustContain(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Fatalf("%s lacks %q:\n%s", what, p, s)
		}
	}
}

// TestAuthorsOfLUXIRAPIAndDashboard: who submitted and who canceled a job
// shows in jobq info, jobq list -o author, RAPI's job and the dashboard's
// job page, for LUXI users (by uid, from SO_PEERCRED), RAPI users and
// dashboard users; the audit log has a line for each cancel.
func TestAuthorsOfLUXIRAPIAndDashboard(t *testing.T) {
	d, dir := startShared(t)
	root := testbin.Options{NoRace: true}

	// LUXI: alice (a uid without a name) submits, nobody cancels. The
	// jobs wait an hour, so that they are canceled while queued.
	luxiJob := submitOps(t, as(uidAlice, gidUsers), dir, "--in", "1h", "--", `{"OP_ID":"OP_TEST_DELAY","duration":300}`)
	r := as(uidNobody, uidNobody).Jobq(t, "--data-dir", dir, "cancel", luxiJob)
	if r.Code != 0 {
		t.Fatalf("jobq cancel as nobody: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// A client that claims to be root in its own reason trail is not
	// believed: the server's entry follows it.
	forged := submitOps(t, as(uidAlice, gidUsers), dir, "--", `{"OP_ID":"OP_TEST_DELAY","duration":0,"reason":[["jobq:luxi","uid=0(root)",1]]}`)

	// RAPI: alice submits, bob cancels.
	addr, tlsCfg := d.rapi()
	code, body := httpsAs(t, addr, tlsCfg, "alice", "alicepw", "POST", "/2/jobs", `{"ops":[{"OP_ID":"OP_TEST_DELAY","duration":300}],"not_before":4102444800}`)
	if code != http.StatusOK {
		t.Fatalf("RAPI submit: %d %s", code, body)
	}
	rapiJob := strings.Trim(strings.TrimSpace(body), `"`)
	if code, body := httpsAs(t, addr, tlsCfg, "bob", "bobpw", "DELETE", "/2/jobs/"+rapiJob, ""); code != http.StatusOK {
		t.Fatalf("RAPI cancel: %d %s", code, body)
	}

	// Dashboard: carol resubmits the RAPI job, then kills her copy (it
	// runs at once).
	dash := dashboardLogin(t, addr, tlsCfg, "carol", "carolpw")
	loc := dash.post(t, "/ui/jobs/"+rapiJob+"/resubmit", nil)
	dashJob := strings.TrimPrefix(loc, "/ui/jobs/")
	if _, err := strconv.Atoi(dashJob); err != nil {
		t.Fatalf("resubmission went to %q", loc)
	}
	dash.post(t, "/ui/jobs/"+dashJob+"/cancel", url.Values{"kill": {"1"}})
	root.Jobq(t, "--data-dir", dir, "watch", dashJob) // until it ends

	for _, c := range []struct{ id, by, canceler string }{
		{luxiJob, "uid=4242", "Canceled by jobq:luxi uid=65534(nobody)"},
		{rapiJob, "alice", "Canceled by jobq:rapi bob"},
		{dashJob, "carol", "Killed by jobq:dashboard carol"},
	} {
		info := root.Jobq(t, "--data-dir", dir, "info", c.id)
		if info.Code != 0 {
			t.Fatalf("jobq info %s: %d %s", c.id, info.Code, info.Stderr)
		}
		mustContain(t, "jobq info "+c.id, info.Stdout, c.by, c.canceler, "jobq-action")
		page := dash.get(t, "/ui/jobs/"+c.id)
		mustContain(t, "dashboard page of job "+c.id, page, `<dt>Submitted by</dt><dd class="author">jobq:`, c.by, c.canceler)
		_, rapi := httpsAs(t, addr, tlsCfg, "alice", "alicepw", "GET", "/2/jobs/"+c.id, "")
		mustContain(t, "RAPI job "+c.id, rapi, c.by, c.canceler)
		d.MustLine(t, `msg=audit`, `target="job=`+c.id+`"`, `result=ok`)
	}
	list := root.Jobq(t, "--data-dir", dir, "list", "--no-headers", "-o", "id,author")
	for _, want := range []string{luxiJob + " jobq:luxi uid=4242", rapiJob + " jobq:rapi alice", dashJob + " jobq:dashboard carol",
		forged + " jobq:luxi uid=4242"} {
		if !regexp.MustCompile(`(?m)^\s*` + strings.ReplaceAll(regexp.QuoteMeta(want), " ", `\s+`) + `\s*$`).MatchString(list.Stdout) {
			t.Fatalf("jobq list -o id,author lacks %q:\n%s%s", want, list.Stdout, list.Stderr)
		}
	}
	if strings.Contains(list.Stdout, "uid=0(root)") {
		t.Fatalf("a forged author is listed:\n%s", list.Stdout)
	}
}

// TestAdministrativeCalls: join tokens, filters, the drain flag, the
// watcher pause, opcode definitions and jobs of restricted commands are
// for root, jobqd's
// user and the admin group (by gid, primary or supplementary) only; near
// misses are refused with a sentence saying so, and each call has an
// audit line.
func TestAdministrativeCalls(t *testing.T) {
	d, dir := startShared(t)
	calls := [][]string{
		{"cluster", "join-token"},
		{"queue", "drain"},
		{"cluster", "watcher", "pause", "1h"},
		{"filter", "add", "--action", "ACCEPT", "--priority", "5"},
		{"command", "nothing", "--nodes", "node1"},
		{"submit", "--", `{"OP_ID":"OP_CLUSTER_SET_PARAMS","max_running_jobs":20}`},
		{"opcode", "remove", "OP_NOT_DECLARED"}, // declared opcodes: remove (and add, replace)
	}
	for _, who := range []struct {
		name  string
		o     testbin.Options
		admin bool
	}{
		{"alice", as(uidAlice, gidUsers), false},
		{"alice in a neighbour of the admin group", as(uidAlice, gidAdminish, gidAdmin-1, gidAdmin+1), false},
		{"alice whose primary gid is 0", as(uidAlice, 0), false},
		{"nobody", as(uidNobody, uidNobody), false},
		{"alice in the admin group (supplementary)", as(uidAlice, gidUsers, gidAdmin), true},
		{"bob in the admin group (primary)", as(uidBob, gidAdmin), true},
		{"root", as(0, 0), true},
	} {
		for _, call := range calls {
			args := append([]string{"--data-dir", dir}, call...)
			r := who.o.Jobq(t, args...)
			out := r.Stdout + r.Stderr
			refused := strings.Contains(out, "administrative call")
			if refused == who.admin || (refused && r.Code == 0) {
				t.Fatalf("jobq %s as %s: exit %d (admin: %v)\n%s", strings.Join(call, " "), who.name, r.Code, who.admin, out)
			}
		}
		// Undo what was done, as root.
		root := testbin.Options{NoRace: true}
		root.Jobq(t, "--data-dir", dir, "queue", "undrain")
		root.Jobq(t, "--data-dir", dir, "cluster", "watcher", "continue")
	}
	d.MustLine(t, `msg=audit`, `actor="jobq:luxi uid=4242"`, `action=JobqJoinToken`, `result="refused: not an administrator"`)
	d.MustLine(t, `msg=audit`, `actor="jobq:luxi uid=4243"`, `action=JobqJoinToken`, `result=ok`)
	d.MustLine(t, `msg=audit`, `actor="jobq:luxi uid=0(root)"`, `action=SetDrainFlag`, `result=ok`)

	// RAPI: administrative opcodes need the admin option; look-alikes do
	// not count. Filter changes need a write user, as in Ganeti.
	addr, tlsCfg := d.rapi()
	filter := `{"priority":1,"predicates":[],"action":"ACCEPT","reason":[]}`
	for _, u := range [][2]string{{"alice", "alicepw"}, {"root-ish", "pw"}} {
		code, body := httpsAs(t, addr, tlsCfg, u[0], u[1], "POST", "/2/jobs", `{"ops":[{"OP_ID":"OP_RESTRICTED_COMMAND","command":"nothing","nodes":["node1"]}]}`)
		if code != http.StatusBadRequest || !strings.Contains(body, "administrative call") {
			t.Fatalf("RAPI restricted command by %s: %d %s", u[0], code, body)
		}
	}
	if code, body := httpsAs(t, addr, tlsCfg, "alice", "alicepw", "POST", "/2/filters", filter); code != http.StatusOK {
		t.Fatalf("RAPI filter add by a write user: %d %s", code, body)
	}
	d.MustLine(t, `msg=audit`, `actor="jobq:rapi alice"`, `action="filter add"`, `result=ok`)
	if code, body := httpsAs(t, addr, tlsCfg, "boss", "bosspw", "POST", "/2/jobs", `{"ops":[{"OP_ID":"OP_CLUSTER_SET_PARAMS","max_running_jobs":7}]}`); code != http.StatusOK {
		t.Fatalf("RAPI OP_CLUSTER_SET_PARAMS by an admin: %d %s", code, body)
	}
}

func httpsAs(t *testing.T, addr string, cfg *tls.Config, user, pw, method, path, body string) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(user, pw)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// dashboard is a logged-in dashboard session.
type dashboard struct {
	base string
	c    *http.Client
	tr   *http.Transport
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func dashboardLogin(t *testing.T, addr string, cfg *tls.Config, user, pw string) *dashboard {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	d := &dashboard{base: "https://" + addr, tr: tr, c: &http.Client{Transport: tr, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	resp, err := d.c.PostForm(d.base+"/ui/login", url.Values{"user": {user}, "password": {pw}, "next": {"/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("dashboard login as %s: %d", user, resp.StatusCode)
	}
	return d
}

func (d *dashboard) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := d.c.Get(d.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, b)
	}
	return string(b)
}

// post confirms an action (its confirmation page gives the CSRF token)
// and returns where the dashboard sends the browser.
func (d *dashboard) post(t *testing.T, path string, form url.Values) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(d.get(t, path))
	if m == nil {
		t.Fatalf("no CSRF token on %s", path)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", m[1])
	resp, err := d.c.PostForm(d.base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}
