package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/opcodes"
)

// queueSettingsKey is the cluster-wide setting of the queue's parameters
// that change at run time (OP_CLUSTER_SET_PARAMS).
const queueSettingsKey = "queue"

// queueSettings are the queue's cluster-wide parameters; nil: not set
// (jobqd's --max-running-jobs applies). max_tracked_jobs is kept and
// reported for Ganeti's clients but has no effect: in Ganeti it is how
// many job files luxid watches with inotify before it falls back to
// polling them (gnt-cluster(8)); jobq's master keeps every live job in
// memory and wakes its watchers directly, and watches no job file.
type queueSettings struct {
	MaxRunningJobs *int64 `json:"max_running_jobs,omitempty"`
	MaxTrackedJobs *int64 `json:"max_tracked_jobs,omitempty"`
	// MTime: when they last changed (Unix seconds; the cluster's mtime).
	MTime float64 `json:"mtime,omitempty"`
	// IdempotencyWindow is how long idempotency keys are kept, in
	// seconds (jobq's; package idem).
	IdempotencyWindow *int64 `json:"idempotency_window,omitempty"`
}

func (n *nodeRT) queueSettings() queueSettings {
	var s queueSettings
	if b := n.settings.Get(queueSettingsKey); b != nil {
		if err := json.Unmarshal(b, &s); err != nil {
			n.log.Error("the stored queue settings cannot be read; jobqd's own apply", "err", err)
			return queueSettings{}
		}
	}
	return s
}

// maxRunning is the max_running_jobs that applies: the cluster's, else
// jobqd's --max-running-jobs (0: the queue's default).
func (n *nodeRT) maxRunning() int {
	if s := n.queueSettings(); s.MaxRunningJobs != nil {
		return int(*s.MaxRunningJobs)
	}
	return n.o.MaxRunning
}

// defaultMaxTrackedJobs is Ganeti's default max_tracked_jobs.
const defaultMaxTrackedJobs = 25

// maxTracked is the max_tracked_jobs reported: the cluster's, else
// Ganeti's default.
func (n *nodeRT) maxTracked() int64 {
	if s := n.queueSettings(); s.MaxTrackedJobs != nil {
		return *s.MaxTrackedJobs
	}
	return defaultMaxTrackedJobs
}

// idempotencyWindow is the window that applies: the cluster's, else
// jobqd's --idempotency-ttl (0: the queue's default).
func (n *nodeRT) idempotencyWindow() time.Duration {
	if s := n.queueSettings(); s.IdempotencyWindow != nil {
		return time.Duration(*s.IdempotencyWindow) * time.Second
	}
	return n.o.IdempotencyWindow
}

// watchQueueSettings hands every change of the queue settings to the
// running queue.
func (n *nodeRT) watchQueueSettings() {
	n.settings.Watch(func(key string, _ []byte) {
		if key != queueSettingsKey {
			return
		}
		if q := n.queue(); q != nil {
			q.SetMaxRunning(n.maxRunning())
			q.SetIdempotencyWindow(n.idempotencyWindow())
		}
	})
}

// clusterSetParamsCommon are the opcode members every opcode has.
var clusterSetParamsCommon = map[string]bool{
	"OP_ID": true, "dry_run": true, "debug_level": true, "priority": true,
	"depends": true, "comment": true, "reason": true,
}

// clusterSetParams is OP_CLUSTER_SET_PARAMS as jobq runs it: only the
// queue's max_running_jobs and max_tracked_jobs and the cluster's
// candidate_pool_size (how many master candidates vote) change; every
// other parameter must be left out or empty (null, false, {}, [], "") as
// gnt-cluster modify sends the ones it was not given.
type clusterSetParams struct {
	n                 *nodeRT
	MaxRunningJobs    *int64 `json:"max_running_jobs"`
	MaxTrackedJobs    *int64 `json:"max_tracked_jobs"`
	CandidatePoolSize *int64 `json:"candidate_pool_size"`
	IdempotencyWindow *int64 `json:"idempotency_window"`
	others            []string
}

