// Package web is jobq's web dashboard, served by jobqd under /ui/ on the
// RAPI HTTPS port. It is rendered on the server (html/template, files
// embedded in the binary) with a little plain JavaScript: no build step,
// no external fonts or scripts.
//
// # Pages
//
//	GET  /ui/                     overview: jobs by status, workers, drain flag,
//	                              master and nodes, active and recent jobs
//	GET  /ui/jobs                 job list: ?status=, ?age=, newest first, paged
//	                              by job id (?before=ID, ?after=ID, ?n=)
//	GET  /ui/jobs/N               one job: every opcode's input, status, times,
//	                              result and log, updated live
//	GET  /ui/jobs/N/events        the job's changes as server-sent events
//	GET  /ui/locks                locks: mode, holders, waiters
//	GET  /ui/schedules            recurring schedules: next and last fire, jobs
//	GET  /ui/opcodes              declared opcodes and their parameters
//	GET  /ui/jobs/N/ACTION        confirmation page (write users); ACTION is
//	POST /ui/jobs/N/ACTION        cancel, priority or archive; POST acts
//	GET  /ui/drain, POST /ui/drain  the same for the drain flag
//	GET  /ui/login, POST /ui/login, POST /ui/logout
//
// # Users, sessions and CSRF
//
// Users are RAPI's (the same users file, see package rapi): everybody who
// can log in sees every page; users with the "write" option act. Logging in
// (a form, or HTTP Basic on /ui/login?basic=1) starts a session kept in
// memory: a random id in a cookie (HttpOnly, Secure, SameSite=Strict, Path
// /ui) that expires after SessionIdle without requests or SessionMax in
// all, or as soon as the user's line in the users file changes password or
// disappears. Every session has a random CSRF token that every POST must
// carry (a hidden form field); a POST without it, or from another origin,
// is refused with 403, as is any action by a user without "write".
package web

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/rapi"
	"github.com/jobq-dev/jobq/locking"
)

// Prefix is where the dashboard lives.
const Prefix = "/ui"

// Defaults of Config.
const (
	DefaultSessionIdle = 8 * time.Hour
	DefaultSessionMax  = 24 * time.Hour
	DefaultRefresh     = 5 * time.Second
	DefaultHeartbeat   = 15 * time.Second
	DefaultMaxStreams  = 256
	DefaultMaxSessions = 10000
	DefaultPageSize    = 50
	MaxPageSize        = 500
)

// Queue is what the dashboard needs of the queue engine; *queue.Queue has
// it.
type Queue interface {
	Select(sel queue.Selector, fields []string) ([][]any, error)
	QueryJobs(ids []int64, fields []string) ([]json.RawMessage, error)
	WaitForJobChange(ctx context.Context, id int64, fields []string, prevInfo json.RawMessage,
		prevLogSerial int64, timeout time.Duration) (*queue.WaitResult, error)
	CancelJob(id int64, kill bool) (bool, string, error)
	ChangeJobPriority(id int64, prio int) (bool, string, error)
	ArchiveJob(id int64) (bool, error)
	SetDrainFlag(on bool) error
	Submit(jobs [][]json.RawMessage, ignoreDrain bool) ([]queue.SubmitResult, error)
	// The calls of an author (package author: the dashboard user).
	SubmitWith(jobs [][]json.RawMessage, o queue.SubmitOptions) ([]queue.SubmitResult, error)
	CancelJobBy(id int64, kill bool, who author.Actor) (bool, string, error)
	ChangeJobPriorityBy(id int64, prio int, who author.Actor) (bool, string, error)
	ArchiveJobBy(id int64, who author.Actor) (bool, error)
	Charts() (hour, day queue.Chart)
	Drained() bool
	Counts() map[job.Status]int
	Running() int
	Locks() []locking.LockInfo
	Schedules() []queue.ScheduleState
}

// Users finds the users of the RAPI users file; *rapi.Server has it.
type Users interface {
	LookupUser(name string) *rapi.User
}

// Node is one cluster member as the overview shows it.
type Node struct {
	Name      string
	Address   string
	Candidate bool
	Online    bool
	// Replication describes how far the node's copy of the queue is, as
	// the master knows it ("in sync", "behind by 3 updates", ...); empty:
	// not known.
	Replication string
}

// Cluster is what the overview tells about the cluster.
type Cluster struct {
	Name           string
	Master         string
	Nodes          []Node
	MaxRunningJobs int
}

// Config configures a Handler.
type Config struct {
	Queue Queue
	Users Users
	// Cluster is called for every overview; nil: nothing is known.
	Cluster func() Cluster
	Logger  *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// SessionIdle ends a session unused for that long; SessionMax ends
	// every session that old. 0: the defaults.
	SessionIdle, SessionMax time.Duration
	// MaxSessions bounds the sessions kept; the oldest go first.
	MaxSessions int
	// Refresh is how often the overview, job list and locks pages reload
	// their content in the browser; 0: DefaultRefresh.
	Refresh time.Duration
	// Heartbeat is how long an event stream stays silent at most (a
	// comment line is sent then, so dead connections are found).
	Heartbeat time.Duration
	// MaxStreams bounds the event streams served at once (503 beyond).
	MaxStreams int
	// Guard slows password guessing down; share RAPI's (rapi.Server's
	// Guard) so that guesses on one count for the other. nil: one of the
	// dashboard's own, on Now.
	Guard *rapi.Guard
	// Opcodes lists the declared opcodes for the opcodes page; nil: none.
	Opcodes func() []Opcode
}

