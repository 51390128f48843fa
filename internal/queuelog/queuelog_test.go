package queuelog

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/queue"
	"github.com/jobq-dev/jobq/internal/store"
	"github.com/jobq-dev/jobq/internal/testcert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEncodeDecodeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.SampledFrom([]string{"serial", "drain", "job-1", "job-42", "archive/0/job-7"})
		var changes []store.Change
		for range rapid.IntRange(0, 5).Draw(t, "n") {
			c := store.Change{Kind: rapid.SampledFrom([]string{"write", "rename", "remove"}).Draw(t, "kind"), Name: name.Draw(t, "name")}
			switch c.Kind {
			case "write":
				c.Data = rapid.SliceOfN(rapid.Byte(), 1, 100).Draw(t, "data")
			case "rename":
				c.Dst = name.Draw(t, "dst")
			}
			changes = append(changes, c)
		}
		data, err := EncodeBatch(changes)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeBatch(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(changes) {
			t.Fatalf("%d changes back, want %d", len(got), len(changes))
		}
		for i := range got {
			if got[i].Kind != changes[i].Kind || got[i].Name != changes[i].Name || got[i].Dst != changes[i].Dst || !bytes.Equal(got[i].Data, changes[i].Data) {
				t.Fatalf("change %d: %+v, want %+v", i, got[i], changes[i])
			}
		}
		// Every truncation is refused, never misread.
		for cut := range len(data) {
			if _, err := DecodeBatch(data[:cut]); err == nil && cut < len(data) {
				if len(changes) > 0 || cut < 3 {
					t.Fatalf("a batch cut at %d of %d bytes was accepted", cut, len(data))
				}
			}
		}
	})
}

