#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Thesis Figures 10 and 12, data in memory: one connection, send() of a
# fixed size for SECS seconds (tests/tools/stream), throughput at the
# receiving application, plain veth TCP against fastivc.
#   send_size_throughput_chN  send size 1 B..1 MiB, N = 2, 4, 8 channels of
#                             the default size (Fig. 10)
#   channel_size_throughput   channel size 4 KiB..1 MiB (the agent's whole
#                             range), 4 channels, 64 KiB sends (Fig. 12)
# Params are bytes. Each agent configuration gets its own TCP rounds, so
# every fastivc point has a baseline measured beside it.
. "$(dirname "$0")/lib.sh"
ROUNDS=3 SECS=3
SIZES="1 4 16 64 256 1024 4096 16384 65536 262144 1048576"
CH_SIZES="4096 16384 65536 262144 1048576"
if [ "$QUICK" = 1 ]; then
	ROUNDS=2 SECS=1
	SIZES="1 256 4096 65536 1048576"
	CH_SIZES="4096 1048576"
fi
samples_open stream
netns_setup

# sweep BENCHMARK "PARAM:CHUNK ..." [agent args]: agents with those args,
# then ROUNDS alternating rounds over the points.
sweep() {
	local bench=$1 points=$2 r m p before out
	shift 2
	bench_agents "$@"
	serve B "$TOOLS/stream" sink $IP_B 5500
	sleep 0.2
	while read -r r m; do
		echo "# $bench $*: round $r/$ROUNDS, $m" >&2
		mode $m
		for p in $points; do
			before=$(tunneled)
			# A failed run (a reset flow) is reported, not averaged in.
			out=$(in_ns A timeout $((SECS + 30)) "$TOOLS/stream" send $IP_B 5500 \
				--chunk "${p#*:}" --seconds $SECS) ||
				{ echo "bench: $bench ${p%:*} $m failed" >&2 && continue; }
			check_mode $m "$before" &&
				sample "$bench" "${p%:*}" $m "$(echo "$out" | awk '/^conns/ {print $NF}')" \
					Gbit/s higher
		done
	done < <(rounds_modes $ROUNDS)
}

for ch in 2 4 8; do
	sweep send_size_throughput_ch$ch "$(for s in $SIZES; do echo "$s:$s"; done)" \
		--set channels=$ch
done
for cs in $CH_SIZES; do
	sweep channel_size_throughput "$cs:65536" --set channels=4 --set channel_size=$cs
done
