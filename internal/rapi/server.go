// Package rapi serves the job resources of Ganeti's remote API (RAPI) over
// HTTPS from jobq's queue engine, so that Ganeti's RAPI clients (its Python
// GanetiRapiClient, curl scripts) work against jobqd unchanged.
//
// # Resources
//
//	GET    /version              2
//	GET    /2/info               the cluster: name, master, versions
//	GET    /2/features           optional features (["jobs-submit"])
//	GET    /2/jobs[?bulk=1]      [{"id": N, "uri": "/2/jobs/N"}, ...], or with
//	                             bulk the fields id, ops, status, summary,
//	                             opstatus, received_ts, start_ts, end_ts
//	GET    /2/schedules          jobq's: the recurring schedules and their state
//	POST   /2/jobs               {"ops": [...]} submits a job; answers its id
//	                             (optional "not_before", "timeout",
//	                             "op_timeout": jobq's job.ParseTiming)
//	                             (jobq's addition; write access)
//	GET    /2/jobs/N             the bulk fields plus oplog and opresult
//	DELETE /2/jobs/N             cancel: [true|false, message] (write access)
//	GET    /2/jobs/N/wait        body {"fields": [...], "previous_job_info":
//	                             [...]|null, "previous_log_serial": N|null}:
//	                             {"job_info": [...], "log_entries": [...]} as
//	                             soon as the job differs from what the client
//	                             had, null if nothing changed within
//	                             Config.WaitTimeout (write access, as Ganeti)
//	GET    /2/filters[?bulk=1]   the job filter rules: [{"uuid": UUID, "uri":
//	                             "/2/filters/UUID"}, ...], or with bulk the
//	                             rules (Config.Filters; see package filter)
//	POST   /2/filters            {"priority", "predicates", "action",
//	                             "reason"} adds a rule; answers its uuid
//	GET    /2/filters/UUID       the rule
//	PUT    /2/filters/UUID       replaces the rule, or adds it with that uuid
//	DELETE /2/filters/UUID       deletes it (POST, PUT, DELETE: write access)
//	GET    /, /2                 null (Ganeti's legacy root resources)
//
// With Config.LUXI, also /2/tags, /2/nodes/NAME/tags, /2/query/RES and
// /2/query/RES/fields, and /2/info as QueryClusterInfo (see [LUXI]).
//
// Answers are byte for byte what Ganeti 3.0's RAPI writes: Python-style
// JSON (", " and ": " separators, non-ASCII escaped) with a final newline,
// job dicts with their fields in Ganeti's order, and errors as
//
//	{"code": 401, "message": "Unauthorized", "explain": "No permission -- see authorization schemes"}
//
// Unlike Ganeti, an unknown job id is 404 on every job resource (Ganeti
// answers nulls on some), and connections are kept alive (Ganeti closes
// every one).
//
// # Authentication
//
// Users come from a file in Ganeti's format (see [ParseUsers] and
// [CheckPassword]), re-read whenever it changes. As in Ganeti, reads need
// no credentials unless Config.RequireAuth is set, credentials that are
// sent are always checked (401 when wrong, with WWW-Authenticate: Basic
// realm="Ganeti Remote API"), and changing resources (and waiting on a job)
// needs a user with the "write" option (403 otherwise).
package rapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/conncap"
	"github.com/jobq-dev/jobq/internal/idem"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/queue"
)

// Version is the RAPI version, GET /version.
const Version = 2

// DefaultWaitTimeout is how long GET /2/jobs/N/wait waits for a change
// (Ganeti's _WFJC_TIMEOUT).
const DefaultWaitTimeout = 10 * time.Second

// MaxBodySize is the largest request body accepted, by POST /2/jobs.
const MaxBodySize = 64 << 20

// SmallBodySize is the largest request body of every other resource that
// takes one (GET /2/jobs/N/wait, the dashboard's forms, Handle resources).
// Resources that take no body refuse one (413) without reading it.
const SmallBodySize = 64 << 10

// maxBodyDepth is the deepest nesting of arrays and objects a JSON body
// may have: an opcode's own limit (job.DefaultMaxDepth) plus the body's
// {"ops": [...]}, with room to spare, far below the 1,000 levels Ganeti's
// Python clients can read back.
const maxBodyDepth = 100

// Defaults of Config.ReadHeaderTimeout and Config.BodyTimeout. A client
// that sends or reads more slowly than they allow (slowloris) is
// disconnected instead of holding its connection for ever.
const (
	DefaultReadHeaderTimeout = 30 * time.Second
	DefaultBodyTimeout       = 2 * time.Minute
)

// CipherSuites are the TLS 1.2 cipher suites RAPI accepts unless its
// tls.Config says otherwise: forward secrecy and AEAD only (no CBC, no
// SHA-1 MACs). TLS 1.3's suites are all of that kind already.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// protocolVersion is the LUXI protocol version jobq speaks (Ganeti 3.0's).
const protocolVersion = 3000000

// Features are the optional features GET /2/features lists. Ganeti's own
// (instance-create-reqv1, node-evac-res1, ...) concern resources jobq does
// not serve; "jobs-submit" announces POST /2/jobs.
var Features = []string{"jobs-submit"}

