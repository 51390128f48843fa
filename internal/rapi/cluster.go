package rapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/luxi"
)

// LUXI calls jobqd's own LUXI handler in-process: Ganeti's RAPI answers
// these resources through luxid's calls (rlib2), and so does jobq's:
//
//	GET    /2/info                     QueryClusterInfo
//	GET    /2/tags                     QueryTags("cluster", "")
//	PUT    /2/tags?tag=T&...[&dry-run=1]        a job of OP_TAGS_SET: its id
//	DELETE /2/tags?tag=T&...[&dry-run=1]        a job of OP_TAGS_DEL: its id
//	GET    /2/nodes/NAME/tags          QueryTags("node", NAME); PUT,
//	                                   DELETE as /2/tags, on the node
//	GET    /2/query/RES?fields=F,...   Query(RES, fields, null) (read or
//	                                   write users only, as Ganeti)
//	PUT    /2/query/RES                body {"fields": [...], "qfilter" or
//	                                   "filter": FILTER}: Query(RES, ...)
//	GET    /2/query/RES/fields[?fields=F,...]   QueryFields(RES, fields)
//
// An error the call answers is 400 when it is the request's
// (OpPrereqError, a filter that does not parse), 502 when this node is not
// the master, else 500.
type LUXI func(ctx context.Context, method string, args ...any) (json.RawMessage, error)

// queryAccess: /2/query/RES shows job inputs and results; Ganeti asks a
// read or write user for it even without --require-authentication.
var queryAccess = []string{AccessRead, AccessWrite}

// clusterRoute is the route of the resources answered through LUXI; the
// returned item is the node of /2/nodes/NAME/tags or the resource of
// /2/query/RES.
func (s *Server) clusterRoute(path string) (name, item string, eps map[string]endpoint, ok bool) {
	if s.cfg.LUXI == nil {
		return "", "", nil, false
	}
	tagEPs := func(kind string) map[string]endpoint {
		return map[string]endpoint{
			"GET":    {fn: func(req *request) (any, error) { return s.getTags(req, kind) }},
			"PUT":    {access: writeAccess, maxBody: SmallBodySize, fn: func(req *request) (any, error) { return s.changeTags(req, kind, "OP_TAGS_SET") }},
			"DELETE": {access: writeAccess, maxBody: SmallBodySize, fn: func(req *request) (any, error) { return s.changeTags(req, kind, "OP_TAGS_DEL") }},
		}
	}
	if path == "/2/tags" {
		return path, "", tagEPs("cluster"), true
	}
	if rest, found := strings.CutPrefix(path, "/2/nodes/"); found {
		node, ok := strings.CutSuffix(rest, "/tags")
		if !ok || node == "" || strings.Contains(node, "/") {
			return "", "", nil, false
		}
		return "/2/nodes/[node_name]/tags", node, tagEPs("node"), true
	}
	if rest, found := strings.CutPrefix(path, "/2/query/"); found {
		res, fields := strings.CutSuffix(rest, "/fields")
		if res == "" || strings.Contains(res, "/") {
			return "", "", nil, false
		}
		if fields {
			return "/2/query/[resource]/fields", res, map[string]endpoint{"GET": {fn: s.queryFields}}, true
		}
		return "/2/query/[resource]", res, map[string]endpoint{
			"GET": {access: queryAccess, fn: s.queryGet},
			"PUT": {access: queryAccess, maxBody: SmallBodySize, fn: s.queryPut},
		}, true
	}
	return "", "", nil, false
}

// luxiCall calls LUXI and converts its error.
func (s *Server) luxiCall(req *request, method string, args ...any) (json.RawMessage, error) {
	res, err := s.cfg.LUXI(req.r.Context(), method, args...)
	if err == nil {
		return res, nil
	}
	var le *luxi.Error
	if errors.As(err, &le) {
		msg := le.Class
		if len(le.Args) > 0 {
			msg = fmt.Sprint(le.Args[0])
		}
		switch le.Class {
		case "OpPrereqError", "QueryFilterParseError", "ParameterError":
			return nil, errorf(http.StatusBadRequest, "%s", msg)
		case "NotMasterError":
			return nil, errorf(http.StatusBadGateway, "%s", msg)
		}
		return nil, errorf(http.StatusInternalServerError, "%s", msg)
	}
	var re *luxi.RequestError
	if errors.As(err, &re) {
		return nil, errorf(http.StatusBadRequest, "%s", re.Reason)
	}
	return nil, err
}

