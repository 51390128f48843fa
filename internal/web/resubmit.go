package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/queue"
)

// Resubmitting a job: a new job with the same opcodes (their inputs as
// submitted, the queue's own "gnt:opcode:" reason entries left out, as
// the queue adds them again), whose opcodes' reason trail says which job
// it resubmits and who did: ["jobq:web:resubmit", "job=N;user=U", ns].
// The new job's page links to the old one from that entry; the old job's
// page links to its resubmissions found among the jobs submitted after it
// (resubmitScan of them, and those this process made).

// resubmitSource is the reason trail source of a resubmission.
const resubmitSource = "jobq:web:resubmit"

// resubmitScan is how many jobs after a job its page looks through for
// its resubmissions.
const resubmitScan = 200

// resubmitOps returns job old's opcode inputs for a new job.
func resubmitOps(inputs []json.RawMessage, old int64, user string, now time.Time) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(inputs))
	for i, in := range inputs {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(in, &m); err != nil {
			return nil, fmt.Errorf("opcode %d of job %d is not a JSON object", i+1, old)
		}
		var trail []json.RawMessage
		if r, ok := m["reason"]; ok && string(r) != "null" {
			if err := json.Unmarshal(r, &trail); err != nil {
				return nil, fmt.Errorf("opcode %d of job %d has a reason trail that is not a list", i+1, old)
			}
		}
		kept := trail[:0]
		for _, e := range trail {
			var entry []any
			if json.Unmarshal(e, &entry) == nil && len(entry) > 0 {
				if src, _ := entry[0].(string); strings.HasPrefix(src, "gnt:opcode:") {
					continue
				}
			}
			kept = append(kept, e)
		}
		mine, _ := json.Marshal([]any{resubmitSource, fmt.Sprintf("job=%d;user=%s", old, user), now.UnixNano()})
		kept = append(kept, mine)
		m["reason"], _ = json.Marshal(kept)
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// resubmitOf returns the job an opcode input says it resubmits (0: none).
func resubmitOf(input json.RawMessage) int64 {
	var m struct {
		Reason [][]any `json:"reason"`
	}
	if json.Unmarshal(input, &m) != nil {
		return 0
	}
	for _, e := range m.Reason {
		if len(e) < 2 || e[0] != resubmitSource {
			continue
		}
		text, _ := e[1].(string)
		for _, kv := range strings.Split(text, ";") {
			if v, ok := strings.CutPrefix(kv, "job="); ok {
				if id, err := strconv.ParseInt(v, 10, 64); err == nil {
					return id
				}
			}
		}
	}
	return 0
}

// resubmissions remembers the resubmissions this process made.
type resubmissions struct {
	mu  sync.Mutex
	new map[int64][]int64 // old job -> new jobs
}

func (r *resubmissions) add(old, new int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.new == nil {
		r.new = map[int64][]int64{}
	}
	r.new[old] = append(r.new[old], new)
}

func (r *resubmissions) of(old int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.new[old]...)
}

// resubmittedAs lists the jobs that resubmit job id, ascending.
func (h *Handler) resubmittedAs(id int64) ([]int64, error) {
	found := map[int64]bool{}
	for _, n := range h.resubmits.of(id) {
		found[n] = true
	}
	ids := make([]int64, 0, resubmitScan)
	for n := id + 1; n <= id+resubmitScan; n++ {
		ids = append(ids, n)
	}
	rows, err := h.cfg.Queue.Select(queue.Selector{IDs: ids, Archived: true}, []string{"id", "ops"})
	if err != nil {
		return nil, err
	}
	for _, vals := range rows {
		var ops []json.RawMessage
		if recode(vals[1], &ops) != nil || len(ops) == 0 {
			continue
		}
		if resubmitOf(ops[0]) == id {
			n, _ := vals[0].(int64)
			found[n] = true
		}
	}
	out := make([]int64, 0, len(found))
	for n := range found {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
