package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jobq-dev/jobq/locking"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/idem"
	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/query"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/luxi"
)

// luxiHandler answers LUXI calls: job calls from the queue while this
// node is the master, handed to the master otherwise (forward.go); jobq's
// cluster calls (Jobq*) on every node.
type luxiHandler struct {
	n       *nodeRT
	q       *queue.Queue
	cluster *cluster.Config
	who     author.Actor // the call's author (the socket's peer)
	admin   bool         // whether who may make administrative calls
	// forwarded: the calls other nodes hand this one (forward.go), which
	// are never handed on again.
	forwarded bool
}

func badArgs(method, format string, args ...any) error {
	return luxi.NewError("OpPrereqError", fmt.Sprintf("Invalid arguments for %s: ", method)+fmt.Sprintf(format, args...), "wrong_input")
}

// jobID accepts an id as a JSON number or a decimal string (older Ganeti
// clients send strings).
type jobID int64

func (id *jobID) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("job id must be a number, got %s", b)
		}
		n = json.Number(s)
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("job id must be a non-negative integer, got %s", b)
	}
	*id = jobID(v)
	return nil
}

func convertErr(err error) error {
	var qe *queue.Error
	if errors.As(err, &qe) {
		return luxi.NewError(qe.Class, qe.Args...)
	}
	var fe *query.Error
	if errors.As(err, &fe) {
		if fe.Class == query.ClassRequest {
			return &luxi.RequestError{Reason: fe.Message()}
		}
		return luxi.NewError(fe.Class, fe.Args...)
	}
	return err
}

func (h *luxiHandler) ServeLUXI(ctx context.Context, req *luxi.Request) (res any, err error) {
	if req.Method == handOverMethod {
		// Only between nodes, on the forwarded calls' stream.
		if !h.forwarded {
			return nil, luxi.UnknownMethod(req.Method)
		}
		return h.n.handOver(ctx, req)
	}
	var who author.Actor
	var admin bool
	if h.forwarded {
		// The node the client called names the caller and has judged
		// whether they may administer (node RPC is mutual TLS on the
		// cluster certificate: only nodes speak here).
		if req, who, admin, err = unwrapForwarded(req); err != nil {
			return nil, err
		}
	} else {
		who, admin = h.n.auth.peer(ctx)
		var done func(error)
		if done, err = h.n.authorize(req.Method, req.Args, who, admin); err != nil {
			return nil, err
		}
		if done != nil {
			// The audit line is written here, on the node the caller
			// reached, with the outcome the master gave.
			defer func() { done(err) }()
		}
	}
	if strings.HasPrefix(req.Method, "Jobq") {
		res, err := h.n.serveCluster(ctx, req)
		if err != nil {
			return nil, convertErr(err)
		}
		return res, nil
	}
	q := h.n.queue()
	if q == nil && h.forwarded {
		// A new master opening its queue takes the call once it is open,
		// rather than have the node that forwarded it try again after
		// its back-off.
		q = h.n.awaitOwnQueue(ctx)
	}
	if q == nil {
		if h.forwarded {
			// Forwarded by a node that took this one for the master: it
			// tries the next master (no second hop).
			return nil, luxi.NoMasterError(fmt.Sprintf("%s at node %s: it does not run the queue; the call was not carried out", luxi.NoMasterPrefix, h.n.self))
		}
		return h.n.forward(ctx, req, who, admin)
	}
	res, err = (&luxiHandler{n: h.n, q: q, cluster: h.n.config(), who: who, admin: admin}).serveLocal(ctx, req)
	if err != nil && notCarriedOut(err) {
		// This node stopped being the master under the call, before
		// anything of it was stored: the next master takes it.
		if h.forwarded {
			return nil, luxi.NoMasterError(fmt.Sprintf("%s at node %s: it stopped leading; the call was not carried out", luxi.NoMasterPrefix, h.n.self))
		}
		return h.n.forward(ctx, req, who, admin)
	}
	return res, err
}

