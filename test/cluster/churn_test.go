package cluster

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
	"github.com/jobq-dev/jobq/internal/testbin"
)

// TestMembershipChurnWithKills: real jobqd processes; four clients submit
// without pause on the running nodes' sockets while nodes join, a node is
// set offline and back online, a node is removed, and the master and a
// follower are killed with SIGKILL and restarted. Every acknowledged job
// is there at the end, once, and has ended; the members' queues are the
// same byte for byte.
func TestMembershipChurnWithKills(t *testing.T) {
	nodes := startCluster(t, 3)
	base := filepath.Dir(nodes[0].dir)
	newNode := func(i int) *cnode {
		host := "127.0.0." + string(rune('0'+i))
		return &cnode{name: "node" + string(rune('0'+i)), addr: testbin.FreePort(t, host), dir: filepath.Join(base, "n"+string(rune('0'+i)))}
	}
	n4, n5 := newNode(4), newNode(5)

	var mu sync.Mutex
	running := slices.Clone(nodes) // the nodes the clients may use
	acked := map[int64]bool{}
	var dups []int64
	ackedCh := make(chan struct{}, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var c *client.Client
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					mu.Lock()
					n := running[i%len(running)]
					mu.Unlock()
					cc, err := client.Dial(context.Background(), n.dir+"/socket/jobq-query")
					if err != nil {
						continue
					}
					cc.SetRetryWindow(0) // on a failure: the next node
					c = cc
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				id, err := c.SubmitJob(ctx, delay(time.Millisecond))
				cancel()
				if err != nil {
					c.Close()
					c = nil
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond): // pace a failing client
					}
					continue
				}
				mu.Lock()
				if acked[id] {
					dups = append(dups, id)
				}
				acked[id] = true
				mu.Unlock()
				select {
				case ackedCh <- struct{}{}:
				default:
				}
			}
		})
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopLoad()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	// progress waits for 20 more acknowledgements (up to a minute).
	progress := func(what string) {
		t.Helper()
		want := count() + 20
		deadline := time.After(time.Minute)
		for count() < want {
			select {
			case <-ackedCh:
			case <-deadline:
				t.Fatalf("after %s: %d acknowledgements in a minute, want 20", what, count()-want+20)
			}
		}
		t.Logf("%s: %d jobs acknowledged so far", what, count())
	}
	use := func(ns ...*cnode) {
		mu.Lock()
		running = ns
		mu.Unlock()
	}
	// onMaster runs jobq on the master, again while masters change (up
	// to a minute).
	onMaster := func(args ...string) testbin.Result {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			among := slices.Clone(running)
			mu.Unlock()
			r := waitMaster(t, among...).jobq(t, args...)
			if r.Code == 0 || time.Now().After(deadline) {
				return r
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	join := func(n *cnode) {
		t.Helper()
		tok := onMaster("cluster", "join-token")
		if tok.Code != 0 {
			t.Fatalf("join-token: %+v", tok)
		}
		mu.Lock()
		among := slices.Clone(running)
		mu.Unlock()
		m := waitMaster(t, among...)
		n.start(t, "--join", m.addr, "--token", strings.TrimSpace(tok.Stdout))
	}

	progress("start")
	join(n4)
	use(nodes[0], nodes[1], nodes[2], n4)
	progress("node4 joined")

	if r := onMaster("node", "modify", "node2", "--offline", "yes"); r.Code != 0 {
		t.Fatalf("node2 offline: %+v", r)
	}
	progress("node2 offline")

	mu.Lock()
	m := waitMaster(t, running...)
	mu.Unlock()
	// Only once node4 votes do the others keep a majority without the
	// master (node2, offline, was demoted): until it holds the log it is
	// a learner, and a kill then would rightly stop the cluster.
	waitVoters(t, m, "node1", "node3", "node4")
	m.d.Kill()
	progress("the master " + m.name + " killed")
	m.start(t)
	progress("the old master " + m.name + " back")

	join(n5)
	use(nodes[0], nodes[1], nodes[2], n4, n5)
	progress("node5 joined")

	if r := onMaster("node", "modify", "node2", "--offline", "no"); r.Code != 0 {
		t.Fatalf("node2 online: %+v", r)
	}
	progress("node2 online again")

	// node4 leaves: the master cannot remove itself; move it away first.
	use(nodes[0], nodes[1], nodes[2], n5)
	if waitMaster(t, nodes[0], nodes[1], nodes[2], n4, n5) == n4 {
		makeMaster(t, nodes[0], nodes[0], nodes[1], nodes[2], n4, n5)
	}
	if r := onMaster("node", "remove", "node4"); r.Code != 0 {
		t.Fatalf("node remove node4: %+v", r)
	}
	if err := n4.d.Stop(); err != nil {
		t.Logf("node4 stopped: %v", err)
	}
	progress("node4 removed")

	mu.Lock()
	m = waitMaster(t, running...)
	var f *cnode
	for _, n := range running {
		if n != m {
			f = n
		}
	}
	mu.Unlock()
	f.d.Kill()
	progress("follower " + f.name + " killed")
	f.start(t)
	mu.Lock()
	m = waitMaster(t, running...)
	mu.Unlock()
	waitVoters(t, m, "node1", "node2", "node3", "node5")
	m.d.Kill()
	progress("the master " + m.name + " killed again")
	m.start(t)
	progress("the master " + m.name + " back")
	stopLoad()

	members := []*cnode{nodes[0], nodes[1], nodes[2], n5}
	m = waitMaster(t, members...)
	cm := m.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mu.Lock()
	ids := make([]int64, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	mu.Unlock()
	slices.Sort(ids)
	if len(dups) > 0 {
		t.Errorf("ids acknowledged twice: %v", dups)
	}
	for _, id := range ids {
		if _, err := cm.WatchJob(ctx, id, nil); err != nil {
			t.Errorf("acknowledged job %d: %v", id, err)
		}
	}
	waitInSync(t, m)
	files := sameFiles(t, members...)
	for _, id := range ids {
		if _, ok := files["job-"+itoa(id)]; !ok {
			t.Errorf("acknowledged job %d is not in the queue files", id)
		}
	}
	if v := voters(t, m); v["node4"] {
		t.Errorf("the removed node4 still votes: %v", v)
	}
	t.Logf("%d jobs acknowledged through the churn, none lost; the queues of %d members are the same", len(ids), len(members))
}