// Job fields of GET /2/jobs?bulk=1 and GET /2/jobs/N, in Ganeti's order
// (rlib2's J_FIELDS_BULK and J_FIELDS).
var (
	jobFieldsBulk = []string{"id", "ops", "status", "summary", "opstatus", "received_ts", "start_ts", "end_ts"}
	jobFields     = append(append([]string{}, jobFieldsBulk...), "oplog", "opresult")
	// jobTimingFields are jobq's (jobs in time): a job dict has them only
	// when the job has them (not null).
	jobTimingFields = []string{"not_before", "timeout", "optimeout"}
)

// Queue is what the RAPI needs of the queue engine; *queue.Queue has it.
type Queue interface {
	Submit(jobs [][]json.RawMessage, ignoreDrain bool) ([]queue.SubmitResult, error)
	SubmitTimed(jobs [][]json.RawMessage, ignoreDrain bool, timing job.Timing) ([]queue.SubmitResult, error)
	QueryJobs(ids []int64, fields []string) ([]json.RawMessage, error)
	WaitForJobChange(ctx context.Context, id int64, fields []string, prevInfo json.RawMessage,
		prevLogSerial int64, timeout time.Duration) (*queue.WaitResult, error)
	CancelJob(id int64, kill bool) (bool, string, error)
	// SubmitWith and CancelJobBy are the calls of an author (package
	// author: the RAPI user).
	SubmitWith(jobs [][]json.RawMessage, o queue.SubmitOptions) ([]queue.SubmitResult, error)
	CancelJobBy(id int64, kill bool, who author.Actor) (bool, string, error)
	// Schedules are the recurring schedules the master runs.
	Schedules() []queue.ScheduleState
}

// ClusterInfo is what GET /2/info tells about the cluster.
type ClusterInfo struct {
	Name           string
	Master         string
	MaxRunningJobs int
}

// Config configures a Server.
type Config struct {
	Queue Queue
	// Filters serves /2/filters; nil: not served (404).
	Filters Filters
	// LUXI serves /2/info (QueryClusterInfo), the tags (/2/tags,
	// /2/nodes/NAME/tags) and the queries (/2/query/RES, /2/query/RES/fields)
	// through jobqd's LUXI calls; nil: /2/info from Cluster, the others not
	// served (404).
	LUXI LUXI
	// UsersFile is the users file (DATA_DIR/rapi/users). Empty or missing:
	// nobody can authenticate.
	UsersFile string
	// Cluster is called for every GET /2/info.
	Cluster func() ClusterInfo
	// SoftwareVersion is /2/info's software_version; empty: the module
	// version from the build information.
	SoftwareVersion string
	// WaitTimeout bounds one GET /2/jobs/N/wait; 0 means DefaultWaitTimeout.
	WaitTimeout time.Duration
	// ReadHeaderTimeout bounds the TLS handshake and the reading of a
	// request's headers; 0 means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds the reading of a request's body and the writing
	// of the answer of the built-in resources; 0 means DefaultBodyTimeout.
	// (Handle and HandlePrefix resources, which may stream, set their own.)
	BodyTimeout time.Duration
	// MaxBufferedBodies caps the bytes of request bodies being received
	// and served at once over all connections (each counted at its
	// declared length, or MaxBodySize when it has none), so that many
	// clients sending large bodies cannot exhaust memory; 0 means
	// DefaultMaxBufferedBodies. A request over it gets 503.
	MaxBufferedBodies int64
	// testReserved, when set, is called with the bytes reserved after
	// every change (tests wait on it).
	testReserved func(total int64)
	// RequireAuth makes every request authenticate, reads included
	// (Ganeti's ganeti-rapi --require-authentication).
	RequireAuth bool
	// Guard slows password guessing (shared with the dashboard); nil: a
	// Guard of the server's own (see Server.Guard).
	Guard  *Guard
	Logger *slog.Logger
	// Observer, when set, is told about every answered request.
	Observer Observer
	// MaxConns caps the connections open at once on each listener; a
	// connection over it is closed at once. 0 means a quarter of the
	// process's descriptor limit (at least 16), negative no cap.
	MaxConns int
}

// Observer is told about every request once it is answered. It is the
// seam for metrics: implementations must be safe for concurrent use and
// quick.
type Observer interface {
	ObserveRequest(RequestInfo)
}

// RequestInfo describes one answered request.
type RequestInfo struct {
	Method string
	// Route is the resource pattern, e.g. "/2/jobs/[job_id]/wait"; empty
	// when nothing matched (404).
	Route string
	// User is the authenticated user, empty if none.
	User     string
	Status   int
	Duration time.Duration
}

// Server answers RAPI requests. Create it with New; it is an http.Handler,
// and Serve runs it on a listener over TLS.
type Server struct {
	cfg   Config
	log   *slog.Logger
	users *userDB

	extraMu sync.RWMutex
	extra   map[string]extraRoute
	prefix  []prefixRoute

	bodyMu  sync.Mutex
	bodyUse int64

	baseCtx    context.Context
	cancelBase context.CancelFunc
	mu         sync.Mutex
	servers    []*http.Server
	closed     bool
}

type extraRoute struct {
	access []string
	h      http.Handler
}

type prefixRoute struct {
	prefix string
	h      http.Handler
}

