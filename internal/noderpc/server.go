package noderpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/internal/conncap"
)

// The calls' paths.
const (
	pathState   = "/v1/state"
	pathFetch   = "/v1/fetch"
	pathJoin    = "/v1/join"
	pathCommand = "/v1/command"
	pathDelay   = "/v1/delay"
	pathCrypto  = "/v1/crypto"
	pathOutput  = "/v1/output"
)

const (
	maxSmallBody = 1 << 20  // the largest body of the calls other than fetch and join
	maxJoinBody  = 64 << 10 // join is served to anyone: keep it small

	readHeaderTimeout = 30 * time.Second // TLS handshake and request headers
	idleTimeout       = 2 * time.Minute  // above the client's idleConnTimeout
	smallBodyTimeout  = 30 * time.Second // to read a small request's body
	batchBodyTimeout  = 10 * time.Minute // to read a fetch body
)

// endpoint is how one call is served.
type endpoint struct {
	open    bool          // served without the cluster certificate (join)
	limit   int64         // largest request body
	timeout time.Duration // to read the request body
	serve   func(s *Server, r *http.Request, body []byte) (any, error)
}

var endpoints = map[string]endpoint{
	pathState:   route(maxSmallBody, smallBodyTimeout, nil, Handler.State),
	pathFetch:   route(MaxBatchBytes, batchBodyTimeout, checkFetch, Handler.Fetch),
	pathJoin:    withoutCert(route(maxJoinBody, smallBodyTimeout, nil, Handler.Join)),
	pathCommand: route(maxSmallBody, smallBodyTimeout, nil, Handler.Command),
	pathDelay: route(maxSmallBody, smallBodyTimeout, nil, func(h Handler, ctx context.Context, req *DelayRequest) (struct{}, error) {
		return struct{}{}, h.Delay(ctx, req)
	}),
	pathCrypto: route(maxSmallBody, smallBodyTimeout, checkCrypto, func(h Handler, ctx context.Context, req *CryptoRequest) (struct{}, error) {
		return struct{}{}, h.Crypto(ctx, req)
	}),
	pathOutput: route(maxSmallBody, smallBodyTimeout, nil, func(h Handler, ctx context.Context, req *OutputRequest) (*OutputReply, error) {
		oh, ok := h.(OutputHandler)
		if !ok {
			return nil, &Error{Code: CodeBadRequest, Message: "this node keeps no program output"}
		}
		return oh.Output(ctx, req)
	}),
}

func checkCrypto(req *CryptoRequest) error {
	switch req.Phase {
	case CryptoStage:
		if len(req.CertPEM) == 0 || len(req.KeyPEM) == 0 {
			return &Error{Code: CodeBadRequest, Message: "stage needs the certificate and the key"}
		}
	case CryptoSwitch, CryptoFinish, CryptoAbort:
	default:
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("unknown certificate renewal phase %q", req.Phase)}
	}
	if len(req.Fingerprint) != 64 {
		return &Error{Code: CodeBadRequest, Message: "the certificate's fingerprint must be 64 hex digits"}
	}
	return nil
}

// route makes the endpoint that decodes a Req, checks it with check (if
// any) and answers what fn returns.
func route[Req, Rep any](limit int64, timeout time.Duration, check func(*Req) error, fn func(Handler, context.Context, *Req) (Rep, error)) endpoint {
	return endpoint{limit: limit, timeout: timeout, serve: func(s *Server, r *http.Request, body []byte) (any, error) {
		var req Req
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("the request is not valid JSON: %v", err)}
		}
		if check != nil {
			if err := check(&req); err != nil {
				var ne *nameError
				if errors.As(err, &ne) {
					s.log.Warn("refused queue file name", "name", ne.name, "remote", r.RemoteAddr, "call", r.URL.Path)
				} else {
					s.log.Warn("refused a malformed node RPC request", "remote", r.RemoteAddr, "call", r.URL.Path, "err", err)
				}
				return nil, &Error{Code: CodeBadRequest, Message: err.Error()}
			}
		}
		return fn(s.h, r.Context(), &req)
	}}
}

// withoutCert serves e to callers without the cluster certificate.
func withoutCert(e endpoint) endpoint {
	e.open = true
	return e
}

func newServer(keys *Keyring, h Handler, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{h: h, log: logger, keys: keys}
	s.base, s.cancel = context.WithCancel(context.Background())
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	s.srv = &http.Server{
		Handler: http.HandlerFunc(s.serveHTTP),
		TLSConfig: &tls.Config{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return keys.Certificate(), nil
			},
			// Any certificate is asked for and its key checked by the
			// handshake; serveHTTP then accepts only the cluster's, except
			// for join.
			ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS13,
		},
		Protocols:         &protocols,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ErrorLog:          log.New(&errorLogWriter{logger}, "", 0),
	}
	return s
}