func TestSettingEntries(t *testing.T) {
	for _, bad := range []struct{ key, value string }{
		{"", "1"}, {"Cluster", "1"}, {"../x", "1"}, {strings.Repeat("a", 65), "1"}, {"cluster", "{"},
	} {
		if _, err := EncodeSetting(bad.key, []byte(bad.value)); err == nil {
			t.Errorf("setting %q = %q accepted", bad.key, bad.value)
		}
	}
	data, err := EncodeSetting("opcode-defs", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if k, v, err := decodeSetting(data); err != nil || k != "opcode-defs" || string(v) != `{"a":1}` {
		t.Fatalf("decode: %q %q %v", k, v, err)
	}
	if _, err := DecodeBatch(data); err == nil {
		t.Fatal("a setting decoded as a batch")
	}
	// Stored settings are loaded by the next FSM on the same directory.
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "queue"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := NewFSM(st, filepath.Join(dir, "settings"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := ""
	f.OnSetting(func(k string, v []byte) { seen = k + "=" + string(v) })
	if res := f.Apply(consensus.Entry{Index: 1, Data: data}); res != nil {
		t.Fatal(res)
	}
	if seen != `opcode-defs={"a":1}` {
		t.Fatalf("OnSetting saw %q", seen)
	}
	f2, err := NewFSM(st, filepath.Join(dir, "settings"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f2.Setting("opcode-defs")); got != `{"a":1}` {
		t.Fatalf("after a restart: %q", got)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, _ := EncodeBatch([]store.Change{{Kind: "write", Name: "job-1", Data: []byte("x")}})
	bad, _ := EncodeBatch([]store.Change{{Kind: "write", Name: "../etc/passwd", Data: []byte("x")}})
	badDst, _ := EncodeBatch([]store.Change{{Kind: "rename", Name: "job-1", Dst: "/tmp/x"}})
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"newer version":  {append([]byte{2}, good[1:]...), "upgrade jobqd"},
		"unknown type":   {append([]byte{1, 9}, good[2:]...), "upgrade jobqd"},
		"path":           {bad, "etc/passwd"},
		"rename target":  {badDst, "/tmp/x"},
		"trailing bytes": {append(append([]byte(nil), good...), 0), "trailing"},
		"empty":          {nil, "too short"},
	} {
		if _, err := DecodeBatch(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
	if _, err := DecodeBatch(append([]byte{2}, good[1:]...)); !errors.Is(err, ErrUnknownEntry) {
		t.Errorf("a newer version is not ErrUnknownEntry: %v", err)
	}
}

// A three-node cluster whose master runs the real queue with its store
// going through the log: the queue directories are identical on every
// node; when the master dies, the next one opens the same queue, ends the
// running job in error, and hands out the next id; the old master comes
// back as a follower and catches up.
func TestQueueThroughTheLog(t *testing.T) {
	cert := newCert(t)
	nodes := map[string]*tnode{}
	names := []string{"a", "b", "c"}
	for _, name := range names {
		nodes[name] = &tnode{name: name, dir: t.TempDir(), timing: consensus.Timing{Tick: 40 * time.Millisecond}}
	}
	leaderOf := func(among ...string) *tnode {
		for _, n := range among {
			if nd := nodes[n]; nd.node != nil && nd.node.IsLeader() {
				return nd
			}
		}
		return nil
	}
	fetchFrom := func(self string) Fetch {
		return func(ctx context.Context, want []string) ([]noderpc.Change, error) {
			for _, nd := range nodes {
				if nd.name != self && nd.node != nil && nd.node.IsLeader() {
					return ReadFiles(filepath.Join(nd.dir, "queue"), want)
				}
			}
			return nil, errors.New("no master")
		}
	}
	for _, nd := range nodes {
		t.Cleanup(nd.stop)
	}
	formCluster(t, cert, nodes, names, fetchFrom)
	a := nodes["a"]
	a.becomeMaster(t)
	// A cluster-wide setting reaches every node, durably.
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := (&Log{P: a.node}).Set(sctx, "cluster", []byte(`{"candidate_pool_size":5}`)); err != nil {
		t.Fatal(err)
	}
	scancel()
	waitFor(t, "the setting on every node", func() bool {
		for _, nd := range nodes {
			if string(nd.fsm.Setting("cluster")) != `{"candidate_pool_size":5}` {
				return false
			}
		}
		return true
	})
	for i := range 20 {
		id := a.submit(t, fmt.Sprintf(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"comment":"job %d"}`, i))
		if id != int64(i+1) {
			t.Fatalf("job %d got id %d", i, id)
		}
	}
	long := a.submit(t, `{"OP_ID":"OP_TEST_DELAY","duration":3600}`)
	for id := int64(1); id <= 20; id++ {
		a.waitStatus(t, id, "success")
	}
	a.waitStatus(t, long, "running")
	waitFor(t, "the three queues are identical", func() bool { return sameQueues(t, nodes, names...) == "" })

	// The master dies: its log goes first (as in a crash), then its queue
	// stops; nothing it writes now is agreed.
	a.crash()
	var next *tnode
	waitFor(t, "b or c leads", func() bool { next = leaderOf("b", "c"); return next != nil })
	next.becomeMaster(t)
	next.waitStatus(t, long, "error")
	res, _ := next.q.QueryJobs([]int64{long}, []string{"opresult"})
	if !strings.Contains(string(res[0]), "Unclean master shutdown") {
		t.Fatalf("the running job's result after the failover: %s", res[0])
	}
	if id := next.submit(t, `{"OP_ID":"OP_TEST_DELAY","duration":0.001}`); id != long+1 {
		t.Fatalf("the next job got id %d, want %d", id, long+1)
	}
	// The old master comes back as a follower and catches up.
	a.start(t, cert, false, fetchFrom("a"))
	waitFor(t, "the three queues are identical again", func() bool {
		return sameQueues(t, nodes, names...) == "" && a.node.AppliedIndex() >= next.node.CommitIndex()
	})
	if d := sameQueues(t, nodes, names...); d != "" {
		t.Fatal(d)
	}
}

// A node that was down while the others took snapshots and compacted
// their logs restores the queue from a snapshot's manifest, fetching the
// files from the master, and then applies the entries after it; a restart
// of a node with a snapshot (its queue directory newer than it) replays
// the entries after it without fetching anything.
func TestLaggingNodeRestoresFromManifest(t *testing.T) {
	cert := newCert(t)
	timing := consensus.Timing{Tick: 40 * time.Millisecond, SnapshotEntries: 8, TrailingEntries: 2}
	nodes := map[string]*tnode{}
	for _, name := range []string{"a", "b"} {
		nodes[name] = &tnode{name: name, dir: t.TempDir(), timing: timing}
		t.Cleanup(nodes[name].stop)
	}
	a, b := nodes["a"], nodes["b"]
	var fetches atomic.Int64
	fetchFromA := func(ctx context.Context, want []string) ([]noderpc.Change, error) {
		fetches.Add(1)
		return ReadFiles(filepath.Join(a.dir, "queue"), want)
	}
	a.start(t, cert, true, nil)
	waitFor(t, "a leads", func() bool { return a.node.IsLeader() })
	b.start(t, cert, false, fetchFromA)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.node.AddLearner(ctx, "b", b.addr); err != nil {
		t.Fatal(err)
	}
	a.becomeMaster(t)
	first := a.submit(t, `{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	a.waitStatus(t, first, "success")
	waitFor(t, "b has job 1", func() bool { return sameQueues(t, nodes, "a", "b") == "" })
	b.stop()
	if err := (&Log{P: a.node}).Set(ctx, "filters", []byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	var last int64
	for range 30 {
		last = a.submit(t, `{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	}
	a.waitStatus(t, last, "success")
	if ok, err := a.q.ArchiveJob(first); !ok || err != nil {
		t.Fatalf("archive job %d: %v %v", first, ok, err)
	}
	// Snapshot now so that the entries b lacks are compacted away.
	if err := a.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	b.start(t, cert, false, fetchFromA)
	waitFor(t, "b restored from a snapshot and caught up", func() bool {
		return sameQueues(t, nodes, "a", "b") == "" && b.node.AppliedIndex() >= a.node.CommitIndex()
	})
	if fetches.Load() == 0 {
		t.Fatal("b caught up without fetching: no snapshot was restored (the test did not test it)")
	}
	if _, err := os.Stat(filepath.Join(b.dir, "queue", store.ArchiveName(first))); err != nil {
		t.Fatalf("the archived job is not on b: %v", err)
	}
	if got := string(b.fsm.Setting("filters")); got != "[]" {
		t.Fatalf("the setting made while b was down, after the snapshot: %q", got)
	}
	// A restart of b: its snapshot is older than its queue directory; it
	// is not restored again (nothing fetched), the log's entries after it
	// are applied again and leave the same files.
	b.stop()
	before := fetches.Load()
	b.start(t, cert, false, fetchFromA)
	more := a.submit(t, `{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)
	a.waitStatus(t, more, "success")
	waitFor(t, "b caught up after its restart", func() bool {
		return sameQueues(t, nodes, "a", "b") == "" && b.node.AppliedIndex() >= a.node.CommitIndex()
	})
	if n := fetches.Load() - before; n != 0 {
		t.Fatalf("b fetched %d times at a restart", n)
	}
}

// formCluster bootstraps names[0] and adds the others as the master
// does: learners first, voters once caught up.
func formCluster(t testing.TB, cert tls.Certificate, nodes map[string]*tnode, names []string, fetch func(self string) Fetch) {
	t.Helper()
	a := nodes[names[0]]
	a.start(t, cert, true, fetch(a.name))
	waitFor(t, a.name+" leads", func() bool { return a.node.IsLeader() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range names[1:] {
		nodes[name].start(t, cert, false, fetch(name))
		if err := a.node.AddLearner(ctx, name, nodes[name].addr); err != nil {
			t.Fatal(err)
		}
		target := a.node.CommitIndex()
		waitFor(t, name+" caught up", func() bool { return a.node.Match(name) >= target })
		if err := a.node.Promote(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
}

func noFetch(string) Fetch { return nil }

type tnode struct {
	name, dir, addr string
	timing          consensus.Timing
	fs              store.FS // nil: the real one
	srv             *noderpc.Server
	cli             *noderpc.Client
	node            *consensus.Node
	st              *store.Store
	fsm             *FSM
	q               *queue.Queue
}

func (n *tnode) start(t testing.TB, cert tls.Certificate, bootstrap bool, fetch Fetch) {
	t.Helper()
	addr := n.addr
	if addr == "" {
		addr = testcert.LoopbackAddr()
	}
	l := testcert.Listen(t, addr)
	var err error
	n.addr = l.Addr().String()
	logger := slog.New(slog.DiscardHandler)
	n.srv = noderpc.NewServer(cert, nil, logger)
	stream := n.srv.StreamListener(consensus.StreamName)
	go n.srv.Serve(l)
	n.cli = noderpc.NewClient(cert)
	var opts []store.Option
	if n.fs != nil {
		opts = append(opts, store.WithFS(n.fs))
	}
	if n.st, err = store.Open(filepath.Join(n.dir, "queue"), logger, opts...); err != nil {
		t.Fatal(err)
	}
	if n.fsm, err = NewFSM(n.st, filepath.Join(n.dir, "settings"), fetch, logger); err != nil {
		t.Fatal(err)
	}
	cli := n.cli
	n.node, err = consensus.Open(consensus.Config{
		Dir: filepath.Join(n.dir, "raft"), Name: n.name, Addr: n.addr, Bootstrap: bootstrap,
		Timing:   n.timing,
		Listener: stream,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return cli.DialStream(ctx, addr, consensus.StreamName)
		},
		FSM: n.fsm, DurableState: true, Log: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// becomeMaster is what the daemon does when its node leads: apply every
// earlier entry, send the store's batches through the log, open the queue
// (whose recovery ends the jobs of the previous master).
func (n *tnode) becomeMaster(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.node.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	n.st.SetLog(&Log{P: n.node})
	q, err := queue.Open(queue.Config{Store: n.st, KeepStore: true, NodeName: n.name})
	if err != nil {
		t.Fatal(err)
	}
	n.q = q
}

func (n *tnode) submit(t *testing.T, op string) int64 {
	t.Helper()
	res, err := n.q.Submit([][]json.RawMessage{{json.RawMessage(op)}}, false)
	if err != nil || res[0].Err != nil {
		t.Fatalf("submit on %s: %v %v", n.name, err, res[0].Err)
	}
	return res[0].ID
}

func (n *tnode) waitStatus(t *testing.T, id int64, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("job %d %s on %s", id, want, n.name), func() bool {
		rows, err := n.q.QueryJobs([]int64{id}, []string{"status"})
		return err == nil && string(rows[0]) == `["`+want+`"]`
	})
}

// crash stops the node's log first, then the rest.
func (n *tnode) crash() {
	if n.node != nil {
		n.node.Close()
		n.node = nil
	}
	n.stop()
}

func (n *tnode) stop() {
	if n.node != nil {
		n.node.Close()
		n.node = nil
	}
	if n.q != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		n.q.Shutdown(ctx)
		cancel()
		n.q = nil
	}
	if n.srv != nil {
		n.srv.Shutdown(context.Background())
		n.srv = nil
	}
	if n.cli != nil {
		n.cli.Close()
		n.cli = nil
	}
	if n.st != nil {
		n.st.Close()
		n.st = nil
	}
}

// sameQueues compares the queue directories of the running nodes byte for
// byte and says how they differ ("" when identical).
func sameQueues(t *testing.T, nodes map[string]*tnode, names ...string) string {
	t.Helper()
	read := func(dir string) map[string]string {
		files := map[string]string{}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			if rel == "lock" || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			b, _ := os.ReadFile(p)
			files[rel] = string(b)
			return nil
		})
		return files
	}
	ref := read(filepath.Join(nodes[names[0]].dir, "queue"))
	for _, name := range names[1:] {
		got := read(filepath.Join(nodes[name].dir, "queue"))
		for f, data := range ref {
			if got[f] != data {
				return fmt.Sprintf("%s differs between %s and %s", f, names[0], name)
			}
		}
		for f := range got {
			if _, ok := ref[f]; !ok {
				return fmt.Sprintf("%s is on %s only", f, name)
			}
		}
	}
	return ""
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newCert(t testing.TB) tls.Certificate { return testcert.New(t, "jobq cluster") }

// failingFS fails every write while fail is set.
type failingFS struct {
	store.OSFS
	fail atomic.Bool
}

func (f *failingFS) WriteFile(path string, data []byte, perm fs.FileMode) error {
	if f.fail.Load() {
		return errors.New("no space left on device")
	}
	return f.OSFS.WriteFile(path, data, perm)
}

// A batch this node cannot write (a full disk) waits in the store's
// write-back buffer and is written again until it can be; meanwhile no
// snapshot is taken (the log keeps the entries) and later batches wait
// behind it, in order.
func TestFailedWriteIsRetried(t *testing.T) {
	dir := t.TempDir()
	ffs := &failingFS{}
	st, err := store.Open(filepath.Join(dir, "queue"), nil, store.WithFS(ffs))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := NewFSM(st, filepath.Join(dir, "settings"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ffs.fail.Store(true)
	if res := f.Apply(writeEntry(1, "job-1")); res != nil {
		t.Fatalf("a batch the log keeps, written later: %v", res)
	}
	if _, err := f.Snapshot(); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("a snapshot with a write failing: %v", err)
	}
	if res := f.Apply(writeEntry(2, "job-2")); res != nil {
		t.Fatal(res)
	}
	if _, err := os.Stat(filepath.Join(dir, "queue", "job-2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("job-2 written over the missing job-1: %v", err)
	}
	ffs.fail.Store(false)
	if _, err := f.Snapshot(); err != nil {
		t.Fatalf("a snapshot once writes work again: %v", err)
	}
	for _, name := range []string{"job-1", "job-2"} {
		if _, err := os.Stat(filepath.Join(dir, "queue", name)); err != nil {
			t.Fatalf("%s after the retry: %v", name, err)
		}
	}
}

func writeEntry(i uint64, names ...string) consensus.Entry {
	var cs []store.Change
	for _, n := range names {
		cs = append(cs, store.Change{Kind: "write", Name: n, Data: []byte("x")})
	}
	data, _ := EncodeBatch(cs)
	return consensus.Entry{Index: i, Data: data}
}

// When writing keeps failing and the write-back buffer is full, the node
// stops writing the queue (and taking snapshots) until a restart, which
// applies the log again.
func TestBrokenDirectoryStopsWriting(t *testing.T) {
	dir := t.TempDir()
	ffs := &failingFS{}
	const limit = 100
	st, err := store.Open(filepath.Join(dir, "queue"), nil, store.WithFS(ffs), store.WithMaxWaiting(limit))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := NewFSM(st, filepath.Join(dir, "settings"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	many := make([]string, limit)
	for i := range many {
		many[i] = store.JobFileName(int64(i + 1))
	}
	ffs.fail.Store(true)
	if res := f.Apply(writeEntry(1, many...)); res != nil {
		t.Fatalf("a full buffer, written at once: %v", res)
	}
	res := f.Apply(writeEntry(2, "serial"))
	if err, ok := res.(error); !ok || !strings.Contains(err.Error(), "the cluster agreed on log entry 2 but this node cannot write it") {
		t.Fatalf("a batch with the buffer full and writes failing: %v", res)
	}
	ffs.fail.Store(false)
	if res := f.Apply(writeEntry(3, "drain")); res == nil {
		t.Fatal("a batch after a refused one was taken")
	}
	if _, err := f.Snapshot(); err == nil {
		t.Fatal("a snapshot was taken with the directory behind the log")
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "queue", "drain")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("drain written over the missing serial: %v", err)
	}
	// A restart: a new FSM applies the log again, every batch lands.
	f2, err := NewFSM(st, filepath.Join(dir, "settings"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []consensus.Entry{writeEntry(1, many...), writeEntry(2, "serial"), writeEntry(3, "drain")} {
		if res := f2.Apply(e); res != nil {
			t.Fatal(res)
		}
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "queue", "drain")); err != nil {
		t.Fatalf("drain after the restart: %v", err)
	}
}