// Handler serves the dashboard. Create it with New.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessionStore
	streams  atomic.Int64
	// resubmits are the resubmissions this process made.
	resubmits resubmissions
	// streamEnded, when set (tests), is told when an event stream ends.
	streamEnded func()
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns a Handler for the paths under Prefix.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Cluster == nil {
		cfg.Cluster = func() Cluster { return Cluster{} }
	}
	if cfg.Guard == nil {
		cfg.Guard = rapi.NewGuard(cfg.Now)
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = DefaultSessionMax
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	h.sessions = newSessionStore(cfg)
	h.pages = parseTemplates()
	h.routes()
	return h
}

func (h *Handler) routes() {
	m := h.mux
	p := Prefix
	m.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p+"/", http.StatusMovedPermanently)
	})
	m.Handle("GET "+p+"/static/", http.StripPrefix(p, http.HandlerFunc(h.static)))
	m.HandleFunc("GET "+p+"/login", h.loginPage)
	m.HandleFunc("POST "+p+"/login", h.loginPost)
	m.HandleFunc("POST "+p+"/logout", h.authed(h.logout))
	m.HandleFunc("GET "+p+"/{$}", h.authed(h.overview))
	m.HandleFunc("GET "+p+"/jobs", h.authed(h.jobList))
	m.HandleFunc("GET "+p+"/jobs/go", h.authed(h.goToJob))
	m.HandleFunc("GET "+p+"/jobs/bulk", h.authed(h.writer(h.confirmBulk)))
	m.HandleFunc("POST "+p+"/jobs/bulk", h.authed(h.writer(h.postBulk)))
	m.HandleFunc("GET "+p+"/jobs/{id}", h.authed(h.jobPage))
	m.HandleFunc("GET "+p+"/jobs/{id}/events", h.authed(h.events))
	m.HandleFunc("GET "+p+"/jobs/{id}/{action}", h.authed(h.writer(h.confirmJobAction)))
	m.HandleFunc("POST "+p+"/jobs/{id}/{action}", h.authed(h.writer(h.postJobAction)))
	m.HandleFunc("GET "+p+"/drain", h.authed(h.writer(h.confirmDrain)))
	m.HandleFunc("POST "+p+"/drain", h.authed(h.writer(h.postDrain)))
	m.HandleFunc("GET "+p+"/locks", h.authed(h.locksPage))
	m.HandleFunc("GET "+p+"/schedules", h.authed(h.schedulesPage))
	m.HandleFunc("GET "+p+"/opcodes", h.authed(h.opcodesPage))
	m.HandleFunc("GET "+p+"/charts", h.authed(h.chartsPage))
	m.HandleFunc("GET "+p+"/charts.json", h.authed(h.chartsJSON))
	m.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		h.errorPage(w, r, nil, http.StatusNotFound, "No such page", "There is nothing at "+r.URL.Path+".")
	})
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Strict-Transport-Security", "max-age=31536000")
	h.mux.ServeHTTP(w, r)
}

// static serves the embedded CSS and JavaScript.
func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	http.FileServerFS(staticFS).ServeHTTP(w, r)
}

// page is what every page template gets.
type page struct {
	Title    string
	Nav      string // "overview", "jobs", "locks", "schedules", "opcodes"
	User     string
	CanWrite bool
	CSRF     string
	Flash    string
	Prefix   string
	// Refresh, in milliseconds, makes the browser reload the page's live
	// region; 0: it does not.
	Refresh int64
	Data    any
}

var funcs = template.FuncMap{
	"statusClass": func(s string) string { return "status status-" + s },
	"inc":         func(i int) int { return i + 1 },
	"dec":         func(i int) int { return i - 1 },
	// dict passes several values to a template: dict "k1" v1 "k2" v2.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict needs pairs")
		}
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict keys are strings")
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}

func parseTemplates() map[string]*template.Template {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "jobtable" {
			continue
		}
		out[base] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/jobtable.html", n))
	}
	return out
}

// render writes a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, s *sessionInfo, status int, name string, p *page) {
	p.Prefix = Prefix
	if s != nil {
		p.User, p.CanWrite, p.CSRF = s.user, s.write, s.csrf
		if p.Flash == "" {
			p.Flash = h.sessions.takeFlash(s.id)
		}
	}
	t := h.pages[name]
	var b strings.Builder
	if err := t.Execute(&b, p); err != nil {
		h.log.Error("web: cannot render a page", "page", name, "err", err)
		http.Error(w, "cannot render the page", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(b.Len()))
	rc := http.NewResponseController(w)
	if rc.SetWriteDeadline(time.Now().Add(ioTimeout)) == nil {
		defer func() {
			_ = rc.Flush()
			_ = rc.SetWriteDeadline(time.Time{})
		}()
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(b.String()))
	}
}

type errorData struct {
	Status  int
	Heading string
	Message string
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, s *sessionInfo, status int, heading, msg string) {
	h.render(w, r, s, status, "error", &page{
		Title: fmt.Sprintf("%s (%d)", heading, status),
		Data:  errorData{Status: status, Heading: heading, Message: msg},
	})
}

// jobID parses the {id} of a path; ok is false (and 404 answered) when it
// is no job id.
func (h *Handler) jobID(w http.ResponseWriter, r *http.Request, s *sessionInfo) (int64, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 || strings.Trim(v, "0123456789") != "" {
		h.errorPage(w, r, s, http.StatusNotFound, "No such job", fmt.Sprintf("%q is not a job id.", v))
		return 0, false
	}
	return id, true
}
