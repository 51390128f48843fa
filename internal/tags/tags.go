// Package tags is the pure core of Ganeti's tags for jobq: the cluster's
// and each node's tags (gnt-cluster add-tags, gnt-node add-tags, RAPI
// /2/tags and /2/nodes/NAME/tags), their validation as Ganeti's
// TaggableObject makes it, and the changes of OP_TAGS_SET and
// OP_TAGS_DEL and the answers of OP_TAGS_GET and OP_TAGS_SEARCH, on the
// document jobqd keeps as the cluster-wide setting "tags". No I/O.
package tags

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Ganeti's limits (constants.MAX_TAG_LEN, constants.MAX_TAGS_PER_OBJ).
const (
	MaxLen    = 128
	MaxPerObj = 4096
)

// The kinds of tagged objects (Ganeti's constants.TAG_*). jobq has a
// cluster and nodes; the others are Ganeti's objects jobq does not have.
const (
	KindCluster   = "cluster"
	KindNode      = "node"
	KindInstance  = "instance"
	KindNodeGroup = "nodegroup"
	KindNetwork   = "network"
)

// validTag is Ganeti's TaggableObject.VALID_TAG_RE, ^[\w.+*/:@-]+$ with
// Python 3's Unicode \w.
var validTag = regexp.MustCompile(`^[\p{L}\p{N}_\p{Mn}.+*/:@-]+$`)

// Error is a refusal in Ganeti's terms: Class is "TagError" (an invalid
// tag, as TaggableObject raises it), "OpPrereqError" (Kind set: Ganeti's
// error code) or "OpExecError".
type Error struct {
	Class, Kind, Msg string
}

func (e *Error) Error() string { return e.Msg }

func tagError(format string, args ...any) *Error {
	return &Error{Class: "TagError", Msg: fmt.Sprintf(format, args...)}
}

// Validate checks one tag as Ganeti's TaggableObject.ValidateTag, with
// its messages.
func Validate(tag string) error {
	switch {
	case len([]rune(tag)) > MaxLen:
		return tagError("Tag too long (>%d characters)", MaxLen)
	case tag == "":
		return tagError("Tags cannot be empty")
	case !validTag.MatchString(tag):
		return tagError("Tag contains invalid characters")
	}
	return nil
}

// Doc is the cluster-wide setting: the cluster's tags and each node's,
// sorted, and when they last changed (Unix seconds).
type Doc struct {
	Cluster []string            `json:"cluster"`
	Nodes   map[string][]string `json:"nodes"`
	MTime   float64             `json:"mtime,omitempty"`
}

// Decode reads a stored document; nil or empty: no tags.
func Decode(b []byte) (Doc, error) {
	var d Doc
	if len(b) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return Doc{}, fmt.Errorf("the stored tags are not a tags document: %v", err)
	}
	return d, nil
}

// Encode is the document as stored.
func (d Doc) Encode() []byte {
	if d.Cluster == nil {
		d.Cluster = []string{}
	}
	if d.Nodes == nil {
		d.Nodes = map[string][]string{}
	}
	b, _ := json.Marshal(d)
	return b
}

// Target resolves the object an opcode or call names: kind "cluster"
// (name ignored, as Ganeti) or "node" with the name of one of nodes.
// The error is Ganeti's OpPrereqError for an unknown kind or node, and
// says that jobq has no instances, node groups or networks.
func Target(kind, name string, nodes []string) (string, error) {
	switch kind {
	case KindCluster:
		return "", nil
	case KindNode:
		if !slices.Contains(nodes, name) {
			return "", &Error{Class: "OpPrereqError", Kind: "unknown_entity", Msg: fmt.Sprintf("Node '%s' not known", name)}
		}
		return name, nil
	case KindInstance, KindNodeGroup, KindNetwork:
		return "", &Error{Class: "OpPrereqError", Kind: "wrong_input", Msg: fmt.Sprintf("jobq has no %s objects: only the cluster and its nodes have tags", kind)}
	}
	return "", &Error{Class: "OpPrereqError", Kind: "wrong_input", Msg: fmt.Sprintf("Wrong tag type requested (%s)", kind)}
}