// New returns a Server. It reads the users file once now (logging what it
// finds) and again whenever the file changes.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = DefaultWaitTimeout
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.SoftwareVersion == "" {
		cfg.SoftwareVersion = buildVersion()
	}
	if cfg.Cluster == nil {
		cfg.Cluster = func() ClusterInfo { return ClusterInfo{} }
	}
	if cfg.Guard == nil {
		cfg.Guard = NewGuard(nil)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, extra: map[string]extraRoute{}}
	s.users = newUserDB(cfg.UsersFile, cfg.Logger)
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	return s
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Handle adds a resource at path (exact match, any method) served by h
// after authentication: with access empty it is public like Ganeti's GET
// resources, otherwise the user needs one of the access rights (e.g.
// AccessRead, AccessWrite). It is how further resources such as /metrics
// attach; the built-in resources cannot be replaced.
func (s *Server) Handle(path string, access []string, h http.Handler) {
	s.extraMu.Lock()
	defer s.extraMu.Unlock()
	s.extra[path] = extraRoute{access: access, h: h}
}

// HandlePrefix serves the paths prefix and prefix+"/..." (prefix without a
// final slash, e.g. "/ui") with h, unless a built-in resource or a Handle
// path matches first. RAPI does not authenticate these requests: h does it
// itself, with LookupUser and CheckPassword. It is how the web dashboard
// (package web) attaches.
func (s *Server) HandlePrefix(prefix string, h http.Handler) {
	s.extraMu.Lock()
	defer s.extraMu.Unlock()
	s.prefix = append(s.prefix, prefixRoute{prefix: strings.TrimSuffix(prefix, "/"), h: h})
}

// Guard is the server's password guessing guard, for the dashboard to
// share.
func (s *Server) Guard() *Guard { return s.cfg.Guard }

// LookupUser returns a copy of the user called name as the users file says
// now (it is re-read when it changed), or nil.
func (s *Server) LookupUser(name string) *User {
	u := s.users.lookup(name)
	if u == nil {
		return nil
	}
	c := *u
	c.Options = append([]string(nil), u.Options...)
	return &c
}

// Serve accepts HTTPS connections on l with tlsConfig (which must hold the
// server certificate) until Shutdown. HTTP/1.1 connections are kept alive;
// HTTP/2 is offered too. It returns http.ErrServerClosed after Shutdown.
func (s *Server) Serve(l net.Listener, tlsConfig *tls.Config) error {
	tc := tlsConfig.Clone()
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	if tc.CipherSuites == nil {
		tc.CipherSuites = CipherSuites
	}
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         tc,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, // and the TLS handshake
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
		// TLS handshake failures from port scanners and the like.
		ErrorLog: log.New(&debugWriter{s.log}, "", 0),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return http.ErrServerClosed
	}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	maxConns := func() int { return s.cfg.MaxConns }
	if s.cfg.MaxConns == 0 {
		maxConns = conncap.DefaultMax
	}
	return srv.ServeTLS(&conncap.Listener{Listener: l, Max: maxConns, Log: s.log, Name: "RAPI"}, "", "")
}

type debugWriter struct{ log *slog.Logger }

