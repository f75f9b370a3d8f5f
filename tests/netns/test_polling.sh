#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Adaptive polling (agent/poll.c, poll_us): with a wide window the agents
# find the peer's bytes by looking at the rings instead of waiting for a
# notification. Requests and answers of 1 B to 64 KiB must come back whole
# and equal, a bulk transfer each way must match its digests, the tunnel
# counters must show the bytes went through the rings, and the polling
# counters that polling found the answers of small exchanges; an agent
# that spins while every CPU is wanted must give way (poll_yields),
# still answer everything and work at SCHED_BATCH (sched_batch 1) again
# afterwards; and an idle connection must cost the agents no CPU (the
# window is spent after activity only), an agent with nothing in flight
# must tick once a second, not ten times, and tick ten times again once a
# connection is up.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
netns_setup
agents_up --set poll_us=5000 --set sched_batch=1 || { fail "agents start"; exit 1; }
PY=tests/netns/echo_check.py

found() { json_get "$1" 'd["counters"]["poll_found"]'; }
yields() { json_get "$1" 'd["counters"]["poll_yields"]'; }
cpu_ticks() { # utime + stime of both agents, in clock ticks
	awk '{s += $14 + $15} END {print s}' /proc/"${AGENT_PIDS[0]}"/stat \
		/proc/"${AGENT_PIDS[1]}"/stat
}
runs() { # times agent N's threads got a CPU so far (schedstat)
	cat /proc/"${AGENT_PIDS[$1]}"/task/*/schedstat | awk '{n += $3} END {print n}'
}

# echo_run PORT N: N requests to an echo server in B; $out and $crc are
# the client's output and exit status.
echo_run() {
	local spid
	in_ns B python3 $PY server $IP_B "$1" >"$LOGS/echo-server-$1.out" 2>&1 &
	spid=$!
	for _ in $(seq 50); do grep -q listening "$LOGS/echo-server-$1.out" && break; sleep 0.1; done
	out=$(in_ns A python3 $PY client $IP_B "$1" "$2")
	crc=$?
	wait $spid
}

# Requests and answers.
tunnel_mark
echo_run 5401 400
say "echo client: $out"
check "400 requests of 1 B to 64 KiB answered whole and equal" [ $crc = 0 ]
bytes=$(echo "$out" | awk '/^ok/ {print $3}')
check_tunneled "requests" A "${bytes:-1}"
check_tunneled "answers" B "${bytes:-1}"

# Small exchanges, where polling pays: each agent polls after its app sent
# and finds the answer there.
found_a=$(found A) found_b=$(found B)
in_ns B "$O/tools/rr" server $IP_B 5405 >/dev/null 2>&1 &
rr_srv=$!
sleep 0.3
out=$(in_ns A "$O/tools/rr" latency $IP_B 5405 64 5000)
check "5000 exchanges of 64 B ($out)" [ $? = 0 ]
kill $rr_srv
check "A's agent found bytes by polling ($(found A) - $found_a)" [ "$(found A)" -gt "$found_a" ]
check "B's agent found bytes by polling ($(found B) - $found_b)" [ "$(found B)" -gt "$found_b" ]

# Every CPU busy with a task of its own: a spin at SCHED_IDLE would get
# the scheduler's rare turn only, so the agents must stop spinning and
# sleep until the next event instead (agent/poll.c, cpu_wanted).
yields_ab=$(($(yields A) + $(yields B)))
hogs=()
for _ in $(seq "$(nproc)"); do
	sh -c 'while :; do :; done' &
	hogs+=($!)
done
echo_run 5404 100
kill "${hogs[@]}"
wait "${hogs[@]}" 2>/dev/null
say "echo client, every CPU busy: $out"
check "every CPU busy: 100 requests answered whole and equal" [ $crc = 0 ]
gave=$(($(yields A) + $(yields B) - yields_ab))
check "every CPU busy: the agents gave way ($gave times)" [ $gave -gt 0 ]
# Each spin ran at SCHED_IDLE; the agent works at SCHED_BATCH between.
for i in 0 1; do
	check "agent $i is back at SCHED_BATCH after its spins" \
		sh -c "chrt -p ${AGENT_PIDS[$i]} | grep -q 'policy: SCHED_BATCH$'"
done

# Bulk, both ways at once.
BYTES=$((32 << 20)) CONNS=2
tunnel_mark
in_ns B "$BLAST" server $IP_B 5402 --conns $CONNS --bytes $BYTES >"$LOGS/blast-server.out" 2>&1 &
spid=$!
for _ in $(seq 50); do grep -q listening "$LOGS/blast-server.out" && break; sleep 0.1; done
in_ns A "$BLAST" client $IP_B 5402 --conns $CONNS --bytes $BYTES >"$LOGS/blast-client.out" 2>&1
crc=$?
wait $spid
src=$?
check "bulk: client and server exit 0" [ $crc = 0 -a $src = 0 ]
check "bulk: SHA-256 of $CONNS x $BYTES bytes each way match" \
	python3 tests/netns/blast_compare.py "$LOGS/blast-client.out" "$LOGS/blast-server.out" $BYTES $CONNS
check_tunneled "bulk: A to B" A $((CONNS * BYTES))
check_tunneled "bulk: B to A" B $((CONNS * BYTES))

# Nothing in flight (the transfers are over): after a quiet second the
# tick comes once a second; at 10 Hz the agent would run 50 times in 5 s.
sleep 2
r0=$(runs 0)
sleep 5
r1=$(runs 0)
check "with nothing in flight, A's agent ran $((r1 - r0)) times in 5 s (the 1 s tick)" \
	[ $((r1 - r0)) -le 15 ]

# Idle: a connection that exchanged a little, then nothing for 3 s.
in_ns B python3 $PY server $IP_B 5403 >"$LOGS/idle-server.out" 2>&1 &
for _ in $(seq 50); do grep -q listening "$LOGS/idle-server.out" && break; sleep 0.1; done
in_ns A python3 -c "
import socket, time
s = socket.create_connection(('$IP_B', 5403))
s.sendall(b'x'); s.recv(1); time.sleep(4)" &
cpid=$!
sleep 1
t0=$(cpu_ticks) r0=$(runs 0)
sleep 3
t1=$(cpu_ticks) r1=$(runs 0)
wait $cpid
say "agents' CPU over 3 s with an idle tunneled connection: $((t1 - t0)) ticks of $(getconf CLK_TCK)/s"
# 30 ticks would be 5% of one CPU each: a spin that never ends uses 300.
check "an idle connection costs the agents (almost) no CPU" [ $((t1 - t0)) -le 30 ]
# A flow in flight brings the 100 ms tick back: 30 runs in 3 s.
check "with a connection up, A's agent ran $((r1 - r0)) times in 3 s (the 100 ms tick)" \
	[ $((r1 - r0)) -ge 20 ]
fivc A status >"$LOGS/status-A.txt"
exit $FAILED
