package query

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
)

// canon converts a Go value to the JSON data model this package compares:
// nil, bool, string, int64, float64, json.Number (integers outside int64 and
// decimal literals kept exact), []any and map[string]any. Named types,
// typed slices and maps are converted by reflection; values that implement
// json.Marshaler or encoding.TextMarshaler (and structs) are converted as
// their JSON encoding.
func canon(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case bool, string, int64, float64:
		return x, nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		if _, err := strconv.ParseFloat(string(x), 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("invalid number %q", string(x))
		}
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := canon(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := canon(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case json.RawMessage:
		return canonJSON(x)
	case ResultEntry:
		return canon(x.Value)
	case *big.Int:
		if x == nil {
			return nil, nil
		}
		if x.IsInt64() {
			return x.Int64(), nil
		}
		return json.Number(x.String()), nil
	case json.Marshaler, encoding.TextMarshaler:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return canonJSON(b)
	}
	return canonReflect(reflect.ValueOf(v))
}

func canonJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return canon(v)
}

func canonReflect(rv reflect.Value) (any, error) {
	switch rv.Kind() {
	case reflect.Invalid:
		return nil, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return canon(rv.Elem().Interface())
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u <= math.MaxInt64 {
			return int64(u), nil
		}
		return json.Number(strconv.FormatUint(u, 10)), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.Slice:
		if rv.IsNil() {
			return nil, nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			// []byte is a base64 string in JSON.
			return marshalCanon(rv.Interface())
		}
		fallthrough
	case reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			c, err := canon(rv.Index(i).Interface())
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return marshalCanon(rv.Interface())
		}
		if rv.IsNil() {
			return nil, nil
		}
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			c, err := canon(it.Value().Interface())
			if err != nil {
				return nil, err
			}
			out[it.Key().String()] = c
		}
		return out, nil
	}
	return marshalCanon(rv.Interface())
}

func marshalCanon(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return canonJSON(b)
}

// render formats a canonical value as JSON for error messages.
func render(v any) string {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return string(bytes.TrimRight(buf.Bytes(), "\n"))
}

// isNumber reports whether a canonical value is a number.
func isNumber(v any) bool {
	switch v.(type) {
	case int64, float64, json.Number:
		return true
	}
	return false
}

// cmpNumber compares a canonical number with an integer filter value.
// ok is false when the two are unordered (NaN).
func cmpNumber(v any, n *intValue) (c int, ok bool) {
	switch x := v.(type) {
	case int64:
		if n.small {
			switch {
			case x < n.i:
				return -1, true
			case x > n.i:
				return 1, true
			}
			return 0, true
		}
		return big.NewInt(x).Cmp(n.big), true
	case float64:
		if math.IsNaN(x) {
			return 0, false
		}
		if math.IsInf(x, 0) {
			if x > 0 {
				return 1, true
			}
			return -1, true
		}
		return new(big.Rat).SetFloat64(x).Cmp(n.rat()), true
	case json.Number:
		r, ok := exactRat(string(x))
		if !ok {
			// An enormous exponent: ±Inf as a float, or a tiny non-zero
			// value (zero itself is exact).
			f, _ := strconv.ParseFloat(string(x), 64)
			if f != 0 {
				return cmpNumber(f, n)
			}
			if n.big.Sign() != 0 {
				return -n.big.Sign(), true
			}
			if strings.HasPrefix(string(x), "-") {
				return -1, true
			}
			return 1, true
		}
		return r.Cmp(n.rat()), true
	}
	return 0, false
}

// maxExponent bounds the decimal exponent of numbers handled exactly: the
// exact value of 1e999999999 would take gigabytes.
const maxExponent = 1000

// exactRat parses a decimal number exactly; ok is false for malformed
// numbers and for exponents beyond ±maxExponent.
func exactRat(s string) (*big.Rat, bool) {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		if strings.Trim(s[:i], "+-0.") == "" {
			return new(big.Rat), true // zero, whatever the exponent
		}
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > maxExponent || e < -maxExponent {
			return nil, false
		}
	}
	return new(big.Rat).SetString(s)
}

// intValue is an integer filter value (Ganeti's NumericValue, an unbounded
// Integer).
type intValue struct {
	small bool
	i     int64
	big   *big.Int
}

func newIntValue(b *big.Int) *intValue {
	if b.IsInt64() {
		return &intValue{small: true, i: b.Int64(), big: b}
	}
	return &intValue{big: b}
}

func (n *intValue) rat() *big.Rat { return new(big.Rat).SetInt(n.big) }

func (n *intValue) String() string { return n.big.String() }
