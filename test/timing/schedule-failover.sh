#!/bin/bash
# Three real jobqd on 127.0.0.1-3, a schedule every 2 s (agreed through the
# log with "jobq schedule add"), the master killed with SIGKILL five times;
# the others elect a new one by themselves.
set -u
B=${BIN:-$PWD}   # where jobqd and jobq are (go build -o . ./cmd/jobqd ./cmd/jobq)
BASE=$(mktemp -d /tmp/jobq-fires.XXXX)
PORT=18411
now=$(date +%s)
declare -A PID
start() { # i [args]
  local i=$1; shift
  $B/jobqd --data-dir $BASE/n$i --node-name node$i --rpc-addr 127.0.0.$i:$PORT --rapi-addr off --shutdown-timeout 5s "$@" >> $BASE/n$i.log 2>&1 &
  PID[$i]=$!
  for k in $(seq 200); do grep -q 'jobqd ready' $BASE/n$i.log && return 0; sleep 0.05; done
  echo "node$i not ready"; tail $BASE/n$i.log; return 1
}
jq() { local i=$1; shift; $B/jobq --data-dir $BASE/n$i "$@"; }
start 1
for i in 2 3; do tok=$(jq 1 cluster join-token); start $i --join 127.0.0.1:$PORT --token "$tok"; done
jq 1 cluster verify-queue --wait 60s >/dev/null
now=$(date +%s)
jq 1 schedule add every2s --every 2s --catch-up ${CATCH:-skip} -- '{"OP_ID":"OP_TEST_DELAY","duration":0.01,"no_locks":true}'
jq 1 node list -o +voter
master=1
for round in 1 2 3 4 5; do
  sleep 6
  kill -9 ${PID[$master]}; wait ${PID[$master]} 2>/dev/null
  t0=$(date +%s.%N)
  new=
  while [ -z "$new" ]; do
    for i in 1 2 3; do [ $i != $master ] && jq $i list >/dev/null 2>&1 && new=$i && break; done
    [ -z "$new" ] && sleep 0.05
  done
  t1=$(date +%s.%N)
  echo "round $round: killed node$master; node$new runs the queue $(echo "$t1 - $t0" | bc)s later"
  sleep ${OUTAGE:-0}
  start $master || exit 1
  master=$new
done
sleep 6
jq $master schedule info every2s
end=$(date +%s)
for i in 1 2 3; do kill ${PID[$i]} 2>/dev/null; done; wait
echo "BASE=$BASE created=$now end=$end master=node$master"
