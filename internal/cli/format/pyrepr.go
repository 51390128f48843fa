package format

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/jobq-dev/jobq/internal/numfmt"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tuple is a Python tuple. PyRepr prints it in parentheses ("(1, 'a')",
// "(1,)"); WriteGenericInfo prints a Tuple of scalars inline ("[1, a]"),
// the way Ganeti prints an execution log entry's content.
type Tuple []any

// PyRepr returns Python 3's repr() of v: None, True, False, ints, floats
// as Python prints them (0.01, 1e-05, 5.0), strings quoted the way Python
// quotes them ('a', "it's", 'say "hi"'), lists [1, 2], tuples (1,), and
// dicts {'a': 1}. A map's keys are sorted (see the package documentation);
// an OrderedDict keeps its order. This is how gnt-job list prints the
// fields of kind "other", e.g. [1795758165, 207640] or
// [['OpPrereqError', ['Duration must be greater than zero']]].
func PyRepr(v any) string {
	var b strings.Builder
	writeRepr(&b, v)
	return b.String()
}

// PyStr returns Python 3's str() of v: a string is returned unchanged,
// anything else is PyRepr(v).
func PyStr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return PyRepr(v)
}

func writeRepr(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case string:
		b.WriteString(pyQuote(x))
	case json.Number:
		b.WriteString(numberRepr(x))
	case float64:
		b.WriteString(PyFloat(x))
	case float32:
		b.WriteString(PyFloat(float64(x)))
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int16:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int8:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case uint:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case uint32:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint16:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint8:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case *big.Int:
		if x == nil {
			b.WriteString("None")
		} else {
			b.WriteString(x.String())
		}
	case Tuple:
		b.WriteByte('(')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e)
		}
		if len(x) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case []any:
		writeReprList(b, x)
	case OrderedDict:
		b.WriteByte('{')
		for i, f := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyQuote(f.Key))
			b.WriteString(": ")
			writeRepr(b, f.Value)
		}
		b.WriteByte('}')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyQuote(k))
			b.WriteString(": ")
			writeRepr(b, x[k])
		}
		b.WriteByte('}')
	default:
		writeReprReflect(b, v)
	}
}

func writeReprList(b *strings.Builder, l []any) {
	b.WriteByte('[')
	for i, e := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		writeRepr(b, e)
	}
	b.WriteByte(']')
}

// writeReprReflect handles other slices, arrays and maps (e.g. []string,
// [2]int64, map[string]string) and falls back to fmt for anything else.
func writeReprReflect(b *strings.Builder, v any) {
	if l, ok := asList(v); ok {
		writeReprList(b, l)
		return
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		type kv struct {
			key  string // repr of the key, also the sort key
			val  any
			skey string // the key itself when it is a string
		}
		entries := make([]kv, 0, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			k := iter.Key().Interface()
			e := kv{key: PyRepr(k), val: iter.Value().Interface()}
			if s, ok := k.(string); ok {
				e.skey = s
			} else {
				e.skey = e.key
			}
			entries = append(entries, e)
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].skey < entries[j].skey })
		b.WriteByte('{')
		for i, e := range entries {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.key)
			b.WriteString(": ")
			writeRepr(b, e.val)
		}
		b.WriteByte('}')
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			b.WriteString("None")
			return
		}
		writeRepr(b, rv.Elem().Interface())
	case reflect.String:
		b.WriteString(pyQuote(rv.String()))
	case reflect.Bool:
		writeRepr(b, rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(rv.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		b.WriteString(strconv.FormatUint(rv.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		b.WriteString(PyFloat(rv.Float()))
	default:
		fmt.Fprint(b, v)
	}
}

// asList converts any slice or array (other than a string) to []any.
func asList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case Tuple:
		return []any(x), true
	case nil, string, OrderedDict:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice:
		if rv.IsNil() {
			return nil, false
		}
	case reflect.Array:
	default:
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

// pyQuote returns Python 3's repr of a str.
func pyQuote(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(quote)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// Not UTF-8; Python strings cannot hold such a byte, show it
			// the way Python shows a byte.
			fmt.Fprintf(&b, "\\x%02x", s[i])
			i++
			continue
		}
		i += size
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r < 0x7f:
			b.WriteRune(r)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r <= 0xffff:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			fmt.Fprintf(&b, "\\U%08x", r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// numberIsFloat reports whether a JSON number literal is a float for
// Python's json module (it has a fraction or an exponent).
func numberIsFloat(n json.Number) bool {
	return strings.ContainsAny(string(n), ".eE")
}

// numberRepr prints a JSON number the way Python prints the value its json
// module decodes it to.
func numberRepr(n json.Number) string {
	if numberIsFloat(n) {
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil && !isRangeErr(err) {
			return string(n)
		}
		return PyFloat(f) // out of range: ±inf, as Python's float() gives
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	if bi, ok := new(big.Int).SetString(string(n), 10); ok {
		return bi.String()
	}
	return string(n)
}

func isRangeErr(err error) bool {
	return errors.Is(err, strconv.ErrRange)
}

// PyFloat returns Python 3's repr() of a float (see numfmt.PyFloat).
func PyFloat(f float64) string { return numfmt.PyFloat(f) }
