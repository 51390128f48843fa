// Package execute runs one contained process for a declared opcode
// (internal/opdef), or a restricted command (internal/restricted, with
// Spec.Raw): an absolute program path and an argument list, never
// a shell; a given environment; the opcode's whole input as JSON on
// stdin; each line it writes to stdout or stderr handed to a callback as
// soon as it is written; a result as JSON read from file descriptor 3.
//
// Containment: everything the execution starts is killed when it ends,
// times out or is cancelled, including children that left the process
// group with setsid. When a cgroup v2 hierarchy is writable (jobqd runs
// as root, or systemd delegated its cgroup: Delegate=yes), each execution
// gets a cgroup of its own under Spec.Cgroup.Parent and the process is
// cloned straight into it (CLONE_INTO_CGROUP), so nothing escapes; a stop
// sends SIGTERM to every process of the cgroup, then, after the grace
// period, writes cgroup.kill. Without a usable cgroup (a developer's
// machine) the process runs in a process group of its own and the same
// signals go to the group: a child that calls setsid escapes it, which
// Result.Contained reports as false.
package execute

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Stream names a line's origin.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Defaults.
const (
	DefaultTimeout   = time.Hour
	DefaultKillGrace = 10 * time.Second
	// MaxResult is the most bytes of result JSON read from fd 3.
	MaxResult = 1 << 20
	// MaxLine is the longest line handed over: a longer one is handed
	// over in pieces of MaxLine bytes.
	MaxLine = 64 << 10
	// TailLines is how many of the last stderr lines Result keeps.
	TailLines = 10
)

// Spec is one execution.
type Spec struct {
	Path  string   // absolute path of the program
	Args  []string // arguments after argv[0] (argv[0] is Path)
	Env   []string // the whole environment, KEY=VALUE
	Stdin []byte   // given on stdin, then end of file
	// User is the user to run as (a name or a numeric uid); "" is
	// jobqd's own. Another user than jobqd's needs jobqd to run as root.
	User      string
	Dir       string        // working directory; "" is "/"
	Timeout   time.Duration // 0: DefaultTimeout
	KillGrace time.Duration // between SIGTERM and SIGKILL; 0: DefaultKillGrace
	// Cgroup is where the execution's cgroup is made; zero: a process
	// group only.
	Cgroup Cgroups
	// Name names the execution's cgroup (letters, digits, '-', '_', '.').
	Name string
	// Output, when set, receives every line as "stdout: LINE" or
	// "stderr: LINE" (the whole output, however long).
	Output io.Writer
	// Raw, when set, makes the execution a restricted command's
	// (internal/restricted): stdout and stderr are one pipe whose bytes
	// Raw receives unchanged, in the order written; stdin is /dev/null,
	// Stdin, Output and the line callback are not used, and there is no
	// fd 3 (no result). A Raw that fails gets nothing more; the output is
	// still read to its end.
	Raw io.Writer
}

// Result is how an execution ended.
type Result struct {
	ExitCode int             // -1 when killed by a signal
	Signal   string          // the signal that ended it, if any
	Result   json.RawMessage // what it wrote to fd 3, when valid JSON; nil otherwise
	// ResultError says why what was written to fd 3 is not the result.
	ResultError string
	StderrTail  []string // the last TailLines lines of stderr
	Lines       int64    // lines written to stdout and stderr
	TimedOut    bool     // killed at its timeout
	Canceled    bool     // killed because the context ended
	// Contained is true when the execution ran in a cgroup of its own.
	Contained bool
	// OutputFile is where the whole output was kept (set by the caller
	// that gave Spec.Output).
	OutputFile string `json:",omitempty"`
}

// Success reports whether the program exited with status 0 by itself.
func (r *Result) Success() bool {
	return r.ExitCode == 0 && !r.TimedOut && !r.Canceled && r.Signal == ""
}

// Describe says how the execution ended, in one sentence without a
// final period.
func (r *Result) Describe(timeout time.Duration) string {
	switch {
	case r.TimedOut:
		return fmt.Sprintf("timed out after %s and was killed with everything it started", timeout)
	case r.Canceled:
		return "was canceled and killed with everything it started"
	case r.Signal != "":
		return "was killed by signal " + r.Signal
	case r.ExitCode != 0:
		return fmt.Sprintf("exited with status %d", r.ExitCode)
	}
	return "succeeded"
}

