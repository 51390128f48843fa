package format

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
)

// maxExactFloat is 2^53: every integer of smaller magnitude is exact in a
// float64.
const maxExactFloat = 1 << 53

// asInt returns v as an integer when it is one by value: a Go integer, an
// integral json.Number, or an integral float within ±2^53.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, false
		}
		return floatInt(f)
	case float64:
		return floatInt(x)
	case float32:
		return floatInt(float64(x))
	case bool, string, nil:
		return 0, false
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return 0, false
		}
		return int64(u), true
	}
	return 0, false
}

func floatInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || math.Abs(f) > maxExactFloat {
		return 0, false
	}
	return int64(f), true
}

// asFloat returns v as a float64 when it is a number.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case bool, string, nil:
		return 0, false
	}
	if i, ok := asInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

// isNumber reports whether v is a number (Go numeric type or json.Number).
func isNumber(v any) bool {
	_, ok := asFloat(v)
	return ok
}

// intStr prints a value that is an integer by meaning (a job id, a
// priority): integral floats print without ".0"; anything else as str().
func intStr(v any) string {
	if i, ok := asInt(v); ok {
		return strconv.FormatInt(i, 10)
	}
	return PyStr(v) // also keeps json.Number integers beyond int64
}

// IntegralFloatsToInts returns a copy of v in which every float64 (or
// float32) with an integral value of magnitude at most 2^53 is an int64,
// looking into []any and map[string]any; other values are kept. It undoes,
// as far as possible, JSON decoding without UseNumber, which turns the
// integers of a LUXI reply (ids, timestamps, priorities) into floats; an
// integral float such as a duration of 5.0 becomes 5 in the process. The
// job-specific functions of this package (FormatJobListValue,
// FormatJobQueryCell, JobListTable, JobInfo, JobsInfo, JobInfoTree) apply
// it to their input; with UseNumber there are no floats and it changes
// nothing.
func IntegralFloatsToInts(v any) any {
	switch x := v.(type) {
	case float64:
		if i, ok := floatInt(x); ok {
			return i
		}
		return x
	case float32:
		if i, ok := floatInt(float64(x)); ok {
			return i
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = IntegralFloatsToInts(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = IntegralFloatsToInts(e)
		}
		return out
	}
	return v
}
