package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jobq-dev/jobq/internal/job"
	"github.com/jobq-dev/jobq/internal/store"
)

// populate writes a queue directory with live finished jobs and archived
// ones, for scale measurements (start time, listing time, memory). It
// writes files directly, without a daemon and without syncs.
func populate(dataDir string, live, archived int) error {
	q := filepath.Join(dataDir, "queue")
	if err := os.MkdirAll(q, store.DirMode); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(q, "version"), []byte("1\n"), store.FileMode); err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	input := json.RawMessage(`{"OP_ID":"OP_TEST_DELAY","duration":0.001,"on_master":true,"on_nodes":[],"repeat":0,"interruptible":false,"no_locks":true}`)
	total := archived + live
	for id := int64(1); id <= int64(total); id++ {
		t := job.TS(now.Add(time.Duration(id) * time.Millisecond))
		j, err := job.New(id, []json.RawMessage{input}, t, now.UnixNano())
		if err != nil {
			return err
		}
		j.BeginOp(0, t)
		j.ExecOp(0, t)
		j.AppendLog(0, t, "message", json.RawMessage(`" - INFO: populated"`))
		j.FinishOp(0, true, nil, t)
		b, err := j.Encode()
		if err != nil {
			return err
		}
		name := store.JobFileName(id)
		if id <= int64(archived) {
			name = store.ArchiveName(id)
			if err := os.MkdirAll(filepath.Dir(filepath.Join(q, name)), store.DirMode); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(q, name), b, store.FileMode); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(q, "serial"), store.SerialData(int64(total)), store.FileMode); err != nil {
		return err
	}
	fmt.Printf("wrote %d live and %d archived jobs under %s\n", live, archived, q)
	return nil
}