// errorLogWriter passes net/http's messages to the logger: handler panics
// as errors, the rest (TLS handshakes refused, port scanners) at debug.
type errorLogWriter struct{ log *slog.Logger }

func (w *errorLogWriter) Write(p []byte) (int, error) {
	msg := "node RPC: " + strings.TrimSpace(string(p))
	if strings.Contains(msg, "panic") {
		w.log.Error(msg)
	} else {
		w.log.Debug(msg)
	}
	return len(p), nil
}

func (s *Server) serve(l net.Listener) error {
	if len(s.keys.Leaf()) == 0 {
		l.Close()
		return errors.New("the node RPC server has no certificate")
	}
	return s.srv.ServeTLS(&conncap.Listener{Listener: l, Max: s.connCap, Log: s.log, Name: "node RPC"}, "", "")
}

func (s *Server) shutdown(ctx context.Context) error {
	s.cancel()
	s.streamMu.Lock()
	for _, l := range s.streams {
		l.Close()
	}
	s.streamMu.Unlock()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// peerProblem says why the request's connection is not from a node of the
// cluster, or "" when it is.
func (s *Server) peerProblem(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "client certificate required"
	}
	if !s.keys.Accepts(r.TLS.PeerCertificates[0].Raw) {
		return msgUnknownClientCert
	}
	return ""
}

// msgUnknownClientCert refuses a client certificate that is not a
// cluster certificate.
const msgUnknownClientCert = "unknown client certificate"

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	ep, known := endpoints[r.URL.Path]
	if !ep.open { // unknown paths too: strangers learn nothing
		if problem := s.peerProblem(r); problem != "" {
			s.refusals.warn(s.log, "refused a node RPC call (at most 10 such lines a minute)", "reason", problem, "remote", r.RemoteAddr, "call", r.URL.Path)
			// The connection is not reused: after a certificate renewal a
			// node's next call shakes hands again with the new one.
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusForbidden, &Error{Code: CodeRefused, Message: problem})
			return
		}
	}
	if strings.HasPrefix(r.URL.Path, pathStreamPrefix) {
		s.serveStream(w, r)
		return
	}
	if r.URL.Path == pathExec {
		s.serveExec(w, r)
		return
	}
	if !known {
		writeJSON(w, http.StatusNotFound, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("there is no node RPC call %q", r.URL.Path)})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("node RPC calls use POST, not %s", r.Method)})
		return
	}
	body, err := readBody(w, r, ep.limit, ep.timeout)
	if err != nil {
		status := http.StatusBadRequest
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			status = http.StatusRequestEntityTooLarge
			err = fmt.Errorf("the request is larger than the %d bytes %s accepts", tooLarge.Limit, r.URL.Path)
		} else {
			err = fmt.Errorf("cannot read the request: %w", err)
		}
		s.log.Debug("refused a node RPC request", "remote", r.RemoteAddr, "call", r.URL.Path, "err", err)
		writeJSON(w, status, &Error{Code: CodeBadRequest, Message: err.Error()})
		return
	}
	rep, err := ep.serve(s, r, body)
	if err != nil {
		s.answerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// readBody reads the request body, at most limit bytes within timeout.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) ([]byte, error) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(timeout))
	// No deadline while the handler runs: a read timing out then would
	// cancel the call's context.
	defer rc.SetReadDeadline(time.Time{})
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return buf.Bytes(), err
}

// answerError answers a handler's error: an *Error as it is (with the
// whole error text as message), any other error as CodeInternal.
func (s *Server) answerError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if errors.As(err, &e) && e != nil {
		a := *e
		a.Message = err.Error()
		if a.Code == "" {
			a.Code = CodeInternal
		}
		e = &a
	} else {
		e = &Error{Code: CodeInternal, Message: err.Error()}
	}
	if e.Code == CodeInternal && r.Context().Err() == nil {
		s.log.Warn("node RPC call failed", "remote", r.RemoteAddr, "call", r.URL.Path, "err", e.Message)
	} else {
		s.log.Debug("node RPC call refused", "remote", r.RemoteAddr, "call", r.URL.Path, "code", e.Code, "err", e.Message)
	}
	writeJSON(w, statusOf(e.Code), e)
}

// statusOf is the HTTP status answered with an error code.
func statusOf(code string) int {
	switch code {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeRefused:
		return http.StatusForbidden
	case CodeStaleEpoch:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data, _ = json.Marshal(&Error{Code: CodeInternal, Message: fmt.Sprintf("cannot encode the reply: %v", err)})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(status)
	w.Write(data)
}

// drain discards what is left of a body so that its connection can be
// reused, up to a limit.
func drain(r io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(r, 64<<10))
	r.Close()
}
