#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Ring reuse (docs/steering.md, "Ring reuse"): many sequential
# connections A -> B, then B -> A, each moving bytes both ways. Every
# digest matches, every byte goes through the tunnels once (per agent and
# direction), and after the first few connections each one names rings
# the peer keeps mapped instead of offering new ones: both agents'
# rings_reused and peer_rings_reused grow by about the number of
# connections. No ring is refused, and the caches stay bounded (pool).
# Then rr's connections: their first byte goes into a kept ring before
# the peer's answer ("Early bytes").
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
N=${N:-40}
BYTES=$((256 << 10))
POOL=8
netns_setup
agents_up --set pool=$POOL || { fail "agents start"; exit 1; }

ctr() { json_get "$1" "d['counters']['$2']"; }

# One connection FROM -> TO on PORT: BYTES each way; the digests agree.
one() { # one FROM TO IP PORT
	local out=$LOGS/c-$1-$4
	in_ns "$2" timeout 30 "$BLAST" server "$3" "$4" --conns 1 --bytes $BYTES \
		>"$out.server" 2>&1 &
	local spid=$!
	for _ in $(seq 50); do grep -qs listening "$out.server" && break; sleep 0.02; done
	in_ns "$1" timeout 30 "$BLAST" client "$3" "$4" --conns 1 --bytes $BYTES \
		>"$out.client" 2>&1 || { wait $spid; return 1; }
	wait $spid || return 1
	[ "$(awk '/^conn/{print $4, $5, $7, $8}' "$out.client")" = \
	  "$(awk '/^conn/{print $7, $8, $4, $5}' "$out.server")" ] &&
		grep -q "^conn 0 sent $BYTES " "$out.client"
}

for dir in AB BA; do
	from=${dir:0:1} to=${dir:1:1} ip=$IP_B
	[ "$to" = A ] && ip=$IP_A
	r_from=$(ctr $from rings_reused) r_to=$(ctr $to rings_reused)
	p_from=$(ctr $from peer_rings_reused) p_to=$(ctr $to peer_rings_reused)
	tunnel_mark
	bad=0
	for i in $(seq "$N"); do
		one $from $to $ip $((7600 + i)) || bad=$((bad + 1))
	done
	sleep 0.3 # the agents' last ring events
	check "$dir: $N sequential connections, every digest matches both ways" [ $bad = 0 ]
	check_tunneled "$dir: $from -> $to" $from $((N * (BYTES + 8))) exact
	check_tunneled "$dir: $to -> $from" $to $((N * BYTES)) exact
	for side in $from $to; do
		[ $side = $from ] && r0=$r_from p0=$p_from || r0=$r_to p0=$p_to
		r=$(($(ctr $side rings_reused) - r0))
		p=$(($(ctr $side peer_rings_reused) - p0))
		check "$dir: $side named cached rings for most connections (rings_reused +$r of $N)" \
			[ $r -ge $((N - 4)) -a $r -le $N ]
		check "$dir: $side attached the peer's cached rings as often (peer_rings_reused +$p of $N)" \
			[ $p -ge $((N - 4)) -a $p -le $N ]
	done
done
# A kept ring takes a client's first bytes before the peer answers, and the
# peer delivers them before its own ring is accepted (docs/steering.md,
# "Early bytes"): rr sends its byte as soon as connect() returns.
in_ns B "$O/tools/rr" server $IP_B 7700 >/dev/null 2>&1 &
rr_srv=$!
sleep 0.3
e_tx=$(ctr A early_tx) e_rx=$(ctr B early_rx) n0=$(ctr A flows_tunneled)
out=$(in_ns A "$O/tools/rr" connrate $IP_B 7700 1)
rc=$?
check "rr connrate: every exchange answered ($out)" [ $rc = 0 ]
kill $rr_srv
n=$(($(ctr A flows_tunneled) - n0))
e=$(($(ctr A early_tx) - e_tx))
check "A sent first bytes before B answered (early_tx +$e of $n tunneled)" [ $e -ge 1 ]
e=$(($(ctr B early_rx) - e_rx))
check "B delivered them before its own ring was accepted (early_rx +$e)" [ $e -ge 1 ]
for side in A B; do
	check "$side: no ring was refused (ring_refused $(ctr $side ring_refused))" \
		[ "$(ctr $side ring_refused)" = 0 ]
	check "$side: no flow failed or was reset" \
		[ "$(ctr $side flows_failed)$(ctr $side flows_reset)" = 00 ]
	cached=$(ctr $side rings_cached)
	check "$side: its caches are bounded: $cached idle rings <= 2 x pool per link" \
		[ "$cached" -le $((4 * POOL)) ]
done
say "A: $(fivc A status --json | python3 -c 'import json,sys; c=json.load(sys.stdin)["counters"]; print({k: c[k] for k in ("rings_reused", "peer_rings_reused", "rings_evicted", "rings_cached", "flows_tunneled", "early_tx", "early_rx")})')"
exit $FAILED
