package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
)

// Bulk actions: the job list lets write users tick jobs and cancel,
// archive or reprioritise them all after one confirmation page
// (GET /ui/jobs/bulk?action=A&id=N&id=M..., then POST with the CSRF
// token). Each job gets the same call as on its own page; the outcome is
// counted, the refusals named.

// maxBulk is the most jobs one bulk action takes.
const maxBulk = 500

var bulkActions = map[string]string{"cancel": "Cancel", "archive": "Archive", "priority": "Change the priority of"}

type bulkData struct {
	Action, Verb string
	Rows         []listRow
	Missing      []int64
	IDs          []int64
	Jobs         string // "1 job", "N jobs"
	Back         string
	Kill         bool // some job runs: offer to kill
	Priorities   []int
}

// bulkRequest reads the action and the job ids of a bulk request; ok is
// false when it answered with an error page.
func (h *Handler) bulkRequest(w http.ResponseWriter, r *http.Request, s *sessionInfo, form url.Values) (action string, ids []int64, ok bool) {
	action = form.Get("action")
	if _, known := bulkActions[action]; !known {
		h.errorPage(w, r, s, http.StatusBadRequest, "No such action", "Choose cancel, archive or priority.")
		return "", nil, false
	}
	for _, v := range form["id"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			h.errorPage(w, r, s, http.StatusBadRequest, "Bad job id", fmt.Sprintf("%q is not a job id.", v))
			return "", nil, false
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	switch {
	case len(ids) == 0:
		h.errorPage(w, r, s, http.StatusBadRequest, "No jobs chosen", "Tick the jobs to act on in the job list first.")
		return "", nil, false
	case len(ids) > maxBulk:
		h.errorPage(w, r, s, http.StatusBadRequest, "Too many jobs", fmt.Sprintf("Act on at most %d jobs at once.", maxBulk))
		return "", nil, false
	}
	return action, ids, true
}

// confirmBulk shows what a bulk action will do to which jobs.
func (h *Handler) confirmBulk(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	action, ids, ok := h.bulkRequest(w, r, s, r.URL.Query())
	if !ok {
		return
	}
	rows, err := h.rows(ids, h.cfg.Now())
	if err != nil {
		h.queueError(w, r, s, err)
		return
	}
	d := bulkData{Action: action, Verb: bulkActions[action], Rows: rows, IDs: ids, Priorities: priorities,
		Back: Prefix + "/jobs"}
	if ref := r.URL.Query().Get("back"); strings.HasPrefix(ref, Prefix+"/jobs") && !strings.Contains(ref, "//") {
		d.Back = ref
	}
	for _, id := range ids {
		if !slices.ContainsFunc(rows, func(row listRow) bool { return row.ID == id }) {
			d.Missing = append(d.Missing, id)
		}
	}
	d.Kill = action == "cancel" && slices.ContainsFunc(rows, func(row listRow) bool { return row.Status == string(job.StatusRunning) })
	d.Jobs = fmt.Sprintf("%d jobs", len(ids))
	if len(ids) == 1 {
		d.Jobs = "1 job"
	}
	title := fmt.Sprintf("%s %s?", d.Verb, d.Jobs)
	h.render(w, r, s, http.StatusOK, "bulk", &page{Title: title, Nav: "jobs", Data: d})
}

// postBulk does a confirmed bulk action and goes back to the list with
// what happened.
func (h *Handler) postBulk(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	action, ids, ok := h.bulkRequest(w, r, s, r.PostForm)
	if !ok {
		return
	}
	prio := 0
	if action == "priority" {
		p, err := strconv.Atoi(r.PostForm.Get("priority"))
		if err != nil || p < job.PriorityHighest || p > job.PriorityLowest {
			h.errorPage(w, r, s, http.StatusBadRequest, "Bad priority",
				fmt.Sprintf("A priority is a whole number from %d to %d.", job.PriorityHighest, job.PriorityLowest))
			return
		}
		prio = p
	}
	kill := r.PostForm.Get("kill") != ""
	q := h.cfg.Queue
	who := author.DashboardUser(s.user)
	var done int
	var refused []string
	for _, id := range ids {
		var ok bool
		var msg string
		var err error
		switch action {
		case "cancel":
			ok, msg, err = q.CancelJobBy(id, kill, who)
		case "priority":
			ok, msg, err = q.ChangeJobPriorityBy(id, prio, who)
		case "archive":
			ok, err = q.ArchiveJobBy(id, who)
			msg = fmt.Sprintf("Job %d is not a finished job of the live queue", id)
		}
		result := "ok"
		switch {
		case err != nil:
			result = "failed: " + err.Error()
		case !ok:
			result = "not done: " + msg
		}
		author.Audit(h.log, who, action, fmt.Sprintf("job=%d", id), result)
		if err != nil {
			h.queueError(w, r, s, err)
			return
		}
		if ok {
			done++
		} else {
			// Some of the queue's refusals (Ganeti's words for a running
			// job) do not name the job.
			if !strings.Contains(msg, strconv.FormatInt(id, 10)) {
				msg = fmt.Sprintf("job %d: %s", id, msg)
			}
			refused = append(refused, msg)
		}
	}
	h.log.Info("web: bulk job action", "user", s.user, "action", action, "jobs", ids, "done", done, "refused", len(refused))
	past := map[string]string{"cancel": "canceled (or to be canceled)", "archive": "archived", "priority": "reprioritised"}[action]
	msg := fmt.Sprintf("%d of %d jobs %s.", done, len(ids), past)
	if len(refused) > 0 {
		msg += " Refused: " + strings.Join(refused, "; ") + "."
	}
	h.sessions.setFlash(s.id, msg)
	back := Prefix + "/jobs"
	if ref := r.PostForm.Get("back"); strings.HasPrefix(ref, Prefix+"/jobs") && !strings.Contains(ref, "//") {
		back = ref
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}
