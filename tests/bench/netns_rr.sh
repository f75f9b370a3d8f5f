#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Small messages and connections, plain veth TCP against fastivc (default
# agent configuration), rounds alternating the two:
#   rr_latency_p50/p99   request/response of 1 B, 64 B, 4 KiB over one
#                        connection, TCP_NODELAY (us)
#   connection_rate      connect, 1-byte exchange, close, in a loop (conn/s)
#   iperf3_throughput    iperf3 -P 1, -P 4 and -P 8, a well-known sender
#                        (Gbit/s)
#   iperf3_cpu           CPU seconds of the whole path (both app cgroups,
#                        both agents, ksoftirqd: cpu_usec in lib.sh) per GB
#                        the receiver got in that iperf3 run (s/GB)
. "$(dirname "$0")/lib.sh"
ROUNDS=3 SECS=3 RRN=20000
[ "$QUICK" = 1 ] && ROUNDS=2 SECS=1 RRN=3000
samples_open rr
netns_setup
bench_agents
serve B iperf3 -s -p 5201
serve B "$TOOLS/rr" server $IP_B 5300
# Each connection-rate run dials a port of its own: the previous run's
# ~10k TIME_WAIT sockets to the same port make connect() hunt for a free
# source port, and cut the next run's rate by up to 4x (measured).
for i in $(seq $((2 * ROUNDS))); do
	serve B "$TOOLS/rr" server $IP_B $((5300 + i))
done
sleep 0.5
CONN_PORT=5300

while read -r r m; do
	echo "# rr: round $r/$ROUNDS, $m" >&2
	mode $m
	for size in 1 64 4096; do
		before=$(tunneled)
		out=$(in_ns A "$TOOLS/rr" latency $IP_B 5300 $size $RRN)
		check_mode $m "$before" || continue
		sample rr_latency_p50 $size $m "$(echo "$out" | awk '{print $2}')" us lower
		sample rr_latency_p99 $size $m "$(echo "$out" | awk '{print $4}')" us lower
	done
	before=$(tunneled)
	CONN_PORT=$((CONN_PORT + 1))
	out=$(in_ns A "$TOOLS/rr" connrate $IP_B $CONN_PORT $SECS | awk '{print $4}')
	check_mode $m "$before" && sample connection_rate 1 $m "$out" conn/s higher
	for p in 1 4 8; do
		before=$(tunneled) cpu=$(cpu_usec)
		out=$(iperf3_run -p 5201 -P $p -t $SECS)
		check_mode $m "$before" || continue
		sample iperf3_throughput P=$p $m "${out% *}" Gbit/s higher
		sample iperf3_cpu P=$p $m "$(cpu_per_gb "$cpu" "${out#* }")" s/GB lower
	done
done < <(rounds_modes $ROUNDS)
