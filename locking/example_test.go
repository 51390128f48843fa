package locking_test

import (
	"context"
	"fmt"

	"github.com/jobq-dev/jobq/locking"
)

// An opcode author registers a level of their own once, at package
// initialisation; it comes after "node".
var levelDisk = locking.RegisterLevel("disk")

func printLocks(m *locking.Manager) {
	for _, li := range m.Snapshot() {
		mode := "-"
		if li.Mode != 0 {
			mode = li.Mode.String()
		}
		fmt.Printf("  %-15s %-16s owners=%v", li.Name, mode, li.Owners)
		for _, p := range li.Pending {
			fmt.Printf(" pending %s %v", p.Mode, p.Owners)
		}
		fmt.Println()
	}
}

func Example() {
	waiting := make(chan struct{}, 1)
	m := locking.NewManager(locking.Config{
		Schedule: locking.DefaultSchedule(),
		OnWait: func(job locking.Owner, lock locking.LockID, mode locking.Mode) {
			fmt.Printf("job %d waits for %s (%s)\n", job, lock, mode)
			waiting <- struct{}{}
		},
	})
	ctx := context.Background()
	if err := m.Declare(locking.LevelNode, "node1", "node2"); err != nil {
		panic(err)
	}

	// Job 1: the cluster shared, node1 exclusive, then a disk of its own;
	// level by level, in order.
	for _, r := range []locking.Request{
		{Level: locking.LevelCluster, Names: []string{locking.BGL}, Mode: locking.Shared},
		{Level: locking.LevelNode, Names: []string{"node1"}, Mode: locking.Exclusive},
		{Level: levelDisk, Names: []string{"disk0"}, Mode: locking.Exclusive},
	} {
		if err := m.Acquire(ctx, 1, locking.PriorityDefault, r); err != nil {
			panic(err)
		}
	}

	// Job 2 wants every node, shared: it waits for job 1's node1.
	done := make(chan error)
	go func() {
		done <- m.Acquire(ctx, 2, locking.PriorityDefault,
			locking.Request{Level: locking.LevelNode, All: true, Mode: locking.Shared})
	}()
	<-waiting
	fmt.Println("while job 1 runs:")
	printLocks(m)

	// Job 1 ends: everything it holds is released and job 2 proceeds.
	m.ReleaseAll(1)
	if err := <-done; err != nil {
		panic(err)
	}
	fmt.Println("after job 1:")
	printLocks(m)
	fmt.Println("job 2 holds:", m.Holds(2))
	m.ReleaseAll(2)

	// Output:
	// job 2 waits for node/[lockset] (shared)
	// while job 1 runs:
	//   cluster/BGL     shared           owners=[1]
	//   node/[lockset]  intent-exclusive owners=[1] pending shared [2]
	//   node/node1      exclusive        owners=[1]
	//   node/node2      -                owners=[]
	//   disk/disk0      exclusive        owners=[1]
	// after job 1:
	//   cluster/BGL     -                owners=[]
	//   node/[lockset]  shared           owners=[2]
	//   node/node1      -                owners=[]
	//   node/node2      -                owners=[]
	// job 2 holds: [{node shared true []}]
}