func (w *debugWriter) Write(p []byte) (int, error) {
	w.log.Debug("RAPI: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// Shutdown stops accepting connections, ends requests that wait on a job
// (they answer 503), and waits for the others to finish until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	s.cancelBase()
	var first error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// request is one request being answered.
type request struct {
	r    *http.Request
	id   int64
	uuid string          // the filter uuid of /2/filters/UUID, the node of /2/nodes/NAME/tags, the resource of /2/query/RES
	body json.RawMessage // the JSON body, checked (readBody); nil if none
	user string
}

// endpoint is a resource's handler for one method.
type endpoint struct {
	access  []string // rights needed; empty: none (reads)
	maxBody int64    // largest body; 0: the resource takes none
	fn      func(*request) (any, error)
}

var writeAccess = []string{AccessWrite}

// audited is fn with the audit line of an administrative call.
func (s *Server) audited(action string, fn func(*request) (any, error)) func(*request) (any, error) {
	return func(req *request) (any, error) {
		res, err := fn(req)
		result := "ok"
		if err != nil {
			result = "failed: " + err.Error()
		}
		author.Audit(s.log, author.RAPIUser(req.user), action, req.r.URL.Path, result)
		return res, err
	}
}

// route finds the resource for a path: its pattern name, the job id in
// it, and its endpoints by method.
func (s *Server) route(path string) (name string, id int64, eps map[string]endpoint, ok bool) {
	switch path {
	case "/", "/2":
		return path, 0, map[string]endpoint{"GET": {fn: func(*request) (any, error) { return nil, nil }}}, true
	case "/version":
		return path, 0, map[string]endpoint{"GET": {fn: func(*request) (any, error) { return Version, nil }}}, true
	case "/2/info":
		if s.cfg.LUXI != nil {
			return path, 0, map[string]endpoint{"GET": {fn: s.getClusterInfo}}, true
		}
		return path, 0, map[string]endpoint{"GET": {fn: s.getInfo}}, true
	case "/2/features":
		return path, 0, map[string]endpoint{"GET": {fn: func(*request) (any, error) { return Features, nil }}}, true
	case "/2/schedules":
		return path, 0, map[string]endpoint{"GET": {fn: s.getSchedules}}, true
	case "/2/jobs":
		return path, 0, map[string]endpoint{
			"GET":  {fn: s.getJobs},
			"POST": {access: writeAccess, maxBody: MaxBodySize, fn: s.postJobs},
		}, true
	}
	rest, found := strings.CutPrefix(path, "/2/jobs/")
	if !found {
		return "", 0, nil, false
	}
	idStr, wait := strings.CutSuffix(rest, "/wait")
	if idStr == "" || strings.Trim(idStr, "0123456789") != "" {
		return "", 0, nil, false
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil {
		return "", 0, nil, false
	}
	if wait {
		// Waiting blocks server resources and shows job details: Ganeti
		// restricts it to write users.
		return "/2/jobs/[job_id]/wait", id, map[string]endpoint{
			"GET": {access: writeAccess, maxBody: SmallBodySize, fn: s.waitJob},
		}, true
	}
	return "/2/jobs/[job_id]", id, map[string]endpoint{
		"GET":    {fn: s.getJob},
		"DELETE": {access: writeAccess, fn: s.cancelJob},
	}, true
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := RequestInfo{Method: r.Method}
	w.Header().Set("Server", "jobq")
	status := s.serve(w, r, &info)
	info.Status = status
	info.Duration = time.Since(start)
	s.log.Debug("RAPI request", "method", r.Method, "uri", r.URL.RequestURI(), "user", info.User,
		"status", status, "remote", r.RemoteAddr)
	if s.cfg.Observer != nil {
		s.cfg.Observer.ObserveRequest(info)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, info *RequestInfo) int {
	path := r.URL.Path
	name, id, eps, ok := s.route(path)
	var uuid string
	if !ok {
		name, uuid, eps, ok = s.filterRoute(path)
	}
	if !ok {
		name, uuid, eps, ok = s.clusterRoute(path)
	}
	var ep endpoint
	var extra *extraRoute
	if ok {
		info.Route = name
		if ep, ok = eps[r.Method]; !ok {
			return s.writeError(w, errorf(http.StatusNotImplemented, "Method %s is unsupported for path %s", r.Method, r.URL.RequestURI()))
		}
	} else {
		s.extraMu.RLock()
		e, found := s.extra[path]
		var pre *prefixRoute
		for i := range s.prefix {
			if p := s.prefix[i].prefix; path == p || strings.HasPrefix(path, p+"/") {
				pre = &s.prefix[i]
				break
			}
		}
		s.extraMu.RUnlock()
		if !found && pre != nil {
			// The handler authenticates on its own (its login form is
			// read before it knows the user): a small body at most.
			info.Route = pre.prefix + "/"
			if herr := limitBody(w, r, SmallBodySize); herr != nil {
				return s.writeError(w, herr)
			}
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			pre.h.ServeHTTP(sw, r)
			return sw.status
		}
		if !found {
			return s.writeError(w, errCode(http.StatusNotFound))
		}
		info.Route = path
		extra = &e
		ep.access = e.access
	}
	user, herr := s.authenticate(r, ep.access)
	info.User = user
	if herr != nil {
		return s.writeError(w, herr)
	}
	if extra != nil {
		if herr := limitBody(w, r, SmallBodySize); herr != nil {
			return s.writeError(w, herr)
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		extra.h.ServeHTTP(sw, r)
		return sw.status
	}
	req := &request{r: r, id: id, user: user, uuid: uuid}
	if herr := limitBody(w, r, ep.maxBody); herr != nil {
		return s.writeError(w, herr)
	}
	size := bodyReservation(r)
	if !s.reserveBody(size) {
		w.Header().Set("Retry-After", "1")
		return s.writeError(w, errorf(http.StatusServiceUnavailable, "The server is receiving too many large request bodies at once; try again later"))
	}
	defer s.reserveBody(-size)
	if herr := s.readBody(w, req, ep.maxBody); herr != nil {
		return s.writeError(w, herr)
	}
	res, err := ep.fn(req)
	if err != nil {
		return s.writeError(w, s.asHTTPError(err))
	}
	b, err := pyJSON(res)
	if err != nil {
		s.log.Error("RAPI: cannot encode an answer", "uri", r.URL.RequestURI(), "err", err)
		return s.writeError(w, errorf(http.StatusInternalServerError, "Cannot encode the answer: %v", err))
	}
	s.writeBody(w, http.StatusOK, b)
	return http.StatusOK
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeBody writes an answer within Config.BodyTimeout.
func (s *Server) writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	rc := http.NewResponseController(w)
	if rc.SetWriteDeadline(time.Now().Add(s.cfg.BodyTimeout)) == nil {
		defer func() {
			// Written under the deadline, then none for what the
			// connection serves next.
			_ = rc.Flush()
			_ = rc.SetWriteDeadline(time.Time{})
		}()
	}
	w.WriteHeader(status)
	w.Write(b)
}

func (s *Server) writeError(w http.ResponseWriter, e *httpError) int {
	if e.code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	s.writeBody(w, e.code, e.body())
	return e.code
}

// asHTTPError maps a handler's error to an HTTP status.
func (s *Server) asHTTPError(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if s.baseCtx.Err() != nil {
			return errorf(http.StatusServiceUnavailable, "jobqd is shutting down")
		}
		// The client went away; nobody reads this.
		return errorf(http.StatusServiceUnavailable, "The request was cancelled")
	}
	var qe *queue.Error
	if errors.As(err, &qe) {
		msg := qe.Class
		if len(qe.Args) > 0 {
			msg = fmt.Sprint(qe.Args[0])
		}
		switch qe.Class {
		case "OpPrereqError":
			return errorf(http.StatusBadRequest, "%s", msg)
		case "GenericError":
			if strings.Contains(msg, "shutting down") {
				return errorf(http.StatusServiceUnavailable, "%s", msg)
			}
		}
		return errorf(http.StatusInternalServerError, "%s", msg)
	}
	s.log.Error("RAPI request failed", "err", err)
	return errorf(http.StatusInternalServerError, "%s", err.Error())
}

// authenticate checks the request's credentials as Ganeti does: needed
// when the resource needs access rights or RequireAuth is set, and checked
// whenever they are sent. It returns the user name ("" for an anonymous
// read).
func (s *Server) authenticate(r *http.Request, access []string) (string, *httpError) {
	hdr := r.Header.Get("Authorization")
	if hdr == "" && len(access) == 0 && !s.cfg.RequireAuth {
		return "", nil
	}
	unauthorized := errCode(http.StatusUnauthorized)
	parts := pySplit(hdr, 2)
	if len(parts) == 0 || !strings.EqualFold(parts[0], "basic") {
		return "", unauthorized
	}
	if len(parts) < 2 {
		return "", errorf(http.StatusBadRequest, "Basic authentication requires credentials")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil {
		return "", unauthorized
	}
	name, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", unauthorized
	}
	if wait := s.cfg.Guard.Wait(r.RemoteAddr, name); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		s.log.Warn("RAPI: authentication refused while failed attempts back off", "user", name, "remote", r.RemoteAddr, "retry_after_s", secs)
		return "", &httpError{code: http.StatusTooManyRequests, retryAfter: secs, msg: fmt.Sprintf(
			"Too many failed authentications from this address or for this user; try again in %d seconds", secs)}
	}
	u := s.users.lookup(name)
	if u == nil || !CheckPassword(name, password, u.Password) {
		s.cfg.Guard.Failed(r.RemoteAddr, name, u != nil)
		s.log.Warn("RAPI: authentication failed", "user", name, "remote", r.RemoteAddr, "known_user", u != nil)
		return "", unauthorized
	}
	s.cfg.Guard.Succeeded(r.RemoteAddr, name)
	if len(access) == 0 {
		return name, nil
	}
	for _, a := range access {
		if u.Has(a) {
			return name, nil
		}
	}
	return name, errCode(http.StatusForbidden)
}

// DefaultMaxBufferedBodies is the default of Config.MaxBufferedBodies.
const DefaultMaxBufferedBodies = 256 << 20

// bodyReservation is what a request's body is counted as: its declared
// length, MaxBodySize when it has none (chunked), 0 without a body.
func bodyReservation(r *http.Request) int64 {
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
		return 0
	case r.ContentLength > MaxBodySize:
		return 0 // refused with 413 before it is read
	case r.ContentLength > 0:
		return r.ContentLength
	}
	return MaxBodySize
}

// reserveBody adds n (negative: gives back) to the bytes of bodies in
// progress, refusing an addition over the cap. Bodies of up to 64 KiB are
// not counted.
func (s *Server) reserveBody(n int64) bool {
	if n > -(64<<10) && n < 64<<10 {
		return true
	}
	limit := s.cfg.MaxBufferedBodies
	if limit <= 0 {
		limit = DefaultMaxBufferedBodies
	}
	s.bodyMu.Lock()
	if n > 0 && s.bodyUse+n > limit {
		s.bodyMu.Unlock()
		return false
	}
	s.bodyUse += n
	total := s.bodyUse
	s.bodyMu.Unlock()
	if s.cfg.testReserved != nil {
		s.cfg.testReserved(total)
	}
	return true
}

// aLongTimeAgo is a deadline in the past, to end reading at once.
var aLongTimeAgo = time.Unix(1, 0)

// hasBody reports whether a request comes with a body (declared or
// chunked).
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

// limitBody refuses, without reading it, a body that a resource does not
// take (limit 0) or whose declared length is over limit (413, and the
// connection closes rather than reading the rest), and caps what will be
// read of the others at limit.
func limitBody(w http.ResponseWriter, r *http.Request, limit int64) *httpError {
	if !hasBody(r) {
		return nil
	}
	if limit == 0 || r.ContentLength > limit {
		// After the answer net/http would read up to 256 KiB of what
		// is left, waiting for a slow client: the connection closes
		// instead, and nothing more is read.
		w.Header().Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(aLongTimeAgo)
		if limit == 0 {
			return errorf(http.StatusRequestEntityTooLarge, "%s %s takes no request body; send none", r.Method, r.URL.Path)
		}
		return errorf(http.StatusRequestEntityTooLarge, "Request body larger than %d bytes", limit)
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return nil
}

// readBody reads and decodes a JSON body, as Ganeti does: a body needs
// Content-Type application/json (415 otherwise) and must parse (400), and
// its text must be valid UTF-8, each member once per object, nested at
// most maxBodyDepth levels (400: Go's decoder would silently change such
// text, which would then not read back as sent). It must arrive within
// Config.BodyTimeout (408) and be at most limit bytes (413, refused before
// reading when its declared length says so).
func (s *Server) readBody(w http.ResponseWriter, req *request, limit int64) *httpError {
	r := req.r
	if r.ContentLength > limit {
		return errorf(http.StatusRequestEntityTooLarge, "Request body larger than %d bytes", limit)
	}
	if !hasBody(r) {
		return nil
	}
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) == nil
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			w.Header().Set("Connection", "close")
			return errorf(http.StatusRequestEntityTooLarge, "Request body larger than %d bytes", limit)
		}
		// The deadline stays: the rest of the body is not waited for,
		// and the connection closes after the answer.
		w.Header().Set("Connection", "close")
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errorf(http.StatusRequestTimeout, "The request body did not arrive within %s", s.cfg.BodyTimeout)
		}
		return errorf(http.StatusBadRequest, "Cannot read the request body: %v", err)
	}
	if deadline {
		// No deadline while the request is served (net/http's read
		// that notices a client leaving would end the request).
		_ = rc.SetReadDeadline(time.Time{})
	}
	if len(b) == 0 {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return errCode(http.StatusUnsupportedMediaType)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v json.RawMessage
	if err := d.Decode(&v); err != nil {
		return errorf(http.StatusBadRequest, "Unable to parse JSON data: %v", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "Unable to parse JSON data: more than one JSON value in the body")
	}
	if err := checkJSON(v); err != nil {
		return errorf(http.StatusBadRequest, "Unable to parse JSON data: %v", err)
	}
	req.body = v
	return nil
}

