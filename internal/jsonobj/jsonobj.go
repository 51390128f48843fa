// Package jsonobj is a JSON object whose members keep the order they were
// added in (Ganeti's job dicts and gnt-job's listings list their fields in
// a fixed order; Go maps would sort them).
package jsonobj

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Object is an ordered JSON object. The zero value is empty and ready.
type Object struct {
	keys []string
	vals []any
}

// Add appends a member and returns o, so that calls chain.
func (o *Object) Add(key string, val any) *Object {
	o.keys = append(o.keys, key)
	o.vals = append(o.vals, val)
	return o
}

// MarshalJSON encodes the members in order, without HTML escaping.
func (o *Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(k); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		if err := enc.Encode(o.vals[i]); err != nil {
			return nil, fmt.Errorf("member %q: %w", k, err)
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
