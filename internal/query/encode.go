package query

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// MarshalJSON encodes the whole result in one buffer: {"fields":[...],
// "data":[[[status,value],...],...]}, with the same bytes encoding/json
// (without HTML escaping) would write, but without an encoder per cell, so
// that a listing of 100,000 jobs stays fast.
func (r QueryResult) MarshalJSON() ([]byte, error) {
	fields, err := marshalNoHTML(r.Fields)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 64+len(fields)+len(r.Data)*len(r.Fields)*16)
	buf = append(buf, `{"fields":`...)
	buf = append(buf, fields...)
	buf = append(buf, `,"data":[`...)
	for i, row := range r.Data {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '[')
		for j, e := range row {
			if j > 0 {
				buf = append(buf, ',')
			}
			if buf, err = e.appendJSON(buf); err != nil {
				return nil, err
			}
		}
		buf = append(buf, ']')
	}
	buf = append(buf, "]}"...)
	return buf, nil
}

// appendJSON appends [status, value].
func (e ResultEntry) appendJSON(buf []byte) ([]byte, error) {
	if e.Status != RSNormal {
		buf = append(buf, '[')
		buf = strconv.AppendInt(buf, int64(e.Status), 10)
		return append(buf, ",null]"...), nil
	}
	buf = append(buf, "[0,"...)
	buf, err := appendValue(buf, e.Value)
	if err != nil {
		return nil, err
	}
	return append(buf, ']'), nil
}

// appendValue appends v as JSON: the common field types directly, anything
// else through encoding/json.
func appendValue(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case bool:
		return strconv.AppendBool(buf, x), nil
	case string:
		return appendString(buf, x)
	case json.Number:
		b, err := marshalNoHTML(x) // validates the literal
		if err != nil {
			return nil, err
		}
		return append(buf, b...), nil
	case []string:
		buf = append(buf, '[')
		for i, s := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendString(buf, s); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String && !implementsMarshaler(rv.Type()) {
		return appendString(buf, rv.String())
	}
	b, err := marshalNoHTML(v)
	if err != nil {
		return nil, err
	}
	return append(buf, b...), nil
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// implementsMarshaler reports whether encoding/json would not write t as a
// plain string.
func implementsMarshaler(t reflect.Type) bool {
	return t.Implements(marshalerType) || t.Implements(textMarshalerType)
}

// appendString appends a JSON string; plain printable ASCII directly, the
// rest as encoding/json writes it.
func appendString(buf []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, err := marshalNoHTML(s)
			if err != nil {
				return nil, err
			}
			return append(buf, b...), nil
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"'), nil
}

func marshalNoHTML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
