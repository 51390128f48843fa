package luxi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
)

// ProtocolVersion is the version Ganeti 3.0 clients send in a request's
// "version" field. The client sends it; servers accept any value.
const ProtocolVersion = 3000000

// DefaultMaxMessageSize is the default limit on the size of one request
// (the JSON text, not counting the terminator).
const DefaultMaxMessageSize = 64 << 20

// eom ends every message.
const eom = 0x03

// Request is a request as decoded by the server.
type Request struct {
	// Method is the call's name, e.g. "SubmitJob".
	Method string
	// Args is the raw JSON array of arguments.
	Args json.RawMessage
	// Version is the request's "version", if it was present and an integer.
	Version *int64
}

// UnmarshalArgs decodes the argument array into dst, element i into dst[i]
// with [json.Unmarshal]. The array must have exactly len(dst) elements, and
// an element may be JSON null only where dst[i] can hold "nothing": a
// pointer to a pointer or a *json.RawMessage (as Ganeti allows null only
// for optional arguments). On failure it returns a [*RequestError], so a
// handler can return it as is and the client gets luxid's "Failed to parse
// request: ..." reply. Calls with optional arguments can decode Args into
// []json.RawMessage instead.
func (r *Request) UnmarshalArgs(dst ...any) error {
	var elems []json.RawMessage
	if err := json.Unmarshal(r.Args, &elems); err != nil {
		return &RequestError{Reason: fmt.Sprintf("arguments of %s are not an array", r.Method)}
	}
	if len(elems) != len(dst) {
		return &RequestError{Reason: fmt.Sprintf("%s takes %d arguments, got %d", r.Method, len(dst), len(elems))}
	}
	for i, e := range elems {
		if string(bytes.TrimSpace(e)) == "null" && !nullable(dst[i]) {
			return &RequestError{Reason: fmt.Sprintf("argument %d of %s must not be null", i+1, r.Method)}
		}
		if err := json.Unmarshal(e, dst[i]); err != nil {
			return &RequestError{Reason: fmt.Sprintf("argument %d of %s %s", i+1, r.Method, describeDecodeError(err))}
		}
	}
	return nil
}

// nullable reports whether dst can represent JSON null distinctly.
func nullable(dst any) bool {
	if _, ok := dst.(*json.RawMessage); ok {
		return true
	}
	t := reflect.TypeOf(dst)
	return t != nil && t.Kind() == reflect.Pointer &&
		(t.Elem().Kind() == reflect.Pointer || t.Elem().Kind() == reflect.Interface)
}

// describeDecodeError words a decoding error for a client, without Go type
// names.
func describeDecodeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Type != nil {
		return fmt.Sprintf("has the wrong type: expected %s, got a JSON %s", describeType(te.Type), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "is not valid JSON"
	}
	return "is not valid: " + err.Error()
}

func describeType(t reflect.Type) string {
	if t == reflect.TypeOf(json.RawMessage(nil)) {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + plural(describeType(t.Elem()))
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a value"
}

func plural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "an "), "a ")
	if strings.HasPrefix(s, "list of ") {
		return "lists of " + strings.TrimPrefix(s, "list of ")
	}
	return s + "s"
}

// errTooLarge reports a message over the size limit.
var errTooLarge = errors.New("luxi: message too large")

// errBusy: the server's cap on large requests being received is reached.
var errBusy = errors.New("luxi: too many large requests at once")

// readMessage reads one message from r into buf[:0] and returns it without
// its terminator. It never holds more than max bytes of a message: a longer
// message fails with errTooLarge as soon as the bytes past the limit have
// arrived, without waiting for its end. A partial message at the end of the
// stream fails with io.ErrUnexpectedEOF.
func readMessage(r *bufio.Reader, buf []byte, max int, grow func(size int) bool) ([]byte, error) {
	buf = buf[:0]
	for {
		n := r.Buffered()
		if n == 0 {
			// Wait for whatever the peer sends next (at most r's size).
			if _, err := r.Peek(1); err != nil {
				if err == io.EOF && len(buf) > 0 {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
			n = r.Buffered()
		}
		chunk, _ := r.Peek(n)
		if i := bytes.IndexByte(chunk, eom); i >= 0 {
			if len(buf)+i > max {
				return nil, errTooLarge
			}
			if grow != nil && !grow(len(buf)+i) {
				return nil, errBusy
			}
			buf = appendDoubling(buf, chunk[:i], max)
			r.Discard(i + 1)
			return buf, nil
		}
		if len(buf)+n > max {
			return nil, errTooLarge
		}
		if grow != nil && !grow(len(buf)+n) {
			return nil, errBusy
		}
		buf = appendDoubling(buf, chunk, max)
		r.Discard(n)
	}
}

// appendDoubling appends data to buf, growing it by doubling (up to
// limit) rather than by append's quarter for large slices: a message of
// 60 MiB then leaves about 60 MiB of outgrown buffers behind instead of
// about 240, so that many large requests at once do not multiply
// the memory they take.
func appendDoubling(buf, data []byte, limit int) []byte {
	if need := len(buf) + len(data); need > cap(buf) {
		nb := make([]byte, len(buf), max(need, min(2*cap(buf), limit)))
		copy(nb, buf)
		buf = nb
	}
	return append(buf, data...)
}

// decodeRequest parses one request message (without its terminator). A
// request that does not parse fails with a *RequestError.
func decodeRequest(msg []byte) (*Request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(msg, &fields); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, &RequestError{Reason: "request is not a JSON object"}
		}
		return nil, &RequestError{Reason: "invalid JSON: " + err.Error()}
	}
	if fields == nil {
		return nil, &RequestError{Reason: "request is not a JSON object"}
	}
	method, ok := fields["method"]
	if !ok {
		return nil, &RequestError{Reason: `no "method" in request`}
	}
	req := &Request{}
	if !isJSONString(method) {
		return nil, &RequestError{Reason: `"method" is not a string`}
	}
	if err := json.Unmarshal(method, &req.Method); err != nil {
		return nil, &RequestError{Reason: `"method" is not a string`}
	}
	args, ok := fields["args"]
	if !ok {
		return nil, &RequestError{Reason: `no "args" in request`}
	}
	// The values in fields are copies (json.RawMessage copies what it
	// decodes), so msg's buffer may be reused.
	args = bytes.TrimSpace(args)
	if len(args) == 0 || args[0] != '[' {
		return nil, &RequestError{Reason: `"args" is not an array`}
	}
	req.Args = args
	if v, ok := fields["version"]; ok {
		var n int64
		if json.Unmarshal(v, &n) == nil && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			req.Version = &n
		}
	}
	return req, nil
}

