package queuelog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/consensus"
	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/store"
)

// lossyFS is the store's file system with a power switch: what was not
// synced is lost at a crash. At each Sync it records the directory as
// the disk holds it; crash puts that image back, dropping every write,
// rename and removal made since (temporary files included). It models the
// worst a power loss may do to the queue directory.
//
// The log itself (etcd's WAL) is not behind this seam: its writes are
// fsynced before the engine acts on them, and the test's crash keeps
// them (as kill -9 keeps the page cache). What is tested is that the
// queue directory, written without syncs, is rebuilt from the log.
type lossyFS struct {
	store.OSFS
	dir string

	mu    sync.Mutex
	image map[string][]byte // relative path -> contents at the last sync
}

func newLossyFS(dir string) *lossyFS { return &lossyFS{dir: dir, image: map[string][]byte{}} }

func (l *lossyFS) Sync(files, dirs []string) error {
	img, err := readTree(l.dir)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.image = img
	l.mu.Unlock()
	return nil
}

func readTree(dir string) (map[string][]byte, error) {
	img := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "lock" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		img[rel] = b
		return nil
	})
	return img, err
}

// crash puts the directory back as it was at the last sync (the version
// file, written durably by store.Open itself, stays).
func (l *lossyFS) crash() error {
	l.mu.Lock()
	img := l.image
	l.mu.Unlock()
	now, err := readTree(l.dir)
	if err != nil {
		return err
	}
	for rel := range now {
		if _, keep := img[rel]; !keep && rel != "version" {
			if err := os.Remove(filepath.Join(l.dir, rel)); err != nil {
				return err
			}
		}
	}
	for rel, data := range img {
		p := filepath.Join(l.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Power losses at random instants under a load of submissions, on one
// node and on all three of a cluster at once: after each restart every
// acknowledged job is there with its contents, and no id is handed out
// twice.
func TestPowerLossKeepsAcknowledgedJobs(t *testing.T) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("nodes=%d", size), func(t *testing.T) { powerLossRounds(t, size, 6) })
	}
}

func powerLossRounds(t *testing.T, size, rounds int) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	cert := newCert(t)
	names := []string{"a", "b", "c"}[:size]
	nodes := map[string]*tnode{}
	disks := map[string]*lossyFS{}
	for _, name := range names {
		dir := t.TempDir()
		nodes[name] = &tnode{name: name, dir: dir, timing: consensus.Timing{Tick: 40 * time.Millisecond, SnapshotEntries: 25, TrailingEntries: 5}}
		disks[name] = newLossyFS(filepath.Join(dir, "queue"))
		nodes[name].fs = disks[name]
		t.Cleanup(nodes[name].stop)
	}
	leader := func() *tnode {
		for _, n := range names {
			if nd := nodes[n]; nd.node != nil && nd.node.IsLeader() {
				return nd
			}
		}
		return nil
	}
	// A node that falls behind the compacted log (on a loaded machine)
	// starts again from a snapshot: it fetches the files from the master.
	fetchFrom := func(self string) Fetch {
		return func(ctx context.Context, want []string) ([]noderpc.Change, error) {
			for _, n := range names {
				if nd := nodes[n]; n != self && nd.node != nil && nd.node.IsLeader() {
					return ReadFiles(filepath.Join(nd.dir, "queue"), want)
				}
			}
			return nil, errors.New("no master")
		}
	}
	formCluster(t, cert, nodes, names, fetchFrom)
	acked := map[int64]string{} // id -> comment
	for round := range rounds {
		var m *tnode
		waitFor(t, "a leader", func() bool { m = leader(); return m != nil })
		m.becomeMaster(t)
		// Every acknowledged job of earlier rounds is there.
		for id, comment := range acked {
			rows, err := m.q.QueryJobs([]int64{id}, []string{"ops"})
			if err != nil || !strings.Contains(string(rows[0]), comment) {
				t.Fatalf("round %d: acknowledged job %d (%s) after the power loss: %s %v", round, id, comment, rows[0], err)
			}
		}
		// Two clients submit until the queue refuses; the power fails
		// once a random number more are acknowledged, while they submit.
		var mu sync.Mutex
		target := len(acked) + 5 + rng.IntN(60)
		var wg sync.WaitGroup
		for c := range 2 {
			wg.Go(func() {
				for i := 0; ; i++ {
					comment := fmt.Sprintf("r%d-c%d-%d", round, c, i)
					res, err := m.q.Submit([][]json.RawMessage{{json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"comment":"` + comment + `"}`)}}, false)
					if err != nil || res[0].Err != nil {
						return // the power is out
					}
					mu.Lock()
					if prev, dup := acked[res[0].ID]; dup {
						t.Errorf("round %d: id %d handed out twice (%s, %s)", round, res[0].ID, prev, comment)
					}
					acked[res[0].ID] = comment
					mu.Unlock()
				}
			})
		}
		waitFor(t, fmt.Sprintf("%d acknowledged jobs", target), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= target
		})
		// Power loss everywhere: the log's engines stop, then the queues
		// (what they still write is not agreed), then the disks lose what
		// was not synced.
		for _, name := range names {
			nodes[name].crash()
		}
		wg.Wait()
		for _, name := range names {
			if err := disks[name].crash(); err != nil {
				t.Fatal(err)
			}
			nodes[name].start(t, cert, false, fetchFrom(name))
		}
	}
	var m *tnode
	waitFor(t, "a leader", func() bool { m = leader(); return m != nil })
	m.becomeMaster(t)
	for id, comment := range acked {
		rows, err := m.q.QueryJobs([]int64{id}, []string{"ops"})
		if err != nil || !strings.Contains(string(rows[0]), comment) {
			t.Fatalf("acknowledged job %d (%s) after the last power loss: %s %v", id, comment, rows[0], err)
		}
	}
	t.Logf("%d jobs acknowledged over %d power losses, all there", len(acked), rounds)
	if len(acked) < rounds*5 {
		t.Fatalf("only %d jobs acknowledged: the test exercised too little", len(acked))
	}
}