// checkJSON checks what Go's decoder lets through but the queue's job
// files (and Ganeti's readers) do not: text that is not valid UTF-8, a
// member twice in one object, nesting deeper than maxBodyDepth.
func checkJSON(b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	for {
		kind := dec.PeekKind()
		if (kind == '{' || kind == '[') && dec.StackDepth() >= maxBodyDepth {
			return fmt.Errorf("arrays and objects nested more than %d levels deep", maxBodyDepth)
		}
		_, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var se *jsontext.SyntacticError
			if errors.As(err, &se) && strings.Contains(se.Err.Error(), "UTF-8") {
				return fmt.Errorf("text that is not valid UTF-8 (in %s, at byte %d); send text as UTF-8", se.JSONPointer, se.ByteOffset)
			}
			if errors.As(err, &se) && errors.Is(err, jsontext.ErrDuplicateName) {
				return fmt.Errorf("the member %s twice in one object", se.JSONPointer)
			}
			return err
		}
	}
}

// pyType is the Python type name of a JSON value, for Ganeti's "Type is
// 'list', but 'dict' is expected" messages.
func pyType(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "NoneType"
	}
	switch v[0] {
	case 'n':
		return "NoneType"
	case 't', 'f':
		return "bool"
	case '"':
		return "str"
	case '[':
		return "list"
	case '{':
		return "dict"
	}
	if bytes.ContainsAny(v, ".eE") {
		return "float"
	}
	return "int"
}