// encoder encodes JSON without HTML escaping (as luxid does) into buf.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoderPool = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

func getEncoder() *encoder {
	e := encoderPool.Get().(*encoder)
	e.buf.Reset()
	return e
}

func putEncoder(e *encoder) {
	if e.buf.Cap() <= 64<<10 {
		encoderPool.Put(e)
	}
}

// value appends the compact JSON encoding of v; on error nothing is added.
func (e *encoder) value(v any) error {
	n := e.buf.Len()
	if err := e.enc.Encode(v); err != nil {
		e.buf.Truncate(n)
		return err
	}
	e.buf.Truncate(e.buf.Len() - 1) // Encode ends with a newline
	return nil
}

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	if err := e.value(v); err != nil {
		return nil, err
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// request appends a whole request message, terminator included.
func (e *encoder) request(method string, args []any) error {
	if args == nil {
		args = []any{}
	}
	e.buf.WriteString(`{"method":`)
	if err := e.value(method); err != nil {
		return err
	}
	e.buf.WriteString(`,"args":`)
	if err := e.value(args); err != nil {
		return err
	}
	e.buf.WriteString(`,"version":3000000}`)
	e.buf.WriteByte(eom)
	return nil
}

// encodeRequest returns the message for a call, terminator included.
func encodeRequest(method string, args []any) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	if err := e.request(method, args); err != nil {
		return nil, err
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// reply replaces the buffer with the reply to a call that returned result
// and err, terminator included. It returns an error if result (or err's
// arguments) could not be encoded; the reply is then a GenericError.
func (e *encoder) reply(result any, err error) error {
	e.buf.Reset()
	if err != nil {
		return e.failure(err)
	}
	e.buf.WriteString(`{"success":true,"result":`)
	if encErr := e.value(result); encErr != nil {
		_ = e.failure(&Error{Class: "GenericError", Args: []any{"Cannot encode result: " + encErr.Error()}})
		return encErr
	}
	e.buf.WriteString("}\x03")
	return nil
}

// failure replaces the buffer with the failure reply for err.
func (e *encoder) failure(err error) error {
	e.buf.Reset()
	e.buf.WriteString(`{"success":false,"result":`)
	var (
		re     *RequestError
		le     *Error
		encErr error
	)
	switch {
	case errors.As(err, &re):
		encErr = e.value(re.Error())
	case errors.As(err, &le):
		if encErr = e.value(le); encErr != nil {
			_ = e.value(&Error{Class: "GenericError", Args: []any{le.Error()}})
		}
	default:
		encErr = e.value(&Error{Class: "GenericError", Args: []any{err.Error()}})
	}
	e.buf.WriteString("}\x03")
	return encErr
}

// decodeReply parses one reply message (without its terminator): the
// result of a success, or the *Error of a failure.
func decodeReply(msg []byte) (json.RawMessage, error) {
	var r struct {
		Success *bool           `json:"success"`
		Result  json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(msg, &r); err != nil {
		return nil, fmt.Errorf("luxi: invalid reply: %w", err)
	}
	if r.Success == nil || r.Result == nil {
		return nil, fmt.Errorf("luxi: invalid reply: want success and result, got %s", truncate(msg, 200))
	}
	if *r.Success {
		return r.Result, nil
	}
	le := &Error{}
	if le.UnmarshalJSON(r.Result) != nil {
		// A plain string (luxid's answer to a request it cannot parse) or
		// anything else: Ganeti's Python client raises RequestError.
		var v any
		if err := json.Unmarshal(r.Result, &v); err != nil {
			return nil, fmt.Errorf("luxi: invalid reply: %w", err)
		}
		le = &Error{Class: "RequestError", Args: []any{v}}
	}
	return nil, le
}
