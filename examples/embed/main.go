// Command embed is a jobq node with an opcode of its own, written in Go:
// OP_FILE_CHECKSUM computes a file's digest on the master, logging its
// progress, as an operator verifies a backup before deleting the original.
//
// It is jobqd with one more opcode: build it and run it in place of jobqd
// (on every node of a cluster, since any node may become the master), with
// jobqd's flags:
//
//	go build -o /tmp/jobqd-embed ./examples/embed
//	/tmp/jobqd-embed --data-dir /tmp/jobq-embed &
//	jobq --data-dir /tmp/jobq-embed submit -- '{"OP_ID": "OP_FILE_CHECKSUM", "path": "/etc/hostname"}'
//
// jobq, gnt-job, RAPI and the Go client submit, watch and query it as any
// other opcode. As Ganeti's opcodes, one with bad parameters (a relative
// path, an unknown algorithm) or a missing file fails with OpPrereqError
// before it takes its locks or runs.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/jobq-dev/jobq/locking"
	"github.com/jobq-dev/jobq/opcodes"
	"github.com/jobq-dev/jobq/server"
)

func main() {
	server.Run(server.Options{Opcodes: []opcodes.Definition{FileChecksumDef}})
}

// FileChecksum is OP_FILE_CHECKSUM's parameters. The same type serves a
// Go client: it has OpID, so client.SubmitJob takes it.
type FileChecksum struct {
	// Path is the file, an absolute path on the master.
	Path string `json:"path"`
	// Algorithm is "sha256" (the default) or "sha512".
	Algorithm string `json:"algorithm"`
}

// FileChecksumDef declares OP_FILE_CHECKSUM: "path" is required and shown
// in the job's summary (FILE_CHECKSUM(/etc/hostname)).
var FileChecksumDef = opcodes.Definition{
	ID:           "OP_FILE_CHECKSUM",
	New:          func() opcodes.Params { return &FileChecksum{Algorithm: "sha256"} },
	SummaryField: "path",
	Required:     []string{"path"},
}

// OpID names the opcode for the Go client.
func (*FileChecksum) OpID() string { return "OP_FILE_CHECKSUM" }

// Validate checks the parameters alone, before the opcode runs (as
// Ganeti's CheckArguments): a bad one fails it with OpPrereqError.
func (p *FileChecksum) Validate() error {
	if !filepath.IsAbs(p.Path) {
		return opcodes.PrereqError("wrong_input", "Parameter 'path' must be an absolute path, not %q", p.Path)
	}
	if newHash(p.Algorithm) == nil {
		return opcodes.PrereqError("wrong_input", "Parameter 'algorithm' must be sha256 or sha512, not %q", p.Algorithm)
	}
	return nil
}

// Prepare checks the master's state before the opcode counts as running:
// the file must exist and be a regular file.
func (p *FileChecksum) Prepare(env opcodes.Env) error {
	fi, err := os.Stat(p.Path)
	if err != nil {
		return opcodes.PrereqError("wrong_input", "Cannot read %s on %s: %v", p.Path, env.NodeName(), errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() {
		return opcodes.PrereqError("wrong_input", "%s on %s is not a regular file", p.Path, env.NodeName())
	}
	return nil
}

// Locks takes the master's node lock shared: checksums run side by side,
// and an opcode that takes the node exclusively (a plain "gnt-debug delay",
// a maintenance operation) waits for them, and they for it.
func (p *FileChecksum) Locks(env opcodes.Env) []locking.Request {
	return []locking.Request{
		{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: locking.Shared},
		{Level: locking.LevelNode, Names: []string{env.NodeName()}, Mode: locking.Shared},
	}
}

// progressEvery is how often the opcode logs its progress.
const progressEvery = 64 << 20

// Exec reads the file, logging every 64 MiB, and returns its digest. A
// cancel of the job (jobq cancel --kill) ends the context and the read.
func (p *FileChecksum) Exec(ctx context.Context, env opcodes.Env) (any, error) {
	h := newHash(p.Algorithm)
	f, err := os.Open(p.Path)
	if err != nil {
		return nil, opcodes.ExecError("Cannot open %s: %v", p.Path, err)
	}
	defer f.Close()
	opcodes.LogInfo(env, "computing the %s digest of %s", p.Algorithm, p.Path)
	var n int64
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return nil, opcodes.ExecError("Stopped after %d bytes of %s: %v", n, p.Path, err)
		}
		k, err := f.Read(buf)
		h.Write(buf[:k])
		if n/progressEvery != (n+int64(k))/progressEvery {
			opcodes.LogInfo(env, "%d MiB read", (n+int64(k))>>20)
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, opcodes.ExecError("Reading %s: %v", p.Path, err)
		}
	}
	return map[string]any{
		"path":      p.Path,
		"algorithm": p.Algorithm,
		"bytes":     n,
		"digest":    hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// newHash returns the algorithm's hash, or nil for an unknown one.
func newHash(algorithm string) hash.Hash {
	switch algorithm {
	case "sha256":
		return sha256.New()
	case "sha512":
		return sha512.New()
	}
	return nil
}
