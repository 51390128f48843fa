package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/jobq-dev/jobq/opcodes"
)

// queueSettingsKey is the cluster-wide setting of the queue's parameters
// that change at run time (OP_CLUSTER_SET_PARAMS).
const queueSettingsKey = "queue"

// queueSettings are the queue's cluster-wide parameters; nil: not set
// (jobqd's --max-running-jobs applies). max_tracked_jobs is kept for
// Ganeti's clients; jobq's scheduler has no such limit.
type queueSettings struct {
	MaxRunningJobs *int64 `json:"max_running_jobs,omitempty"`
	MaxTrackedJobs *int64 `json:"max_tracked_jobs,omitempty"`
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
// queue's max_running_jobs and max_tracked_jobs change; every other
// parameter must be left out or empty (null, false, {}, [], "") as
// gnt-cluster modify sends the ones it was not given.
type clusterSetParams struct {
	n                 *nodeRT
	MaxRunningJobs    *int64 `json:"max_running_jobs"`
	MaxTrackedJobs    *int64 `json:"max_tracked_jobs"`
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
		IdempotencyWindow *int64 `json:"idempotency_window"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p.MaxRunningJobs, p.MaxTrackedJobs, p.IdempotencyWindow = v.MaxRunningJobs, v.MaxTrackedJobs, v.IdempotencyWindow
	p.others = unsupportedClusterParams(m)
	return nil
}

// unsupportedClusterParams are the members of an OP_CLUSTER_SET_PARAMS
// input that ask for a change jobq cannot make, sorted.
func unsupportedClusterParams(m map[string]json.RawMessage) []string {
	var out []string
	for k, v := range m {
		if clusterSetParamsCommon[k] || k == "max_running_jobs" || k == "max_tracked_jobs" || k == "idempotency_window" || k == "force" {
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
		return opcodes.PrereqError("wrong_input", "jobq changes only max_running_jobs and max_tracked_jobs of the cluster; leave out %v (gnt-cluster modify and jobq cluster modify take --max-running-jobs and --max-tracked-jobs; jobq's own idempotency_window is the only other parameter)", p.others)
	}
	if p.MaxRunningJobs == nil && p.MaxTrackedJobs == nil && p.IdempotencyWindow == nil {
		return opcodes.PrereqError("wrong_input", "Please give at least one of the parameters max_running_jobs and max_tracked_jobs")
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
