package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
)

// How many jobs the overview lists.
const (
	overviewActive = 20
	overviewRecent = 10
)

type statusCount struct {
	Status string
	Count  int
}

type nodeView struct {
	Node
	Master      bool
	Replication string
}

type overviewData struct {
	Counts     []statusCount
	Total      int
	Unfinished int
	Running    int
	MaxRunning int
	Drained    bool
	Cluster    Cluster
	Nodes      []nodeView
	Active     []listRow
	ActiveMore int
	Recent     []listRow
}

func (h *Handler) refresh() int64 { return h.cfg.Refresh.Milliseconds() }

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	q := h.cfg.Queue
	now := h.cfg.Now()
	d := overviewData{Running: q.Running(), Drained: q.Drained(), Cluster: h.cfg.Cluster()}
	d.MaxRunning = d.Cluster.MaxRunningJobs
	counts := q.Counts()
	for _, st := range job.AllStatuses {
		d.Counts = append(d.Counts, statusCount{Status: string(st), Count: counts[st]})
		d.Total += counts[st]
		if !final(string(st)) {
			d.Unfinished += counts[st]
		}
	}
	for _, n := range d.Cluster.Nodes {
		nv := nodeView{Node: n, Master: n.Name == d.Cluster.Master, Replication: n.Replication}
		switch {
		case nv.Replication != "":
		case nv.Master:
			nv.Replication = "holds the queue (master)"
		default:
			nv.Replication = "unknown"
		}
		d.Nodes = append(d.Nodes, nv)
	}
	// One pass over the live jobs (index fields only): the unfinished
	// ones, oldest first, and the most recent ones.
	var active, recent []int64
	activeTotal := 0
	_, err := q.Select(queue.Selector{Match: func(get func(string) (any, bool)) (bool, error) {
		idv, _ := get("id")
		id, _ := idv.(int64)
		if len(recent) == overviewRecent {
			recent = recent[1:]
		}
		recent = append(recent, id)
		st, _ := get("status")
		if sv, _ := st.(string); !final(sv) {
			activeTotal++
			if len(active) < overviewActive {
				active = append(active, id)
			}
		}
		return false, nil
	}}, []string{"id"})
	if err == nil {
		d.Active, err = h.rows(active, now)
	}
	if err == nil {
		sort.Slice(recent, func(i, j int) bool { return recent[i] > recent[j] })
		d.Recent, err = h.rows(recent, now)
	}
	if err != nil {
		h.queueError(w, r, s, err)
		return
	}
	d.ActiveMore = activeTotal - len(d.Active)
	h.render(w, r, s, http.StatusOK, "overview", &page{Title: "Overview", Nav: "overview", Refresh: h.refresh(), Data: d})
}

func final(status string) bool {
	switch job.Status(status) {
	case job.StatusSuccess, job.StatusError, job.StatusCanceled:
		return true
	}
	return false
}

// rows fetches the list fields of jobs, in the order of ids (jobs gone
// meanwhile are left out).
func (h *Handler) rows(ids []int64, now time.Time) ([]listRow, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	res, err := h.cfg.Queue.Select(queue.Selector{IDs: ids}, listFields)
	if err != nil {
		return nil, err
	}
	byID := map[int64]listRow{}
	for _, vals := range res {
		row := listRowOf(vals, now)
		byID[row.ID] = row
	}
	if err := h.addNotBefore(byID, now); err != nil {
		return nil, err
	}
	// Why the failed ones failed: their opcodes' statuses and results
	// (this reads their files when they are not in memory, for this
	// page's failed jobs only).
	var failed []int64
	for id, row := range byID {
		if row.Status == string(job.StatusError) {
			failed = append(failed, id)
		}
	}
	if len(failed) > 0 {
		res, err := h.cfg.Queue.Select(queue.Selector{IDs: failed}, []string{"id", "opstatus", "opresult"})
		if err != nil {
			return nil, err
		}
		for _, vals := range res {
			id, _ := vals[0].(int64)
			var status []string
			var results []json.RawMessage
			if recode(vals[1], &status) != nil || recode(vals[2], &results) != nil {
				continue
			}
			if i, reason := failure(status, results); i >= 0 {
				row := byID[id]
				row.FailedOp, row.Reason = i+1, reason
				byID[id] = row
			}
		}
	}
	out := make([]listRow, 0, len(ids))
	for _, id := range ids {
		if row, ok := byID[id]; ok {
			out = append(out, row)
		}
	}
	return out, nil
}