func (p *clusterSetParams) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var v struct {
		MaxRunningJobs    *int64 `json:"max_running_jobs"`
		MaxTrackedJobs    *int64 `json:"max_tracked_jobs"`
		CandidatePoolSize *int64 `json:"candidate_pool_size"`
		IdempotencyWindow *int64 `json:"idempotency_window"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p.MaxRunningJobs, p.MaxTrackedJobs, p.CandidatePoolSize, p.IdempotencyWindow = v.MaxRunningJobs, v.MaxTrackedJobs, v.CandidatePoolSize, v.IdempotencyWindow
	p.others = unsupportedClusterParams(m)
	return nil
}

// unsupportedClusterParams are the members of an OP_CLUSTER_SET_PARAMS
// input that ask for a change jobq cannot make, sorted.
func unsupportedClusterParams(m map[string]json.RawMessage) []string {
	var out []string
	for k, v := range m {
		if clusterSetParamsCommon[k] || k == "max_running_jobs" || k == "max_tracked_jobs" || k == "candidate_pool_size" || k == "idempotency_window" || k == "force" {
			continue
		}
		switch string(bytes.Join(bytes.Fields(v), nil)) {
		case "null", "false", "{}", "[]", `""`:
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (p *clusterSetParams) Validate() error {
	if len(p.others) > 0 {
		return opcodes.PrereqError("wrong_input", "jobq changes only max_running_jobs, max_tracked_jobs and candidate_pool_size of the cluster; leave out %v (gnt-cluster modify and jobq cluster modify take --max-running-jobs, --max-tracked-jobs and --candidate-pool-size; jobq's own idempotency_window is the only other parameter)", p.others)
	}
	if p.MaxRunningJobs == nil && p.MaxTrackedJobs == nil && p.CandidatePoolSize == nil && p.IdempotencyWindow == nil {
		return opcodes.PrereqError("wrong_input", "Please give at least one of the parameters max_running_jobs, max_tracked_jobs and candidate_pool_size")
	}
	if v := p.CandidatePoolSize; v != nil && (*v < 1 || *v > cluster.MaxCandidatePoolSize) {
		return opcodes.PrereqError("wrong_input", "candidate_pool_size must be between 1 and %d (every candidate votes: 3 or 5 suits most clusters), got %d", cluster.MaxCandidatePoolSize, *v)
	}
	if w := p.IdempotencyWindow; w != nil && (*w < 60 || *w > 30*24*3600) {
		return opcodes.PrereqError("wrong_input", "idempotency_window must be between 60 and %d seconds (30 days), got %d", 30*24*3600, *w)
	}
	for name, v := range map[string]*int64{"max_running_jobs": p.MaxRunningJobs, "max_tracked_jobs": p.MaxTrackedJobs} {
		if v != nil && (*v < 1 || *v > 1<<20) {
			return opcodes.PrereqError("wrong_input", "%s must be between 1 and %d, got %d", name, 1<<20, *v)
		}
	}
	return nil
}

// Exec agrees the new settings cluster-wide; the queue applies them at
// once (watchQueueSettings), here and on a future master. It logs
// nothing, as Ganeti's LUClusterSetParams (gnt-cluster modify prints no
// line).
func (p *clusterSetParams) Exec(ctx context.Context, _ opcodes.Env) (any, error) {
	if p.CandidatePoolSize != nil {
		size := int(*p.CandidatePoolSize)
		if _, err := p.n.changeConfig(ctx, func(c *cluster.Config) (*cluster.Config, error) { return c.SetCandidatePoolSize(size) }); err != nil {
			return nil, err
		}
		if p.MaxRunningJobs == nil && p.MaxTrackedJobs == nil && p.IdempotencyWindow == nil {
			return nil, nil
		}
	}
	p.n.filterMu.Lock() // one change of the cluster's settings at a time
	defer p.n.filterMu.Unlock()
	s := p.n.queueSettings()
	if p.MaxRunningJobs != nil {
		s.MaxRunningJobs = p.MaxRunningJobs
	}
	if p.MaxTrackedJobs != nil {
		s.MaxTrackedJobs = p.MaxTrackedJobs
	}
	if p.IdempotencyWindow != nil {
		s.IdempotencyWindow = p.IdempotencyWindow
	}
	s.MTime = float64(time.Now().UnixMicro()) / 1e6
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if err := p.n.settings.Set(ctx, queueSettingsKey, b); err != nil {
		return nil, opcodes.ExecError("cannot store the queue settings: %v", err)
	}
	return nil, nil
}

// registerClusterSetParams adds OP_CLUSTER_SET_PARAMS to the node's
// opcodes.
func (n *nodeRT) registerClusterSetParams(reg *opcodes.Registry) error {
	return reg.Register(opcodes.Definition{ID: "OP_CLUSTER_SET_PARAMS",
		New: func() opcodes.Params { return &clusterSetParams{n: n} }})
}
