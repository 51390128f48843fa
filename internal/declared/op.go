package declared

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/execute"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/opdef"
	"github.com/jobq-dev/jobq/internal/restricted"
	"github.com/jobq-dev/jobq/locking"
	"github.com/jobq-dev/jobq/opcodes"
)

// Executor runs a program on a node: jobqd's opcodes.Nodes implements it
// (node RPC /v1/exec; RunLocal on the node itself).
type Executor interface {
	RunProgram(ctx context.Context, node string, req *noderpc.ExecRequest, line func(stream, text string)) (*execute.Result, error)
}

// Log bounds: an opcode logs the first HeadLines lines of its output into
// the job as they are written; the others are counted (and kept whole in
// the output file on the node that ran the program), and the last
// TailLines of them are logged when the program ends, after a "N lines
// omitted" entry.
const (
	HeadLines = 400
	TailLines = 20
)

// Op is a declared opcode's parameters (opcodes.Params).
type Op struct {
	cat     *Catalog
	id      string
	fields  map[string]json.RawMessage
	def     *opdef.Def
	version string
	vals    opdef.Values
	input   json.RawMessage
}

// UnmarshalJSON keeps the members: Validate checks them against the
// definition.
func (o *Op) UnmarshalJSON(b []byte) error {
	o.input = append(json.RawMessage(nil), b...)
	return json.Unmarshal(b, &o.fields)
}

// Validate implements opcodes.Params: the input against the version of
// the definition it was submitted with.
func (o *Op) Validate() error {
	def, v, err := o.cat.resolve(o.id, o.fields)
	if err != nil {
		return opcodes.PrereqError("wrong_input", "%s", err)
	}
	vals, err := opdef.Check(def, o.fields)
	if err != nil {
		return opcodes.PrereqError("wrong_input", "%s", err)
	}
	o.def, o.version, o.vals = def, v, vals
	return nil
}

// Prepare implements opcodes.Preparer: the nodes it runs on must be the
// cluster's (a check that needs the cluster's state, so at run time).
func (o *Op) Prepare(env opcodes.Env) error {
	nodes := env.Nodes()
	for _, n := range opdef.Targets(o.def, o.vals, env.NodeName()) {
		if nodes != nil && !nodes.Known(n) || nodes == nil && n != env.NodeName() {
			return opcodes.PrereqError("unknown_entity", "Node '%s' not known", n)
		}
	}
	if len(opdef.Targets(o.def, o.vals, env.NodeName())) == 0 {
		return opcodes.PrereqError("wrong_input", "Parameter '%s' names no node to run on", o.def.Run.Param)
	}
	return nil
}

// Locks implements opcodes.Locker.
func (o *Op) Locks(env opcodes.Env) []locking.Request {
	return opdef.Locks(o.def, o.vals, env.NodeName())
}

// opIndexer is implemented by an Env that knows the opcode's index in
// its job.
type opIndexer interface{ OpIndex() int }

// Exec implements opcodes.Params: the program runs on each target node
// (in parallel or one after the other), each attempt logged; a failed
// attempt of an idempotent definition with retries is tried again after
// the backoff. The result is the program's result JSON (fd 3), or, on
// several nodes, an object of them by node.
func (o *Op) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	d := o.def
	master := env.NodeName()
	targets := opdef.Targets(d, o.vals, master)
	opIndex := 0
	if oi, ok := env.(opIndexer); ok {
		opIndex = oi.OpIndex()
	}
	lg := &boundedLog{env: env, multi: len(targets) > 1}
	results := make(map[string]json.RawMessage, len(targets))
	var (
		mu       sync.Mutex
		failures []string
	)
	runOn := func(node string) bool {
		res, err := o.runWithRetries(ctx, env, lg, node, opIndex, len(targets) > 1)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, err.Error())
			return false
		}
		results[node] = res
		return true
	}
	if d.Run.Order == opdef.Serial || len(targets) == 1 {
		for _, n := range targets {
			if ctx.Err() != nil {
				break
			}
			if !runOn(n) && !d.Run.ContinueOnFailure {
				if rest := len(targets) - len(results) - len(failures); rest > 0 {
					lg.note(fmt.Sprintf("Stopped at the first failure: %d node(s) not run", rest))
				}
				break
			}
		}
	} else {
		var wg sync.WaitGroup
		for _, n := range targets {
			wg.Go(func() { runOn(n) })
		}
		wg.Wait()
	}
	lg.finish()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(failures) > 0 {
		return nil, opcodes.ExecError("%s", strings.Join(failures, "; "))
	}
	if len(targets) == 1 {
		return results[targets[0]], nil
	}
	return results, nil
}

