package cli

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	"fmt"
)

// queryData is the "data" member of a Query result: rows of [status,
// value] cells. It decodes the common cells (numbers, plain strings, lists
// of plain strings, null) without reflection, so that listing 100,000 jobs
// stays fast; other cells go through encoding/json with exact numbers.
type queryData [][]any

func (d *queryData) UnmarshalJSON(b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return fmt.Errorf("query data is not a list")
	}
	rows := [][]any{}
	for dec.PeekKind() != ']' {
		if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
			return fmt.Errorf("query row is not a list")
		}
		row := []any{}
		for dec.PeekKind() != ']' {
			raw, err := dec.ReadValue()
			if err != nil {
				return err
			}
			cell, err := parseCell(raw)
			if err != nil {
				return err
			}
			row = append(row, cell)
		}
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		rows = append(rows, row)
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	*d = rows
	return nil
}

// parseCell decodes one cell, raw being valid JSON.
func parseCell(raw []byte) (any, error) {
	if len(raw) >= 5 && raw[0] == '[' && raw[len(raw)-1] == ']' {
		st, rest, ok := bytes.Cut(raw[1:len(raw)-1], []byte(","))
		if ok && len(st) == 1 && st[0] >= '0' && st[0] <= '9' {
			if v, ok := simpleValue(rest); ok {
				return []any{json.Number(st), v}, nil
			}
		}
	}
	var v any
	if err := decodeJSON(raw, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// simpleValue decodes null, a number, a string without escapes or a list
// of such strings; ok is false for anything else.
func simpleValue(b []byte) (any, bool) {
	switch {
	case string(b) == "null":
		return nil, true
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		for _, c := range b {
			if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
				return nil, false
			}
		}
		return json.Number(b), true
	case bytes.IndexByte(b, '\\') >= 0:
		return nil, false
	case len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"':
		s := b[1 : len(b)-1]
		if bytes.IndexByte(s, '"') >= 0 {
			return nil, false
		}
		return string(s), true
	case len(b) >= 4 && b[0] == '[' && b[1] == '"' && b[len(b)-2] == '"' && b[len(b)-1] == ']':
		// Without backslashes every quote delimits a string, so the items
		// are what lies between `","`.
		parts := bytes.Split(b[2:len(b)-2], []byte(`","`))
		out := make([]any, len(parts))
		for i, p := range parts {
			if bytes.IndexByte(p, '"') >= 0 {
				return nil, false
			}
			out[i] = string(p)
		}
		return out, true
	}
	return nil, false
}
