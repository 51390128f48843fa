package cluster

import (
	"regexp"
	"strings"
	"testing"
)

var submittedRe = regexp.MustCompile(`JobID: (\d+)`)

// TestIdempotencyKeyAcrossFailover: a submission's idempotency key is
// kept cluster-wide with its job (the same log entry): after the master
// is killed, a retry with the same key on the new master answers the
// first job's id and makes no job; the same key with another job is
// refused there too.
func TestIdempotencyKeyAcrossFailover(t *testing.T) {
	nodes := startCluster(t, 3)
	waitVoters(t, nodes[0], "node1", "node2", "node3")
	m := waitMaster(t, nodes...)
	op := `{"OP_ID": "OP_TEST_DELAY", "duration": 0}`
	submit := func(n *cnode, body string) (string, string) {
		t.Helper()
		r := n.jobq(t, "submit", "--idempotency-key", "deploy-42", "--", body)
		if r.Code != 0 {
			return "", r.Stdout + r.Stderr
		}
		mm := submittedRe.FindStringSubmatch(r.Stdout)
		if mm == nil {
			t.Fatalf("jobq submit printed %q", r.Stdout)
		}
		return mm[1], ""
	}
	first, out := submit(m, op)
	if first == "" {
		t.Fatalf("first submission on %s: %s", m.name, out)
	}
	if again, out := submit(m, op); again != first {
		t.Fatalf("retry on the same master: %q %s, want job %s", again, out, first)
	}
	before := m.jobq(t, "list", "--no-headers", "-o", "id")
	if before.Code != 0 {
		t.Fatalf("jobq list: %+v", before)
	}

	m.d.Kill()
	var others []*cnode
	for _, n := range nodes {
		if n != m {
			others = append(others, n)
		}
	}
	m2 := waitMaster(t, others...)
	again, out := submit(m2, op)
	if again != first {
		t.Fatalf("retry on the new master %s: %q %s, want job %s", m2.name, again, out, first)
	}
	if _, out := submit(m2, `{"OP_ID": "OP_TEST_DELAY", "duration": 1}`); !strings.Contains(out, `idempotency key "deploy-42" was used`) {
		t.Fatalf("another job with the key on the new master: %s", out)
	}
	after := m2.jobq(t, "list", "--no-headers", "-o", "id")
	if after.Stdout != before.Stdout {
		t.Fatalf("the retries made jobs: before the failover\n%safter\n%s", before.Stdout, after.Stdout)
	}
}