// runWithRetries runs the program on node, as many times as the
// definition allows, and returns its result JSON or the last failure.
func (o *Op) runWithRetries(ctx context.Context, env opcodes.Env, lg *boundedLog, node string, opIndex int, multi bool) (json.RawMessage, error) {
	d := o.def
	attempts := d.Attempts()
	where := ""
	if multi || node != env.NodeName() {
		where = " on node " + node
	}
	var last error
	for a := 1; a <= attempts; a++ {
		if attempts > 1 {
			lg.note(fmt.Sprintf("Attempt %d of %d of %s%s", a, attempts, d.ID, where))
		}
		res, err := o.runOnce(ctx, env, lg, node, opIndex, a)
		if err == nil {
			return res, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, err
		}
		if a < attempts {
			lg.note(fmt.Sprintf("Attempt %d of %d failed: %v; next attempt in %s", a, attempts, err, d.Backoff()))
			t := time.NewTimer(d.Backoff())
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, err
			case <-t.C:
			}
		}
	}
	return nil, last
}

func (o *Op) runOnce(ctx context.Context, env opcodes.Env, lg *boundedLog, node string, opIndex, attempt int) (json.RawMessage, error) {
	d := o.def
	req := &noderpc.ExecRequest{
		JobID: env.JobID(), OpIndex: opIndex, Attempt: attempt, OpID: d.ID,
		Path: d.Program.Path, Args: opdef.Argv(d, o.vals),
		Env:   opdef.Env(d, o.vals, env.JobID(), opIndex, node, attempt),
		Stdin: o.input, User: d.Program.User,
		Timeout: d.Timeout(), KillGrace: d.KillGrace(),
	}
	line := func(stream, text string) { lg.line(node, stream, text) }
	var (
		res *execute.Result
		err error
	)
	if ex, ok := env.Nodes().(Executor); ok {
		res, err = ex.RunProgram(ctx, node, req, line)
	} else if node == env.NodeName() {
		res, err = RunLocal(ctx, req, "", execute.Cgroups{}, line)
	} else {
		err = errors.New("this queue cannot run programs on other nodes")
	}
	if err != nil {
		return nil, fmt.Errorf("%s on node %s could not run: %v", d.ID, node, err)
	}
	if res.OutputFile != "" {
		lg.file(node, res.OutputFile)
	}
	if !res.Success() {
		msg := fmt.Sprintf("%s on node %s %s", d.ID, node, res.Describe(d.Timeout()))
		if len(res.StderrTail) > 0 {
			msg += "; last lines of stderr: " + strings.Join(res.StderrTail, " | ")
		}
		return nil, errors.New(msg)
	}
	if res.ResultError != "" {
		lg.note(fmt.Sprintf("%s on node %s: %s; the result is null", d.ID, node, res.ResultError))
	}
	if res.Result == nil {
		return json.RawMessage("null"), nil
	}
	return res.Result, nil
}

// boundedLog logs output lines into the job: the first HeadLines as they
// come, then counts the others and keeps the last TailLines for the end.
type boundedLog struct {
	env     opcodes.Env
	multi   bool
	mu      sync.Mutex
	n       int64
	omitted int64
	tail    []string
	files   []string
}

