package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/rapi"
)

// CookieName is the session cookie's name.
const CookieName = "jobq_session"

// maxFormBytes bounds a form body.
const maxFormBytes = 64 << 10

// ioTimeout bounds reading a form and writing a page or one batch of
// events: slow clients are cut off instead of holding a connection.
const ioTimeout = 30 * time.Second

// session is one logged-in browser.
type session struct {
	id   string
	user string
	// password is the user's password entry when the session began: a
	// changed entry ends the session.
	password string
	csrf     string
	created  time.Time
	seen     time.Time
	flash    string
}

// sessionInfo is what a request's handlers know of its session.
type sessionInfo struct {
	id, user, csrf string
	write          bool
	admin          bool // the users file gives rapi.AccessAdmin
}

type sessionStore struct {
	now       func() time.Time
	idle, max time.Duration
	limit     int
	mu        sync.Mutex
	m         map[string]*session
}

func newSessionStore(cfg Config) *sessionStore {
	return &sessionStore{now: cfg.Now, idle: cfg.SessionIdle, max: cfg.SessionMax,
		limit: cfg.MaxSessions, m: map[string]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (st *sessionStore) expiredLocked(s *session, now time.Time) bool {
	return now.Sub(s.seen) > st.idle || now.Sub(s.created) > st.max
}

// create starts a session for user.
func (st *sessionStore) create(u *rapi.User) *session {
	now := st.now()
	s := &session{id: randomToken(), user: u.Name, password: u.Password, csrf: randomToken(),
		created: now, seen: now}
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, o := range st.m {
		if st.expiredLocked(o, now) {
			delete(st.m, id)
		}
	}
	if len(st.m) >= st.limit {
		old := make([]*session, 0, len(st.m))
		for _, o := range st.m {
			old = append(old, o)
		}
		sort.Slice(old, func(i, j int) bool { return old[i].seen.Before(old[j].seen) })
		for _, o := range old[:len(st.m)-st.limit+1] {
			delete(st.m, o.id)
		}
	}
	st.m[s.id] = s
	return s
}

// get returns a copy of a live session and marks it used.
func (st *sessionStore) get(id string) (session, bool) {
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.m[id]
	if !ok {
		return session{}, false
	}
	if st.expiredLocked(s, now) {
		delete(st.m, id)
		return session{}, false
	}
	s.seen = now
	return *s, true
}

func (st *sessionStore) remove(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, id)
}

func (st *sessionStore) setFlash(id, msg string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.m[id]; ok {
		s.flash = msg
	}
}

func (st *sessionStore) takeFlash(id string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.m[id]
	if !ok {
		return ""
	}
	f := s.flash
	s.flash = ""
	return f
}

// current returns the request's session, or nil when there is none (no
// cookie, expired, or its user changed).
func (h *Handler) current(r *http.Request) *sessionInfo {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	s, ok := h.sessions.get(c.Value)
	if !ok {
		return nil
	}
	u := h.cfg.Users.LookupUser(s.user)
	if u == nil || u.Password != s.password {
		h.sessions.remove(s.id)
		return nil
	}
	return &sessionInfo{id: s.id, user: s.user, csrf: s.csrf, write: u.Has(rapi.AccessWrite), admin: u.Has(rapi.AccessAdmin)}
}

// authed wraps a handler that needs a logged-in user: pages send the
// browser to the login page, other requests (events, POSTs) get 401.
func (h *Handler) authed(fn func(http.ResponseWriter, *http.Request, *sessionInfo)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := h.current(r)
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/events") {
				http.Redirect(w, r, Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			h.errorPage(w, r, nil, http.StatusUnauthorized, "Not logged in", "Log in first.")
			return
		}
		fn(w, r, s)
	}
}

// writer wraps an action: the user needs the write option (403), and a
// POST needs the session's CSRF token and no foreign origin (403).
func (h *Handler) writer(fn func(http.ResponseWriter, *http.Request, *sessionInfo)) func(http.ResponseWriter, *http.Request, *sessionInfo) {
	return func(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
		if !s.write {
			h.errorPage(w, r, s, http.StatusForbidden, "Not allowed",
				"User "+s.user+" may only look: acting on jobs and the queue needs the write option in the RAPI users file.")
			return
		}
		if r.Method == http.MethodPost && !h.checkPost(w, r, s) {
			return
		}
		fn(w, r, s)
	}
}

// checkPost parses a POST's form and checks its origin and CSRF token,
// answering 403 when they are wrong.
func (h *Handler) checkPost(w http.ResponseWriter, r *http.Request, s *sessionInfo) bool {
	if !sameOrigin(r) {
		h.errorPage(w, r, s, http.StatusForbidden, "Refused", "The request came from another site.")
		return false
	}
	if err := readForm(w, r); err != nil {
		h.errorPage(w, r, s, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return false
	}
	tok := r.PostForm.Get("csrf")
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
		h.errorPage(w, r, s, http.StatusForbidden, "Refused",
			"The form's security token is missing or out of date. Go back, reload the page and try again.")
		return false
	}
	return true
}

