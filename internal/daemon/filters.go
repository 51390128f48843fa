package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/jobq-dev/jobq/internal/filter"
	"github.com/jobq-dev/jobq/internal/query"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/rapi"
	"github.com/jobq-dev/jobq/luxi"
)

// filtersKey is the cluster-wide setting that holds the job filter rules
// (filter.Encode's list).
const filtersKey = "filters"

// loadFilters reads the rules from the settings. A stored value that does
// not decode (written by a newer jobq?) is logged and applies no rules
// rather than stopping the queue.
func (n *nodeRT) loadFilters() ([]filter.Rule, *filter.Set) {
	rules, err := filter.Decode(n.settings.Get(filtersKey))
	if err == nil {
		var set *filter.Set
		if set, err = filter.Compile(rules); err == nil {
			return rules, set
		}
	}
	n.log.Error("the stored job filters cannot be read; no filter applies until they are replaced", "err", err)
	return nil, nil
}

// watchFilters hands every change of the rules to the running queue.
func (n *nodeRT) watchFilters() {
	n.settings.Watch(func(key string, _ []byte) {
		if key != filtersKey {
			return
		}
		if q := n.queue(); q != nil {
			_, set := n.loadFilters()
			q.SetFilters(set)
		}
	})
}

// filterFieldList are the fields of the "filter" resource in Ganeti's
// order (its QueryFields sorts them by name).
var filterFieldList = []query.FieldDef{
	{Name: "uuid", Title: "UUID", Kind: query.KindOther, Doc: "Filter ID"},
	{Name: "watermark", Title: "Watermark", Kind: query.KindOther, Doc: "Highest job ID used at the time when the filter was added"},
	{Name: "priority", Title: "Priority", Kind: query.KindOther, Doc: "Filter priority"},
	{Name: "predicates", Title: "Predicates", Kind: query.KindOther, Doc: "List of filter predicates"},
	{Name: "action", Title: "Action", Kind: query.KindOther, Doc: "Filter action"},
	{Name: "reason_trail", Title: "ReasonTrail", Kind: query.KindOther, Doc: "Reason why this filter was added"},
}

func filterField(name string) (query.FieldDef, bool) {
	for _, f := range filterFieldList {
		if f.Name == name {
			return f, true
		}
	}
	return query.FieldDef{}, false
}

func lookupFilterFields(names []string) []query.FieldDef {
	out := make([]query.FieldDef, 0, len(names))
	for _, n := range names {
		if f, ok := filterField(n); ok {
			out = append(out, f)
		} else {
			out = append(out, query.UnknownField(n))
		}
	}
	return out
}

func filterFieldsForQueryFields(names []string) []query.FieldDef {
	if len(names) > 0 {
		return lookupFilterFields(names)
	}
	out := append([]query.FieldDef(nil), filterFieldList...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// filterValues are a rule's field values as Ganeti sends them.
func filterValues(r filter.Rule) map[string]any {
	return map[string]any{
		"uuid":         r.UUID,
		"watermark":    r.Watermark,
		"priority":     r.Priority,
		"predicates":   r.Predicates,
		"action":       r.Action,
		"reason_trail": r.ReasonTrail,
	}
}

// rulesByUUID are the rules in uuid order (the order Ganeti lists them).
func (n *nodeRT) rulesByUUID() []filter.Rule {
	rules, _ := n.loadFilters()
	sort.Slice(rules, func(i, j int) bool { return rules[i].UUID < rules[j].UUID })
	return rules
}

// queryFilters answers Query(["filter", fields, qfilter]).
func (h *luxiHandler) queryFilters(fields []string, raw json.RawMessage) (any, error) {
	var fv any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &fv); err != nil {
			return nil, &luxi.RequestError{Reason: "the filter is not valid JSON"}
		}
	}
	flt, err := query.ParseFilterValueFor(fv, func(f string) bool { _, ok := filterField(f); return ok })
	if err != nil {
		return nil, err
	}
	defs := lookupFilterFields(fields)
	rows := [][]any{}
	for _, r := range h.n.rulesByUUID() {
		vals := filterValues(r)
		ok, err := flt.Match(func(f string) (any, bool) { v, ok := vals[f]; return v, ok })
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		row := make([]any, len(defs))
		for i, d := range defs {
			row[i] = vals[d.Name]
		}
		rows = append(rows, row)
	}
	return query.BuildQueryResult(defs, rows), nil
}

// classicQueryFilters answers QueryFilters([uuids or null, fields]), what
// gnt-filter info sends: rows of plain values.
func (h *luxiHandler) classicQueryFilters(req *luxi.Request) (any, error) {
	var names *[]string // null: every filter
	var fields []string
	if err := req.UnmarshalArgs(&names, &fields); err != nil {
		return nil, err
	}
	var uuids []string
	if names != nil {
		uuids = *names
	}
	for _, f := range fields {
		if _, ok := filterField(f); !ok {
			return nil, luxi.NewError("OpPrereqError", "Unknown output fields selected: "+f, "wrong_input")
		}
	}
	rules := h.n.rulesByUUID()
	byUUID := map[string]filter.Rule{}
	for _, r := range rules {
		byUUID[r.UUID] = r
	}
	var pick []filter.Rule
	if len(uuids) == 0 {
		pick = rules
	}
	for _, u := range uuids {
		r, ok := byUUID[u]
		if !ok {
			return nil, filterNotFound(u)
		}
		pick = append(pick, r)
	}
	out := make([][]any, 0, len(pick))
	for _, r := range pick {
		vals := filterValues(r)
		row := make([]any, len(fields))
		for i, f := range fields {
			row[i] = vals[f]
		}
		out = append(out, row)
	}
	return out, nil
}

