package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/declared"
	"github.com/jobq-dev/jobq/internal/execute"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/opdef"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/internal/web"
	"github.com/jobq-dev/jobq/luxi"
)

// Declared opcodes' edge (issue 15): the definitions are the cluster-wide
// setting opdef.Key, read and written through n.settings only; the
// registry asks the catalog (declared.Catalog) for the OP_IDs it does not
// know; each node runs the programs masters order (node RPC /v1/exec,
// fenced by the master's term) in a cgroup of its own when it can.

// opdefMu makes each change of the definitions a read-modify-write of
// the setting that no other change interleaves (on the master).
var opdefMu sync.Mutex

// initDeclared wires the catalog into the registry, follows the setting,
// and finds the cgroup executions (declared opcodes' programs, restricted
// commands) are contained in (killing what a killed jobqd left there).
func (n *nodeRT) initDeclared() {
	n.opdefs = declared.NewCatalog()
	n.o.Registry.SetDeclared(n.opdefs.Lookup)
	n.settings.Watch(func(key string, value []byte) {
		if key != opdef.Key {
			return
		}
		if err := n.opdefs.Load(value); err != nil {
			n.log.Error("the declared opcodes cannot be read", "err", err)
		}
	})
	cg, err := execute.FindCgroups(execute.CgroupsName(n.o.DataDir))
	if err != nil {
		n.log.Warn("declared opcodes and restricted commands run in a process group, not a cgroup: a child that calls setsid escapes a cancel (run jobqd as root, or with systemd's Delegate=yes)", "err", err)
		return
	}
	n.cgroups = cg
	if k := cg.KillLeftovers(); k > 0 {
		n.log.Warn("killed the executions an earlier jobqd left running", "cgroups", k)
	}
}

// loadDeclared reads the setting into the catalog (a queue that opens).
func (n *nodeRT) loadDeclared() {
	if err := n.opdefs.Load(n.settings.Get(opdef.Key)); err != nil {
		n.log.Error("the declared opcodes cannot be read", "err", err)
	}
}

// opcodeInfo is one definition in JobqOpcodeList/Info's answer.
type opcodeInfo struct {
	*opdef.Def
	Version string  `json:"version"`
	Added   float64 `json:"added"`
}

