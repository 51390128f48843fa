#!/bin/bash
# Three real jobqd on 127.0.0.1-3, a schedule every 2 s (placed in each
# node's local settings: the daemon's settings are still settings.Local),
# the master killed with SIGKILL and failed over five times.
set -u
B=${BIN:-$PWD}   # where jobqd and jobq are (go build -o . ./cmd/jobqd ./cmd/jobq)
BASE=$(mktemp -d /tmp/jobq-fires.XXXX)
PORT=18411
now=$(date +%s)
SCHED='{"schedules":[{"name":"every2s","every":2,"ops":[{"OP_ID":"OP_TEST_DELAY","duration":0.01,"no_locks":true}],"concurrency":"allow","catch_up":"'${CATCH:-skip}'","created":'$now'}]}'
declare -A PID
start() { # i [args]
  local i=$1; shift
  mkdir -p $BASE/n$i/cluster/settings
  echo "$SCHED" > $BASE/n$i/cluster/settings/schedules.json
  $B/jobqd --data-dir $BASE/n$i --node-name node$i --rpc-addr 127.0.0.$i:$PORT --rapi-addr off --shutdown-timeout 5s "$@" >> $BASE/n$i.log 2>&1 &
  PID[$i]=$!
  for k in $(seq 200); do grep -q 'jobqd ready' $BASE/n$i.log && return 0; sleep 0.05; done
  echo "node$i not ready"; tail $BASE/n$i.log; return 1
}
jq() { local i=$1; shift; $B/jobq --data-dir $BASE/n$i "$@"; }
start 1
for i in 2 3; do tok=$(jq 1 cluster join-token); start $i --join 127.0.0.1:$PORT --token "$tok"; done
jq 1 node list
master=1
for round in 1 2 3 4 5; do
  sleep 6
  kill -9 ${PID[$master]}; wait ${PID[$master]} 2>/dev/null; sleep ${OUTAGE:-0}
  t0=$(date +%s.%N)
  next=$(( master % 3 + 1 ))
  out=$(jq $next cluster master-failover 2>&1); rc=$?
  t1=$(date +%s.%N)
  echo "round $round: killed node$master; master-failover on node$next rc=$rc in $(echo "$t1 - $t0" | bc)s: $out"
  start $master || exit 1
  master=$next
done
sleep 6
jq $master schedule info every2s
end=$(date +%s)
for i in 1 2 3; do kill ${PID[$i]} 2>/dev/null; done; wait
echo "BASE=$BASE created=$now end=$end master=node$master"