// Cgroups is a cgroup v2 directory under which executions get their own.
// An execution's cgroup, once empty, is kept for the next execution
// (creating and removing cgroups is serialised in the kernel: reusing
// them roughly doubled the rate of short executions here), with the two
// descriptors an execution needs of it kept open.
type Cgroups struct {
	Parent string
	pool   *cgPool
}

// cgPool holds empty execution cgroups for reuse.
type cgPool struct {
	mu   sync.Mutex
	idle []*cgroup
	n    int
}

// maxIdle is how many empty cgroups a Cgroups keeps.
const maxIdle = 64

// cgroup is one execution's cgroup: its directory opened for
// CLONE_INTO_CGROUP, and its cgroup.events, read in place (pread) to
// learn whether a process is left in it.
type cgroup struct {
	dir    string
	dirFD  int
	events int
}

func openCgroup(dir string) (*cgroup, error) {
	dirFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	events, err := unix.Open(filepath.Join(dir, "cgroup.events"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(dirFD)
		return nil, err
	}
	return &cgroup{dir: dir, dirFD: dirFD, events: events}, nil
}

// populated reports whether a process is in the cgroup; true when it
// cannot be read (then the cgroup is killed, not reused).
func (c *cgroup) populated() bool {
	var b [128]byte
	n, err := unix.Pread(c.events, b[:], 0)
	for err == unix.EINTR {
		n, err = unix.Pread(c.events, b[:], 0)
	}
	return err != nil || bytes.Contains(b[:max(n, 0)], []byte("populated 1"))
}

// waitEmpty waits until no process is in the cgroup, at most d.
func (c *cgroup) waitEmpty(d time.Duration) bool {
	return pollEmpty(c.populated, d)
}

// remove closes the descriptors and removes the (empty) cgroup.
func (c *cgroup) remove() {
	unix.Close(c.dirFD)
	unix.Close(c.events)
	_ = os.Remove(c.dir)
}

// acquire returns an empty cgroup: a kept one, or a new one named name.
func (c Cgroups) acquire(name string) (*cgroup, error) {
	if c.pool != nil {
		c.pool.mu.Lock()
		if k := len(c.pool.idle); k > 0 {
			cg := c.pool.idle[k-1]
			c.pool.idle = c.pool.idle[:k-1]
			c.pool.mu.Unlock()
			return cg, nil
		}
		c.pool.n++
		name = fmt.Sprintf("%s-%d", name, c.pool.n)
		c.pool.mu.Unlock()
	}
	dir := filepath.Join(c.Parent, fmt.Sprintf("%s-%d-%d", name, os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	cg, err := openCgroup(dir)
	if err != nil {
		_ = os.Remove(dir)
		return nil, err
	}
	return cg, nil
}

// release keeps cg for reuse when reusable (empty, never killed), else
// removes it.
func (c Cgroups) release(cg *cgroup, reusable bool) {
	if c.pool != nil && reusable {
		c.pool.mu.Lock()
		if len(c.pool.idle) < maxIdle {
			c.pool.idle = append(c.pool.idle, cg)
			c.pool.mu.Unlock()
			return
		}
		c.pool.mu.Unlock()
	}
	cg.remove()
}

// takeIdle empties the pool and returns what it held.
func (c Cgroups) takeIdle() []*cgroup {
	if c.pool == nil {
		return nil
	}
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	idle := c.pool.idle
	c.pool.idle = nil
	return idle
}

// FindCgroups returns a directory for executions' cgroups: name under
// this process's own cgroup in the cgroup v2 hierarchy, created if
// missing. It fails when there is no cgroup2 mount, or when it is not
// writable (not root, no delegation).
func FindCgroups(name string) (Cgroups, error) {
	dir, err := CgroupsDir(name)
	if err != nil {
		return Cgroups{}, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return Cgroups{}, fmt.Errorf("cannot create the cgroup %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		return Cgroups{}, fmt.Errorf("the cgroup %s has no cgroup.kill (Linux 5.14 or later is needed): %w", dir, err)
	}
	return Cgroups{Parent: dir, pool: &cgPool{}}, nil
}

// CgroupsDir is where the cgroup name is (FindCgroups): under this
// process's own cgroup in the cgroup v2 hierarchy.
func CgroupsDir(name string) (string, error) {
	root, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	own, err := ownCgroup()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, own, name), nil
}

// CgroupsName is the name of the cgroup (under jobqd's own) that holds the
// executions of the jobqd whose data directory is dataDir: one per data
// directory, so that a restarted jobqd finds what its predecessor left.
func CgroupsName(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return "jobqd-" + hex.EncodeToString(sum[:4])
}

// RemoveCgroups kills what is left in the cgroup name (see FindCgroups)
// and removes it, if there is one; for tests, whose jobqd killed with
// SIGKILL leave theirs behind.
func RemoveCgroups(name string) {
	dir, err := CgroupsDir(name)
	if err != nil {
		return
	}
	if _, err := os.Stat(dir); err != nil {
		return
	}
	c := Cgroups{Parent: dir, pool: &cgPool{}}
	c.KillLeftovers()
	c.Close()
}

// KillLeftovers kills and removes every execution cgroup left under the
// parent (a jobqd that was killed leaves its executions running); it
// returns how many it found.
func (c Cgroups) KillLeftovers() int {
	if c.Parent == "" {
		return 0
	}
	for _, cg := range c.takeIdle() {
		unix.Close(cg.dirFD)
		unix.Close(cg.events)
	}
	ents, err := os.ReadDir(c.Parent)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() {
			n++
			dir := filepath.Join(c.Parent, e.Name())
			killCgroup(dir)
			waitEmpty(dir, 10*time.Second)
			_ = os.Remove(dir)
		}
	}
	return n
}

// Close removes the kept empty cgroups and the parent when nothing runs
// in it any more (a stopping jobqd).
func (c Cgroups) Close() {
	if c.Parent == "" {
		return
	}
	for _, cg := range c.takeIdle() {
		cg.remove()
	}
	_ = os.Remove(c.Parent)
}

func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup2" && strings.Contains(" "+f[5]+",", "rw,") {
			return f[4], nil
		}
	}
	return "", errors.New("there is no writable cgroup2 mount")
}

