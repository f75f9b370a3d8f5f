#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# netns figures: plain veth TCP against fastivc, in the same run, rounds
# alternating the two (the peers are added to and removed from the
# co-resident maps between rounds). Rows go to $O/bench/results.csv.
#   iperf3 throughput, -P 1 and -P 8 (Gbit/s)
#   request/response latency p50/p99, 1 B, 64 B and 4 KiB (us)
#   connection rate: connect, 1-byte exchange, close (conn/s)
# QUICK=1: one round, shorter runs.
cd "$(dirname "$0")/../.." || exit 1
export O=${O:-build}
. tests/netns/lib.sh
RR=$PWD/$O/tools/rr
CSV=$O/bench/results.csv
ROUNDS=3 SECS=3 RRN=20000
[ "${QUICK:-0}" = 1 ] && ROUNDS=1 SECS=2 RRN=5000
mkdir -p "$O/bench"
[ -s "$CSV" ] || echo "env,benchmark,param,baseline,baseline_value,fastivc_value,unit,ratio" >"$CSV"
netns_setup
agents_up || { echo "bench: agents did not start" >&2; exit 1; }
in_ns B iperf3 -s -p 5201 -D --logfile "$LOGS/iperf3.log"
in_ns B "$RR" server $IP_B 5300 >"$LOGS/rr.log" 2>&1 &
sleep 0.5

mode() { # mode tcp|fastivc: who is co-resident
	if [ "$1" = fastivc ]; then
		fivc A peer add $IP_B/32 $DOM_B && fivc B peer add $IP_A/32 $DOM_A
	else
		fivc A peer del $IP_B/32 2>/dev/null; fivc B peer del $IP_A/32 2>/dev/null
	fi
	return 0
}

declare -A R # R[metric mode] = space-separated samples
measure() { # measure MODE
	local m=$1 p out
	for p in 1 8; do
		out=$(in_ns A iperf3 -c $IP_B -p 5201 -P $p -t $SECS -J 2>/dev/null |
			python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
		R["iperf3_throughput P=$p $m"]+="$out "
	done
	for size in 1 64 4096; do
		out=$(in_ns A "$RR" latency $IP_B 5300 $size $RRN)
		R["rr_latency_p50 ${size}B $m"]+="$(echo "$out" | awk '{print $2}') "
		R["rr_latency_p99 ${size}B $m"]+="$(echo "$out" | awk '{print $4}') "
	done
	out=$(in_ns A "$RR" connrate $IP_B 5300 $SECS)
	R["connection_rate 1B $m"]+="$(echo "$out" | awk '{print $4}') "
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR ? a[int((NR+1)/2)] : 0)}'; }

for r in $(seq $ROUNDS); do
	for m in tcp fastivc; do
		[ $((r % 2)) = 0 ] && m=$([ $m = tcp ] && echo fastivc || echo tcp)
		mode $m
		echo "# round $r/$ROUNDS: $m" >&2
		measure $m
	done
done
mode tcp
tunneled=$(json_get A 'd["counters"]["tunnel_bytes_tx"]')

for key in "iperf3_throughput P=1" "iperf3_throughput P=8" \
	"rr_latency_p50 1B" "rr_latency_p99 1B" "rr_latency_p50 64B" "rr_latency_p99 64B" \
	"rr_latency_p50 4096B" "rr_latency_p99 4096B" "connection_rate 1B"; do
	bench=${key% *} param=${key#* }
	b=$(echo "${R[$key tcp]}" | median)
	f=$(echo "${R[$key fastivc]}" | median)
	case $bench in
	iperf3*) unit=Gbit/s; ratio=$(python3 -c "print('%.2f' % ($f / $b if $b else 0))") ;;
	connection*) unit=conn/s; ratio=$(python3 -c "print('%.2f' % ($f / $b if $b else 0))") ;;
	*) unit=us; ratio=$(python3 -c "print('%.2f' % ($b / $f if $f else 0))") ;;
	esac
	echo "netns,$bench,$param,veth_tcp,$b,$f,$unit,$ratio" >>"$CSV"
done
echo "# fastivc runs moved $tunneled bytes through A's tunnels" >&2
python3 scripts/bench_table.py --csv "$CSV" --benchmark iperf3 --benchmark rr_latency --benchmark connection_rate \
	--out "$O/bench/netns.md" >/dev/null
cat "$O/bench/netns.md"