// serveOpcodes answers the declared opcodes' LUXI calls; ok is false for
// other methods.
//
//	JobqOpcodeAdd [TOML, MODE]   adds (MODE "add") or replaces ("replace") one
//	JobqOpcodeRemove [OP_ID]     removes one (its queued jobs still run)
//	JobqOpcodeList []            every current definition
//	JobqOpcodeInfo [OP_ID]       one, current
//	JobqJobOutput [JOB_ID]       the output files every node kept of a job
func (n *nodeRT) serveOpcodes(ctx context.Context, req *luxi.Request) (res any, ok bool, err error) {
	switch req.Method {
	case "JobqOpcodeAdd", "JobqOpcodeRemove", "JobqOpcodeList", "JobqOpcodeInfo", "JobqJobOutput":
	default:
		return nil, false, nil
	}
	prereq := func(format string, a ...any) error {
		return luxi.NewError("OpPrereqError", fmt.Sprintf(format, a...), "wrong_input")
	}
	if n.queue() == nil {
		return nil, true, n.notMaster()
	}
	doc := n.opdefs.Doc()
	info := func(id string) *opcodeInfo {
		d, v := doc.Get(id)
		if d == nil {
			return nil
		}
		return &opcodeInfo{Def: d, Version: v, Added: doc.Added[v]}
	}
	switch req.Method {
	case "JobqJobOutput":
		var id int64
		if err := req.UnmarshalArgs(&id); err != nil {
			return nil, true, badArgs(req.Method, "expected [job_id]")
		}
		return n.jobOutput(ctx, id), true, nil
	case "JobqOpcodeList":
		out := []*opcodeInfo{}
		for _, id := range doc.IDs() {
			out = append(out, info(id))
		}
		return out, true, nil
	case "JobqOpcodeInfo":
		var id string
		if err := req.UnmarshalArgs(&id); err != nil {
			return nil, true, badArgs(req.Method, "expected [OP_ID]")
		}
		i := info(id)
		if i == nil {
			if n.o.Registry.Has(id) {
				return nil, true, prereq("%s is an opcode jobq provides, not a declared one: submit it as JSON (jobq submit -- '{\"OP_ID\": \"%s\", ...}')", id, id)
			}
			return nil, true, prereq("unknown opcode %s: 'jobq opcode list' lists the declared ones", id)
		}
		return i, true, nil
	}
	opdefMu.Lock()
	defer opdefMu.Unlock()
	doc = n.opdefs.Doc()
	var id string
	switch req.Method {
	case "JobqOpcodeAdd":
		var text, mode string
		if err := req.UnmarshalArgs(&text, &mode); err != nil {
			return nil, true, badArgs(req.Method, "expected [definition, mode]")
		}
		if mode != declared.ModeAdd && mode != declared.ModeReplace {
			return nil, true, badArgs(req.Method, "mode must be add or replace")
		}
		def, err := opdef.Parse([]byte(text))
		if err != nil {
			return nil, true, prereq("the definition has errors:\n%s", err)
		}
		if doc, err = doc.Put(def, mode, n.o.Registry.Has, time.Now()); err != nil {
			return nil, true, prereq("%s", err)
		}
		id = def.ID
	case "JobqOpcodeRemove":
		if err := req.UnmarshalArgs(&id); err != nil {
			return nil, true, badArgs(req.Method, "expected [OP_ID]")
		}
		if doc, err = doc.Remove(id); err != nil {
			return nil, true, prereq("%s", err)
		}
	}
	if err := n.settings.Set(ctx, opdef.Key, doc.JSON()); err != nil {
		return nil, true, luxi.NewError("GenericError", fmt.Sprintf("Cannot store the opcode definitions: %v", err))
	}
	_ = n.opdefs.Load(doc.JSON())
	if req.Method == "JobqOpcodeRemove" {
		return true, true, nil
	}
	_, v := doc.Get(id)
	return map[string]any{"id": id, "version": v}, true, nil
}

