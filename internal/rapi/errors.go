package rapi

import (
	"fmt"
	"net/http"
	"strings"
)

// statusText is Python 3.11's BaseHTTPRequestHandler.responses, which
// Ganeti's RAPI uses for its error bodies: the short message (used when an
// error has no message of its own) and the explanation.
var statusText = map[int][2]string{
	http.StatusBadRequest:            {"Bad Request", "Bad request syntax or unsupported method"},
	http.StatusUnauthorized:          {"Unauthorized", "No permission -- see authorization schemes"},
	http.StatusForbidden:             {"Forbidden", "Request forbidden -- authorization will not help"},
	http.StatusNotFound:              {"Not Found", "Nothing matches the given URI"},
	http.StatusMethodNotAllowed:      {"Method Not Allowed", "Specified method is invalid for this resource"},
	http.StatusRequestTimeout:        {"Request Timeout", "Request timed out; try again later"},
	http.StatusRequestEntityTooLarge: {"Request Entity Too Large", "Entity is too large"},
	http.StatusUnsupportedMediaType:  {"Unsupported Media Type", "Entity body in unsupported format"},
	http.StatusTooManyRequests:       {"Too Many Requests", "The user has sent too many requests in a given amount of time"},
	http.StatusInternalServerError:   {"Internal Server Error", "Server got itself in trouble"},
	http.StatusNotImplemented:        {"Not Implemented", "Server does not support this operation"},
	http.StatusBadGateway:            {"Bad Gateway", "Invalid responses from another server/proxy"},
	http.StatusServiceUnavailable:    {"Service Unavailable", "The server cannot process the request due to a high load"},
	http.StatusGatewayTimeout:        {"Gateway Timeout", "The gateway server did not receive a timely response"},
}

// httpError is a request that fails with an HTTP status, as Ganeti's
// http.HttpException.
type httpError struct {
	code       int
	msg        string // "" means the status's short message
	retryAfter int    // seconds for a Retry-After header; 0: none
}

func (e *httpError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return statusText[e.code][0]
}

func errorf(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func errCode(code int) *httpError { return &httpError{code: code} }

// body is the JSON error body Ganeti sends:
//
//	{"code": 401, "message": "Unauthorized", "explain": "No permission -- see authorization schemes"}
//
// The message is HTML-escaped, as Ganeti does.
func (e *httpError) body() []byte {
	st, ok := statusText[e.code]
	if !ok {
		st = [2]string{"Unknown", "Unknown"}
	}
	msg := e.msg
	if msg == "" {
		msg = st[0]
	}
	b, err := pyJSON(new(object).Add("code", e.code).Add("message", pyHTMLEscape(msg)).Add("explain", st[1]))
	if err != nil {
		// Strings and an int always encode.
		panic(err)
	}
	return b
}

// pyHTMLEscape is Python's html.escape(s, quote=True).
var pyHTMLEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#x27;").Replace