func (b *boundedLog) line(node, stream, text string) {
	if b.multi {
		text = node + ": " + text
	}
	if stream == execute.Stderr {
		text = "[stderr] " + text
	}
	b.mu.Lock()
	b.n++
	if b.n > HeadLines {
		b.omitted++
		b.tail = append(b.tail, text)
		if len(b.tail) > TailLines {
			b.omitted -= 0
			b.tail = b.tail[1:]
		}
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.env.Log(text)
}

func (b *boundedLog) note(text string) { b.env.Log(" - INFO: " + text) }

func (b *boundedLog) file(node, path string) {
	b.mu.Lock()
	b.files = append(b.files, node+":"+path)
	b.mu.Unlock()
}

// finish logs the omitted count and the last lines.
func (b *boundedLog) finish() {
	b.mu.Lock()
	omitted := b.omitted - int64(len(b.tail))
	tail, files := b.tail, b.files
	b.mu.Unlock()
	if omitted > 0 {
		where := ""
		if len(files) > 0 {
			where = "; the whole output is kept in " + strings.Join(files, ", ")
		}
		b.note(fmt.Sprintf("%d lines omitted%s", omitted, where))
	}
	for _, t := range tail {
		b.env.Log(t)
	}
}

// OutputDir is where a node keeps the whole output of the programs it
// ran: DATA_DIR/output/job-N/opI-attemptA.log.
func OutputDir(dataDir string) string { return filepath.Join(dataDir, "output") }

// RunLocal runs req on this node: the program is checked as restricted
// commands are (restricted.CheckProgram), its whole output goes to a file
// under outDir (none when outDir is ""), and it is contained in a cgroup
// under cg when given.
func RunLocal(ctx context.Context, req *noderpc.ExecRequest, outDir string, cg execute.Cgroups, line func(stream, text string)) (*execute.Result, error) {
	if err := restricted.CheckProgram(req.Path); err != nil {
		return nil, err
	}
	spec := execute.Spec{
		Path: req.Path, Args: req.Args, Env: req.Env, Stdin: req.Stdin, User: req.User,
		Timeout: req.Timeout, KillGrace: req.KillGrace, Cgroup: cg,
		Name: fmt.Sprintf("job-%d-%d-%d", req.JobID, req.OpIndex, req.Attempt),
	}
	var path string
	if outDir != "" {
		// Created at the first line: a program that prints nothing
		// leaves no file.
		path = filepath.Join(outDir, "job-"+strconv.FormatInt(req.JobID, 10), fmt.Sprintf("op%d-attempt%d.log", req.OpIndex, req.Attempt))
		lb := &lineBuffer{path: path}
		spec.Output = lb
		defer lb.close()
	}
	res, err := execute.Run(ctx, spec, line)
	if err != nil {
		return nil, err
	}
	if res.Lines > 0 {
		res.OutputFile = path
	}
	return res, nil
}

// lineBuffer writes the output file, created at the first write, in
// batches of 64 KiB.
type lineBuffer struct {
	path string
	f    *os.File
	err  error
	buf  []byte
}

func (l *lineBuffer) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if len(l.buf) >= 64<<10 {
		l.flush()
	}
	return len(p), nil
}

func (l *lineBuffer) flush() {
	if len(l.buf) == 0 || l.err != nil {
		l.buf = l.buf[:0]
		return
	}
	if l.f == nil {
		if l.err = os.MkdirAll(filepath.Dir(l.path), 0o750); l.err != nil {
			return
		}
		if l.f, l.err = os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640); l.err != nil {
			return
		}
	}
	_, l.err = l.f.Write(l.buf)
	l.buf = l.buf[:0]
}

func (l *lineBuffer) close() {
	l.flush()
	if l.f != nil {
		l.f.Close()
	}
}

// ReadOutput reads the output files kept under outDir for job id, in
// name order, each cut to its last bytes so that all fit in max bytes.
func ReadOutput(outDir string, id int64, limit int64) ([]noderpc.OutputFile, error) {
	dir := filepath.Join(outDir, "job-"+strconv.FormatInt(id, 10))
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []noderpc.OutputFile
	left := limit
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		size := fi.Size()
		keep := min(size, max(left, 0))
		data := make([]byte, keep)
		_, err = f.ReadAt(data, size-keep)
		f.Close()
		if err != nil {
			return nil, err
		}
		left -= keep
		files = append(files, noderpc.OutputFile{Name: e.Name(), Data: data, Truncated: size - keep})
	}
	return files, nil
}
