#!/bin/bash
# messages-before-after.sh OLDBIN NEWBIN > table.md
#
# Issue 19's must-show "each message above before and after, in a table,
# with exit codes": runs every scenario of items 2-7 and 9 against the
# jobqd/jobq of main before issue 19 (OLDBIN) and after (NEWBIN), each
# version against its own jobqd in a temporary directory, and prints a
# markdown table: the command, then per version the exit code and the
# first line of the output (stdout and stderr together) or what was
# observed. Needs root (a private network namespace for item 2, a user
# without access for the socket's permission check).
#
# Build the binaries:
#   git worktree add --detach /tmp/old19 f17db07   # the parent of the first issue 19 commit (5f875a6)
#   (cd /tmp/old19 && go build -o /tmp/old19bin/ ./cmd/jobqd ./cmd/jobq)
#   (cd BRANCH && go build -o /tmp/new19bin/ ./cmd/jobqd ./cmd/jobq)
#   bash test/timing/messages-before-after.sh /tmp/old19bin /tmp/new19bin > /tmp/table19.md
set -u
OLD=$1 NEW=$2
WORK=$(mktemp -d /tmp/table19.XXXXXX)
chmod 755 "$WORK"
declare -A OUT CMDS TITLE
ORDER=()
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# freeport prints a TCP port nothing listens on now.
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# first prints the first non-empty line of stdin, shortened, as a table cell.
first() {
	grep -v '^[[:space:]]*$' | head -1 | cut -c1-220 | sed 's/|/\\|/g; s/`/'"'"'/g'
}

