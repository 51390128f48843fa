package queue

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
)

// failSerialFS fails, with ENOSPC, the next write of the serial file's
// temporary copy (recognised by its content) once armed.
type failSerialFS struct {
	store.OSFS
	mu    sync.Mutex
	armed []byte
}

func (f *failSerialFS) WriteFile(path string, data []byte, perm fs.FileMode) error {
	f.mu.Lock()
	hit := f.armed != nil && bytes.Equal(data, f.armed)
	if hit {
		f.armed = nil
	}
	f.mu.Unlock()
	if hit {
		return &fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
	}
	return f.OSFS.WriteFile(path, data, perm)
}

// TestSubmitWhenOnlyTheSerialFails: a job whose file is durable is
// acknowledged even if the serial file could not be written (loading
// raises the serial to the highest job id), rather than refused while its
// file stays on disk and runs at the next start.
func TestSubmitWhenOnlyTheSerialFails(t *testing.T) {
	dir := t.TempDir()
	ffs := &failSerialFS{}
	st, err := store.Open(dir, nil, store.WithFS(ffs))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(Config{Store: st, NodeName: "node1"})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, q: q}
	t.Cleanup(h.close)

	first := h.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`))
	ffs.mu.Lock()
	ffs.armed = store.SerialData(first + 1)
	ffs.mu.Unlock()
	res, err := q.Submit([][]json.RawMessage{{op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)}}, false)
	if err != nil || res[0].Err != nil || res[0].ID != first+1 {
		t.Fatalf("submission whose serial write failed: %+v %v", res, err)
	}
	if st := h.waitFinal(first + 1); st != job.StatusSuccess {
		t.Fatalf("job %d ended %s", first+1, st)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "serial")); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("serial file %q, want the last one stored, 1", b)
	}
	h.close()
	h2 := newHarness(t, dir, 0)
	if next := h2.submit(op(`{"OP_ID":"OP_TEST_DELAY","duration":0.001}`)); next != first+2 {
		t.Fatalf("next id after a restart %d, want %d", next, first+2)
	}
}
