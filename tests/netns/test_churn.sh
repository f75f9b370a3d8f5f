#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Many short half-closing connections in a row (blocking client: send,
# shutdown, read to EOF): catches end-of-stream races that one long
# transfer does not (it caught a peer FIN released while the tunnel was
# still being set up). `make soak` runs it longer (ROUNDS).
. "$(dirname "$0")/lib.sh"
FAILED=0
ROUNDS=${ROUNDS:-40}
netns_setup
agents_up ${AGENT_ARGS:-} || { fail "agents start"; exit 1; }
bad=0
for i in $(seq "$ROUNDS"); do
	port=$((7000 + i))
	in_ns B "$BLAST" server $IP_B $port --conns 4 --bytes $((1 << 20)) >"$LOGS/s$i.out" 2>&1 &
	spid=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/s$i.out" && break; sleep 0.05; done
	in_ns A timeout 30 "$BLAST" client $IP_B $port --conns 4 --bytes $((1 << 20)) \
		>"$LOGS/c$i.out" 2>&1 || bad=$((bad + 1))
	wait $spid || bad=$((bad + 1))
done
grep -h error "$LOGS"/c*.out "$LOGS"/s*.out | head -3 | sed 's/^/# /'
check "$ROUNDS x 4 half-closing connections: every client and server ok" [ $bad = 0 ]
check "all of them took the tunnel" \
	[ "$(json_get A 'd["counters"]["flows_tunneled"]')" -ge $((ROUNDS * 4)) ]
fivc A status | sed -n 1,3p | sed "s/^/# /"; fivc B status | sed -n 1,3p | sed "s/^/# /"
exit $FAILED
