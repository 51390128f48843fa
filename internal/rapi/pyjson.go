package rapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/jobq-dev/jobq/internal/jsonobj"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jobq-dev/jobq/internal/numfmt"
)

// Ganeti's RAPI writes its answers with Python's JSON encoder (simplejson's
// defaults): ", " between items, ": " after keys, every non-ASCII character
// escaped as \uXXXX, floats as Python's repr, and a final newline. The
// functions here produce the same bytes from Go values.

// object is an ordered JSON object (see package jsonobj).
type object = jsonobj.Object

// pyJSON encodes v as Ganeti's serializer.DumpJson does, final newline
// included. json.RawMessage values (job fields from the queue) are
// re-spaced and re-escaped like everything else, and their number literals
// keep their kind: 1.0 stays a float (written 1.0), 1 an integer. A Go
// float64 with an integral value is written as an integer (encoding/json
// drops the kind), so floats that matter are passed as json.RawMessage or
// json.Number.
func pyJSON(v any) ([]byte, error) {
	compact, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(compact)+len(compact)/4+1)
	out, err = pyFormat(out, compact)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// pyFormat rewrites compact JSON (as encoding/json writes it) in Python's
// style and appends it to out.
func pyFormat(out, in []byte) ([]byte, error) {
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '"':
			end := stringEnd(in, i)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string in JSON")
			}
			var s string
			if err := json.Unmarshal(in[i:end], &s); err != nil {
				return nil, err
			}
			out = pyQuote(out, s)
			i = end
		case c == ',':
			out = append(out, ',', ' ')
			i++
		case c == ':':
			out = append(out, ':', ' ')
			i++
		case c == '-' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(in) && isNumberByte(in[j]) {
				j++
			}
			out = pyNumber(out, in[i:j])
			i = j
		default:
			out = append(out, c)
			i++
		}
	}
	return out, nil
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// stringEnd returns the index just after the string literal starting at
// in[start] (a '"'), or -1.
func stringEnd(in []byte, start int) int {
	for i := start + 1; i < len(in); i++ {
		switch in[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// pyNumber writes a number literal: integers as they are, floats as
// Python's repr (0.001, 1e-05, 5.0).
func pyNumber(out, lit []byte) []byte {
	if bytes.ContainsAny(lit, ".eE") {
		if f, err := strconv.ParseFloat(string(lit), 64); err == nil {
			return append(out, numfmt.PyFloat(f)...)
		}
	}
	return append(out, lit...)
}

// pyQuote writes s as a JSON string with Python's ensure_ascii escaping.
func pyQuote(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for _, r := range s {
		switch {
		case r == '"':
			out = append(out, '\\', '"')
		case r == '\\':
			out = append(out, '\\', '\\')
		case r == '\n':
			out = append(out, '\\', 'n')
		case r == '\r':
			out = append(out, '\\', 'r')
		case r == '\t':
			out = append(out, '\\', 't')
		case r == '\b':
			out = append(out, '\\', 'b')
		case r == '\f':
			out = append(out, '\\', 'f')
		case r >= 0x20 && r < 0x7f:
			out = append(out, byte(r))
		default: // control characters, DEL and everything beyond ASCII
			units := []rune{r}
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				units = []rune{r1, r2}
			} else if r == utf8.RuneError {
				units = []rune{0xfffd}
			}
			for _, u := range units {
				out = append(out, '\\', 'u', hex[u>>12&0xf], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf])
			}
		}
	}
	return append(out, '"')
}