// errNotStored is a submission none of whose jobs were stored because
// this node stopped leading before it proposed them to the log.
var errNotStored = errors.New("no job of the submission was stored: this node stopped leading")

// notCarriedOut says whether a job call failed because this node stopped
// being the master before anything of it was stored.
func notCarriedOut(err error) bool {
	return errors.Is(err, errNotStored) || queueStopping(err)
}

// notLeading says whether every job of a submission failed because this
// node was no longer leading when it proposed them (nothing was stored).
func notLeading(res []queue.SubmitResult) bool {
	for _, r := range res {
		if !errors.Is(r.Err, consensus.ErrNotLeader) {
			return false
		}
	}
	return len(res) > 0
}

// serveLocal serves a job call from this node's queue.
func (h *luxiHandler) serveLocal(ctx context.Context, req *luxi.Request) (any, error) {
	res, err := h.serve(ctx, req)
	if err != nil {
		return nil, convertErr(err)
	}
	return res, nil
}

// submit submits jobs as the call's author, with an audit line when they
// carry an administrative opcode.
func (h *luxiHandler) submit(method string, jobs [][]json.RawMessage, o queue.SubmitOptions) ([]queue.SubmitResult, error) {
	o.Author, o.Admin = h.who, h.admin
	res, err := h.q.SubmitWith(jobs, o)
	if op := adminOpcodeIn(jobs); op != "" {
		result := resultOf(err)
		if err == nil {
			result = submitResults(res)
		}
		audit(h.n.log, h.who, method+" "+op, "", result)
	}
	return res, err
}

// adminOpcodeIn is the first administrative OP_ID of jobs, "" for none.
func adminOpcodeIn(jobs [][]json.RawMessage) string {
	for _, ops := range jobs {
		for _, op := range ops {
			if id := job.OpID(op); author.AdminOpcode(id) {
				return id
			}
		}
	}
	return ""
}

// submitResults is a submission's outcome for the audit log: "job=N" for
// each job, or its error.
func submitResults(res []queue.SubmitResult) string {
	parts := make([]string, len(res))
	for i, r := range res {
		if r.Err != nil {
			parts[i] = "refused: " + r.Err.Error()
		} else {
			parts[i] = fmt.Sprintf("job=%d", r.ID)
		}
	}
	return strings.Join(parts, ", ")
}

// queueStopping is the queue's refusal of a submission because it stops:
// nothing was stored.
func queueStopping(err error) bool {
	var le *luxi.Error
	return errors.As(err, &le) && le.Class == "GenericError" && len(le.Args) == 1 && le.Args[0] == queue.MsgShuttingDown
}

