#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Order and content: SHA-256 of BYTES per flow each way over 8 parallel
# flows (8 x 128 MiB = 1 GiB each way by default), IPv4 and IPv6, through
# the tunnel; the agents' counters must show the tunnel carried the bytes,
# each way, at the sending and at the receiving agent.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
BYTES=${BYTES:-$((128 << 20))}
CONNS=${CONNS:-8}
FAILED=0
netns_setup
agents_up || { fail "agents start"; exit 1; }

# compare CLIENT_OUT SERVER_OUT: every connection's bytes and digests match.
compare() { python3 tests/netns/blast_compare.py "$1" "$2" "$BYTES" "$CONNS"; }

run() { # run FAMILY SERVER_ADDR PORT
	local name=$1 addr=$2 port=$3
	tunnel_mark
	in_ns B "$BLAST" server "$addr" "$port" --conns "$CONNS" --bytes "$BYTES" \
		>"$LOGS/server-$name.out" 2>&1 &
	local spid=$!
	for _ in $(seq 50); do grep -q listening "$LOGS/server-$name.out" && break; sleep 0.1; done
	in_ns A "$BLAST" client "$addr" "$port" --conns "$CONNS" --bytes "$BYTES" \
		>"$LOGS/client-$name.out" 2>&1
	local crc=$?
	wait $spid
	local src=$?
	check "$name: client and server exit 0" [ $crc = 0 -a $src = 0 ]
	check "$name: SHA-256 of $CONNS x $BYTES bytes each way match" \
		compare "$LOGS/client-$name.out" "$LOGS/server-$name.out"
	check_tunneled "$name: A to B" A $((CONNS * BYTES))
	check_tunneled "$name: B to A" B $((CONNS * BYTES))
}

# Leak accounting: the agents' fds (once the links and the sock_diag
# socket exist, after the first run) and map entries, after each run.
# Less 3 per ring cached for reuse (a memfd and two eventfds, ours or the
# peer's): how many stay cached varies with how flows overlapped.
agent_fds() {
	local side=A n
	[ "$1" = 1 ] && side=B
	n=$(ls /proc/"${AGENT_PIDS[$1]}"/fd | wc -l)
	echo $((n - 3 * $(json_get $side 'd["counters"]["rings_cached"]')))
}
# ... once two counts 0.3 s apart agree: the slot pool refills after a run.
settled_fds() {
	local a b
	b=$(agent_fds "$1")
	for _ in $(seq 20); do
		sleep 0.3
		a=$b b=$(agent_fds "$1")
		[ "$a" = "$b" ] && break
	done
	echo "$b"
}
map_entries() { # map_entries SIDE MAP
	bpftool -j map dump pinned "/sys/fs/bpf/fastivc/$TAG-$1/$2" |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

run ipv4 $IP_B 5201
sleep 0.5 # the last events (TCP_CLOSE) reach the agents
fds_a=$(settled_fds 0) fds_b=$(settled_fds 1)
run ipv6 $IP6_B 5202
sleep 0.5
now_a=$(settled_fds 0) now_b=$(settled_fds 1)
say "agent fds after run 1 / run 2: A $fds_a / $now_a, B $fds_b / $now_b"
# Fewer is no leak: which rings stay cached, with which fds, varies.
check "no fd leaked by either agent" [ "$now_a" -le "$fds_a" -a "$now_b" -le "$fds_b" ]
check "no flow or FIN state left in the maps (A and B)" \
	[ "$(map_entries a flows)$(map_entries b flows)" = 00 -a \
	  "$(map_entries a fin_ok)$(map_entries a fin_sent)$(map_entries a held_fins)" = 000 -a \
	  "$(map_entries b fin_ok)$(map_entries b fin_sent)$(map_entries b held_fins)" = 000 ]
check "no tunnel left" [ "$(json_get A 'd["tunnels"]')$(json_get B 'd["tunnels"]')" = 00 ]
check "no flow failed" [ "$(json_get A 'd["counters"]["flows_failed"]')" = 0 ]
# The wake-up counters (docs/operations.md): each agent slept on the peer's
# empty ring and was kicked out of it, and took no more kicks than its peer
# sent (an eventfd written twice before it is read wakes once).
for s in A:B B:A; do
	me=${s%:*} peer=${s#*:}
	sent=$(json_get $peer 'd["counters"]["kicks_sent"]')
	taken=$(json_get $me 'd["counters"]["kicks_taken"]')
	waits=$(json_get $me 'd["counters"]["ring_waits"]')
	check "$me waited for data $waits times, took $taken of $peer's $sent kicks" \
		[ "$waits" -gt 0 -a "$taken" -gt 0 -a "$taken" -le "$sent" ]
done
fivc A status >"$LOGS/status-A.txt"
exit $FAILED
