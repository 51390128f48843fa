#!/bin/bash
# One jobqd, jobq-bench's declared workload (OP_BENCH_TRUE: /bin/true on
# the master, then the machine's fork-and-exec floor), and jobqd's CPU per
# job from /proc (its own, and its programs'). Issue 15's cost must-show.
#   go build -o /tmp/bin ./cmd/jobqd ./cmd/jobq ./cmd/jobq-bench
#   BIN=/tmp/bin JOBS=3000 test/timing/declared.sh     # PROF=1: a CPU profile, KEEP=1: keep the directory
set -u
B=${BIN:-$PWD}
JOBS=${JOBS:-3000}
d=$(mktemp -d /tmp/jobq-declared.XXXX)
PORT=${PORT:-18611}
prof=()
[ "${PROF:-0}" = 1 ] && prof=(--cpu-profile $d/cpu.prof)
$B/jobqd --data-dir $d/n1 --node-name node1 --rpc-addr 127.0.0.1:$PORT --rapi-addr off "${prof[@]}" >> $d/n1.log 2>&1 &
pid=$!
timeout 60 grep -q -m1 'jobqd ready' <(tail -n +1 -F --pid=$pid $d/n1.log 2>/dev/null) || { echo "not ready"; tail $d/n1.log; kill $pid; exit 1; }
cpu() { awk '{print $14+$15, $16+$17}' /proc/$pid/stat; }
read s0 c0 < <(cpu)
up0=$(uptime)
$B/jobq-bench --socket $d/n1/socket/jobq-query --workloads declared --jobs $JOBS > $d/bench.out 2>&1
read s1 c1 < <(cpu)
tk=$(getconf CLK_TCK)
rate=$(grep -o '"declared_jobs_per_s":[0-9.]*' $d/bench.out | cut -d: -f2)
floor=$(grep -o '"exec_floor_per_s":[0-9.]*' $d/bench.out | cut -d: -f2)
printf "%6.0f jobs/s (floor %4.0f/s)  jobqd cpu/job %5.0f us  children cpu/job %5.0f us  load %s\n" "$rate" "${floor:-0}" \
	$(echo "($s1-$s0)*1000000/$tk/$JOBS" | bc -l) $(echo "($c1-$c0)*1000000/$tk/$JOBS" | bc -l) "$(echo $up0 | sed 's/.*average: //')"
grep -q '"declared_not_success":0' $d/bench.out || { echo "not all successful:"; cat $d/bench.out; }
kill $pid; wait $pid
[ "${KEEP:-0}" = 1 ] && echo "DIR=$d" || rm -rf $d
