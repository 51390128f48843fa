// Package settings is the interface of the cluster-wide settings: named
// JSON documents (the cluster configuration, job filters, opcode
// definitions, schedules, queue settings) that every node holds the same
// and that survive a master failover. In a cluster they are entries of
// the agreed log (package queuelog); Local keeps them in files for tests
// and tools that run one node without a log.
package settings

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

	"github.com/jobq-dev/jobq/internal/durable"
)

// Store holds the cluster-wide settings.
type Store interface {
	// Get is the value of key as this node has applied it; nil when the
	// key was never set.
	Get(key string) []byte
	// Set agrees value (JSON) for key cluster-wide and returns once it is
	// applied on this node. Only the master may set; elsewhere the error
	// says so.
	Set(ctx context.Context, key string, value []byte) error
	// Watch calls fn after each change applied on this node (from one
	// goroutine, in the order of the changes; fn must not block long).
	Watch(fn func(key string, value []byte))
}

// ValidKey: a key is a file name KEY.json: 1 to 64 of a-z, 0-9 and -.
func ValidKey(key string) error {
	if key == "" || len(key) > 64 {
		return fmt.Errorf("setting name %q must have 1 to 64 characters", key)
	}
	for _, r := range key {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("setting name %q may only hold a-z, 0-9 and -", key)
		}
	}
	return nil
}

// Local is a Store of one node: each key is DIR/KEY.json, written
// durably.
type Local struct {
	dir      string
	mu       sync.Mutex
	values   map[string][]byte
	watchers []func(string, []byte)
	applyMu  sync.Mutex // one Set at a time, watchers in order
}

// OpenLocal reads the settings in dir (created if missing).
func OpenLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create the settings directory: %w", err)
	}
	l := &Local{dir: dir, values: map[string][]byte{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		key, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || ValidKey(key) != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		l.values[key] = b
	}
	return l, nil
}

// Get implements Store.
func (l *Local) Get(key string) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.values[key]
}

// Set implements Store.
func (l *Local) Set(ctx context.Context, key string, value []byte) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if !json.Valid(value) {
		return fmt.Errorf("the value of setting %s is not JSON", key)
	}
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if err := durable.WriteFile(filepath.Join(l.dir, key+".json"), value, 0o640); err != nil {
		return fmt.Errorf("cannot store setting %s: %w", key, err)
	}
	v := append([]byte(nil), value...)
	l.mu.Lock()
	l.values[key] = v
	ws := append([]func(string, []byte){}, l.watchers...)
	l.mu.Unlock()
	for _, fn := range ws {
		fn(key, v)
	}
	return nil
}

// Watch implements Store.
func (l *Local) Watch(fn func(key string, value []byte)) {
	l.mu.Lock()
	l.watchers = append(l.watchers, fn)
	l.mu.Unlock()
}