func (s *Server) getTags(req *request, kind string) (any, error) {
	return s.luxiCall(req, "QueryTags", kind, req.uuid)
}

// changeTags submits a job of one OP_TAGS_SET or OP_TAGS_DEL opcode, as
// Ganeti's _R_Tags: the tags of ?tag=, ?dry-run=, the reason trail of
// ?reason= and the resource.
func (s *Server) changeTags(req *request, kind, opID string) (any, error) {
	q := req.r.URL.Query()
	tags := q["tag"]
	if len(tags) == 0 {
		verb := "add"
		if opID == "OP_TAGS_DEL" {
			verb = "delete"
		}
		return nil, errorf(http.StatusBadRequest, "Please specify tag(s) to %s using the the 'tag' parameter", verb)
	}
	dry, err := intParam(req.r, "dry-run")
	if err != nil {
		return nil, err
	}
	var name any // the cluster: null, as Ganeti sends it
	src := "gnt:library:rlib2:tags"
	if kind == "node" {
		name, src = req.uuid, "gnt:library:rlib2:nodes_name_tags"
	}
	now := time.Now().UnixNano()
	var trail []any
	if r := q.Get("reason"); r != "" {
		trail = append(trail, []any{"gnt:user", r, now})
	}
	trail = append(trail, []any{src, "", now})
	op := new(object).Add("OP_ID", opID).Add("kind", kind).Add("name", name).Add("tags", tags).
		Add("dry_run", dry != 0).Add("reason", trail)
	b, err := json.Marshal(op)
	if err != nil {
		return nil, err
	}
	raw, err := s.luxiCall(req, "SubmitJob", []json.RawMessage{b})
	if err != nil {
		return nil, err
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil {
		return nil, fmt.Errorf("SubmitJob answered %s, not a job id", raw)
	}
	return id, nil
}

// splitFields is Ganeti's _SplitQueryFields: the first ?fields=, split at
// commas, each stripped.
func splitFields(v string) []string {
	out := strings.Split(v, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

func (s *Server) queryFields(req *request) (any, error) {
	var fields any // null: every field
	if v, ok := req.r.URL.Query()["fields"]; ok && len(v) > 0 {
		fields = splitFields(v[0])
	}
	return s.luxiCall(req, "QueryFields", req.uuid, fields)
}

func (s *Server) queryGet(req *request) (any, error) {
	v, ok := req.r.URL.Query()["fields"]
	if !ok || len(v) == 0 {
		return nil, errorf(http.StatusBadRequest, "Missing 'fields' query argument")
	}
	return s.luxiCall(req, "Query", req.uuid, splitFields(v[0]), nil)
}

// queryPut is R_2_query.PUT: the fields of the body, else of ?fields=;
// the filter of "qfilter", else of "filter".
func (s *Server) queryPut(req *request) (any, error) {
	body, err := req.bodyObject()
	if err != nil {
		return nil, err
	}
	var fields []string
	if f, ok := body["fields"]; ok {
		if err := json.Unmarshal(f, &fields); err != nil || fields == nil {
			return nil, errorf(http.StatusBadRequest, "'fields' must be a list of field names")
		}
	} else {
		v, ok := req.r.URL.Query()["fields"]
		if !ok || len(v) == 0 {
			return nil, errorf(http.StatusBadRequest, "Missing 'fields' query argument")
		}
		fields = splitFields(v[0])
	}
	flt := json.RawMessage("null")
	for _, k := range []string{"qfilter", "filter"} {
		if f, ok := body[k]; ok && string(f) != "null" {
			flt = f
			break
		}
	}
	return s.luxiCall(req, "Query", req.uuid, fields, flt)
}

// getClusterInfo is GET /2/info through LUXI: QueryClusterInfo, as Ganeti.
func (s *Server) getClusterInfo(req *request) (any, error) {
	return s.luxiCall(req, "QueryClusterInfo")
}
