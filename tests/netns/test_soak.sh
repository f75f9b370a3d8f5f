#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Soak: rounds of 1000 concurrent flows (500 each way at once) for
# SOAK_SECONDS, every byte checked (SHA-256 at both ends), then the agents'
# fds, memory and map entries against what they were before; every byte
# through the tunnels, counted at the sending and at the receiving agent.
# `make test` runs it briefly, `make soak` for ten minutes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
SOAK_SECONDS=${SOAK_SECONDS:-20}
CONNS=500
BYTES=65536
netns_setup
# Rounds come back to back: 1000 new flows each while the agents refill
# their pools from the last. On two busy cores some peers' CREATEs came
# after the default 2 s setup timeout (290 of 6000 flows relayed); the
# soak measures leaks and integrity, test_burst the setup under the default.
agents_up --set pool=$((CONNS * 2 + 64)) --set setup_timeout_ms=10000 ||
	{ fail "agents start"; exit 1; }
sleep 0.5
tunnel_mark

round() { # round N: CONNS connections each way at once; 0 if all intact
	local n=$1 p pids=() bad=0 side
	in_ns A timeout 120 "$BLAST" server $IP_A 7601 --conns $CONNS --bytes $BYTES \
		>"$LOGS/sa.out" 2>&1 &
	pids+=($!)
	in_ns B timeout 120 "$BLAST" server $IP_B 7602 --conns $CONNS --bytes $BYTES \
		>"$LOGS/sb.out" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		grep -qs listening "$LOGS/sa.out" && grep -qs listening "$LOGS/sb.out" && break
		sleep 0.05
	done
	in_ns A timeout 120 "$BLAST" client $IP_B 7602 --conns $CONNS --bytes $BYTES \
		>"$LOGS/ca.out" 2>&1 &
	pids+=($!)
	in_ns B timeout 120 "$BLAST" client $IP_A 7601 --conns $CONNS --bytes $BYTES \
		>"$LOGS/cb.out" 2>&1 &
	pids+=($!)
	for p in "${pids[@]}"; do wait "$p" || bad=1; done
	# Each side's digests of what it sent must be what the other received.
	for side in "ca sb" "cb sa"; do
		set -- $side
		[ "$(awk '/^conn/{print $5, $8}' "$LOGS/$1.out" | sort)" = \
		  "$(awk '/^conn/{print $8, $5}' "$LOGS/$2.out" | sort)" ] || bad=1
	done
	[ $bad = 0 ] || cp "$LOGS/ca.out" "$LOGS/ca-round$n.out"
	return $bad
}

# Less 3 per ring cached for reuse (a memfd and two eventfds, ours or the
# peer's) and 2 per ready slot (its X and Y sockets): how many rings stay
# cached and how many slots come back to the pool (up to twice its size)
# vary with how flows overlapped.
agent_fds() {
	local side=A n
	[ "$1" = 1 ] && side=B
	n=$(ls /proc/"${AGENT_PIDS[$1]}"/fd | wc -l)
	echo $((n - $(json_get $side '3 * d["counters"]["rings_cached"] + 2 * d["slots_free"]')))
}
# The agent's own memory: anonymous pages. Rings are shared memory (memfd)
# and those cached for reuse stay mapped, up to pool per link and side.
agent_rss_kib() { awk '/^RssAnon/{print $2}' /proc/"${AGENT_PIDS[$1]}"/status; }
map_entries() { # map_entries SIDE MAP
	bpftool -j map dump pinned "/sys/fs/bpf/fastivc/$TAG-$1/$2" |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
settled() { # every flow of both agents freed
	[ "$(json_get A 'd["counters"]["flows_done"]')" = "$(json_get A 'd["counters"]["flows_steered"]')" ] &&
		[ "$(json_get B 'd["counters"]["flows_done"]')" = "$(json_get B 'd["counters"]["flows_steered"]')" ]
}
wait_settled() { for _ in $(seq 100); do settled && return 0; sleep 0.1; done; return 1; }

# One round first: links, pools and the sock_diag socket exist from then on.
errors=0
round 0 || errors=$((errors + 1))
wait_settled
fds0="$(agent_fds 0) $(agent_fds 1)" rss0="$(agent_rss_kib 0) $(agent_rss_kib 1)"
rounds=1 end=$(($(date +%s) + SOAK_SECONDS))
while [ "$(date +%s)" -lt $end ]; do
	round $rounds || errors=$((errors + 1))
	rounds=$((rounds + 1))
	[ $((rounds % 10)) = 0 ] && say "soak: $rounds rounds, $((rounds * CONNS * 2)) connections, $errors bad"
done
wait_settled
# The pool refills after the last flows settle: a leak stays, this waits
# for a settled count.
for _ in $(seq 50); do
	fds1="$(agent_fds 0) $(agent_fds 1)"
	[ "$fds1" = "$fds0" ] && break
	sleep 0.1
done
rss1="$(agent_rss_kib 0) $(agent_rss_kib 1)"
conns=$((rounds * CONNS * 2))
say "$rounds rounds of $((CONNS * 2)) concurrent flows: $conns connections, $errors bad rounds"
say "A: $(fivc A status | sed -n 2p)"
say "B: $(fivc B status | sed -n 2p)"
say "agent fds A B before/after: $fds0 / $fds1; anonymous RSS KiB A B: $rss0 / $rss1"
check "soak: every transfer intact ($conns connections, SHA-256 both ends)" [ $errors = 0 ]
check "soak: every flow freed" settled
check "soak: no fd leaked by either agent" [ "$fds0" = "$fds1" ]
set -- $rss0 $rss1
check "soak: agent memory (anonymous) did not grow by more than 16 MiB" \
	[ $(($3 - $1)) -le 16384 -a $(($4 - $2)) -le 16384 ]
check "soak: no flow, FIN or slot-hold state left in the maps" \
	[ "$(map_entries a flows)$(map_entries b flows)" = 00 -a \
	  "$(map_entries a fin_ok)$(map_entries a held_fins)$(map_entries b fin_ok)$(map_entries b held_fins)" = 0000 ]
# Each round, each agent's clients send CONNS x (8-byte index + BYTES) and
# its server answers CONNS x BYTES.
check_tunneled "soak: every byte A sent" A $((rounds * CONNS * (2 * BYTES + 8))) exact
check_tunneled "soak: every byte B sent" B $((rounds * CONNS * (2 * BYTES + 8))) exact
check "soak: no flow failed" \
	[ "$(json_get A 'd["counters"]["flows_failed"]')$(json_get B 'd["counters"]["flows_failed"]')" = 00 ]
exit $FAILED