# start VER BIN DIR ARGS...: jobqd on DIR; waits (at most 20 s) until jobq
# answers on its socket; sets DPID. Returns 1 if jobqd exited instead.
start() {
	local bin=$2 dir=$3
	shift 3
	"$bin/jobqd" --config "" --data-dir "$dir" --shutdown-timeout 2s "$@" >"$dir.log" 2>&1 &
	DPID=$!
	PIDS+=("$DPID")
	for _ in $(seq 200); do
		if "$bin/jobq" --data-dir "$dir" queue info >/dev/null 2>&1; then return 0; fi
		kill -0 "$DPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
stop() { kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; }

# record ID VER TEXT: the observed cell of case ID for version VER.
record() { OUT[$1:$2]=$3; }

# case ID ITEM TITLE CMD: declares a case; CMD is shown in the table with
# $B for the binaries' directory and $D for jobqd's data directory.
case_() {
	ORDER+=("$1")
	TITLE[$1]="$2|$3"
	CMDS[$1]=$4
}

# run ID VER B D: runs case ID's command with B and D set (timeout 60 s);
# records "exit N: first line" and, in LAST, the whole output.
run() {
	local id=$1 ver=$2
	local B=$3 D=$4
	local t0 t1 rc
	t0=$(date +%s.%N)
	LAST=$(B=$B D=$D timeout 60 bash -c "${CMDS[$id]}" 2>"$WORK/stderr")
	rc=$?
	t1=$(date +%s.%N)
	ELAPSED=$(python3 -c "print(f'{$t1-$t0:.1f}')")
	# A failure's cell is its message: the first line on stderr that is
	# not a log line (time=...); otherwise the first line of the output.
	local msg
	msg=$(grep -v '^time=' "$WORK/stderr" | first)
	if [ "$rc" = 0 ] || [ -z "$msg" ]; then
		msg=$( (printf '%s\n' "$LAST"; cat "$WORK/stderr") | first)
	fi
	LAST=$(printf '%s\n' "$LAST"; cat "$WORK/stderr")
	record "$id" "$ver" "exit $rc: $msg"
	RC=$rc
}

# --- the cases ---------------------------------------------------------------

case_ i2 2 "defaults beside Ganeti's daemons (noded :1811, rapi :5080, confd :1814, mond :1815, metad :80 held by other programs, in a private network namespace)" \
	'$B/jobqd --config "" --data-dir $D'
case_ i3a 3 "a start whose RAPI address is taken (node RPC on every address, as the default is)" \
	'$B/jobqd --config "" --data-dir $D --rpc-addr :$FREE --rapi-addr 127.0.0.1:$BUSY'
case_ i3b 3 "then: what that failed start left in \$D" \
	'cd $D && find . -mindepth 1 | sort'
case_ i3c 3 "then a good start with a working address; the node's address as jobq cluster info shows it" \
	'$B/jobqd --config "" --data-dir $D --rpc-addr 127.0.0.1:$FREE --rapi-addr off & $B/jobq --data-dir $D cluster info'
case_ i4a 4 "dry run of a delay of 3 s" \
	'$B/jobq --data-dir $D debug delay --dry-run 3'
case_ i4b 4 "dry run of a delay of 1e9 s, submitted; its status 5 s later" \
	'id=$($B/jobq --data-dir $D debug delay --submit --dry-run 1e9 | grep -o "[0-9]*"); sleep 5; $B/jobq --data-dir $D list --no-headers -o id,status $id'
case_ i5 5 "JOBQ_SOCKET set (to another, absent jobqd) and --data-dir on the command line" \
	'JOBQ_SOCKET=/nonexistent/socket/jobq-query $B/jobq --data-dir $D queue info'
case_ i6a 6 "info of a job that does not exist" \
	'$B/jobq --data-dir $D info 99999'
case_ i6b 6 "list of a job that does not exist" \
	'$B/jobq --data-dir $D list 99999'
case_ i6c 6 "info -1" \
	'$B/jobq --data-dir $D info -1'
case_ i6d 6 "watch of a job that never existed" \
	'$B/jobq --data-dir $D watch 99999'
case_ i6e 6 "archive of a job that does not exist" \
	'$B/jobq --data-dir $D archive 99999'
case_ i6f 6 "a submission to a drained queue" \
	'$B/jobq --data-dir $D queue drain && $B/jobq --data-dir $D debug delay 0; rc=$?; $B/jobq --data-dir $D queue undrain; exit $rc'
case_ i6g 6 "permission denied on the socket (jobq as user nobody)" \
	'setpriv --reuid=65534 --regid=65534 --clear-groups $B/jobq --data-dir $D queue info'
case_ i6h 6 "jobqd --rpc-addr off (and --rapi-addr off)" \
	'$B/jobqd --config "" --data-dir $D/off --rpc-addr off --rapi-addr off'
case_ i6i 6 "a data directory that cannot be created (under a regular file)" \
	'touch $D/file; $B/jobqd --config "" --data-dir $D/file/sub --rpc-addr 127.0.0.1:0 --rapi-addr off'
case_ i6j 6 "a delay given as 10s (submitted)" \
	'$B/jobq --data-dir $D debug delay --submit 10s'
case_ i6k 6 "autoarchive 1h" \
	'$B/jobq --data-dir $D autoarchive 1h'
case_ i6l 6 "join-token --ttl 30m (first line of stdout: the token, shortened here)" \
	'$B/jobq --data-dir $D cluster join-token --ttl 30m 2>/dev/null | cut -c1-16'
case_ i6m 6 "jobqd --shutdown-timeout abc" \
	'$B/jobqd --config "" --data-dir $D --shutdown-timeout abc'
case_ i6n 6 "jobqd with an unknown flag (a usage error)" \
	'$B/jobqd --config "" --data-dir $D --no-such-flag'
case_ i6o 6 "jobq with an unknown flag (a usage error)" \
	'$B/jobq --data-dir $D list --no-such-flag'
case_ i6p 6 "cancel of a job that does not exist" \
	'$B/jobq --data-dir $D cancel 99999'
case_ i6q 6 "wait for a job that does not exist" \
	'$B/jobq --data-dir $D wait 99999'
case_ i6r 6 "opcode output of a job that does not exist (jobq opcode came after the 'before' commit)" \
	'$B/jobq --data-dir $D opcode output 99999'
case_ i6s 6 "a bad duration for debug delay" \
	'$B/jobq --data-dir $D debug delay abc'
case_ i7a 7 "join a node with the token from a file (a second jobqd joining the first)" \
	'$B/jobq --data-dir $D cluster join-token > $D.token && $B/jobqd --config "" --data-dir $D.node2 --node-name node2 --rpc-addr 127.0.0.1:$FREE2 --rapi-addr off --join 127.0.0.1:$FREE --token-file $D.token'
case_ i7b 7 "the same with --token on the command line: does ps show the token?" \
	'$B/jobq --data-dir $D cluster join-token > $D.token; $B/jobqd --config "" --data-dir $D.node3 --node-name node3 --rpc-addr 127.0.0.1:$FREE3 --rapi-addr off --join 127.0.0.1:$FREE --token "$(cat $D.token)" >$D.node3.log 2>&1 & echo "pid $!"; for i in $(seq 50); do ps -o comm= -p $! | grep -q jobqd && break; sleep 0.1; done; ps -o args= -p $!'
case_ i7c 7 "the token in \$JOBQ_JOIN_TOKEN, a malformed one" \
	'JOBQ_JOIN_TOKEN=not-a-token $B/jobqd --config "" --data-dir $D.node4 --rpc-addr 127.0.0.1:0 --rapi-addr off --join 127.0.0.1:$FREE'
case_ i9 9 "jobqd --check-config: the node-name line" \
	'$B/jobqd --config "" --data-dir $D --check-config | grep node-name'
case_ i9b 9 "jobqd --check-config with --join and the token in \$JOBQ_JOIN_TOKEN: the line about the token" \
	'JOBQ_JOIN_TOKEN=jq1.secret $B/jobqd --config "" --data-dir $D --check-config --join 127.0.0.1:1 | grep -E "^token |join token" | tr "\\n" " "'
case_ i9c 9 "jobqd --check-config with --join and an unreadable --token-file" \
	'$B/jobqd --config "" --data-dir $D --check-config --join 127.0.0.1:1 --token-file /nonexistent'

# --- per version -------------------------------------------------------------

suite() {
	local ver=$1 B=$2 D
	# Item 2: Ganeti's ports held, in a private network namespace.
	D=$WORK/$ver-i2
	local out
	out=$(unshare -n bash -c '
		ip link set lo up
		for p in 1811 5080 1814 1815 80; do
			python3 -c "import socket,time,sys; s=socket.socket(); s.bind((\"\",$p)); s.listen(); time.sleep(30)" &
		done
		for i in $(seq 100); do
			[ "$(ss -ltn | grep -c -E ":(1811|5080|1814|1815|80) ")" -ge 5 ] && break
			sleep 0.1
		done
		echo "held: $(ss -ltn | grep -o -E "[0-9.*:]*:(1811|5080|1814|1815|80) " | tr -d "\n")" >&2
		"$0/jobqd" --config "" --data-dir "$1" > "$1.log" 2>&1 &
		pid=$!
		for i in $(seq 100); do
			if "$0/jobq" --data-dir "$1" queue info >/dev/null 2>&1; then
				echo "running: jobq answers (jobqd listens on $(ss -ltnp 2>/dev/null | grep jobqd | grep -o -E "(\*|0\.0\.0\.0|\[::\]):[0-9]+" | sort -u | tr "\n" " "))"
				kill $pid; wait $pid; kill $(jobs -p) 2>/dev/null; exit 0
			fi
			kill -0 $pid 2>/dev/null || break
			sleep 0.1
		done
		wait $pid; rc=$?
		echo "exit $rc: $(grep -v "^$" "$1.log" | tail -1)"
		kill $(jobs -p) 2>/dev/null
	' "$B" "$D" 2>"$WORK/held" | tail -1)
	echo "$ver: $(cat "$WORK/held")" >&2
	record i2 "$ver" "$(printf '%s\n' "$out" | first)"

	# Item 3: a start whose RAPI bind fails, then a good one.
	D=$WORK/$ver-i3
	FREE=$(freeport)
	python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(120)' >"$WORK/busy" &
	local busy=$!
	PIDS+=("$busy")
	for _ in $(seq 50); do [ -s "$WORK/busy" ] && break; sleep 0.1; done
	BUSY=$(cat "$WORK/busy")
	export FREE BUSY
	run i3a "$ver" "$B" "$D"
	run i3b "$ver" "$B" "$D"
	record i3b "$ver" "$(printf '%s' "$LAST" | grep -v '^$' | tr '\n' ' ' | sed 's/|/\\|/g')"
	kill "$busy"
	if start "$ver" "$B" "$D" --rpc-addr "127.0.0.1:$FREE" --rapi-addr off; then
		local info
		info=$("$B/jobq" --data-dir "$D" cluster info 2>&1)
		record i3c "$ver" "$(printf '%s\n' "$info" | grep -A1 -m1 -E '^ *Node +Address' | tr -s ' ' | tr '\n' '/' | sed 's|/$||; s|/| / |; s/|/\\|/g')"
		stop
	else
		record i3c "$ver" "did not start: $(first <"$D.log")"
	fi

	# The jobq cases against one jobqd.
	D=$WORK/$ver-d
	FREE=$(freeport)
	export FREE
	if ! start "$ver" "$B" "$D" --rpc-addr "127.0.0.1:$FREE" --rapi-addr off; then
		echo "$ver: jobqd did not start: $(cat "$D.log")" >&2
		return
	fi
	run i4a "$ver" "$B" "$D"
	OUT[i4a:$ver]="${OUT[i4a:$ver]} (took ${ELAPSED} s)"
	run i4b "$ver" "$B" "$D"
	run i5 "$ver" "$B" "$D"
	for id in i6a i6b i6c i6d i6e i6f i6g i6h i6i i6j i6k i6l i6m i6n i6o i6p i6q i6r i6s; do
		if [ "$id" = i6h ]; then
			# Starts or not: a jobqd that runs is stopped after 3 s.
			mkdir -p "$D/off"
			"$B/jobqd" --config "" --data-dir "$D/off" --rpc-addr off --rapi-addr off >"$WORK/off.log" 2>&1 &
			local p=$!
			local started=""
			for _ in $(seq 50); do
				if "$B/jobq" --data-dir "$D/off" queue info >/dev/null 2>&1; then started=1; break; fi
				kill -0 $p 2>/dev/null || break
				sleep 0.1
			done
			if [ -n "$started" ]; then
				kill $p; wait $p
				record i6h "$ver" "running: jobq answers (no node RPC)"
			else
				wait $p
				record i6h "$ver" "exit $?: $(first <"$WORK/off.log")"
			fi
			continue
		fi
		run "$id" "$ver" "$B" "$D"
	done
	# Item 7: join with a token from a file (the steps of i7a's command,
	# with the joining jobqd's pid kept), then one on the command line.
	FREE2=$(freeport) FREE3=$(freeport)
	export FREE2 FREE3
	"$B/jobq" --data-dir "$D" cluster join-token >"$D.token" 2>/dev/null
	"$B/jobqd" --config "" --data-dir "$D.node2" --node-name node2 --rpc-addr "127.0.0.1:$FREE2" --rapi-addr off \
		--join "127.0.0.1:$FREE" --token-file "$D.token" --shutdown-timeout 2s >"$WORK/join.log" 2>&1 &
	local jp=$!
	PIDS+=("$jp")
	local joined=""
	for _ in $(seq 150); do
		kill -0 "$jp" 2>/dev/null || break
		if "$B/jobq" --data-dir "$D" node list 2>/dev/null | grep -q node2; then joined=1; break; fi
		sleep 0.1
	done
	if [ -n "$joined" ]; then
		record i7a "$ver" "joined: node2 in jobq node list; ps: $(ps -o args= -p "$jp" | sed 's/.*--join/--join/' | cut -c1-120)"
		kill "$jp"
		wait "$jp"
	else
		wait "$jp"
		record i7a "$ver" "exit $?: $(first <"$WORK/join.log")"
	fi
	run i7b "$ver" "$B" "$D"
	record i7b "$ver" "ps: $(printf '%s\n' "$LAST" | grep -m1 -o -- '--token [^ ]*' | cut -c1-30)…"
	local p3
	p3=$(printf '%s\n' "$LAST" | sed -n 's/^pid //p')
	[ -n "$p3" ] && kill "$p3" 2>/dev/null
	run i7c "$ver" "$B" "$D"
	run i9 "$ver" "$B" "$D"
	run i9b "$ver" "$B" "$D"
	run i9c "$ver" "$B" "$D"
	stop
}

suite before "$OLD" >&2
suite after "$NEW" >&2

# --- the table ---------------------------------------------------------------

echo "# Issue 19: each message before and after, with exit codes"
echo
echo "Before: main at f17db07 (the parent of 5f875a6, the first issue 19 commit), built as \`$OLD\`."
echo "After: built as \`$NEW\`."
echo "Made by \`bash test/timing/messages-before-after.sh $OLD $NEW\` on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC'), as root."
echo "Each version runs against its own jobqd in a temporary directory \`\$D\` (\`--config \"\" --rpc-addr 127.0.0.1:PORT --rapi-addr off\`);"
echo "\`\$B\` is the version's binary directory. A cell is \`exit N: first line of the output\` unless it says what was observed."
echo
echo "| # | item | scenario | command | before | after |"
echo "|---|---|---|---|---|---|"
n=0
for id in "${ORDER[@]}"; do
	n=$((n + 1))
	IFS='|' read -r item title <<<"${TITLE[$id]}"
	cmd=$(printf '%s' "${CMDS[$id]}" | sed 's/|/\\|/g')
	echo "| $n | $item | $title | \`$cmd\` | ${OUT[$id:before]:-} | ${OUT[$id:after]:-} |"
done
cat <<'NOTES'

Notes:
- Both versions took the same flags; no adaptation was needed except that the "before" jobq has no `opcode` command (added after f17db07), so row 25 only shows the "after" behaviour. `--config ""` keeps the machine's /etc/jobq/jobqd.conf out; `--shutdown-timeout 2s` (accepted by both) only shortens the stops.
- Row 3 "after": the failed start leaves only `queue/` (its format file, lock and empty archive: an empty queue a later start uses as it is); the certificate, `cluster.json` and `rapi/` are no longer written. Row 4: the address saved by the failed start (`:PORT`, no host) stayed after a good start before; after, the good start's address replaces it.
- Rows 18, 19, 22: unchanged on purpose (they were already accepted, or already exit 2); row 23 keeps Ganeti's own message for cancel ("Job N not found in queue", exit 1), as Ganeti's gnt-job prints it.
- Row 28: `--token` still works and still shows in ps; rows 27, 29 and 31 are the ways that do not (a file, `$JOBQ_JOIN_TOKEN`).
- Rows 25, 31 and 32 "after" come from fixes made on branch h-triage while building this table (opcode output of a missing job exited 0; --check-config neither checked the token file nor said where the token came from).
NOTES
