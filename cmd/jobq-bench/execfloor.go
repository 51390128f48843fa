package main

import (
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// The declared workload's floor: how many times a second this machine
// starts /bin/true and waits for it, with no queue, no cgroup and no
// pipes (os/exec from this process, as many at once as jobqd runs jobs by
// default). A declared opcode's job cannot be cheaper than one of these,
// so the declared rate is read against it, as the throughput is read
// against the disk's limit: on a shared machine the floor moves with the
// load, and says how much of the declared rate's gap is the machine's.

// execFloorParallel is jobqd's default of jobs running at once
// (queue.DefaultMaxRunning).
const execFloorParallel = 20

// execFloor runs /bin/true n times, execFloorParallel at once, and
// returns the executions a second.
func execFloor(n int) (float64, error) {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
	)
	start := time.Now()
	for range execFloorParallel {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := exec.Command("/bin/true").Run(); err != nil {
					errOnce.Do(func() { firstEr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstEr != nil {
		return 0, firstEr
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
