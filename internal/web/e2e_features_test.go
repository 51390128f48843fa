package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// jobLinks lists the ids of the jobs the page's job table links to, in
// the table's order.
func (b *browser) jobLinks() []int64 {
	b.t.Helper()
	var ids []int64
	b.do("read the job table", chromedp.Steps(
		chromedp.WaitReady(chromedp.CSS(`#live .count`)),
	))
	ctx := b.ctx
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`JSON.stringify([...document.querySelectorAll('#live table.jobs tbody tr td[data-label=Job] a')].map(a => +a.getAttribute('href').split('/').pop()))`))
	if err != nil {
		b.t.Fatalf("job links: %v", err)
	}
	if err := json.Unmarshal([]byte(s), &ids); err != nil {
		b.t.Fatalf("job links %q: %v", s, err)
	}
	return ids
}

// wantJobs checks that the page's job table lists exactly the jobs want,
// newest first.
func (b *browser) wantJobs(what string, want ...int64) {
	b.t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	slices.Reverse(want)
	if got := b.jobLinks(); !slices.Equal(got, want) {
		b.t.Fatalf("%s: the list shows jobs %v, want %v\ncount: %s", what, got, want, b.text(`#live .count`))
	}
}

// rowText is the text of job id's row in the job table.
func (b *browser) rowText(id int64) string {
	b.t.Helper()
	return b.text(fmt.Sprintf(`#live tr:has(a[href="/ui/jobs/%d"])`, id))
}

