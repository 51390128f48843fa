#!/bin/bash
# A delayed job (+3 s) on a three-node cluster; the master is killed 1 s
# after the submission and the others elect a new one; how late did the
# job start?
set -u
B=${BIN:-$PWD}   # where jobqd and jobq are (go build -o . ./cmd/jobqd ./cmd/jobq)
BASE=$(mktemp -d /tmp/jobq-delayed.XXXX)
PORT=18511
declare -A PID
start() { local i=$1; shift
  $B/jobqd --data-dir $BASE/n$i --node-name node$i --rpc-addr 127.0.0.$i:$PORT --rapi-addr off --shutdown-timeout 5s "$@" >> $BASE/n$i.log 2>&1 &
  PID[$i]=$!
  for k in $(seq 200); do grep -q 'jobqd ready' $BASE/n$i.log && return 0; sleep 0.05; done; echo "node$i not ready"; return 1; }
jq() { local i=$1; shift; $B/jobq --data-dir $BASE/n$i "$@"; }
start 1
for i in 2 3; do tok=$(jq 1 cluster join-token | head -1); start $i --join 127.0.0.1:$PORT --token "$tok" || exit 1; done
jq 1 cluster verify-queue --wait 60s >/dev/null
m=1
for r in 1 2 3; do
  id=$(jq $m debug delay --print-jobid --submit --in 3s -l 0.01 | head -1)
  sleep 1
  kill -9 ${PID[$m]}; wait ${PID[$m]} 2>/dev/null
  n=
  while [ -z "$n" ]; do
    for i in 1 2 3; do [ $i != $m ] && jq $i list >/dev/null 2>&1 && n=$i && break; done
    [ -z "$n" ] && sleep 0.05
  done
  jq $n wait $id > /dev/null
  jq $n info --json $id | python3 -c "
import json,sys; j=json.load(sys.stdin)[0]; nb=j['not_before']; st=j['start_ts']
print('round $r: job', j['id'], j['status'], 'submitted on node$m, ran on node$n, started %.1f ms after its not-before time' % (((st[0]-nb[0])*1e6+(st[1]-nb[1]))/1000))"
  start $m || exit 1
  m=$n
done
for i in 1 2 3; do kill ${PID[$i]} 2>/dev/null; done; wait