// searchMatch reports whether a job has an opcode opID (when not empty)
// and mentions text (when not empty, any case) in an opcode's input,
// result or log.
func searchMatch(get func(string) (any, bool), text, opID string) bool {
	ops, _ := get("ops")
	if opID != "" {
		var inputs []map[string]any
		if recode(ops, &inputs) != nil || !slices.ContainsFunc(inputs, func(in map[string]any) bool { return in["OP_ID"] == opID }) {
			return false
		}
	}
	if text == "" {
		return true
	}
	res, _ := get("opresult")
	logs, _ := get("oplog")
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, v := range []any{ops, res, logs} {
		_ = enc.Encode(v)
	}
	return strings.Contains(strings.ToLower(b.String()), strings.ToLower(text))
}

// recode turns a Select value into dst through its JSON.
func recode(v any, dst any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

func (h *Handler) queueError(w http.ResponseWriter, r *http.Request, s *sessionInfo, err error) {
	h.log.Error("web: queue call failed", "uri", r.URL.RequestURI(), "err", err)
	h.errorPage(w, r, s, http.StatusInternalServerError, "The queue failed", err.Error())
}

// Job list filters.
type option struct {
	Value, Label string
}

var statusOptions = []option{{"", "any status"}, {"unfinished", "unfinished"}, {"finished", "finished"},
	{"queued", "queued"}, {"waiting", "waiting"}, {"canceling", "canceling"}, {"running", "running"},
	{"canceled", "canceled"}, {"success", "success"}, {"error", "error"}}

var ageOptions = []option{{"", "any time"}, {"15m", "the last 15 minutes"}, {"1h", "the last hour"},
	{"24h", "the last 24 hours"}, {"168h", "the last 7 days"}}

// whereOptions choose the live queue, the archive, or both.
var whereOptions = []option{{"", "the live queue"}, {"archive", "the archive"}, {"all", "the live queue and the archive"}}

func validOption(opts []option, v string) bool {
	for _, o := range opts {
		if o.Value == v {
			return true
		}
	}
	return false
}

type listData struct {
	Status, Age       string
	Query, OpID       string // text searched in opcode input, result and log; OP_ID
	Author            string // who submitted the jobs (authorMatch)
	Where             string // "": live jobs, "archive", "all"
	From, To          string // received from, before (datetime-local, the server's time zone)
	WhereOptions      []option
	StatusOptions     []option
	AgeOptions        []option
	N                 int
	Rows              []listRow
	Matching          int
	First, Last       int
	Newest, Newer     string // links; "" when there is nothing there
	Older, Oldest     string
	FilterDescription string
	Self              string // this page's link, to come back to after a bulk action
}

// jobList shows the live jobs, newest first, a page at a time. One Select
// walks the queue's in-memory index with the filters and keeps only the
// ids that match; the page's rows are then fetched by id. A search (q:
// text in the opcodes' input, result and log; op: an OP_ID) reads the
// opcodes of the jobs the other filters keep, so it is slower on a large
// queue: narrow it with a status and an age.
func (h *Handler) jobList(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	qv := r.URL.Query()
	d := listData{Status: qv.Get("status"), Age: qv.Get("age"), StatusOptions: statusOptions,
		AgeOptions: ageOptions, N: DefaultPageSize, Where: qv.Get("in"), WhereOptions: whereOptions}
	if !validOption(statusOptions, d.Status) || !validOption(ageOptions, d.Age) || !validOption(whereOptions, d.Where) {
		h.errorPage(w, r, s, http.StatusBadRequest, "Bad filter", "Choose a status, an age and where to look from the lists.")
		return
	}
	d.Query = strings.TrimSpace(qv.Get("q"))
	d.OpID = strings.ToUpper(strings.TrimSpace(qv.Get("op")))
	if strings.Trim(d.OpID, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" || len(d.Query) > 200 {
		h.errorPage(w, r, s, http.StatusBadRequest, "Bad search", "The opcode is an OP_ID such as OP_TEST_DELAY; the text is at most 200 characters.")
		return
	}
	d.Author = strings.TrimSpace(qv.Get("author"))
	if !validAuthorSearch(d.Author) {
		h.errorPage(w, r, s, http.StatusBadRequest, "Bad author",
			fmt.Sprintf("The author is a user name such as alice, a uid such as uid=1000, or the start of an author as the job page shows it, such as jobq:rapi: at most %d characters, without control characters.", maxAuthorSearch))
		return
	}
	// num parses a non-negative number parameter; has is false when it
	// is absent.
	num := func(name string) (n int64, has, ok bool) {
		v := qv.Get(name)
		if v == "" {
			return 0, false, true
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, true, err == nil && n >= 0
	}
	n, hasN, ok1 := num("n")
	before, hasBefore, ok2 := num("before")
	after, hasAfter, ok3 := num("after")
	if !ok1 || !ok2 || !ok3 || (hasN && n == 0) {
		h.errorPage(w, r, s, http.StatusBadRequest, "Bad request", "n, before and after are numbers (n at least 1).")
		return
	}
	if hasN {
		d.N = int(min(n, MaxPageSize))
	}
	now := h.cfg.Now()
	var since job.Timestamp
	if d.Age != "" {
		age, _ := time.ParseDuration(d.Age)
		since = job.TS(now.Add(-age))
	}
	// From and To: received at or after From, before To.
	var from, to *job.Timestamp
	d.From, d.To = strings.TrimSpace(qv.Get("from")), strings.TrimSpace(qv.Get("to"))
	for _, b := range []struct {
		v   string
		dst **job.Timestamp
	}{{d.From, &from}, {d.To, &to}} {
		if b.v == "" {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02T15:04", b.v, now.Location())
		if err != nil {
			h.errorPage(w, r, s, http.StatusBadRequest, "Bad time", fmt.Sprintf("%q is not a time such as 2026-12-07T14:30.", b.v))
			return
		}
		ts := job.TS(t)
		*b.dst = &ts
	}
	// Match keeps the matching ids and answers false, so that Select
	// builds no rows: only the page's rows are fetched, below.
	var ids []int64 // every matching id, ascending
	_, err := h.cfg.Queue.Select(queue.Selector{Archived: d.Where != "", Match: func(get func(string) (any, bool)) (bool, error) {
		if d.Where == "archive" {
			if v, _ := get("archived"); v != true {
				return false, nil
			}
		}
		if d.Status != "" {
			v, _ := get("status")
			st, _ := v.(string)
			switch d.Status {
			case "unfinished":
				if final(st) {
					return false, nil
				}
			case "finished":
				if !final(st) {
					return false, nil
				}
			default:
				if st != d.Status {
					return false, nil
				}
			}
		}
		if d.Age != "" || from != nil || to != nil {
			v, _ := get("received_ts")
			ts, ok := v.([]any)
			if !ok || len(ts) != 2 {
				return false, nil
			}
			sec, _ := ts[0].(int64)
			usec, _ := ts[1].(int64)
			rec := job.Timestamp{sec, usec}
			if d.Age != "" && rec.Before(since) || from != nil && rec.Before(*from) || to != nil && !rec.Before(*to) {
				return false, nil
			}
		}
		if d.Author != "" {
			v, _ := get("author") // in the queue's index: no file read
			a, _ := v.(string)
			if !authorMatch(a, d.Author) {
				return false, nil
			}
		}
		// The search comes last: it reads the jobs' opcodes (their files,
		// for jobs not in memory), only for those the filters kept.
		if (d.Query != "" || d.OpID != "") && !searchMatch(get, d.Query, d.OpID) {
			return false, nil
		}
		v, _ := get("id")
		id, _ := v.(int64)
		ids = append(ids, id)
		return false, nil
	}}, []string{"id"})
	if err != nil {
		h.queueError(w, r, s, err)
		return
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	d.Matching = len(ids)
	// The page is ids[lo:hi], shown newest first: the newest jobs below
	// "before", the oldest above "after", or the newest of all.
	hi := len(ids)
	switch {
	case hasBefore:
		hi = sort.Search(len(ids), func(i int) bool { return ids[i] >= before })
	case hasAfter:
		lo := sort.Search(len(ids), func(i int) bool { return ids[i] > after })
		hi = min(lo+d.N, len(ids))
	}
	lo := max(hi-d.N, 0)
	pageIDs := make([]int64, 0, hi-lo)
	for i := hi - 1; i >= lo; i-- {
		pageIDs = append(pageIDs, ids[i])
	}
	if d.Rows, err = h.rows(pageIDs, now); err != nil {
		h.queueError(w, r, s, err)
		return
	}
	if len(pageIDs) > 0 {
		// Positions counted from the newest job, 1-based.
		d.First, d.Last = len(ids)-hi+1, len(ids)-lo
	}
	link := func(k string, v int64) string {
		u := url.Values{}
		if d.Status != "" {
			u.Set("status", d.Status)
		}
		if d.Age != "" {
			u.Set("age", d.Age)
		}
		if d.Query != "" {
			u.Set("q", d.Query)
		}
		if d.Where != "" {
			u.Set("in", d.Where)
		}
		if d.From != "" {
			u.Set("from", d.From)
		}
		if d.To != "" {
			u.Set("to", d.To)
		}
		if d.OpID != "" {
			u.Set("op", d.OpID)
		}
		if d.Author != "" {
			u.Set("author", d.Author)
		}
		if d.N != DefaultPageSize {
			u.Set("n", strconv.Itoa(d.N))
		}
		if k != "" {
			u.Set(k, itoa(v))
		}
		if len(u) == 0 {
			return Prefix + "/jobs"
		}
		return Prefix + "/jobs?" + u.Encode()
	}
	d.Self = Prefix + "/jobs"
	if r.URL.RawQuery != "" {
		d.Self += "?" + r.URL.RawQuery
	}
	if hi < len(ids) {
		d.Newest = link("", 0)
		d.Newer = d.Newest
		if hi > 0 {
			d.Newer = link("after", ids[hi-1])
		}
	}
	if lo > 0 {
		d.Older = link("before", ids[lo])
		d.Oldest = link("after", 0)
	}
	var parts []string
	if d.Status != "" {
		parts = append(parts, d.Status)
	}
	desc := map[string]string{"": "live jobs", "archive": "archived jobs", "all": "live and archived jobs"}[d.Where]
	if len(parts) > 0 {
		desc = strings.Join(parts, " ") + " " + desc
		if d.Where == "" {
			desc = strings.Join(parts, " ") + " jobs"
		}
	}
	if d.Age != "" {
		for _, o := range ageOptions {
			if o.Value == d.Age {
				desc += " received in " + o.Label
			}
		}
	}
	if d.From != "" {
		desc += " received from " + strings.Replace(d.From, "T", " ", 1)
	}
	if d.To != "" {
		desc += " received before " + strings.Replace(d.To, "T", " ", 1)
	}
	if d.OpID != "" {
		desc += " with an " + d.OpID + " opcode"
	}
	if d.Author != "" {
		desc += fmt.Sprintf(" submitted by %q", d.Author)
	}
	if d.Query != "" {
		desc += fmt.Sprintf(" mentioning %q", d.Query)
	}
	d.FilterDescription = desc
	h.render(w, r, s, http.StatusOK, "jobs", &page{Title: "Jobs", Nav: "jobs", Refresh: h.refresh(), Data: d})
}

// goToJob answers the "open a job by id" form.
func (h *Handler) goToJob(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	v := strings.TrimSpace(r.URL.Query().Get("id"))
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		h.errorPage(w, r, s, http.StatusNotFound, "No such job", fmt.Sprintf("%q is not a job id.", v))
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%s/jobs/%d", Prefix, id), http.StatusSeeOther)
}

type jobPageData struct {
	Job *jobView
	// Events is the event stream's URL; "" for a final job.
	Events string
	// ResubmitOf is the job this one resubmits (0: none);
	// ResubmittedAs the jobs that resubmit this one.
	ResubmitOf    int64
	ResubmittedAs []int64
}

// loadJob reads a job for its page; nil when there is no such job.
func (h *Handler) loadJob(id int64) (*jobData, error) {
	raw, err := h.cfg.Queue.QueryJobs([]int64{id}, jobFields)
	if err != nil {
		return nil, err
	}
	if len(raw) != 1 {
		return nil, fmt.Errorf("the queue answered %d rows for one job", len(raw))
	}
	d := &jobData{}
	ok, err := decodeRow(raw[0], d.jobDst()...)
	if err != nil || !ok {
		return nil, err
	}
	return d, nil
}

func (h *Handler) jobPage(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	id, ok := h.jobID(w, r, s)
	if !ok {
		return
	}
	d, err := h.loadJob(id)
	if err != nil {
		h.queueError(w, r, s, err)
		return
	}
	if d == nil {
		h.errorPage(w, r, s, http.StatusNotFound, "No such job", fmt.Sprintf("Job %d does not exist (it was never submitted, or its file is gone).", id))
		return
	}
	v := d.view(h.cfg.Now())
	pd := jobPageData{Job: v}
	if !v.Final {
		pd.Events = fmt.Sprintf("%s/jobs/%d/events?after=%d", Prefix, id, v.LastSerial)
	}
	if len(d.Ops) > 0 {
		pd.ResubmitOf = resubmitOf(d.Ops[0])
	}
	if v.Final {
		if pd.ResubmittedAs, err = h.resubmittedAs(id); err != nil {
			h.queueError(w, r, s, err)
			return
		}
	}
	h.render(w, r, s, http.StatusOK, "job", &page{Title: fmt.Sprintf("Job %d", id), Nav: "jobs", Data: pd})
}

type lockRow struct {
	Name    string
	Mode    string
	Owners  []int64
	Pending []pendingView
}

type pendingView struct {
	Mode string
	Jobs []int64
}

func (h *Handler) locksPage(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	var rows []lockRow
	for _, l := range h.cfg.Queue.Locks() {
		row := lockRow{Name: l.Name}
		if l.Mode != 0 {
			row.Mode = l.Mode.String()
		}
		for _, o := range l.Owners {
			row.Owners = append(row.Owners, int64(o))
		}
		for _, p := range l.Pending {
			pv := pendingView{Mode: p.Mode.String()}
			for _, o := range p.Owners {
				pv.Jobs = append(pv.Jobs, int64(o))
			}
			row.Pending = append(row.Pending, pv)
		}
		rows = append(rows, row)
	}
	h.render(w, r, s, http.StatusOK, "locks", &page{Title: "Locks", Nav: "locks", Refresh: h.refresh(), Data: rows})
}