func (h *luxiHandler) serve(ctx context.Context, req *luxi.Request) (any, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(req.Args, &raw); err != nil {
		return nil, badArgs(req.Method, "arguments must be a list")
	}
	switch req.Method {
	case "SubmitJob", "SubmitJobToDrainedQueue":
		var ops []json.RawMessage
		timing, key, err := submitArgs(req, len(raw), &ops)
		if err != nil {
			return nil, err
		}
		// A relative dependency names an earlier job of a
		// SubmitManyJobs call; alone, a job has none (Ganeti's check).
		if err := job.CheckNoRelativeDeps(ops); err != nil {
			return nil, luxi.NewError("GenericError", err.Error())
		}
		res, err := h.submit(req.Method, [][]json.RawMessage{ops}, queue.SubmitOptions{
			IgnoreDrain: req.Method == "SubmitJobToDrainedQueue", Timing: timing, IdempotencyKey: key})
		if err != nil {
			return nil, err
		}
		if notLeading(res) {
			return nil, errNotStored
		}
		if res[0].Err != nil {
			return nil, luxi.NewError("GenericError", res[0].Err.Error())
		}
		return res[0].ID, nil
	case "SubmitManyJobs":
		var jobs [][]json.RawMessage
		timing, key, err := submitArgs(req, len(raw), &jobs)
		if err != nil {
			return nil, err
		}
		res, err := h.submit(req.Method, jobs, queue.SubmitOptions{Timing: timing, IdempotencyKey: key})
		if err != nil {
			return nil, err
		}
		if notLeading(res) {
			return nil, errNotStored
		}
		out := make([][2]any, len(res))
		for i, r := range res {
			if r.Err != nil {
				out[i] = [2]any{false, r.Err.Error()}
			} else {
				out[i] = [2]any{true, r.ID}
			}
		}
		return out, nil
	case "WaitForJobChange":
		var (
			id        jobID
			fields    []string
			prev      json.RawMessage
			prevSer   *float64
			timeoutSe float64
		)
		if err := req.UnmarshalArgs(&id, &fields, &prev, &prevSer, &timeoutSe); err != nil {
			return nil, err
		}
		serial := int64(-1)
		if prevSer != nil {
			serial = int64(*prevSer)
		}
		if math.IsNaN(timeoutSe) || timeoutSe < 0 {
			timeoutSe = 0
		}
		timeout := time.Duration(min(timeoutSe, 1e6) * float64(time.Second))
		r, err := h.q.WaitForJobChange(ctx, int64(id), fields, prev, serial, timeout)
		if err != nil {
			return nil, err
		}
		if r == nil {
			return nil, nil
		}
		return r, nil
	case "QueryJobs":
		var ids *[]jobID // null: every live job
		var fields []string
		if err := req.UnmarshalArgs(&ids, &fields); err != nil {
			return nil, err
		}
		var qids []int64
		if ids != nil {
			qids = make([]int64, len(*ids))
			for i, id := range *ids {
				qids[i] = int64(id)
			}
		}
		return h.q.QueryJobs(qids, fields)
	case "Query":
		return h.query(req, raw)
	case "ReplaceFilter":
		return h.replaceFilter(ctx, req)
	case "DeleteFilter":
		var uuid string
		if err := req.UnmarshalArgs(&uuid); err != nil {
			return nil, err
		}
		return nil, h.n.deleteFilter(ctx, uuid)
	case "QueryFilters":
		return h.classicQueryFilters(req)
	case "SetWatcherPause":
		return h.n.setWatcherPause(ctx, req)
	case "QueryTags":
		return h.n.queryTags(req)
	case "QueryClusterInfo":
		return h.n.clusterInfo(h.q.MaxRunning()), nil
	case "QueryNodes":
		return h.n.queryNodes(req)
	case "QueryFields":
		if len(raw) != 2 {
			return nil, badArgs(req.Method, "expected [resource, fields]")
		}
		var what string
		var fields *[]string // null: every field
		if err := req.UnmarshalArgs(&what, &fields); err != nil {
			return nil, err
		}
		var names []string
		if fields != nil {
			names = *fields
		}
		switch what {
		case "job":
			return query.BuildFieldsResult(query.FieldsForQueryFields(names)), nil
		case "filter":
			return query.BuildFieldsResult(filterFieldsForQueryFields(names)), nil
		case "lock":
			if len(names) == 0 {
				return query.BuildFieldsResult(query.LockFields()), nil
			}
			return query.BuildFieldsResult(query.LookupLockFields(names)), nil
		}
		return nil, unsupportedResource(what)
	case "CancelJob":
		var id jobID
		kill := false
		switch len(raw) {
		case 1:
			if err := req.UnmarshalArgs(&id); err != nil {
				return nil, err
			}
		case 2:
			if err := req.UnmarshalArgs(&id, &kill); err != nil {
				return nil, err
			}
		default:
			return nil, badArgs(req.Method, "expected [job_id] or [job_id, kill]")
		}
		ok, msg, err := h.q.CancelJobBy(int64(id), kill, h.who)
		h.auditJob(req.Method, int64(id), ok, msg, err)
		if err != nil {
			return nil, err
		}
		return [2]any{ok, msg}, nil
	case "ChangeJobPriority":
		var id jobID
		var prio int
		if err := req.UnmarshalArgs(&id, &prio); err != nil {
			return nil, err
		}
		ok, msg, err := h.q.ChangeJobPriorityBy(int64(id), prio, h.who)
		h.auditJob(req.Method, int64(id), ok, msg, err)
		if err != nil {
			return nil, err
		}
		return [2]any{ok, msg}, nil
	case "ArchiveJob":
		var id jobID
		if err := req.UnmarshalArgs(&id); err != nil {
			return nil, err
		}
		ok, err := h.q.ArchiveJobBy(int64(id), h.who)
		h.auditJob(req.Method, int64(id), ok, "", err)
		return ok, err
	case "AutoArchiveJobs":
		var age, timeout float64
		if err := req.UnmarshalArgs(&age, &timeout); err != nil {
			return nil, err
		}
		n, left, err := h.q.AutoArchiveJobs(int64(age), timeout)
		if err != nil {
			return nil, err
		}
		return [2]int{n, left}, nil
	case "SetDrainFlag":
		var on bool
		if err := req.UnmarshalArgs(&on); err != nil {
			return nil, err
		}
		if err := h.q.SetDrainFlag(on); err != nil {
			return nil, err
		}
		return true, nil
	case "QueryConfigValues":
		var names []string
		if err := req.UnmarshalArgs(&names); err != nil {
			return nil, err
		}
		out := make([]any, len(names))
		for i, n := range names {
			switch n {
			case "cluster_name":
				out[i] = h.cluster.Name
			case "master_node":
				out[i] = h.cluster.Master
			case "drain_flag":
				out[i] = h.q.Drained()
			case "watcher_pause":
				// Whole seconds, as luxid answers.
				if until := h.n.watcherPause(time.Now()); until != nil {
					out[i] = int64(*until)
				} else {
					out[i] = nil
				}
			default:
				return nil, luxi.NewError("OpPrereqError", fmt.Sprintf("Unknown configuration value '%s'", n), "wrong_input")
			}
		}
		return out, nil
	}
	return nil, luxi.UnknownMethod(req.Method)
}

