package rapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/jobq-dev/jobq/internal/filter"
)

// Filters is what the job filter resources (/2/filters, /2/filters/UUID)
// need: jobqd's cluster-wide filter rules. Errors may be StatusError
// values (404 for a rule that does not exist, 400 for an invalid one).
type Filters interface {
	// Rules are the rules, in uuid order.
	Rules() []filter.Rule
	// Replace stores a new rule, or replaces the rule in.UUID, and
	// returns its uuid.
	Replace(ctx context.Context, in filter.Input) (string, error)
	// Delete removes the rule uuid.
	Delete(ctx context.Context, uuid string) error
}

// StatusError is an error answered with an HTTP status code and message,
// for the implementations of Filters.
func StatusError(code int, msg string) error { return errorf(code, "%s", msg) }

// filterRuleFields are the members of a filter in GET /2/filters?bulk=1
// and GET /2/filters/UUID, in the order of Ganeti's documentation.
var filterRuleFields = []string{"uuid", "watermark", "reason_trail", "priority", "action", "predicates"}

func filterObject(r filter.Rule) *object {
	vals := map[string]any{
		"uuid": r.UUID, "watermark": r.Watermark, "reason_trail": r.ReasonTrail,
		"priority": r.Priority, "action": r.Action, "predicates": r.Predicates,
	}
	o := new(object)
	for _, f := range filterRuleFields {
		o.Add(f, vals[f])
	}
	return o
}

// filterRoute is the route of /2/filters and /2/filters/UUID. Changes
// need a write user, as in Ganeti, whose RAPI write users may do all its
// RAPI does (and Ganeti's own QA adds filters as one): jobq's admin option
// guards what Ganeti's RAPI cannot do (administrative opcodes in POST
// /2/jobs, the dashboard's drain). Each change is audited.
func (s *Server) filterRoute(path string) (name, uuid string, eps map[string]endpoint, ok bool) {
	if s.cfg.Filters == nil {
		return "", "", nil, false
	}
	if path == "/2/filters" || path == "/2/filters/" {
		return "/2/filters", "", map[string]endpoint{
			"GET":  {fn: s.getFilters},
			"POST": {access: writeAccess, maxBody: SmallBodySize, fn: s.audited("filter add", s.putFilter)},
		}, true
	}
	uuid, found := strings.CutPrefix(path, "/2/filters/")
	if !found || uuid == "" || strings.Contains(uuid, "/") {
		return "", "", nil, false
	}
	return "/2/filters/[filter_uuid]", uuid, map[string]endpoint{
		"GET": {fn: s.getFilter},
		"PUT": {access: writeAccess, maxBody: SmallBodySize, fn: s.audited("filter replace", s.putFilter)},
		// Ganeti's client sends {} with DELETE.
		"DELETE": {access: writeAccess, maxBody: SmallBodySize, fn: s.audited("filter delete", s.deleteFilter)},
	}, true
}

func (s *Server) getFilters(req *request) (any, error) {
	bulk, err := intParam(req.r, "bulk")
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, r := range s.cfg.Filters.Rules() {
		if bulk != 0 {
			out = append(out, filterObject(r))
			continue
		}
		// Ganeti's client reads "uuid" (rlib2's BuildUriList with
		// uri_fields ("uuid", "uri")).
		out = append(out, new(object).Add("uuid", r.UUID).Add("uri", "/2/filters/"+r.UUID))
	}
	return out, nil
}

func filterNotFound(uuid string) error {
	return errorf(http.StatusNotFound, "Filter %s not found; GET /2/filters lists the filters", uuid)
}

func (s *Server) getFilter(req *request) (any, error) {
	for _, r := range s.cfg.Filters.Rules() {
		if strings.EqualFold(r.UUID, req.uuid) {
			return filterObject(r), nil
		}
	}
	return nil, filterNotFound(req.uuid)
}

func (s *Server) deleteFilter(req *request) (any, error) {
	return nil, s.cfg.Filters.Delete(req.r.Context(), req.uuid)
}

// putFilter answers POST /2/filters (a new rule) and PUT /2/filters/UUID
// (the rule UUID, replaced or created): body members priority,
// predicates, action, reason (and for PUT uuid, which must be the path's
// if given); the answer is the rule's uuid.
func (s *Server) putFilter(req *request) (any, error) {
	body, err := req.bodyObject()
	if err != nil {
		return nil, err
	}
	in := filter.Input{UUID: req.uuid}
	for k, raw := range body {
		var v any
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, errorf(http.StatusBadRequest, "'%s' parameter: %v", k, err)
		}
		switch k {
		case "priority":
			in.Priority = v
		case "predicates":
			in.Predicates = v
		case "action":
			in.Action = v
		case "reason":
			in.Reason = v
		case "uuid":
			u, ok := v.(string)
			if !ok || req.uuid == "" || !strings.EqualFold(u, req.uuid) {
				return nil, errorf(http.StatusBadRequest, "The 'uuid' parameter must be the filter's uuid of the path, /2/filters/UUID")
			}
		default:
			return nil, errorf(http.StatusBadRequest, "Unknown parameter '%s'; a filter takes priority, predicates, action and reason", k)
		}
	}
	return s.cfg.Filters.Replace(req.r.Context(), in)
}