// bodyObject returns the body's members (400 if it is not an object); a
// missing body is an empty object. Members are decoded by their users
// into the types they need.
func (req *request) bodyObject() (map[string]json.RawMessage, error) {
	if len(req.body) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	if pyType(req.body) != "dict" {
		return nil, errorf(http.StatusBadRequest, "Body contents: Type is '%s', but 'dict' is expected", pyType(req.body))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(req.body, &m); err != nil {
		return nil, errorf(http.StatusBadRequest, "Unable to parse JSON data: %v", err)
	}
	return m, nil
}

// intParam parses an integer query parameter as Ganeti's
// _checkIntVariable: the first non-empty value, default 0.
func intParam(r *http.Request, name string) (int, error) {
	for _, v := range r.URL.Query()[name] {
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, errorf(http.StatusBadRequest, "Invalid value for the '%s' parameter", name)
		}
		return n, nil
	}
	return 0, nil
}

func (s *Server) getInfo(*request) (any, error) {
	c := s.cfg.Cluster()
	return new(object).
		Add("software_version", s.cfg.SoftwareVersion).
		Add("protocol_version", protocolVersion).
		Add("architecture", architecture()).
		Add("name", c.Name).
		Add("master", c.Master).
		Add("max_running_jobs", c.MaxRunningJobs), nil
}

// architecture is Python's [platform.architecture()[0], platform.machine()],
// e.g. ["64bit", "x86_64"].
func architecture() []string {
	machine := ""
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		machine = unix.ByteSliceToString(u.Machine[:])
	}
	return []string{strconv.Itoa(strconv.IntSize) + "bit", machine}
}

// rows decodes QueryJobs rows; a missing job's row is nil.
func decodeRows(raw []json.RawMessage, nfields int) ([][]json.RawMessage, error) {
	out := make([][]json.RawMessage, len(raw))
	for i, r := range raw {
		if bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
			continue
		}
		if err := json.Unmarshal(r, &out[i]); err != nil || len(out[i]) != nfields {
			return nil, fmt.Errorf("the queue answered a row that is not %d values: %.200s", nfields, r)
		}
	}
	return out, nil
}

func jobObject(fields []string, row []json.RawMessage) *object {
	o := new(object)
	for i, v := range row {
		if i >= len(fields)-len(jobTimingFields) && slices.Contains(jobTimingFields, fields[i]) && unset(v) {
			continue
		}
		o.Add(fields[i], v)
	}
	return o
}

// unset reports whether a value is null or a list of nulls only.
func unset(v json.RawMessage) bool {
	var x any
	if json.Unmarshal(v, &x) != nil || x == nil {
		return true
	}
	l, ok := x.([]any)
	if !ok {
		return false
	}
	for _, e := range l {
		if e != nil {
			return false
		}
	}
	return true
}

