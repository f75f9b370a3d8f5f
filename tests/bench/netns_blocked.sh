#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A server blocked on a slow reader (tests/bench/blocked_writer.py): B's
# server writes 32 MiB to A's client, which reads nothing for 3 s; the
# server's CPU seconds for the transfer, per way of waiting for room, over
# veth TCP and through fastivc in alternating rounds:
#   blocked_server_cpu  blocking, poll, select, epoll-lt, epoll-et
# poll, select and level-triggered epoll spin through fastivc while the
# window is full (docs/steering.md, "What the kernel sets").
. "$(dirname "$0")/lib.sh"
ROUNDS=3 PAUSE=3
[ "$QUICK" = 1 ] && ROUNDS=2
STYLES="blocking poll select epoll-lt epoll-et"
PROG=$PWD/tests/bench/blocked_writer.py

samples_open blocked
netns_setup
bench_agents
port=7400
while read -r r m; do
	echo "# blocked: round $r/$ROUNDS, $m" >&2
	mode $m
	for style in $STYLES; do
		port=$((port + 1))
		before=$(tunneled)
		in_ns B python3 "$PROG" server $IP_B $port $style >"$LOGS/blocked-$port.out" 2>&1 &
		spid=$!
		for _ in $(seq 50); do grep -qs listening "$LOGS/blocked-$port.out" && break; sleep 0.1; done
		got=$(in_ns A timeout 120 python3 "$PROG" client $IP_B $port $PAUSE)
		wait $spid
		if [ "$got" != "got $((32 << 20))" ]; then
			echo "not ok - bench blocked: $style, $m: the client read '$got'" | tee -a "$O/bench/not-ok"
			continue
		fi
		check_mode $m "$before" &&
			sample blocked_server_cpu $style $m \
				"$(awk '/^cpu_s/ {print $2}' "$LOGS/blocked-$port.out")" s lower
	done
done < <(rounds_modes $ROUNDS)
