#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The netns benchmarks (local backend): every part in its own pair of
# namespaces and agents, then the result rows, tables and plots.
#   netns_stream.sh  thesis Figs. 10 and 12: send size, channels, channel size
#   netns_files.sh   thesis Fig. 11: nginx to curl, files from disk
#   netns_rr.sh      latency p50/p99, connection rate, iperf3
#   netns_chsize.sh  iperf3 -P 1/-P 4 with 64 KiB, 256 KiB, 1 MiB channels
#   netns_servers.sh nginx under wrk, MariaDB under sysbench
#   netns_scale.sh   1..1000 flows: throughput, agent CPU, memory per flow
#   netns_blocked.sh a server's CPU while a slow reader blocks it
# Outputs in $O/bench: results.csv (rows appended), netns.md (medians and
# ratios), spread.md (median [min..max] per mode), goals.md (the goal
# table of the performance issue, also printed last), *.png (one per
# figure), skipped (benchmarks that could not run, and why).
# QUICK=1: fewer points and rounds (about 12 minutes on 2 cores).
# PARTS="rr servers": only those parts.
cd "$(dirname "$0")/../.." || exit 1
export O=${O:-build}
OUT=$O/bench
PARTS=${PARTS:-stream files rr chsize servers scale blocked}
mkdir -p "$OUT/samples"
rm -f "$OUT"/samples/*.csv "$OUT/not-ok" "$OUT/skipped"

for p in $PARTS; do
	start=$(date +%s)
	bash "tests/bench/netns_$p.sh" || echo "bench: netns_$p.sh failed" >&2
	echo "# netns_$p: $(($(date +%s) - start)) s" >&2
done
python3 scripts/bench_reduce.py --env netns --csv "$OUT/results.csv" \
	--spread "$OUT/spread.md" "$OUT"/samples/*.csv || exit 1
python3 scripts/bench_table.py --csv "$OUT/results.csv" --out "$OUT/netns.md" \
	--benchmark send_size --benchmark channel_size --benchmark file_fetch \
	--benchmark rr_latency --benchmark connection_rate --benchmark iperf3 \
	--benchmark chsize --benchmark server --benchmark scale
cat "$OUT/spread.md"
python3 scripts/bench_plot.py --csv "$OUT/results.csv" --outdir "$OUT"
python3 scripts/bench_goals.py --env netns --csv "$OUT/results.csv" \
	--skipped "$OUT/skipped" --out "$OUT/goals.md"
# A fastivc value that did not go through the tunnels is a failure.
if [ -s "$OUT/not-ok" ]; then
	cat "$OUT/not-ok"
	exit 1
fi