func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("this process has no cgroup v2 membership")
}

// killCgroup kills every process of the cgroup dir and its children.
func killCgroup(dir string) {
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
}

// signalCgroup sends sig to every process of dir.
func signalCgroup(dir string, sig syscall.Signal) {
	for _, pid := range cgroupPids(dir) {
		_ = syscall.Kill(pid, sig)
	}
}

func cgroupPids(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Populated reports whether the cgroup dir holds a process.
func Populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), "populated 1")
}

// waitEmpty waits until dir holds no process, at most d.
func waitEmpty(dir string, d time.Duration) bool {
	return pollEmpty(func() bool { return Populated(dir) }, d)
}

// pollEmpty waits until populated reports false, at most d.
func pollEmpty(populated func() bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	pause := 20 * time.Microsecond
	for populated() {
		if time.Now().After(deadline) {
			return false
		}
		// Polls a kernel file, bounded by the deadline: the processes
		// killed usually go within microseconds.
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Millisecond)
	}
	return true
}

// ErrNotStarted wraps the reasons a program could not be started.
var ErrNotStarted = errors.New("not started")

// Run runs spec, calling line(stream, text) for each line written (from
// one goroutine at a time, in the order read from each stream). It
// returns once the program and everything it started are gone. ctx
// ending stops it (SIGTERM, then SIGKILL after the grace period).
//
// Its own cost is kept low (a declared opcode running /bin/true is
// mostly this): the cgroup and its cgroup.events stay open while kept;
// the pipes' ends given to the program are plain blocking descriptors,
// and only the ends read here are made non-blocking and polled; stdin is
// written into its pipe before the start when it fits (no goroutine);
// after a program that left nothing running, one read of cgroup.events
// says so.
func Run(ctx context.Context, spec Spec, line func(stream, text string)) (*Result, error) {
	if !filepath.IsAbs(spec.Path) {
		return nil, fmt.Errorf("%w: the program %q is not an absolute path", ErrNotStarted, spec.Path)
	}
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultTimeout
	}
	if spec.KillGrace <= 0 {
		spec.KillGrace = DefaultKillGrace
	}
	if spec.Dir == "" {
		spec.Dir = "/"
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if spec.User != "" {
		cred, err := credential(spec.User)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
		}
		attr.Credential = cred
	}
	res := &Result{}
	var (
		cg       *cgroup
		killedCg bool // cgroup.kill was written
	)
	if spec.Cgroup.Parent != "" {
		name := spec.Name
		if name == "" {
			name = "exec"
		}
		c, err := spec.Cgroup.acquire(name)
		if err != nil {
			return nil, fmt.Errorf("%w: cannot create a cgroup in %s: %v", ErrNotStarted, spec.Cgroup.Parent, err)
		}
		cg = c
		// A cgroup that was killed is not reused: this kernel (6.18)
		// kills every process later cloned into a cgroup once killed
		// (its cgroup.kill sequence number no longer matches).
		defer func() { spec.Cgroup.release(cg, !killedCg && !cg.populated()) }()
		attr.UseCgroupFD, attr.CgroupFD = true, cg.dirFD
		res.Contained = true
	}

	var p pipes
	defer p.closeAll()
	var (
		stdin     *os.File
		stdinRest *stdinRest
	)
	if spec.Raw == nil { // raw: stdin is /dev/null
		var err error
		if stdin, stdinRest, err = p.stdin(spec.Stdin); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
		}
	}
	outR, outW, err := p.output()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
	}
	errR, errW, err := p.output()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
	}
	resR, resW, err := p.output()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
	}
	cmd := &exec.Cmd{
		Path:        spec.Path,
		Args:        append([]string{spec.Path}, spec.Args...),
		Env:         spec.Env,
		Dir:         spec.Dir,
		Stdin:       stdin,
		Stdout:      outW,
		Stderr:      errW,
		ExtraFiles:  []*os.File{resW},
		SysProcAttr: attr,
	}
	if spec.Raw != nil {
		cmd.Stdin, cmd.Stderr, cmd.ExtraFiles = nil, outW, nil
	}
	err = cmd.Start()
	// The program's ends are the program's alone now.
	p.closeChildEnds()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotStarted, err)
	}
	pid := cmd.Process.Pid

	var (
		mu   sync.Mutex
		tail []string
		rd   sync.WaitGroup
	)
	emit := func(stream, text string) {
		mu.Lock()
		defer mu.Unlock()
		res.Lines++
		if stream == Stderr {
			tail = append(tail, text)
			if len(tail) > TailLines {
				tail = tail[1:]
			}
		}
		if spec.Output != nil {
			io.WriteString(spec.Output, stream+": "+text+"\n")
		}
		if line != nil {
			line(stream, text)
		}
	}
	if stdinRest != nil {
		rd.Go(func() {
			// The rest of stdin, as the program reads it; an error
			// (the program closed its stdin or ended) ends it.
			stdinRest.w.Write(stdinRest.b)
			stdinRest.w.Close()
		})
	}
	if spec.Raw != nil {
		// Stdout carries both; stderr's pipe (as fd 3's) ends at once.
		rd.Go(func() { copyRaw(spec.Raw, outR) })
		rd.Go(func() { copyRaw(nil, errR) })
	} else {
		rd.Go(func() { readLines(outR, Stdout, emit) })
		rd.Go(func() { readLines(errR, Stderr, emit) })
	}
	var resBuf bytes.Buffer
	var resTooLong bool
	rd.Go(func() {
		n, _ := io.Copy(&resBuf, io.LimitReader(resR, MaxResult+1))
		if n > MaxResult {
			resTooLong = true
			io.Copy(io.Discard, resR)
		}
	})

	// Wait for the program without reaping it, so that its process
	// group stays its own until it is killed.
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
	}()
	stop := func(sig syscall.Signal) {
		// A process that exited has left its cgroup, even before it is
		// reaped: a populated cgroup holds what it started.
		if cg != nil && cg.populated() {
			if sig == syscall.SIGKILL {
				killedCg = true
				killCgroup(cg.dir)
			} else {
				signalCgroup(cg.dir, sig)
			}
		}
		_ = syscall.Kill(-pid, sig)
	}
	timer := time.NewTimer(spec.Timeout)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		res.TimedOut = true
	case <-ctx.Done():
		res.Canceled = true
	}
	if res.TimedOut || res.Canceled {
		stop(syscall.SIGTERM)
		grace := time.NewTimer(spec.KillGrace)
		select {
		case <-exited:
		case <-grace.C:
		}
		grace.Stop()
	}
	// Whatever is left (the program's own children included) goes.
	stop(syscall.SIGKILL)
	<-exited
	waitErr := cmd.Wait()
	if cg != nil {
		if killedCg {
			cg.waitEmpty(time.Minute)
		}
	} else {
		// Readers (and stdin's writer) of an escaped child's pipes end
		// at a deadline.
		deadline := time.Now().Add(2 * time.Second)
		outR.SetReadDeadline(deadline)
		errR.SetReadDeadline(deadline)
		resR.SetReadDeadline(deadline)
		if stdinRest != nil {
			stdinRest.w.SetWriteDeadline(deadline)
		}
	}
	rd.Wait()

	res.StderrTail = tail
	var ee *exec.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &ee):
		res.ExitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = unix.SignalName(ws.Signal())
		}
	default:
		return nil, waitErr
	}
	switch b := bytes.TrimSpace(resBuf.Bytes()); {
	case resTooLong:
		res.ResultError = fmt.Sprintf("the result written to fd 3 is larger than %d bytes", MaxResult)
	case len(b) == 0:
	case !json.Valid(b):
		res.ResultError = "what was written to fd 3 is not valid JSON"
	default:
		res.Result = append(json.RawMessage(nil), b...)
	}
	return res, nil
}

