// Package declared runs declared opcodes (internal/opdef) in jobq's
// queue: the cluster's catalog of definitions (the setting opdef.Key,
// every version a job may still name), their opcodes.Definition for the
// public Registry (SetDeclared: a submission is checked and completed by
// Admit, the job runs the version it was submitted with), and the
// execution of their programs on the master or the nodes (Executor:
// jobqd's node RPC; a node runs the program with RunLocal).
package declared

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/opdef"
	"github.com/jobq-dev/jobq/opcodes"
)

// Doc is the setting opdef.Key: the current version of each OP_ID and
// every version a job may name. A replaced or removed definition's
// version stays, so a queued job keeps its meaning (they are small;
// `jobq opcode remove --purge` is not offered: see the README).
type Doc struct {
	Current  map[string]string     `json:"current"`  // OP_ID → version
	Versions map[string]*opdef.Def `json:"versions"` // version → definition
	Added    map[string]float64    `json:"added"`    // version → when (seconds)
}

// ParseDoc decodes the setting (nil: no definitions).
func ParseDoc(b []byte) (Doc, error) {
	d := Doc{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &d); err != nil {
			return Doc{}, fmt.Errorf("the opcode definitions setting is not valid: %w", err)
		}
	}
	if d.Current == nil {
		d.Current = map[string]string{}
	}
	if d.Versions == nil {
		d.Versions = map[string]*opdef.Def{}
	}
	if d.Added == nil {
		d.Added = map[string]float64{}
	}
	return d, nil
}

// JSON encodes the setting.
func (d Doc) JSON() []byte {
	b, _ := json.Marshal(d)
	return b
}

func (d Doc) clone() Doc {
	return Doc{Current: maps.Clone(d.Current), Versions: maps.Clone(d.Versions), Added: maps.Clone(d.Added)}
}

// Change is what Add, Replace and Remove refuse or do.
const (
	ModeAdd     = "add"
	ModeReplace = "replace"
)

// Put adds (mode add: the OP_ID must be new) or replaces (mode replace:
// it must exist) a definition and returns the new document. builtin
// reports an OP_ID the program registers itself (never declared). Pure.
func (d Doc) Put(def *opdef.Def, mode string, builtin func(string) bool, now time.Time) (Doc, error) {
	if errs := opdef.Validate(def); len(errs) > 0 {
		return d, errs
	}
	if builtin != nil && builtin(def.ID) {
		return d, fmt.Errorf("%s is an opcode jobq itself provides; choose another OP_ID", def.ID)
	}
	_, exists := d.Current[def.ID]
	switch {
	case mode == ModeAdd && exists:
		return d, fmt.Errorf("opcode %s exists already; use 'jobq opcode replace' to change it", def.ID)
	case mode == ModeReplace && !exists:
		return d, fmt.Errorf("there is no opcode %s to replace; use 'jobq opcode add'", def.ID)
	}
	n := d.clone()
	v := def.Version()
	n.Current[def.ID] = v
	if _, ok := n.Versions[v]; !ok {
		n.Versions[v] = def
		n.Added[v] = float64(now.UnixMilli()) / 1000
	}
	return n, nil
}

// Remove removes an OP_ID's current definition: new jobs cannot name it;
// its versions stay for the jobs that do. Pure.
func (d Doc) Remove(id string) (Doc, error) {
	if _, ok := d.Current[id]; !ok {
		return d, fmt.Errorf("there is no opcode %s ('jobq opcode list' lists them)", id)
	}
	n := d.clone()
	delete(n.Current, id)
	return n, nil
}

// IDs are the declared OP_IDs, sorted.
func (d Doc) IDs() []string {
	ids := make([]string, 0, len(d.Current))
	for id := range d.Current {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Get is id's current definition and version.
func (d Doc) Get(id string) (*opdef.Def, string) {
	v, ok := d.Current[id]
	if !ok {
		return nil, ""
	}
	return d.Versions[v], v
}

// Catalog is the definitions a node knows, following the setting.
type Catalog struct {
	mu  sync.RWMutex
	doc Doc
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	d, _ := ParseDoc(nil)
	return &Catalog{doc: d}
}

// Load replaces the catalog with the setting's value.
func (c *Catalog) Load(b []byte) error {
	d, err := ParseDoc(b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.doc = d
	c.mu.Unlock()
	return nil
}

// Doc is the current document (do not modify it: Put and Remove copy).
func (c *Catalog) Doc() Doc {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.doc
}

// Lookup is the opcodes.Definition of a declared OP_ID (for
// Registry.SetDeclared), or nil. An OP_ID that was removed is still
// found while versions of it are known (its queued jobs run), but
// Admit refuses new submissions of it.
func (c *Catalog) Lookup(id string) *opcodes.Definition {
	c.mu.RLock()
	_, current := c.doc.Current[id]
	known := current
	if !known {
		for _, d := range c.doc.Versions {
			if d.ID == id {
				known = true
				break
			}
		}
	}
	c.mu.RUnlock()
	if !known {
		return nil
	}
	return &opcodes.Definition{
		ID:    id,
		New:   func() opcodes.Params { return &Op{cat: c, id: id} },
		Admit: func(in json.RawMessage) (json.RawMessage, error) { return c.admit(id, in) },
		// An idempotent definition with retries is run again by the next
		// master when its master was lost mid-run, within its attempts.
		RerunsOnLoss: func(in json.RawMessage) int {
			var fields map[string]json.RawMessage
			if json.Unmarshal(in, &fields) != nil {
				return 0
			}
			d, _, err := c.resolve(id, fields)
			if err != nil {
				return 0
			}
			return d.Attempts() - 1
		},
	}
}

// resolve finds the definition an input names (its version, or the
// current one when it names none).
func (c *Catalog) resolve(id string, fields map[string]json.RawMessage) (*opdef.Def, string, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var v string
	if raw, ok := fields[opdef.VersionParam]; ok {
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, "", fmt.Errorf("parameter '%s' must be a string", opdef.VersionParam)
		}
		d, ok := c.doc.Versions[v]
		if !ok || d.ID != id {
			return nil, "", fmt.Errorf("version %s of %s is not known to this cluster", v, id)
		}
		return d, v, nil
	}
	v, ok := c.doc.Current[id]
	if !ok {
		return nil, "", fmt.Errorf("opcode %s was removed; 'jobq opcode list' lists the declared ones", id)
	}
	return c.doc.Versions[v], v, nil
}

// admit checks a submitted input against its definition and returns it
// with the defaults filled in and the version recorded.
func (c *Catalog) admit(id string, in json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(in, &fields); err != nil {
		return nil, fmt.Errorf("opcode %s is not a JSON object", id)
	}
	c.mu.RLock()
	_, current := c.doc.Current[id]
	c.mu.RUnlock()
	if _, named := fields[opdef.VersionParam]; !named && !current {
		return nil, fmt.Errorf("unknown opcode %s: it was removed ('jobq opcode list' lists the declared ones)", id)
	}
	def, v, err := c.resolve(id, fields)
	if err != nil {
		return nil, err
	}
	vals, err := opdef.Check(def, fields)
	if err != nil {
		return nil, err
	}
	for k, x := range vals {
		if _, ok := fields[k]; !ok || string(fields[k]) == "null" {
			b, _ := json.Marshal(x)
			fields[k] = b
		}
	}
	fields[opdef.VersionParam], _ = json.Marshal(v)
	return json.Marshal(fields)
}