// TestBrowserJobFeatures drives issue 19 item 8's features in Chromium on a
// real jobqd: failure reasons in the error list, the failing opcode first,
// search by text and by opcode, bulk archive, cancel and priority after
// one confirmation (ticks kept across the list's live updates), the
// archive listed and searched, resubmission linked both ways, a followed
// job's failure shown live, and the charts with their JSON. With
// JOBQ_WEB_SCREENSHOTS it writes
// docs/web-errors.png, web-search.png, web-bulk.png, web-archive.png,
// web-resubmit.png and web-charts.png.
func TestBrowserJobFeatures(t *testing.T) {
	n := startNode(t)
	b := startBrowser(t, n)

	// Seed: successes that mention disks in their logs, failures with
	// their own reasons (one with markup, which must stay text), a job
	// whose second of three opcodes fails, and two jobs to archive.
	jq := func(msg string) string {
		return fmt.Sprintf(`{"OP_ID": "OP_TEST_JQUEUE", "log_messages": [%q]}`, msg)
	}
	fail := func(reason string) string {
		r, _ := json.Marshal(reason)
		return fmt.Sprintf(`{"OP_ID": "OP_TEST_FAIL", "message": %s}`, r)
	}
	const xssReason = `node3 unreachable <script>window.jobqXSS=1</script>`
	okDisk := n.submit(jq("resized disk sdb1 of vm1"))
	okOther := n.submit(jq("resized disk sdc2 of vm2"))
	failDisk := n.submit(fail("disk sdb1 is full"))
	multi := n.submit(jq("checked vm3"), fail(xssReason), delayOp(0.01))
	keep := n.submit(delayOp(0.01))
	arch1 := n.submit(jq("moved sdb1 backups of vm4"))
	arch2 := n.submit(delayOp(0.01))
	for _, id := range []int64{okDisk, okOther, keep, arch1, arch2} {
		n.waitStatus(id, "success")
	}
	for _, id := range []int64{failDisk, multi} {
		n.waitStatus(id, "error")
	}

	b.login(n.base, "admin", "adminpw")

	// The error list says why each job failed, with its failing opcode;
	// the markup in a reason is shown as text.
	b.do("error list", chromedp.Navigate(n.base+"/ui/jobs?status=error"), chromedp.WaitVisible(chromedp.CSS(`#live table.jobs`)))
	b.wantJobs("error list", failDisk, multi)
	if s := b.rowText(failDisk); !strings.Contains(s, "Opcode 1: disk sdb1 is full") {
		t.Fatalf("job %d's row in the error list: %q", failDisk, s)
	}
	if s := b.rowText(multi); !strings.Contains(s, "Opcode 2: "+xssReason) {
		t.Fatalf("job %d's row in the error list: %q", multi, s)
	}
	if ref := b.attr(fmt.Sprintf(`#live tr:has(a[href="/ui/jobs/%d"]) .reason a`, multi), "href"); ref != fmt.Sprintf("/ui/jobs/%d#op-1", multi) {
		t.Fatalf("the reason links to %q, want the failing opcode", ref)
	}
	b.noInjectedScript("the error list")
	b.checkA11y("the error list")
	b.screenshot("web-errors.png", 1100, 500, false)

	// The failed job's page: the reason at the top, the failing opcode
	// (the second) first and expanded.
	b.do("the multi-opcode job", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, multi)), chromedp.WaitVisible(chromedp.CSS(`.alert.failure`)))
	if s := b.text(`.alert.failure`); !strings.Contains(s, "Failed at opcode 2 (OP_TEST_FAIL)") || !strings.Contains(s, xssReason) {
		t.Fatalf("failure note: %q", s)
	}
	first, err := runJS(b, chromedp.Evaluate[string](
		`(() => { const s = document.querySelector('section.op'); return s.id + ' ' + s.className + ' ' + s.querySelector('details.input').open; })()`))
	if err != nil || first != "op-1 op op-failed true" {
		t.Fatalf("first opcode section: %q %v", first, err)
	}
	b.noInjectedScript("the failed job's page")

	// Search by text (in logs and results) with the form, then by opcode.
	b.do("search for sdb1", chromedp.Navigate(n.base+"/ui/jobs"), chromedp.WaitVisible(chromedp.CSS(`#f-q`)),
		chromedp.SendKeys(chromedp.CSS(`#f-q`), "SDB1"))
	b.follow("show the search's results", `form.filters button[type=submit]`)
	if u := b.location(); !strings.HasSuffix(u, "/ui/jobs?status=&age=&from=&to=&in=&q=SDB1&op=&author=&n=50") {
		t.Fatalf("the search form went to %s", u)
	}
	b.wantJobs("search for SDB1", okDisk, failDisk, arch1)
	if s := b.text(`#live .count`); !strings.Contains(s, `3 of 3 live jobs mentioning "SDB1"`) {
		t.Fatalf("search count: %q", s)
	}
	b.checkA11y("a search")
	b.screenshot("web-search.png", 1100, 500, false)
	b.do("search by opcode", chromedp.Navigate(n.base+"/ui/jobs?op=OP_TEST_FAIL"), chromedp.WaitVisible(chromedp.CSS(`#live .count`)))
	b.wantJobs("search for OP_TEST_FAIL", failDisk, multi)
	b.do("search for nothing there", chromedp.Navigate(n.base+"/ui/jobs?q=no-such-text"), chromedp.WaitVisible(chromedp.CSS(`#live .count`)))
	b.wantJobs("search for no-such-text")

	// Bulk archive: tick two jobs, one confirmation naming them, and
	// only they leave the live queue. The confirmation lists them in the
	// order of the list, newest first.
	// A job ticked while the list's live update is under way stays
	// ticked (the update's answer replaced the list, and so untick it):
	// the page's fetch is held until the job is ticked.
	b.do("hold the list's next live update", chromedp.Navigate(n.base+"/ui/jobs"), chromedp.WaitVisible(chromedp.CSS(`#bulk`)),
		chromedp.Evaluate[chromedp.Void](`(() => {
			window.jobqHeld = null;
			window.jobqUpdates = 0;
			document.querySelector('#live').addEventListener('jobq:refreshed', () => window.jobqUpdates++);
			const fetch = window.fetch;
			window.fetch = (...args) => new Promise((resolve, reject) => {
				window.jobqHeld = () => fetch(...args).then(resolve, reject);
			});
		})()`),
		waitJS(`window.jobqHeld !== null`))
	b.do("tick a job, then let the update answer",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=id][value="%d"]`, arch1))),
		chromedp.Evaluate[chromedp.Void](`window.jobqHeld()`),
		waitJS(`window.jobqUpdates > 0`))
	if ticked, err := runJS(b, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector('input[name=id][value="%d"]').checked`, arch1))); err != nil || !ticked {
		t.Fatalf("job %d is no longer ticked after the list's live update (%v)", arch1, err)
	}
	b.do("tick another job",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=id][value="%d"]`, arch2))),
		chromedp.SetValue(chromedp.CSS(`#f-action`), "archive"))
	b.follow("review the bulk action", `#bulk button[type=submit]`)
	if h := b.text("h1"); h != "Archive 2 jobs?" {
		t.Fatalf("bulk confirmation heading %q", h)
	}
	listed, err := runJS(b, chromedp.Evaluate[string](
		`[...document.querySelectorAll('ul.bulk-jobs a')].map(a => a.textContent).join(', ')`))
	if want := fmt.Sprintf("Job %d, Job %d", arch2, arch1); err != nil || listed != want {
		t.Fatalf("the confirmation lists %q (%v), want %q", listed, err, want)
	}
	if s := b.text(`main form[method=post] button[type=submit]`); s != "Archive 2 jobs" {
		t.Fatalf("confirmation button %q", s)
	}
	b.checkA11y("the bulk confirmation")
	b.screenshot("web-bulk.png", 1100, 500, false)
	b.follow("confirm the bulk archive", `main form[method=post] button[type=submit]`)
	if s := b.text(`main > .flash`); s != "2 of 2 jobs archived." {
		t.Fatalf("flash after the bulk archive: %q", s)
	}
	b.wantJobs("the live queue after the bulk archive", okDisk, okOther, failDisk, multi, keep)

	// The archive is listed, and searched with the same form.
	b.do("the archive", chromedp.Navigate(n.base+"/ui/jobs?in=archive"), chromedp.WaitVisible(chromedp.CSS(`#live .count`)))
	b.wantJobs("the archive", arch1, arch2)
	if s := b.rowText(arch1); !strings.Contains(s, "archived") {
		t.Fatalf("archived job's row: %q", s)
	}
	b.do("search the archive", chromedp.SendKeys(chromedp.CSS(`#f-q`), "sdb1"))
	b.follow("show the archive search's results", `form.filters button[type=submit]`)
	if u := b.location(); !strings.Contains(u, "in=archive&q=sdb1") {
		t.Fatalf("the archive search went to %s", u)
	}
	b.wantJobs("search the archive for sdb1", arch1)
	b.screenshot("web-archive.png", 1100, 500, false)
	b.do("search both", chromedp.Navigate(n.base+"/ui/jobs?in=all&q=sdb1"), chromedp.WaitVisible(chromedp.CSS(`#live .count`)))
	b.wantJobs("search the live queue and the archive for sdb1", okDisk, failDisk, arch1)

	// Bulk cancel and priority of queued jobs (the one worker is busy):
	// each applies to the ticked jobs only.
	blocker := n.submit(`{"OP_ID": "OP_TEST_STEPS", "steps": 1}`)
	n.waitStatus(blocker, "running")
	q1, q2, q3 := n.submit(delayOp(0.01)), n.submit(delayOp(0.01)), n.submit(delayOp(0.01))
	b.do("the queued jobs", chromedp.Navigate(n.base+"/ui/jobs?status=queued"), chromedp.WaitVisible(chromedp.CSS(`#bulk`)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#refresh-toggle').click()`), // no live update under the clicks
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=id][value="%d"]`, q1))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=id][value="%d"]`, q2))),
		chromedp.SetValue(chromedp.CSS(`#f-action`), "cancel"))
	b.wantJobs("the queued jobs", q1, q2, q3)
	b.follow("review the bulk cancel", `#bulk button[type=submit]`)
	if h, btn := b.text("h1"), b.text(`main form[method=post] button[type=submit]`); h != "Cancel 2 jobs?" || btn != "Cancel 2 jobs" {
		t.Fatalf("bulk cancel confirmation: %q, button %q", h, btn)
	}
	b.follow("confirm the bulk cancel", `main form[method=post] button[type=submit]`)
	if s := b.text(`main > .flash`); s != "2 of 2 jobs canceled (or to be canceled)." {
		t.Fatalf("flash after the bulk cancel: %q", s)
	}
	b.wantJobs("the queued jobs after the bulk cancel", q3)
	b.do("tick the last queued job",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#refresh-toggle').click()`),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=id][value="%d"]`, q3))),
		chromedp.SetValue(chromedp.CSS(`#f-action`), "priority"))
	b.follow("review the bulk priority", `#bulk button[type=submit]`)
	if h, btn := b.text("h1"), b.text(`main form[method=post] button[type=submit]`); h != "Change the priority of 1 job?" || btn != "Change the priority of 1 job" {
		t.Fatalf("bulk priority confirmation: %q, button %q", h, btn)
	}
	b.checkA11y("the bulk priority confirmation")
	b.do("choose the priority", chromedp.SetValue(chromedp.CSS(`#priority`), "-5"))
	b.follow("confirm the bulk priority", `main form[method=post] button[type=submit]`)
	if s := b.text(`main > .flash`); !strings.HasPrefix(s, "1 of 1 ") || !strings.HasSuffix(s, " reprioritised.") {
		t.Fatalf("flash after the bulk priority: %q", s)
	}
	if p := b.text(fmt.Sprintf(`#live tr:has(a[href="/ui/jobs/%d"]) td[data-label=Priority]`, q3)); p != "-5" {
		t.Fatalf("job %d's priority after the bulk change: %q", q3, p)
	}
	for _, id := range []int64{q1, q2} {
		var st struct {
			Status string `json:"status"`
		}
		n.rapi("GET", fmt.Sprintf("/2/jobs/%d", id), "", &st)
		if st.Status != "canceled" {
			t.Fatalf("job %d after the bulk cancel: %s", id, st.Status)
		}
	}
	n.next <- struct{}{}
	n.waitStatus(blocker, "success")
	n.waitStatus(q3, "success")

	// Resubmit the failed job: a new job with its opcodes, whose page
	// and the old one's link to each other.
	b.do("the failed job", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, failDisk)), chromedp.WaitVisible(chromedp.CSS(`#job`)))
	b.follow("resubmit", fmt.Sprintf(`a[href="/ui/jobs/%d/resubmit"]`, failDisk))
	if h := b.text("h1"); h != fmt.Sprintf("Resubmit job %d?", failDisk) {
		t.Fatalf("resubmit confirmation heading %q", h)
	}
	b.checkA11y("the resubmit confirmation")
	b.follow("confirm the resubmission", `main form[method=post] button[type=submit]`)
	newID, err := runJS(b, chromedp.Evaluate[int64](`+document.querySelector('#job').dataset.job`))
	if err != nil || newID <= multi || newID == failDisk {
		t.Fatalf("after resubmitting job %d the page is of job %d (%v)", failDisk, newID, err)
	}
	if s := b.text(`main > .flash`); s != fmt.Sprintf("Job %d resubmits job %d.", newID, failDisk) {
		t.Fatalf("flash after resubmitting: %q", s)
	}
	if ref := b.attr(`#job p.links a`, "href"); ref != fmt.Sprintf("/ui/jobs/%d", failDisk) {
		t.Fatalf("the new job links to %q", ref)
	}
	b.do("the resubmitted job fails as its original did",
		waitJS(`document.querySelector('h1 [data-bind=status]').textContent === 'error'`),
		chromedp.WaitVisible(chromedp.CSS(`#job .alert.failure`)))
	if s := b.text(`#job .alert.failure`); !strings.Contains(s, "disk sdb1 is full") {
		t.Fatalf("the resubmitted job's failure: %q", s)
	}
	var info struct {
		Ops []struct {
			OPID    string `json:"OP_ID"`
			Message string `json:"message"`
		} `json:"ops"`
	}
	n.rapi("GET", fmt.Sprintf("/2/jobs/%d", newID), "", &info)
	if len(info.Ops) != 1 || info.Ops[0].OPID != "OP_TEST_FAIL" || info.Ops[0].Message != "disk sdb1 is full" {
		t.Fatalf("the new job's opcodes: %+v", info.Ops)
	}
	b.checkA11y("a resubmitted job")
	b.screenshot("web-resubmit.png", 1100, 700, false)
	b.do("the old job", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, failDisk)), chromedp.WaitVisible(chromedp.CSS(`#job p.links`)))
	if s, ref := b.text(`#job p.links`), b.attr(`#job p.links a`, "href"); s != fmt.Sprintf("Resubmitted as job %d.", newID) || ref != fmt.Sprintf("/ui/jobs/%d", newID) {
		t.Fatalf("the old job's link: %q to %q", s, ref)
	}

	// Search by author: the new job is the dashboard user's (the others
	// came through RAPI); its page links to its author's jobs, and the
	// form finds them by the user's name within a source.
	b.do("the resubmitted job's author", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, newID)), chromedp.WaitVisible(chromedp.CSS(`#job a.author-jobs`)))
	b.follow("the jobs of its author", `#job a.author-jobs`)
	b.wantJobs("the jobs of jobq:dashboard admin", newID)
	if s := b.text(`#live .count`); !strings.Contains(s, `1 of 1 live jobs submitted by "jobq:dashboard admin"`) {
		t.Fatalf("search by author count: %q", s)
	}
	if s := b.text(fmt.Sprintf(`#live tr:has(a[href="/ui/jobs/%d"]) td[data-label=Author]`, newID)); s != "jobq:dashboard admin" {
		t.Fatalf("job %d's author in the list: %q", newID, s)
	}
	b.do("search by author with the form", chromedp.Navigate(n.base+"/ui/jobs?status=error"), chromedp.WaitVisible(chromedp.CSS(`#f-author`)),
		chromedp.SendKeys(chromedp.CSS(`#f-author`), "jobq:rapi"))
	b.follow("show the jobs of RAPI users", `form.filters button[type=submit]`)
	b.wantJobs("the failed jobs submitted through RAPI", failDisk, multi)

	// A job that fails while its page follows it gets the page of a
	// failed job, without a reload: the reason at the top, the failing
	// opcode first.
	late := n.submit(`{"OP_ID": "OP_TEST_STEPS", "steps": 1}`, fail("vm5 did not stop"))
	n.waitStatus(late, "running")
	b.do("follow a running job", chromedp.Navigate(fmt.Sprintf("%s/ui/jobs/%d", n.base, late)),
		chromedp.WaitVisible(chromedp.CSS(`#op-0 .log`)),
		waitJS(`document.querySelector('#op-0 .log tbody').textContent.includes('step 1 of 1')`),
		chromedp.Evaluate[chromedp.Void](`window.jobqSamePage = true`))
	if s := b.text(`#job`); strings.Contains(s, "Failed at") {
		t.Fatalf("job %d's page says it failed while it runs: %q", late, s)
	}
	n.next <- struct{}{}
	b.do("the failure shows live", chromedp.WaitVisible(chromedp.CSS(`#job .alert.failure`)),
		waitJS(`window.jobqSamePage === true`))
	if s := b.text(`#job .alert.failure`); !strings.Contains(s, "Failed at opcode 2 (OP_TEST_FAIL)") || !strings.Contains(s, "vm5 did not stop") {
		t.Fatalf("failure note shown live: %q", s)
	}
	first, err = runJS(b, chromedp.Evaluate[string](
		`(() => { const s = document.querySelector('section.op'); return s.id + ' ' + s.className + ' ' + s.querySelector('details.input').open; })()`))
	if err != nil || first != "op-1 op op-failed true" {
		t.Fatalf("first opcode section after the job failed live: %q %v", first, err)
	}

	// The charts: their JSON counts every job that ended (once the queue
	// has recorded them), and the page draws it.
	const successes, failures, canceled = 7, 4, 2 // okDisk, okOther, keep, arch1, arch2, blocker, q3; failDisk, multi, newID, late; q1, q2
	b.do("charts.json counts the jobs", chromedp.Navigate(n.base+"/ui/charts"), chromedp.WaitVisible(chromedp.CSS(`h1`)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(async () => {
			for (;;) {
				const r = await fetch('/ui/charts.json');
				if (r.status !== 200 || !r.headers.get('Content-Type').startsWith('application/json')) throw new Error('charts.json: ' + r.status);
				const c = await r.json();
				const sum = (set, k) => set.points.reduce((a, p) => a + p.finished[k], 0);
				if (sum(c.last_hour, 'success') >= %d && sum(c.last_hour, 'error') >= %d && sum(c.last_hour, 'canceled') >= %d) { window.jobqCharts = c; return; }
				await new Promise(res => setTimeout(res, 50));
			}
		})()`, successes, failures, canceled), chromedp.EvalAwaitPromise))
	var charts struct {
		Hour, Day struct {
			Step   int `json:"step_seconds"`
			Points []struct {
				Finished struct{ Success, Error, Canceled int }
			}
		}
	}
	js, err := runJS(b, chromedp.Evaluate[string](`JSON.stringify({Hour: window.jobqCharts.last_hour, Day: window.jobqCharts.last_day})`))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(js), &charts); err != nil {
		t.Fatalf("charts.json: %v in %s", err, js)
	}
	sum := func(ps []struct {
		Finished struct{ Success, Error, Canceled int }
	}) [3]int {
		var s [3]int
		for _, p := range ps {
			s[0] += p.Finished.Success
			s[1] += p.Finished.Error
			s[2] += p.Finished.Canceled
		}
		return s
	}
	want := [3]int{successes, failures, canceled}
	if charts.Hour.Step != 60 || len(charts.Hour.Points) != 60 || sum(charts.Hour.Points) != want ||
		charts.Day.Step != 900 || len(charts.Day.Points) != 96 || sum(charts.Day.Points) != want {
		t.Fatalf("charts.json: hour step %d, %d points, %v ended; day step %d, %d points, %v ended; want %v",
			charts.Hour.Step, len(charts.Hour.Points), sum(charts.Hour.Points),
			charts.Day.Step, len(charts.Day.Points), sum(charts.Day.Points), want)
	}
	b.do("the charts page", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`section.charts figure.chart svg rect.bar.success`)))
	if s := b.text(`section.charts p`); s != fmt.Sprintf("%d succeeded, %d failed, %d canceled.", successes, failures, canceled) {
		t.Fatalf("the hour's totals: %q", s)
	}
	bars, err := runJS(b, chromedp.Evaluate[string](`(() => {
		const s = document.querySelector('section.charts');
		return ['rect.bar.success', 'rect.bar.error', 'polyline.line'].map(q => s.querySelectorAll(q).length > 0).join(' ');
	})()`))
	if err != nil || bars != "true true true" {
		t.Fatalf("the hour's charts draw success bars, error bars, lines: %q %v", bars, err)
	}
	legend, err := runJS(b, chromedp.Evaluate[string](
		`[...document.querySelectorAll('#hour-latency ul.legend li')].map(l => l.textContent).join(', ') + '; ' + document.querySelectorAll('#hour-latency polyline.line').length`))
	if want := "wait p50, wait p90, wait p99, run p50, run p90, run p99; 6"; err != nil || legend != want {
		t.Fatalf("the hour's latency chart: %q %v, want %q", legend, err, want)
	}
	b.checkA11y("the charts")
	b.screenshot("web-charts.png", 1100, 900, false)
}

// attr is an attribute of the first element sel matches.
func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	res, err := runJS(b, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		b.t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return res.Value
}

// noInjectedScript fails the test when markup from a job ran or became an
// element.
func (b *browser) noInjectedScript(page string) {
	b.t.Helper()
	s, err := runJS(b, chromedp.Evaluate[string](
		`String(window.jobqXSS) + ' ' + [...document.scripts].filter(s => s.textContent.includes('jobqXSS')).length`))
	if err != nil || s != "undefined 0" {
		b.t.Fatalf("markup from a job ran or became a script on %s: %q %v", page, s, err)
	}
}

// runJS runs an action that answers a value, within the deadline every
// step of these tests has.
func runJS[T any](b *browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// follow clicks what sel matches and waits until the page it leads to
// has loaded, which must answer 200 OK (after redirects).
func (b *browser) follow(what, sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	if resp.Status != 200 {
		b.t.Fatalf("%s: %s answered %d", what, resp.URL, resp.Status)
	}
}

// location is the page's URL.
func (b *browser) location() string {
	b.t.Helper()
	u, err := runJS(b, chromedp.Location())
	if err != nil {
		b.t.Fatalf("location: %v", err)
	}
	return u
}
