#!/bin/bash
# jobq-bench on one node and on three (issue 14's performance must-show):
# ROUNDS rounds, one node and three interleaved, each on fresh data
# directories under BASE, the disk's durable replace rate measured in the
# same run by jobq-bench's "disk" workload. Prints jobq-bench's JSON line
# per run; with PROFILE=1 the first node of each run writes a CPU profile
# (BASE/r<round>-<nodes>.prof; go tool pprof -top jobqd FILE).
#   go build -o /tmp/bin ./cmd/jobqd ./cmd/jobq ./cmd/jobq-bench
#   BIN=/tmp/bin ROUNDS=3 test/timing/bench.sh
set -u
B=${BIN:-$PWD}
ROUNDS=${ROUNDS:-3}
BASE=${BASE:-$(mktemp -d /tmp/jobq-bench.XXXX)}
PORT=18511
WORKLOADS=${WORKLOADS:-disk,throughput,latency}
declare -A PID
start() { # dir i [args]
  local d=$1 i=$2; shift 2
  $B/jobqd --data-dir $d/n$i --node-name node$i --rpc-addr 127.0.0.$i:$PORT --rapi-addr off "$@" >> $d/n$i.log 2>&1 &
  PID[$i]=$!
  timeout 60 grep -q -m1 'jobqd ready' <(tail -n +1 -F --pid=${PID[$i]} $d/n$i.log 2>/dev/null) ||
    { echo "node$i not ready"; tail $d/n$i.log; exit 1; }
}
stop() { for i in "${!PID[@]}"; do kill ${PID[$i]} 2>/dev/null; done; wait; PID=(); }
for r in $(seq $ROUNDS); do
  for nodes in 1 3; do
    d=$BASE/r$r-$nodes; mkdir -p $d
    prof=()
    [ "${PROFILE:-0}" = 1 ] && prof=(--cpu-profile $BASE/r$r-$nodes.prof)
    start $d 1 "${prof[@]}"
    for i in $(seq 2 $nodes); do
      tok=$($B/jobq --data-dir $d/n1 cluster join-token 2>/dev/null)
      start $d $i --join 127.0.0.1:$PORT --token "$tok"
    done
    [ $nodes -gt 1 ] && $B/jobq --data-dir $d/n1 cluster verify-queue --wait 60s >/dev/null
    echo "== round $r, $nodes node(s)"
    $B/jobq-bench --socket $d/n1/socket/jobq-query --workloads $WORKLOADS 2>&1 | grep -v '^$'
    stop
  done
done
echo "BASE=$BASE"
