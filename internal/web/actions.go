package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
)

// confirmData is a confirmation page: what will happen, and a form that
// does it.
type confirmData struct {
	Action   string // cancel, priority, archive, drain, undrain
	Heading  string
	Explain  string
	Button   string
	PostTo   string
	Back     string
	BackText string
	Job      *jobView
	// Kill offers "kill the running opcode" (cancel of a running job).
	Kill bool
	// Priority is the current priority (priority).
	Priority   int
	Priorities []int
}

var priorities = func() []int {
	var p []int
	for i := job.PriorityHighest; i <= job.PriorityLowest; i++ {
		p = append(p, i)
	}
	return p
}()

// confirmJobAction shows the confirmation page of an action on a job.
func (h *Handler) confirmJobAction(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	id, ok := h.jobID(w, r, s)
	if !ok {
		return
	}
	action := r.PathValue("action")
	if action != "cancel" && action != "priority" && action != "archive" && action != "resubmit" {
		h.errorPage(w, r, s, http.StatusNotFound, "No such page", "There is nothing at "+r.URL.Path+".")
		return
	}
	d, err := h.loadJob(id)
	if err != nil {
		h.queueError(w, r, s, err)
		return
	}
	if d == nil {
		h.errorPage(w, r, s, http.StatusNotFound, "No such job", fmt.Sprintf("Job %d does not exist.", id))
		return
	}
	v := d.view(h.cfg.Now())
	c := confirmData{Action: action, Job: v, PostTo: fmt.Sprintf("%s/jobs/%d/%s", Prefix, id, action),
		Back: fmt.Sprintf("%s/jobs/%d", Prefix, id), BackText: fmt.Sprintf("No, back to job %d", id)}
	switch action {
	case "cancel":
		c.Heading = fmt.Sprintf("Cancel job %d?", id)
		c.Button = fmt.Sprintf("Cancel job %d", id)
		c.Explain = "A queued job is canceled at once; a job waiting for locks or dependencies is canceled " +
			"as soon as it stops waiting. A job whose opcode already runs is only canceled when you also " +
			"kill that opcode."
		c.Kill = v.Status == string(job.StatusRunning)
		if v.Final {
			c.Explain = fmt.Sprintf("Job %d has already finished (%s): cancelling it will be refused.", id, v.Status)
		}
	case "priority":
		c.Heading = fmt.Sprintf("Change the priority of job %d", id)
		c.Button = "Change priority"
		c.Explain = "The new priority applies to the job's opcodes that have not started: -20 is the most " +
			"urgent, 19 the least, 0 the default. Running opcodes keep theirs."
		c.Priority, c.Priorities = v.Priority, priorities
	case "resubmit":
		c.Heading = fmt.Sprintf("Resubmit job %d?", id)
		c.Button = fmt.Sprintf("Submit a copy of job %d", id)
		c.Explain = fmt.Sprintf("A new job with the same %d opcode(s), their parameters as submitted, is submitted and "+
			"runs as any job does; its page and this one link to each other.", len(v.Ops))
		if !v.Final {
			c.Explain = fmt.Sprintf("Job %d has not finished (%s): resubmit it once it has, or cancel it first.", id, v.Status)
		}
	case "archive":
		c.Heading = fmt.Sprintf("Archive job %d?", id)
		c.Button = fmt.Sprintf("Archive job %d", id)
		c.Explain = "The job leaves the live queue and its lists; its page stays available by its id."
		if !v.Final {
			c.Explain = fmt.Sprintf("Job %d has not finished (%s): only finished jobs can be archived.", id, v.Status)
		}
	}
	h.render(w, r, s, http.StatusOK, "confirm", &page{Title: c.Heading, Nav: "jobs", Data: c})
}

// postJobAction acts on a job (confirmed, CSRF checked, write user) and
// sends the browser back to the job's page with the outcome.
func (h *Handler) postJobAction(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	id, ok := h.jobID(w, r, s)
	if !ok {
		return
	}
	q := h.cfg.Queue
	who := author.DashboardUser(s.user)
	var msg string
	var err error
	done := true // the action was carried out (for the audit log)
	switch r.PathValue("action") {
	case "cancel":
		kill := r.PostForm.Get("kill") != ""
		done, msg, err = q.CancelJobBy(id, kill, who)
		if err == nil && !done {
			msg = "Not canceled: " + msg
		}
	case "priority":
		p, perr := strconv.Atoi(r.PostForm.Get("priority"))
		if perr != nil || p < job.PriorityHighest || p > job.PriorityLowest {
			h.errorPage(w, r, s, http.StatusBadRequest, "Bad priority",
				fmt.Sprintf("A priority is a whole number from %d to %d.", job.PriorityHighest, job.PriorityLowest))
			return
		}
		done, msg, err = q.ChangeJobPriorityBy(id, p, who)
		if err == nil && !done {
			msg = "Priority not changed: " + msg
		}
	case "resubmit":
		h.resubmit(w, r, s, id)
		return
	case "archive":
		done, err = q.ArchiveJobBy(id, who)
		msg = fmt.Sprintf("Job %d archived.", id)
		if err == nil && !done {
			msg = fmt.Sprintf("Job %d was not archived: only finished jobs of the live queue can be.", id)
		}
	default:
		h.errorPage(w, r, s, http.StatusNotFound, "No such page", "There is nothing at "+r.URL.Path+".")
		return
	}
	result := "ok"
	switch {
	case err != nil:
		result = "failed: " + err.Error()
	case !done:
		result = "not done: " + msg
	}
	author.Audit(h.log, who, r.PathValue("action"), fmt.Sprintf("job=%d", id), result)
	if err != nil {
		h.queueError(w, r, s, err)
		return
	}
	h.log.Info("web: job action", "user", s.user, "action", r.PathValue("action"), "job", id, "outcome", msg)
	h.sessions.setFlash(s.id, msg)
	http.Redirect(w, r, fmt.Sprintf("%s/jobs/%d", Prefix, id), http.StatusSeeOther)
}

