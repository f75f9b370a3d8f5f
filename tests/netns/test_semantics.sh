#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# TCP semantics through the tunnel (tests/netns/semantics.py): half-close
# both ways, RST, close with unread data, backpressure in every send style.
. "$(dirname "$0")/lib.sh"
FAILED=0
SEM=$PWD/tests/netns/semantics.py
CASES=${CASES:-"halfclose-client halfclose-server rst unread-close backpressure-block backpressure-nonblock-poll backpressure-epoll-lt backpressure-epoll-et"}
# Challenge ACKs A's stack sent (RFC 5961): an RST that the app socket did
# not take at once (see docs/steering.md, "End of stream").
challenge_acks() {
	in_ns A awk '/^TcpExt:/ { if (!n) { split($0, k); n = 1 } else {
		split($0, v); for (i in k) if (k[i] == "TCPChallengeACK") print v[i] } }' \
		/proc/net/netstat
}

netns_setup
agents_up || { fail "agents start"; exit 1; }

port=6000
for fam in 4 6; do
	addr=$IP_B
	[ $fam = 6 ] && addr=$IP6_B
	for c in $CASES; do
		port=$((port + 1))
		before=$(json_get A 'd["counters"]["flows_tunneled"]')
		acks=$(challenge_acks)
		in_ns B timeout 90 python3 "$SEM" server "$addr" $port "$c" \
			>"$LOGS/sem-$c-$fam-server.out" 2>&1 &
		spid=$!
		for _ in $(seq 50); do grep -q listening "$LOGS/sem-$c-$fam-server.out" && break; sleep 0.1; done
		in_ns A timeout 90 python3 "$SEM" client "$addr" $port "$c" \
			>"$LOGS/sem-$c-$fam-client.out" 2>&1
		crc=$?
		wait $spid
		src=$?
		tunneled=$(($(json_get A 'd["counters"]["flows_tunneled"]') - before))
		grep -h -v '^ok$\|^listening$' "$LOGS/sem-$c-$fam-"*.out | sed 's/^/# /'
		check "IPv$fam $c: client and server behave as TCP (through the tunnel)" \
			[ $crc = 0 -a $src = 0 -a $tunneled -ge 1 ]
		[ $c = unread-close ] &&
			check "IPv$fam $c: the client's stack took the server's RST at once (challenge ACKs: $(($(challenge_acks) - acks)))" \
				[ "$(challenge_acks)" = "$acks" ]
	done
done
exit $FAILED