// pipes are an execution's pipes: the ends the program gets (blocking,
// closed here once it started) and the ends kept here.
type pipes struct {
	child []*os.File
	own   []*os.File
}

// output makes a pipe the program writes to: r (non-blocking, polled by
// the runtime) is read here, w is the program's.
func (p *pipes) output() (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	// Only the read end's file description: the program's end stays
	// blocking.
	if _, err := unix.FcntlInt(uintptr(fds[0]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, err
	}
	r, w = os.NewFile(uintptr(fds[0]), "|0"), os.NewFile(uintptr(fds[1]), "|1")
	p.own, p.child = append(p.own, r), append(p.child, w)
	return r, w, nil
}

// stdinRest is what of stdin did not fit in its pipe before the start.
type stdinRest struct {
	w *os.File // non-blocking, polled
	b []byte
}

// stdin makes the program's stdin: a pipe holding data, then its end,
// written now as far as the pipe holds it; the rest, if any, is for a
// writer to write once the program runs.
func (p *pipes) stdin(data []byte) (*os.File, *stdinRest, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	r := os.NewFile(uintptr(fds[0]), "|0")
	p.child = append(p.child, r)
	if len(data) == 0 {
		unix.Close(fds[1])
		return r, nil, nil
	}
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	for len(data) > 0 {
		n, err := unix.Write(fds[1], data)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			unix.Close(fds[1])
			return nil, nil, fmt.Errorf("cannot write stdin: %w", err)
		}
		data = data[n:]
	}
	if len(data) == 0 {
		unix.Close(fds[1])
		return r, nil, nil
	}
	w := os.NewFile(uintptr(fds[1]), "|1")
	p.own = append(p.own, w)
	return r, &stdinRest{w: w, b: data}, nil
}

