#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The channel-size sweep for the defaults: iperf3 -P 1 and -P 4 through
# fastivc with 4 channels of 64 KiB (the default), 256 KiB and 1 MiB,
# against veth TCP in the same rounds. The ring memory of one flow is
# channels x channel_size in each direction (256 KiB, 1 MiB, 4 MiB here).
#   chsize_iperf3  Gbit/s, param P=<streams>/<channel_size bytes>
#   chsize_cpu     CPU seconds of the whole path per GB (cpu_usec in lib.sh)
# veth does not depend on the agents' keys: each round measures it once per
# -P and records it under every channel size, so each fastivc point has the
# baseline of its own round.
. "$(dirname "$0")/lib.sh"
ROUNDS=3 SECS=3
[ "$QUICK" = 1 ] && ROUNDS=2 SECS=2
CH_SIZES="65536 262144 1048576"
samples_open chsize
netns_setup

# measure MODE CS P: one iperf3 run; its samples under every CS given.
measure() {
	local m=$1 sizes=$2 p=$3 before cpu out cost cs
	before=$(tunneled) cpu=$(cpu_usec)
	out=$(iperf3_run -p 5201 -P "$p" -t $SECS)
	check_mode "$m" "$before" || return
	cost=$(cpu_per_gb "$cpu" "${out#* }")
	for cs in $sizes; do
		sample chsize_iperf3 "P=$p/$cs" "$m" "${out% *}" Gbit/s higher
		sample chsize_cpu "P=$p/$cs" "$m" "$cost" s/GB lower
	done
}

# agents_with CS: both agents restarted with 4 channels of CS bytes, and
# the iperf3 server started again (a listener must open after its agent).
agents_with() {
	bench_agents --set channels=4 --set channel_size="$1"
	serve B iperf3 -s -p 5201
	sleep 0.5
}

agents_with 65536
while read -r r m; do
	echo "# chsize: round $r/$ROUNDS, $m" >&2
	if [ "$m" = tcp ]; then
		mode tcp
		for p in 1 4; do measure tcp "$CH_SIZES" $p; done
		continue
	fi
	for cs in $CH_SIZES; do
		agents_with "$cs"
		mode fastivc
		for p in 1 4; do measure fastivc "$cs" $p; done
	done
done < <(rounds_modes $ROUNDS)