func (h *luxiHandler) query(req *luxi.Request, raw []json.RawMessage) (any, error) {
	if len(raw) != 3 {
		return nil, badArgs(req.Method, "expected [resource, fields, filter]")
	}
	var what string
	var fields []string
	if err := json.Unmarshal(raw[0], &what); err != nil {
		return nil, badArgs(req.Method, "resource must be a string")
	}
	if what != "job" && what != "lock" && what != "filter" {
		return nil, unsupportedResource(what)
	}
	if err := json.Unmarshal(raw[1], &fields); err != nil || fields == nil {
		return nil, badArgs(req.Method, "fields must be a list of strings")
	}
	if what == "filter" {
		return h.queryFilters(fields, raw[2])
	}
	if what == "lock" {
		flt, err := query.ParseFilterFor(raw[2], query.IsLockField)
		if err != nil {
			return nil, err
		}
		return h.queryLocks(fields, flt)
	}
	flt, err := query.ParseFilter(raw[2])
	if err != nil {
		return nil, err
	}
	sel := queue.Selector{Match: flt.Match, Archived: query.WantArchived(fields)}
	ids, byID := flt.RequestedIDs()
	if byID {
		sel.IDs = ids
		sel.Match = nil
	}
	defs := query.LookupJobFields(fields)
	known := make([]string, 0, len(fields))
	for _, d := range defs {
		if d.Kind != query.KindUnknown {
			known = append(known, d.Name)
		}
	}
	if byID {
		rows, err := h.q.Select(sel, append([]string{"id"}, known...))
		if err != nil {
			return nil, err
		}
		// Ganeti answers every requested id, in the order asked, with
		// "unavailable" values for jobs that do not exist.
		found := map[int64][]any{}
		for _, r := range rows {
			if id, ok := r[0].(int64); ok {
				found[id] = r[1:]
			}
		}
		out := make([][]any, 0, len(ids))
		for _, id := range ids {
			vals, ok := found[id]
			row := make([]any, len(defs))
			k := 0
			for j, d := range defs {
				if d.Kind == query.KindUnknown {
					continue
				}
				switch {
				case d.Name == "id":
					row[j] = id
				case !ok:
					row[j] = query.Unavailable()
				default:
					row[j] = vals[k]
				}
				k++
			}
			out = append(out, row)
		}
		return query.BuildQueryResult(defs, out), nil
	}
	rows, err := h.q.Select(sel, known)
	if err != nil {
		return nil, err
	}
	// Put unknown fields back as placeholders; BuildQueryResult marks them.
	full := make([][]any, len(rows))
	for i, r := range rows {
		row := make([]any, len(defs))
		k := 0
		for j, d := range defs {
			if d.Kind != query.KindUnknown {
				row[j] = r[k]
				k++
			}
		}
		full[i] = row
	}
	return query.BuildQueryResult(defs, full), nil
}