// closeChildEnds closes the program's ends here.
func (p *pipes) closeChildEnds() {
	for _, f := range p.child {
		f.Close()
	}
	p.child = nil
}

// closeAll closes every end left open here.
func (p *pipes) closeAll() {
	p.closeChildEnds()
	for _, f := range p.own {
		f.Close()
	}
	p.own = nil
}

// readers are line readers of MaxLine bytes, reused: two a run were most
// of what a short execution allocated.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, MaxLine) }}

// readLines hands over each line of r (without its newline; long ones
// in pieces of MaxLine bytes; invalid UTF-8 replaced).
func readLines(r io.Reader, stream string, emit func(stream, text string)) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			s := strings.TrimSuffix(string(b), "\n")
			s = strings.ToValidUTF8(strings.TrimSuffix(s, "\r"), "\uFFFD")
			if err != bufio.ErrBufferFull || len(b) > 0 {
				emit(stream, s)
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// copyRaw writes what r gives to w until r ends; once w fails the rest
// is read and dropped, so that the program never blocks on a full pipe.
func copyRaw(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 && w != nil {
			if _, werr := w.Write(buf[:n]); werr != nil {
				w = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// credential is the uid and gid of the user name (or numeric uid).
func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("there is no user %s on this node", name)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if int(uid) != os.Geteuid() && os.Geteuid() != 0 {
		return nil, fmt.Errorf("cannot run as user %s: jobqd runs as uid %d, not as root", name, os.Geteuid())
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