func (h *Handler) confirmDrain(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	drained := h.cfg.Queue.Drained()
	c := confirmData{PostTo: Prefix + "/drain", Back: Prefix + "/", BackText: "No, back to the overview"}
	if drained {
		c.Action, c.Heading, c.Button = "undrain", "Undrain the queue?", "Undrain the queue"
		c.Explain = "The queue is drained. Undraining it lets clients submit jobs again."
	} else {
		c.Action, c.Heading, c.Button = "drain", "Drain the queue?", "Drain the queue"
		c.Explain = "New submissions will be refused (\"Queue drained\") until you undrain it; jobs " +
			"already queued still run. Drain before maintenance."
	}
	h.render(w, r, s, http.StatusOK, "confirm", &page{Title: c.Heading, Nav: "overview", Data: c})
}

func (h *Handler) postDrain(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	var on bool
	switch r.PostForm.Get("drain") {
	case "1":
		on = true
	case "0":
	default:
		h.errorPage(w, r, s, http.StatusBadRequest, "Bad request", "Say drain=1 or drain=0.")
		return
	}
	who := author.DashboardUser(s.user)
	if !s.admin {
		author.Audit(h.log, who, "drain", fmt.Sprint(on), "refused: not an administrator")
		h.errorPage(w, r, s, http.StatusForbidden, "Not allowed",
			"Draining the queue is an administrative call: it needs a user with the admin option in the RAPI users file.")
		return
	}
	err := h.cfg.Queue.SetDrainFlag(on)
	author.Audit(h.log, who, "drain", fmt.Sprint(on), resultOf(err))
	if err != nil {
		h.queueError(w, r, s, err)
		return
	}
	msg := "The queue is drained: new submissions are refused."
	if !on {
		msg = "The queue is undrained: submissions are accepted."
	}
	h.log.Info("web: drain flag", "user", s.user, "drained", on)
	h.sessions.setFlash(s.id, msg)
	http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
}

// resubmit submits a copy of a finished job (confirmed) and sends the
// browser to the new job's page.
func (h *Handler) resubmit(w http.ResponseWriter, r *http.Request, s *sessionInfo, id int64) {
	d, err := h.loadJob(id)
	if err != nil {
		h.queueError(w, r, s, err)
		return
	}
	back := fmt.Sprintf("%s/jobs/%d", Prefix, id)
	if d == nil {
		h.errorPage(w, r, s, http.StatusNotFound, "No such job", fmt.Sprintf("Job %d does not exist.", id))
		return
	}
	if d.End == nil {
		h.sessions.setFlash(s.id, fmt.Sprintf("Job %d was not resubmitted: it has not finished (%s).", id, d.Status))
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	ops, err := resubmitOps(d.Ops, id, s.user, h.cfg.Now())
	if err != nil {
		h.errorPage(w, r, s, http.StatusConflict, "Cannot resubmit", err.Error()+".")
		return
	}
	who := author.DashboardUser(s.user)
	res, err := h.cfg.Queue.SubmitWith([][]json.RawMessage{ops}, queue.SubmitOptions{Author: who, Admin: s.admin})
	if err == nil && len(res) == 1 && res[0].Err != nil {
		err = res[0].Err
	}
	if err != nil {
		h.log.Info("web: resubmission refused", "user", s.user, "job", id, "err", err)
		h.sessions.setFlash(s.id, fmt.Sprintf("Job %d was not resubmitted: %v.", id, err))
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	n := res[0].ID
	h.resubmits.add(id, n)
	h.log.Info("web: job resubmitted", "user", s.user, "job", id, "new_job", n)
	h.sessions.setFlash(s.id, fmt.Sprintf("Job %d resubmits job %d.", n, id))
	http.Redirect(w, r, fmt.Sprintf("%s/jobs/%d", Prefix, n), http.StatusSeeOther)
}

// resultOf is an audit line's result for an outcome.
func resultOf(err error) string {
	if err != nil {
		return "failed: " + err.Error()
	}
	return "ok"
}
