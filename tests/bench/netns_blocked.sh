#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A server blocked on a slow reader (tests/bench/blocked_writer.py): B's
# server writes 32 MiB to A's client, which reads nothing for 3 s; the
# server's CPU seconds for the transfer, per way of waiting for room, over
# veth TCP and through fastivc in alternating rounds:
#   blocked_server_cpu  blocking, poll, select, epoll-lt, epoll-et, and
#                       redis-server answering a GET of a 32 MiB value
# poll, select and level-triggered epoll (redis's event loop) spin through
# fastivc while the window is full (docs/steering.md, "What the kernel
# sets").
. "$(dirname "$0")/lib.sh"
ROUNDS=3 PAUSE=3
[ "$QUICK" = 1 ] && ROUNDS=2
STYLES="blocking poll select epoll-lt epoll-et"
PROG=$PWD/tests/bench/blocked_writer.py

samples_open blocked
netns_setup
bench_agents
REDIS=
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	serve B redis-server --bind $IP_B --port 6390 --save '' --appendonly no \
		--protected-mode no
	head -c $((32 << 20)) /dev/zero | tr '\0' r >"$RUN/big"
	for _ in $(seq 50); do in_ns A redis-cli -h $IP_B -p 6390 ping >/dev/null 2>&1 && break; sleep 0.1; done
	in_ns A redis-cli -h $IP_B -p 6390 -x set big <"$RUN/big" >/dev/null
	REDIS=$(ip netns pids "$NS_B" | xargs -r ps -o pid=,comm= -p | awk '$2 == "redis-server" {print $1}')
else
	echo "skip - bench blocked: redis: redis-server is not installed (scripts/install-deps.sh)"
	echo "blocked_server_cpu/redis redis-server is not installed" >>"$O/bench/skipped"
fi

# cpu_s PID: CPU seconds the process has used.
cpu_s() {
	sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{print ($12 + $13) / hz}'
}

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
	[ -n "$REDIS" ] || continue
	before=$(tunneled) cpu=$(cpu_s $REDIS)
	got=$(in_ns A timeout 120 python3 "$PROG" redis $IP_B 6390 $PAUSE)
	if [ "$got" != "got $((32 << 20))" ]; then
		echo "not ok - bench blocked: redis, $m: the client read '$got'" | tee -a "$O/bench/not-ok"
		continue
	fi
	check_mode $m "$before" &&
		sample blocked_server_cpu redis $m "$(awk -v a="$cpu" -v b="$(cpu_s $REDIS)" \
			'BEGIN {printf "%.3f", b - a}')" s lower
done < <(rounds_modes $ROUNDS)
