#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Limits: at each one, new connections stay on (or go back to) plain TCP
# with a reason in `fastivc status --json`, and the flows already tunneled
# go on untouched (docs/steering.md, "Limits"). Each round: two long
# streams take the tunnel, one each way, and keep moving until a burst of
# connections from several processes at once has met the limit; every byte
# is checked (SHA-256 at both ends of the burst, counters in the streams)
# and no connection is reset or left to one side's tunnel.
#  1. max_tunnels (B): B does not answer the handshake option (no_slot);
#  2. an empty slot pool (A, pool = 1): A does not offer it (no_slot);
#  3. a full flow map (B, max_flows = 3): B does not answer (flows_full);
#  4. no shared memory for another ring (A, max_shm_bytes): A keeps its
#     pool short of what its rings may take, so it does not offer the
#     option either (no_slot), and no tunnel fails to come up for want of
#     memory after the handshake.
#  5. the ring memory bound (A, shm_mem_permille = 1 of MemTotal, rings
#     sized so that two flows' fit and a third's does not): the same, said
#     in one log line and counted (shm_mem_short); once the long streams
#     end, their rings (cached for reuse) carry a new connection.
. "$(dirname "$0")/lib.sh"
FAILED=0
COUNTERS=tests/netns/counters.py
PROCS=4 # client processes in the burst
CONNS=4           # connections each
netns_setup

# The client and server outputs of a run agree: same digests, both ways.
digests_match() { # digests_match SERVER_OUT CLIENT_OUT...
	local srv=$1
	shift
	[ "$(cat "$@" | awk '/^conn/ && !/error/{print $5, $8}' | sort)" = \
	  "$(awk '/^conn/ && !/error/{print $8, $5}' "$srv" | sort)" ] &&
		[ "$(grep -c '^conn' "$srv")" = "$(cat "$@" | grep -c '^conn')" ]
}

# A long stream from SIDE to the other one, through a new tunnel.
long_stream() { # long_stream NAME SIDE PORT
	local name=$1 from=$2 port=$3 to=B ip=$IP_B tun
	[ "$from" = B ] && to=A ip=$IP_A
	tun=$(json_get A 'd["tunnels"]')
	in_ns $to timeout 90 python3 "$COUNTERS" receive $ip $port \
		>"$LOGS/$name-receiver.out" 2>&1 &
	LONG_PIDS+=($!)
	for _ in $(seq 50); do grep -qs listening "$LOGS/$name-receiver.out" && break; sleep 0.1; done
	in_ns $from timeout 90 python3 "$COUNTERS" send $ip $port 60 "$LOGS/$name-stop" \
		>"$LOGS/$name-sender.out" 2>&1 &
	LONG_PIDS+=($!)
	for _ in $(seq 100); do
		[ "$(json_get A 'd["tunnels"]')" -gt "$tun" ] && return
		sleep 0.05
	done
}

# The stream NAME arrived whole: every byte sent, in order, then EOF.
stream_whole() { # stream_whole NAME
	local sent
	sent=$(awk '/^sent/{print $2}' "$LOGS/$1-sender.out" | tr -d ,)
	grep -q "^received $sent, contiguous, then eof" "$LOGS/$1-receiver.out"
}

bpf() { json_get "$1" "d['bpf']['$2']"; }
ctr() { json_get "$1" "d['counters']['$2']"; }

# round NAME PORT SETTINGS_A SETTINGS_B: agents with these settings, two
# long streams through the tunnel, a burst meanwhile; checks the common
# outcome and leaves the agents up for the round's own checks.
round() {
	local name=$1 port=$2 bad=0 p pids=() burst_s running=1
	agents_down
	start_agent A $3 && start_agent B $4 || { fail "$name: agents start"; return 1; }
	fivc A peer add $IP_B/32 $DOM_B && fivc B peer add $IP_A/32 $DOM_A
	sleep 0.3 # the pools fill
	LONG_PIDS=()
	long_stream "$name-long-ab" A $port
	long_stream "$name-long-ba" B $((port + 2))
	check "$name: two long streams take the tunnel, one each way" \
		[ "$(json_get A 'd["tunnels"]')" = 2 ]

	in_ns B timeout 60 "$BLAST" server $IP_B $((port + 1)) --conns $((PROCS * CONNS)) \
		--bytes $((4 << 20)) >"$LOGS/$name-burst-server.out" 2>&1 &
	burst_s=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/$name-burst-server.out" && break; sleep 0.1; done
	for p in $(seq $PROCS); do
		in_ns A timeout 60 "$BLAST" client $IP_B $((port + 1)) --conns $CONNS \
			--bytes $((4 << 20)) >"$LOGS/$name-burst-client$p.out" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}" $burst_s; do wait "$p" || bad=$((bad + 1)); done
	for p in "${LONG_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || running=0; done
	check "$name: $((PROCS * CONNS)) new connections meanwhile complete, digests match" \
		sh -c "[ $bad = 0 ] && $(declare -f digests_match); digests_match \
			$LOGS/$name-burst-server.out $LOGS/$name-burst-client*.out"
	check "$name: ... while the long streams were still moving" [ $running = 1 ]
	touch "$LOGS/$name-long-ab-stop" "$LOGS/$name-long-ba-stop"
	for p in "${LONG_PIDS[@]}"; do wait "$p"; done
	say "$name: long stream: $(cat "$LOGS/$name-long-ab-sender.out") / $(tail -n1 "$LOGS/$name-long-ab-receiver.out")"
	check "$name: the long streams are unaffected (every byte, in order)" \
		sh -c "$(declare -f stream_whole); LOGS=$LOGS; stream_whole $name-long-ab &&
		       stream_whole $name-long-ba"
	check "$name: every connection took the tunnel on both sides or on neither" \
		[ "$(bpf A steered)" = "$(bpf B steered)" ]
	check "$name: no flow failed or was reset" \
		[ "$(ctr A flows_failed)$(ctr B flows_failed)$(ctr A flows_reset)$(ctr B flows_reset)" = 0000 ]
	say "$name: A $(fivc A status | sed -n 2p)"
	say "$name: A $(fivc A status | sed -n 3p)"
	say "$name: B $(fivc B status | sed -n 3p)"
}