// readForm reads a POST's form: at most maxFormBytes, within ioTimeout (a
// client that sends it more slowly is cut off).
func readForm(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(ioTimeout)) == nil
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		// The rest of the body is not waited for.
		w.Header().Set("Connection", "close")
		return err
	}
	if deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	return nil
}

// sameOrigin refuses requests that a browser marks as coming from another
// site (Sec-Fetch-Site, Origin). Requests without those headers (not from
// a browser) pass: the CSRF token still guards them.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// safeNext is where to go after logging in: a path under Prefix, else the
// overview.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || strings.HasPrefix(next, "//") ||
		strings.Contains(next, "\\") || !(u.Path == Prefix || strings.HasPrefix(u.Path, Prefix+"/")) ||
		strings.HasSuffix(u.Path, "/events") {
		return Prefix + "/"
	}
	return next
}

type loginData struct {
	Next    string
	Name    string
	Error   string
	Message string
}

// loginPage shows the login form. With ?basic=1 it asks the browser for
// HTTP Basic credentials instead, and logs in with them.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if s := h.current(r); s != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	d := loginData{Next: next}
	if r.URL.Query().Get("out") != "" {
		d.Message = "You are logged out."
	}
	if r.URL.Query().Get("basic") != "" {
		name, pw, ok := r.BasicAuth()
		status := http.StatusUnauthorized
		d.Error = "Log in with a user of the RAPI users file."
		if ok {
			u, wait := h.check(r, name, pw)
			if u != nil {
				h.startSession(w, r, u, next)
				return
			}
			if wait > 0 {
				status, d.Error = http.StatusTooManyRequests, tooMany(w, wait)
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="jobq dashboard", charset="UTF-8"`)
		h.render(w, r, nil, status, "login", &page{Title: "Log in", Data: d})
		return
	}
	h.render(w, r, nil, http.StatusOK, "login", &page{Title: "Log in", Data: d})
}

func (h *Handler) loginPost(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		h.errorPage(w, r, nil, http.StatusForbidden, "Refused", "The request came from another site.")
		return
	}
	if err := readForm(w, r); err != nil {
		h.errorPage(w, r, nil, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	name, pw := r.PostForm.Get("user"), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	u, wait := h.check(r, name, pw)
	if wait > 0 {
		h.render(w, r, nil, http.StatusTooManyRequests, "login", &page{Title: "Log in",
			Data: loginData{Next: next, Name: name, Error: tooMany(w, wait)}})
		return
	}
	if u == nil {
		h.render(w, r, nil, http.StatusUnauthorized, "login", &page{Title: "Log in",
			Data: loginData{Next: next, Name: name, Error: "Wrong user name or password."}})
		return
	}
	h.startSession(w, r, u, next)
}

// tooMany sets Retry-After and says how long to wait.
func tooMany(w http.ResponseWriter, wait time.Duration) string {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return fmt.Sprintf("Too many failed logins from this address or for this user; try again in %d seconds.", secs)
}

// check verifies a user's password against the users file, unless
// failed attempts from the request's address or for the user back off
// (then it returns how long to wait, without checking). Failures are
// logged at WARN with the remote address.
func (h *Handler) check(r *http.Request, name, password string) (*rapi.User, time.Duration) {
	if name == "" {
		return nil, 0
	}
	if wait := h.cfg.Guard.Wait(r.RemoteAddr, name); wait > 0 {
		h.log.Warn("web: login refused while failed attempts back off", "user", name, "remote", r.RemoteAddr, "retry_after", wait.Round(time.Second))
		return nil, wait
	}
	u := h.cfg.Users.LookupUser(name)
	if u == nil || !rapi.CheckPassword(name, password, u.Password) {
		h.cfg.Guard.Failed(r.RemoteAddr, name, u != nil)
		h.log.Warn("web: failed login", "user", name, "remote", r.RemoteAddr, "known_user", u != nil)
		return nil, 0
	}
	h.cfg.Guard.Succeeded(r.RemoteAddr, name)
	return u, 0
}

func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, u *rapi.User, next string) {
	s := h.sessions.create(u)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: s.id, Path: Prefix, HttpOnly: true,
		Secure: true, SameSite: http.SameSiteStrictMode})
	h.log.Info("web: login", "user", u.Name, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	if !h.checkPost(w, r, s) {
		return
	}
	h.sessions.remove(s.id)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"/login?out=1", http.StatusSeeOther)
}