// Get is the tags of the cluster (node "") or of a node, sorted.
func (d Doc) Get(node string) []string {
	var t []string
	if node == "" {
		t = d.Cluster
	} else {
		t = d.Nodes[node]
	}
	return append([]string{}, t...)
}

func (d Doc) with(node string, t []string) Doc {
	out := Doc{Cluster: d.Cluster, Nodes: map[string][]string{}, MTime: d.MTime}
	for k, v := range d.Nodes {
		out.Nodes[k] = v
	}
	if node == "" {
		out.Cluster = t
	} else if len(t) == 0 {
		delete(out.Nodes, node)
	} else {
		out.Nodes[node] = t
	}
	return out
}

// CheckAll validates every tag (LUTagsSet's and LUTagsDel's CheckPrereq).
func CheckAll(tags []string) error {
	for _, t := range tags {
		if err := Validate(t); err != nil {
			return err
		}
	}
	return nil
}

// Add is OP_TAGS_SET on the cluster (node "") or a node: the document
// with tags added. Ganeti's refusals: an invalid tag (TagError), more
// than MaxPerObj tags ("Error while setting tag: Too many tags",
// OpExecError). d is not changed.
func (d Doc) Add(node string, tags []string) (Doc, error) {
	if err := CheckAll(tags); err != nil {
		return d, err
	}
	cur := d.Get(node)
	for _, t := range tags {
		if slices.Contains(cur, t) {
			continue
		}
		if len(cur) >= MaxPerObj {
			return d, &Error{Class: "OpExecError", Msg: "Error while setting tag: Too many tags"}
		}
		cur = append(cur, t)
	}
	sort.Strings(cur)
	return d.with(node, cur), nil
}

// Remove is OP_TAGS_DEL: the document without tags. A tag the object
// does not have refuses the whole change, naming every such tag as
// Ganeti does ("Tag(s) 'a', 'b' not found", OpPrereqError).
func (d Doc) Remove(node string, tags []string) (Doc, error) {
	if err := CheckAll(tags); err != nil {
		return d, err
	}
	cur := d.Get(node)
	var missing []string
	for _, t := range tags {
		if !slices.Contains(cur, t) && !slices.Contains(missing, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		q := make([]string, len(missing))
		for i, m := range missing {
			q[i] = "'" + m + "'"
		}
		return d, &Error{Class: "OpPrereqError", Kind: "unknown_entity", Msg: fmt.Sprintf("Tag(s) %s not found", strings.Join(q, ", "))}
	}
	out := cur[:0:0]
	for _, t := range cur {
		if !slices.Contains(tags, t) {
			out = append(out, t)
		}
	}
	return d.with(node, out), nil
}

// Match is one OP_TAGS_SEARCH result: the object's path ("/cluster",
// "/nodes/NAME") and the tag.
type Match struct {
	Path, Tag string
}

// MarshalJSON: Ganeti's (path, tag) pair.
func (m Match) MarshalJSON() ([]byte, error) { return json.Marshal([]string{m.Path, m.Tag}) }

// Search is OP_TAGS_SEARCH: the tags of the cluster and of nodes that re
// finds, in Ganeti's order (cluster first, then the nodes in order).
func (d Doc) Search(re *regexp.Regexp, nodes []string) []Match {
	out := []Match{}
	for _, t := range d.Cluster {
		if re.MatchString(t) {
			out = append(out, Match{"/cluster", t})
		}
	}
	for _, n := range nodes {
		for _, t := range d.Nodes[n] {
			if re.MatchString(t) {
				out = append(out, Match{"/nodes/" + n, t})
			}
		}
	}
	return out
}

// CompilePattern compiles an OP_TAGS_SEARCH pattern (Python's re.search;
// Go's RE2 syntax is a subset for the usual patterns), refused as Ganeti
// refuses a pattern it cannot compile.
func CompilePattern(p string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, &Error{Class: "OpPrereqError", Kind: "wrong_input", Msg: fmt.Sprintf("Invalid search pattern '%s': %v", p, err)}
	}
	return re, nil
}