func (s *Server) getJobs(req *request) (any, error) {
	bulk, err := intParam(req.r, "bulk")
	if err != nil {
		return nil, err
	}
	fields := []string{"id"}
	if bulk != 0 {
		fields = append(append([]string{}, jobFieldsBulk...), jobTimingFields...)
	}
	raw, err := s.cfg.Queue.QueryJobs(nil, fields)
	if err != nil {
		return nil, err
	}
	rows, err := decodeRows(raw, len(fields))
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(rows))
	for _, row := range rows {
		if row == nil {
			continue
		}
		if bulk != 0 {
			out = append(out, jobObject(fields, row))
			continue
		}
		id := string(row[0])
		out = append(out, new(object).Add("id", row[0]).Add("uri", "/2/jobs/"+id))
	}
	return out, nil
}

func (s *Server) getJob(req *request) (any, error) {
	fields := append(append([]string{}, jobFields...), jobTimingFields...)
	raw, err := s.cfg.Queue.QueryJobs([]int64{req.id}, fields)
	if err != nil {
		return nil, err
	}
	rows, err := decodeRows(raw, len(fields))
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || rows[0] == nil {
		return nil, jobNotFound(req.id)
	}
	return jobObject(fields, rows[0]), nil
}

func jobNotFound(id int64) error {
	return errorf(http.StatusNotFound, "Job %d not found", id)
}

// exists reports whether a job is known, live or archived.
func (s *Server) exists(id int64) (bool, error) {
	raw, err := s.cfg.Queue.QueryJobs([]int64{id}, []string{"id"})
	if err != nil {
		return false, err
	}
	return len(raw) == 1 && !bytes.Equal(bytes.TrimSpace(raw[0]), []byte("null")), nil
}

func (s *Server) cancelJob(req *request) (any, error) {
	ok, msg, err := s.cfg.Queue.CancelJobBy(req.id, false, author.RAPIUser(req.user))
	result := "ok"
	switch {
	case err != nil:
		result = "failed: " + err.Error()
	case !ok:
		result = "not done: " + msg
	}
	author.Audit(s.log, author.RAPIUser(req.user), "CancelJob", fmt.Sprintf("job=%d", req.id), result)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Ganeti answers [false, "Job N not found in queue"] for a job
		// that does not exist; jobq says 404 (an archived job keeps
		// Ganeti's answer).
		found, err := s.exists(req.id)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, jobNotFound(req.id)
		}
	}
	return []any{ok, msg}, nil
}

func (s *Server) waitJob(req *request) (any, error) {
	body, err := req.bodyObject()
	if err != nil {
		return nil, err
	}
	fv, ok := body["fields"]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "Required parameter 'fields' is missing")
	}
	if pyType(fv) != "list" {
		return nil, errorf(http.StatusBadRequest, "The 'fields' parameter should be a list")
	}
	var fields []string
	if err := json.Unmarshal(fv, &fields); err != nil {
		return nil, errorf(http.StatusBadRequest, "The 'fields' parameter should be a list of field names")
	}
	var prev json.RawMessage
	switch p := body["previous_job_info"]; pyType(p) {
	case "NoneType":
	case "list":
		prev = p
	default:
		return nil, errorf(http.StatusBadRequest, "The 'previous_job_info' parameter should be a list")
	}
	serial := int64(-1)
	switch p := body["previous_log_serial"]; pyType(p) {
	case "NoneType":
	case "int":
		n, err := strconv.ParseInt(string(bytes.TrimSpace(p)), 10, 64)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "The 'previous_log_serial' parameter should be a number")
		}
		serial = n
	default:
		return nil, errorf(http.StatusBadRequest, "The 'previous_log_serial' parameter should be a number")
	}
	res, err := s.cfg.Queue.WaitForJobChange(req.r.Context(), req.id, fields, prev, serial, s.cfg.WaitTimeout)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, jobNotFound(req.id)
	}
	if prev != nil && len(res.Logs) == 0 && sameJSON(prev, res.Values) {
		// Nothing changed. A final job never changes again, so it is
		// answered as it is (as Ganeti does); otherwise the wait window
		// ended: null.
		raw, err := s.cfg.Queue.QueryJobs([]int64{req.id}, []string{"end_ts"})
		if err != nil {
			return nil, err
		}
		if len(raw) != 1 || bytes.Equal(bytes.TrimSpace(raw[0]), []byte("null")) {
			return nil, jobNotFound(req.id)
		}
		if bytes.Equal(bytes.TrimSpace(raw[0]), []byte("[null]")) {
			return nil, nil
		}
	}
	logs := any(res.Logs)
	if res.Logs == nil {
		logs = []any{}
	}
	return new(object).Add("job_info", res.Values).Add("log_entries", logs), nil
}

// sameJSON compares two JSON values as the queue does (numbers as floats).
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// reasonSource is the reason trail source of submissions through the RAPI
// (Ganeti's "gnt:library:rlib2:" + the resource's name).
const reasonSource = "gnt:library:rlib2:jobs"