total=$((2 + PROCS * CONNS))
LONG_PIDS=()

round max_tunnels 7501 "" "--set max_tunnels=2 --set pool=2"
check "max_tunnels: B tunneled 2, and counted no_slot for every other connection" \
	[ "$(ctr B flows_tunneled)" = 2 -a "$(bpf B no_slot)" -ge $((total - 2)) ]
check "max_tunnels: A saw its option unanswered for each of them (no_option)" \
	[ "$(bpf A no_option)" -ge $((total - 2)) ]

round pool_empty 7511 "--set pool=1" ""
check "pool_empty: some connections found no slot on A (no_slot), the rest tunneled" \
	[ "$(bpf A no_slot)" -ge 1 -a $(($(bpf A steered) + $(bpf A no_slot))) = $total ]

round flows_full 7521 "" "--set max_flows=3"
check "flows_full: B's flow map was full for some connections (flows_full)" \
	[ "$(bpf B flows_full)" -ge 1 -a "$(bpf B steered)" -lt $total ]

# A ring of 2 channels of 64 KiB takes 132 KiB with its header page: room
# for the two long transfers' rings, not for a third.
round no_shm 7531 "--set channels=2 --set channel_size=65536 --set max_shm_bytes=300000" \
	"--set channels=2 --set channel_size=65536"
check "no_shm: A held its pool short of shared memory (pool_shm_short) and refused the rest in the handshake (no_slot)" \
	[ "$(ctr A pool_shm_short)" -ge 1 -a "$(bpf A no_slot)" -ge 1 -a \
	  $(($(bpf A steered) + $(bpf A no_slot))) = $total ]
check "no_shm: no tunnel failed to come up for want of memory (flows_no_shm 0)" \
	[ "$(ctr A flows_no_shm)" = 0 ]
tun=$(ctr A flows_tunneled)
in_ns B timeout 30 "$BLAST" server $IP_B 7535 --conns 1 >"$LOGS/no_shm-after-server.out" 2>&1 &
spid=$!
for _ in $(seq 50); do grep -qs listening "$LOGS/no_shm-after-server.out" && break; sleep 0.1; done
in_ns A timeout 30 "$BLAST" client $IP_B 7535 --conns 1 >"$LOGS/no_shm-after-client.out" 2>&1
wait $spid
check "no_shm: once the long transfers' rings are gone, a new connection tunnels" \
	[ "$(ctr A flows_tunneled)" = $((tun + 1)) ]

# 5. Ring memory bound: 1/1000 of MemTotal. Each flow holds two rings on A
# (its own and B's, mapped), of C MiB channels plus a header page: four
# fit under the bound, six do not.
bound=$(awk '/^MemTotal:/{print int($2 * 1024 / 1000)}' /proc/meminfo)
C=$(((bound - (1 << 20)) / (4 << 20)))
[ $C -gt 64 ] && C=64
if [ $C -lt 2 ] || [ $((6 * C << 20)) -le $bound ]; then
	skip "mem_bound: MemTotal out of this test's range"
else
	geo="--set channels=$C --set channel_size=1048576"
	round mem_bound 7541 "$geo --set shm_mem_permille=1" "$geo"
	check "mem_bound: A held its pool short of ring memory (shm_mem_short $(ctr A shm_mem_short)) and refused the rest in the handshake (no_slot)" \
		[ "$(ctr A shm_mem_short)" -ge 1 -a "$(bpf A no_slot)" -ge 1 -a \
		  $(($(bpf A steered) + $(bpf A no_slot))) = $total ]
	check "mem_bound: one log line names the bound" \
		[ "$(grep -c 'ring memory at its bound' "$LOGS/agent-A.log")" = 1 ]
	check "mem_bound: no tunnel failed to come up for want of memory (flows_no_shm 0)" \
		[ "$(ctr A flows_no_shm)" = 0 ]
	tun=$(ctr A flows_tunneled) reused=$(ctr A rings_reused)
	in_ns B timeout 30 "$BLAST" server $IP_B 7545 --conns 1 >"$LOGS/mem_bound-after-server.out" 2>&1 &
	spid=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/mem_bound-after-server.out" && break; sleep 0.1; done
	sleep 1 # a tick: the pool refills from the rings now cached
	in_ns A timeout 30 "$BLAST" client $IP_B 7545 --conns 1 >"$LOGS/mem_bound-after-client.out" 2>&1
	wait $spid
	check "mem_bound: once the long transfers ended, a new connection tunnels through their cached rings" \
		[ "$(ctr A flows_tunneled)" = $((tun + 1)) -a "$(ctr A rings_reused)" = $((reused + 1)) ]
fi
exit $FAILED