func unsupportedResource(what string) error {
	return luxi.NewError("OpPrereqError", fmt.Sprintf("Resource %q is not supported by jobq, only \"job\", \"lock\" and \"filter\"", what), "wrong_input")
}

// queryLocks answers Query on "lock" (gnt-debug locks, jobq locks): every
// lock with its mode, owners ("job/N") and pending acquires
// ([mode, [owners]]).
func (h *luxiHandler) queryLocks(fields []string, flt *query.Filter) (any, error) {
	defs := query.LookupLockFields(fields)
	owners := func(ids []locking.Owner) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = fmt.Sprintf("job/%d", id)
		}
		return out
	}
	var rows [][]any
	for _, li := range h.q.Locks() {
		vals := map[string]any{"name": li.Name, "owner": owners(li.Owners)}
		if len(li.Owners) > 0 {
			vals["mode"] = li.Mode.String()
		} else {
			vals["mode"] = nil
		}
		pending := make([]any, len(li.Pending))
		for i, p := range li.Pending {
			pending[i] = []any{p.Mode.String(), owners(p.Owners)}
		}
		vals["pending"] = pending
		get := func(f string) (any, bool) {
			v, ok := vals[f]
			if s, isList := v.([]string); isList {
				l := make([]any, len(s))
				for i := range s {
					l[i] = s[i]
				}
				return l, ok
			}
			return v, ok
		}
		if m, err := flt.Match(get); err != nil {
			return nil, err
		} else if !m {
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

// submitArgs decodes a submission's arguments: Ganeti's one (the ops, or
// the jobs), then jobq's optional options object: the timing
// ({"not_before": SECONDS, "timeout": SECONDS, "op_timeout": SECONDS},
// job.ParseTimingObject) and an idempotency key ("idempotency_key",
// package idem).
func submitArgs(req *luxi.Request, n int, first any) (job.Timing, string, error) {
	if n != 2 {
		return job.Timing{}, "", req.UnmarshalArgs(first)
	}
	var opts json.RawMessage
	if err := req.UnmarshalArgs(first, &opts); err != nil {
		return job.Timing{}, "", err
	}
	key, rest, err := idem.SplitOptions(opts)
	if err != nil {
		return job.Timing{}, "", luxi.NewError("GenericError", err.Error())
	}
	t, err := job.ParseTimingObject(rest)
	if err != nil {
		return job.Timing{}, "", luxi.NewError("GenericError", err.Error())
	}
	return t, key, nil
}

// auditJob writes the audit line of a cancel, priority change or archive.
func (h *luxiHandler) auditJob(method string, id int64, ok bool, msg string, err error) {
	result := resultOf(err)
	if err == nil && !ok {
		result = "not done: " + msg
		if msg == "" {
			result = "not done"
		}
	}
	audit(h.n.log, h.who, method, fmt.Sprintf("job=%d", id), result)
}