func (s *Server) postJobs(req *request) (any, error) {
	body, err := req.bodyObject()
	if err != nil {
		return nil, err
	}
	for k := range body {
		if k != "ops" && k != idem.Option && !slices.Contains(job.TimingMembers, k) {
			return nil, errorf(http.StatusBadRequest, "Unknown parameter '%s'; the body is {\"ops\": [opcode, ...]} with optional %s, %s", k, strings.Join(job.TimingMembers, ", "), idem.Option)
		}
	}
	// An idempotency key: the digest is of the body as sent (the opcodes
	// get reason entries with the time below) and the ?reason= asked.
	var key, digest string
	if raw, ok := body[idem.Option]; ok {
		if err := json.Unmarshal(raw, &key); err != nil {
			return nil, errorf(http.StatusBadRequest, "'%s' parameter: must be a string", idem.Option)
		}
		if err := idem.CheckKey(key); err != nil {
			return nil, errorf(http.StatusBadRequest, "%s", err.Error())
		}
		rest := maps.Clone(body)
		delete(rest, idem.Option)
		delete(rest, "not_before") // a retry may ask for a later time
		restRaw, _ := json.Marshal(rest)
		reasons, _ := json.Marshal(req.r.URL.Query()["reason"])
		if digest, err = idem.Digest([][]json.RawMessage{{restRaw, reasons}}, nil); err != nil {
			return nil, errorf(http.StatusBadRequest, "%s", err.Error())
		}
	}
	timing, err := job.ParseTiming(body)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%s", err.Error())
	}
	ov, ok := body["ops"]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "Required parameter 'ops' is missing")
	}
	if pyType(ov) != "list" {
		return nil, errorf(http.StatusBadRequest, "'ops' parameter: Type is '%s', but 'list' is expected", pyType(ov))
	}
	var list []json.RawMessage
	if err := json.Unmarshal(ov, &list); err != nil {
		return nil, errorf(http.StatusBadRequest, "'ops' parameter: %v", err)
	}
	if len(list) == 0 {
		return nil, errorf(http.StatusBadRequest, "A job needs at least one opcode")
	}
	// The reason trail, as Ganeti's RAPI builds it: the user's ?reason=
	// first, then the RAPI resource. The queue appends gnt:opcode:*.
	now := time.Now().UnixNano()
	var trail []json.RawMessage
	for _, r := range req.r.URL.Query()["reason"] {
		if r != "" {
			e, _ := json.Marshal([]any{"gnt:user", r, now})
			trail = append(trail, e)
			break
		}
	}
	e, _ := json.Marshal([]any{reasonSource, "", now})
	trail = append(trail, e)
	ops := make([]json.RawMessage, len(list))
	for i, o := range list {
		if pyType(o) != "dict" {
			return nil, errorf(http.StatusBadRequest, "Opcode %d: Type is '%s', but 'dict' is expected", i, pyType(o))
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(o, &m); err != nil {
			return nil, errorf(http.StatusBadRequest, "Opcode %d: %v", i, err)
		}
		var id string
		if json.Unmarshal(m["OP_ID"], &id) != nil || id == "" {
			return nil, errorf(http.StatusBadRequest, "Opcode %d has no OP_ID", i)
		}
		var reason []json.RawMessage
		switch r := m["reason"]; pyType(r) {
		case "NoneType":
		case "list":
			if err := json.Unmarshal(r, &reason); err != nil {
				return nil, errorf(http.StatusBadRequest, "Opcode %d: the 'reason' parameter: %v", i, err)
			}
		default:
			return nil, errorf(http.StatusBadRequest, "Opcode %d: the 'reason' parameter should be a list", i)
		}
		if m["reason"], err = json.Marshal(append(reason, trail...)); err != nil {
			return nil, errorf(http.StatusBadRequest, "Opcode %d cannot be encoded: %v", i, err)
		}
		if ops[i], err = json.Marshal(m); err != nil {
			return nil, errorf(http.StatusBadRequest, "Opcode %d cannot be encoded: %v", i, err)
		}
	}
	u := s.users.lookup(req.user)
	admin := u != nil && u.Has(AccessAdmin)
	res, err := s.cfg.Queue.SubmitWith([][]json.RawMessage{ops}, queue.SubmitOptions{
		Timing: timing, Author: author.RAPIUser(req.user), Admin: admin,
		IdempotencyKey: key, IdempotencyDigest: digest})
	if id := adminOpcode(ops); id != "" {
		result := "ok"
		switch {
		case err != nil:
			result = "refused: " + err.Error()
		case len(res) == 1 && res[0].Err != nil:
			result = "refused: " + res[0].Err.Error()
		case len(res) == 1:
			result = fmt.Sprintf("job=%d", res[0].ID)
		}
		author.Audit(s.log, author.RAPIUser(req.user), "POST /2/jobs "+id, "", result)
	}
	if err != nil {
		var qe *queue.Error
		if errors.As(err, &qe) && len(qe.Args) == 1 && qe.Args[0] == "Queue drained" {
			return nil, errorf(http.StatusServiceUnavailable, "Job queue is drained, cannot submit")
		}
		var refused *queue.RefusedError
		if errors.As(err, &refused) {
			return nil, errorf(http.StatusBadRequest, "%s", err.Error())
		}
		return nil, err
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("the queue answered %d results for one job", len(res))
	}
	if err := res[0].Err; err != nil {
		var refused *queue.RefusedError
		if errors.As(err, &refused) {
			return nil, errorf(http.StatusBadRequest, "%s", err.Error())
		}
		return nil, errorf(http.StatusInternalServerError, "%s", err.Error())
	}
	return res[0].ID, nil
}

// adminOpcode is the first administrative OP_ID of ops, "" for none.
func adminOpcode(ops []json.RawMessage) string {
	for _, op := range ops {
		if id := job.OpID(op); author.AdminOpcode(id) {
			return id
		}
	}
	return ""
}
