#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Slot reuse (docs/steering.md, "Slot reuse"): many sequential connections
# (tests/netns/reuse.py: half-closing each way, and aborted with RSTs in
# between), every byte checked against its connection's own pattern, so a
# byte left from an earlier flow on a reused pair would show. Both agents
# must have put pairs back into the pool, and every clean byte must have
# gone through the tunnels, per agent and direction.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
REUSE=$PWD/tests/netns/reuse.py
N=${N:-42}
netns_setup
agents_up || { fail "agents start"; exit 1; }

ctr() { json_get "$1" "d[\"counters\"][\"$2\"]"; }

port=6400
for fam in 4 6; do
	addr=$IP_B
	[ $fam = 6 ] && addr=$IP6_B
	port=$((port + 1))
	reused_a=$(ctr A slots_reused) reused_b=$(ctr B slots_reused)
	tunneled=$(ctr A flows_tunneled) failed=$(($(ctr A flows_failed) + $(ctr B flows_failed)))
	tunnel_mark
	in_ns B timeout 120 python3 "$REUSE" server "$addr" $port "$N" \
		>"$LOGS/reuse-$fam-server.out" 2>&1 &
	spid=$!
	for _ in $(seq 50); do grep -q listening "$LOGS/reuse-$fam-server.out" && break; sleep 0.1; done
	in_ns A timeout 120 python3 "$REUSE" client "$addr" $port "$N" \
		>"$LOGS/reuse-$fam-client.out" 2>&1
	crc=$?
	wait $spid
	src=$?
	grep -h FAIL "$LOGS/reuse-$fam-"*.out | head -3 | sed 's/^/# /'
	check "IPv$fam: $N sequential connections behave as TCP, every byte checked" \
		[ $crc = 0 -a $src = 0 ]
	check "IPv$fam: all of them took the tunnel" \
		[ $(($(ctr A flows_tunneled) - tunneled)) -ge "$N" ]
	check "IPv$fam: no tunnel failed" \
		[ $(($(ctr A flows_failed) + $(ctr B flows_failed))) = $failed ]
	c2s=$(sed -n 's/^clean RX //p' "$LOGS/reuse-$fam-server.out")
	s2c=$(sed -n 's/^clean RX //p' "$LOGS/reuse-$fam-client.out")
	check_tunneled "IPv$fam client->server" A "${c2s:-1}"
	check_tunneled "IPv$fam server->client" B "${s2c:-1}"
	ra=$(($(ctr A slots_reused) - reused_a)) rb=$(($(ctr B slots_reused) - reused_b))
	say "IPv$fam: slots reused: A $ra, B $rb; ended by shutdown: A $(ctr A slots_eof_shut), B $(ctr B slots_eof_shut)"
	check "IPv$fam: both agents reused slot pairs (A $ra, B $rb >= $((N / 3)))" \
		[ "$ra" -ge $((N / 3)) -a "$rb" -ge $((N / 3)) ]
done
exit $FAILED