func filterNotFound(uuid string) error {
	return luxi.NewError("OpPrereqError", fmt.Sprintf("Filter %s does not exist; 'gnt-filter list' or 'jobq filter list' shows the filters", uuid), "unknown_entity")
}

func filterInvalid(err error) error {
	return luxi.NewError("OpPrereqError", "Invalid filter: "+err.Error(), "wrong_input")
}

// replaceFilter answers ReplaceFilter([uuid or null, priority, predicates,
// action, reason]): the rule is checked, gets the highest job id as its
// watermark and luxid's entry in its reason trail (as Ganeti), replaces
// the rule of that uuid or is added, and is agreed cluster-wide; the
// answer is its uuid.
func (h *luxiHandler) replaceFilter(ctx context.Context, req *luxi.Request) (any, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(req.Args, &raw); err != nil || len(raw) != 5 {
		return nil, badArgs(req.Method, "expected [uuid, priority, predicates, action, reason]")
	}
	vals := make([]any, 5)
	for i, r := range raw {
		v, err := decodeNumbers(r)
		if err != nil {
			return nil, badArgs(req.Method, "argument %d is not JSON", i)
		}
		vals[i] = v
	}
	in := filter.Input{Priority: vals[1], Predicates: vals[2], Action: vals[3], Reason: vals[4]}
	if vals[0] != nil {
		s, ok := vals[0].(string)
		if !ok {
			return nil, filterInvalid(fmt.Errorf("uuid must be a string or null"))
		}
		in.UUID = s
	}
	return h.n.replaceFilter(ctx, in, h.q.Serial())
}

// replaceFilter stores a new or replaced rule; see luxiHandler.replaceFilter.
func (n *nodeRT) replaceFilter(ctx context.Context, in filter.Input, watermark int64) (string, error) {
	r, err := filter.NewRule(in, watermark)
	if err != nil {
		return "", filterInvalid(err)
	}
	if r.UUID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		r.UUID = filter.FormatUUID(b)
	}
	r.ReasonTrail = append(r.ReasonTrail, filter.ReasonEntry{Source: "luxid", Reason: "", TS: time.Now().UnixNano()})
	n.filterMu.Lock()
	defer n.filterMu.Unlock()
	rules, _ := n.loadFilters()
	if err := n.storeFilters(ctx, filter.Replace(rules, r)); err != nil {
		return "", err
	}
	return r.UUID, nil
}

// deleteFilter removes the rule uuid cluster-wide.
func (n *nodeRT) deleteFilter(ctx context.Context, uuid string) error {
	n.filterMu.Lock()
	defer n.filterMu.Unlock()
	rules, _ := n.loadFilters()
	u, err := filter.CheckUUID(uuid)
	if err != nil {
		return filterNotFound(uuid)
	}
	rest, found := filter.Delete(rules, u)
	if !found {
		return filterNotFound(uuid)
	}
	return n.storeFilters(ctx, rest)
}

func (n *nodeRT) storeFilters(ctx context.Context, rules []filter.Rule) error {
	if _, err := filter.Compile(rules); err != nil {
		return filterInvalid(err)
	}
	b, err := filter.Encode(rules)
	if err != nil {
		return err
	}
	if err := n.settings.Set(ctx, filtersKey, b); err != nil {
		return luxi.NewError("GenericError", "Cannot store the filters: "+err.Error())
	}
	return nil
}

func decodeNumbers(b []byte) (any, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// rapiFilters serves RAPI's /2/filters from the same rules.
type rapiFilters struct {
	n *nodeRT
	q *queue.Queue
}

func (f rapiFilters) Rules() []filter.Rule { return f.n.rulesByUUID() }

func (f rapiFilters) Replace(ctx context.Context, in filter.Input) (string, error) {
	u, err := f.n.replaceFilter(ctx, in, f.q.Serial())
	return u, rapiFilterError(err)
}

func (f rapiFilters) Delete(ctx context.Context, uuid string) error {
	return rapiFilterError(f.n.deleteFilter(ctx, uuid))
}

// rapiFilterError turns the LUXI errors of a filter change into RAPI's
// statuses: 404 for a filter that does not exist, 400 for an invalid one.
func rapiFilterError(err error) error {
	var le *luxi.Error
	if !errors.As(err, &le) || len(le.Args) != 2 {
		return err
	}
	msg := fmt.Sprint(le.Args[0])
	switch le.Args[1] {
	case "unknown_entity":
		return rapi.StatusError(http.StatusNotFound, msg)
	case "wrong_input":
		return rapi.StatusError(http.StatusBadRequest, msg)
	}
	return err
}