// RunProgram implements declared.Executor: on this node, or on another
// over the node RPC, with the master's term.
func (n *nodeRT) RunProgram(ctx context.Context, node string, req *noderpc.ExecRequest, line func(stream, text string)) (*execute.Result, error) {
	req.Epoch = n.term()
	if node == n.self {
		r, err := rpcHandler{n}.Exec(ctx, req, line)
		if err != nil {
			return nil, err
		}
		return r.(*execute.Result), nil
	}
	addr, err := n.nodeAddr(node)
	if err != nil {
		return nil, err
	}
	if n.client == nil {
		return nil, fmt.Errorf("this node serves no node RPC (--rpc-addr), so it cannot run programs on node %s", node)
	}
	var res execute.Result
	if err := n.client.Exec(ctx, addr, req, line, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Exec implements noderpc.ExecHandler: a program a master orders here,
// fenced by its term (refused from a deposed master, stopped when a newer
// one is known).
func (h rpcHandler) Exec(ctx context.Context, req *noderpc.ExecRequest, line func(stream, text string)) (any, error) {
	fctx, end, err := h.n.fenced(ctx, req.Epoch, "program "+req.Path)
	if err != nil {
		return nil, err
	}
	defer end()
	res, err := declared.RunLocal(fctx, req, declared.OutputDir(h.n.o.DataDir), h.n.cgroups, line)
	if ferr := stoppedByFence(fctx, nil); ferr != nil {
		h.n.log.Warn("stopped a program of a deposed master", "program", req.Path, "job", req.JobID, "epoch", req.Epoch)
		return nil, ferr
	}
	if err != nil {
		return nil, &noderpc.Error{Code: noderpc.CodeRefused, Message: err.Error()}
	}
	return res, nil
}

// webOpcodes is the declared opcodes as the dashboard's opcodes page
// shows them.
func (n *nodeRT) webOpcodes() []web.Opcode {
	doc := n.opdefs.Doc()
	var out []web.Opcode
	for _, id := range doc.IDs() {
		d, v := doc.Get(id)
		o := web.Opcode{ID: id, Version: v, Summary: d.Summary, Description: d.Description,
			RunsOn: opdef.RunsOn(d), Program: strings.TrimSpace(d.Program.Path + " " + strings.Join(d.Program.Args, " ")),
			Timeout: d.Timeout().String(), Locks: opdef.LocksText(d)}
		if d.Attempts() > 1 {
			o.Retries = fmt.Sprintf("%d attempts, backoff %s", d.Attempts(), d.Backoff())
		}
		for _, p := range d.Params {
			wp := web.OpcodeParam{Name: p.Name, Type: p.Type, Doc: p.Doc, Required: p.Required, Allowed: opdef.Constraint(&p)}
			if p.Default != nil {
				b, _ := json.Marshal(p.Default)
				wp.Default = string(b)
			}
			o.Params = append(o.Params, wp)
		}
		out = append(out, o)
	}
	return out
}

// Output implements noderpc.OutputHandler: the output files this node
// kept of a job's declared opcodes.
func (h rpcHandler) Output(ctx context.Context, req *noderpc.OutputRequest) (*noderpc.OutputReply, error) {
	files, err := declared.ReadOutput(declared.OutputDir(h.n.o.DataDir), req.JobID, noderpc.MaxOutputReply)
	if err != nil {
		return nil, err
	}
	return &noderpc.OutputReply{Files: files}, nil
}

// nodeOutput is one node's output files of a job, for JobqJobOutput.
type nodeOutput struct {
	Node  string               `json:"node"`
	Files []noderpc.OutputFile `json:"files"`
	Error string               `json:"error,omitempty"`
}

// jobOutput asks every node of the cluster for the output files it kept
// of job id (the nodes that ran its programs have them).
func (n *nodeRT) jobOutput(ctx context.Context, id int64) []nodeOutput {
	var out []nodeOutput
	for _, name := range n.config().NodeNames() {
		o := nodeOutput{Node: name}
		var (
			rep *noderpc.OutputReply
			err error
		)
		if name == n.self {
			rep, err = rpcHandler{n}.Output(ctx, &noderpc.OutputRequest{JobID: id})
		} else if addr, aerr := n.nodeAddr(name); aerr != nil {
			err = aerr
		} else if n.client == nil {
			err = fmt.Errorf("this node serves no node RPC")
		} else {
			rep, err = n.client.Output(ctx, addr, &noderpc.OutputRequest{JobID: id})
		}
		if err != nil {
			o.Error = err.Error()
		} else {
			o.Files = rep.Files
		}
		if o.Error != "" || len(o.Files) > 0 {
			out = append(out, o)
		}
	}
	return out
}

// outputSweepEvery is how often a node removes the output directories of
// jobs its queue no longer holds.
const outputSweepEvery = time.Hour

// sweepOutputs removes the programs' output kept on this node for jobs
// its queue directory holds neither live nor archived
// (declared.SweepOutput): the output lives as long as its job. Run calls it
// at the start, then every outputSweepEvery.
func (n *nodeRT) sweepOutputs() {
	// The queue's files first (the store's write-back buffer), though
	// the grace alone would outlast it.
	if err := n.st.Flush(); err != nil {
		n.log.Warn("cannot remove the output of jobs the queue no longer holds: the queue's files are not written", "err", err)
		return
	}
	removed, err := declared.SweepOutput(declared.OutputDir(n.o.DataDir), queueHolds(n.st.Dir()), time.Now(), declared.OutputGrace)
	if removed > 0 {
		n.log.Info("removed the output of jobs the queue no longer holds", "directories", removed)
	}
	if err != nil {
		n.log.Warn("cannot remove the output of jobs the queue no longer holds", "err", err)
	}
}

// sweepOutputsEvery calls sweepOutputs every outputSweepEvery until ctx
// ends.
func (n *nodeRT) sweepOutputsEvery(ctx context.Context) {
	t := time.NewTicker(outputSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.sweepOutputs()
		}
	}
}

// queueHolds reports whether the queue directory dir holds a job, live or
// archived (or cannot tell: a job is not given up on a doubt).
func queueHolds(dir string) func(id int64) bool {
	return func(id int64) bool {
		for _, name := range []string{store.JobFileName(id), store.ArchiveName(id)} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil || !errors.Is(err, fs.ErrNotExist) {
				return true
			}
		}
		return false
	}
}
