package luxi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is a failed call as Ganeti encodes it: a reply
// {"success":false,"result":[Class, Args]}, for example Class "GenericError"
// with Args ["Queue drained"], or Class "OpPrereqError" with Args
// [message, kind] such as ["This is not the master node...", "wrong_state"].
//
// A handler returns an *Error to send exactly that reply. [Client.Call]
// returns an *Error for every failure reply; a reply whose result is a plain
// string (a request the server could not parse) becomes Class
// "RequestError" with the string as the only argument, as in Ganeti's Python
// client.
//
// Error values marshal to and from JSON as [Class, Args], the shape Ganeti
// also uses for failed opcode results.
type Error struct {
	Class string
	Args  []any
}

// NewError returns an *Error with the given class and arguments.
func NewError(class string, args ...any) *Error {
	return &Error{Class: class, Args: args}
}

// Error returns one sentence in the style of Ganeti's clients: the class,
// then the first argument, e.g. "GenericError: Queue drained". Further
// arguments follow in parentheses, e.g.
// "OpPrereqError: This is not the master node, please connect to node n1 (wrong_state)".
func (e *Error) Error() string {
	if len(e.Args) == 0 {
		return e.Class
	}
	var b strings.Builder
	b.WriteString(e.Class)
	b.WriteString(": ")
	fmt.Fprint(&b, e.Args[0])
	if len(e.Args) > 1 {
		b.WriteString(" (")
		for i, a := range e.Args[1:] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprint(&b, a)
		}
		b.WriteString(")")
	}
	return b.String()
}

// MarshalJSON encodes e as [Class, Args]; nil Args encode as [].
func (e *Error) MarshalJSON() ([]byte, error) {
	args := e.Args
	if args == nil {
		args = []any{}
	}
	return marshal([]any{e.Class, args})
}

// UnmarshalJSON decodes [Class, Args]. Args that are not an array become
// the only argument.
func (e *Error) UnmarshalJSON(data []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(data, &pair); err != nil || len(pair) != 2 {
		return fmt.Errorf("luxi: error value is not [class, args]: %s", truncate(data, 200))
	}
	var class string
	if err := json.Unmarshal(pair[0], &class); err != nil || !isJSONString(pair[0]) {
		return fmt.Errorf("luxi: error class is not a string: %s", truncate(pair[0], 200))
	}
	var args any
	if err := json.Unmarshal(pair[1], &args); err != nil {
		return err
	}
	e.Class = class
	switch a := args.(type) {
	case []any:
		e.Args = a
	default:
		e.Args = []any{a}
	}
	return nil
}

// RequestError is a request that the server could not parse: malformed
// JSON, a missing method, an unknown method, or (from a handler) arguments
// of the wrong shape. The server answers it as luxid does, with a string
// result: {"success":false,"result":"Failed to parse request: <Reason>"}.
//
// Handlers may return one (or use [UnknownMethod]); the connection stays
// usable either way.
type RequestError struct {
	Reason string
}

// Error returns "Failed to parse request: " followed by the reason; it is
// the string sent as the reply's result.
func (e *RequestError) Error() string {
	return "Failed to parse request: " + e.Reason
}

// UnknownMethod returns the error a handler returns for a method it does
// not implement. The server sends it exactly as luxid does:
//
//	{"success":false,"result":"Failed to parse request: Unable to parse LUXI request method: Invalid string value for type LuxiReq: \"NoSuchMethod\""}
//
// The method name is quoted as Haskell's show quotes a string.
func UnknownMethod(name string) error {
	return &RequestError{Reason: "Unable to parse LUXI request method: Invalid string value for type LuxiReq: " + haskellShow(name)}
}

// haskellShow quotes s as Haskell's show does for a String (which is how
// luxid reports an unknown method): printable ASCII as is, '"' and '\\'
// escaped, C-style escapes for \a\b\f\n\r\t\v, ASCII control names (\SOH),
// and decimal escapes for everything above '\DEL', with "\&" where the next
// character would otherwise extend the escape.
func haskellShow(s string) string {
	var asciiNames = [...]string{
		"NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "a",
		"b", "t", "n", "v", "f", "r", "SO", "SI",
		"DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB",
		"CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
	}
	var b strings.Builder
	b.WriteByte('"')
	// protect is set after an escape that the next character could extend:
	// a decimal escape (by a digit) or \SO (by 'H', which would read \SOH).
	var protect func(r rune) bool
	for _, r := range s {
		if protect != nil && protect(r) {
			b.WriteString(`\&`)
		}
		protect = nil
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r > 0x7f:
			b.WriteByte('\\')
			b.WriteString(strconv.Itoa(int(r)))
			protect = func(r rune) bool { return r >= '0' && r <= '9' }
		case r == 0x7f:
			b.WriteString(`\DEL`)
		case r >= ' ':
			b.WriteRune(r)
		default:
			b.WriteByte('\\')
			b.WriteString(asciiNames[r])
			if r == 0x0e {
				protect = func(r rune) bool { return r == 'H' }
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// errShuttingDown answers calls cut short because the server shuts down.
var errShuttingDown = &Error{Class: "GenericError", Args: []any{"Server is shutting down"}}

// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown].
var ErrServerClosed = errors.New("luxi: server closed")

func isJSONString(raw []byte) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '"'
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
