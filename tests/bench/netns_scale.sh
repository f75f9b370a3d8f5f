#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Scale: 1, 16, 256 and 1000 concurrent flows of 64 KiB sends
# (tests/tools/stream), plain veth TCP against fastivc (default agent
# configuration), rounds alternating the two. Per flow count:
#   scale_throughput       aggregate at the receiving application (Gbit/s)
#   scale_cpu              the whole machine's busy CPU over the run, in %
#                          of one core (both ends, kernel and agents)
#   scale_cpu_per_gbit     that, per Gbit/s delivered: the cost of a byte
#   (the agents' own share is printed as a comment: in the TCP rounds they
#   idle, so it has no baseline to compare with)
#   scale_mem_per_flow     (kernel TCP memory in both namespaces + both
#                          agents' RSS growth) / flows, in the middle of
#                          the run (KiB); its two parts are also reported:
#   scale_kernel_mem_per_flow, scale_agent_rss_per_flow
# Kernel TCP memory is the sum over the namespaces' sockets of ss's skmem
# r + w + f (receive queue, write queue, forward allocation): the "mem" of
# /proc/net/sockstat counts the whole machine, not one namespace.
. "$(dirname "$0")/lib.sh"
ROUNDS=3 SECS=4
[ "$QUICK" = 1 ] && ROUNDS=2 SECS=2
FLOWS="1 16 256 1000"
samples_open scale
netns_setup
# 1000 tunnels set up at once: more ready slots, and more time for the
# setup than the default 2 s on a loaded 2-core box.
start() {
	bench_agents --set pool=1024 --set setup_timeout_ms=10000
	serve B "$TOOLS/stream" sink $IP_B 5500
	sleep 0.2
}
start

cpu_ticks() { # utime + stime of both agents
	local pid sum=0
	for pid in "${AGENT_PIDS[@]}"; do
		sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
	done
	echo $sum
}
rss_kib() { # VmRSS of both agents
	local pid sum=0
	for pid in "${AGENT_PIDS[@]}"; do
		sum=$((sum + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")))
	done
	echo $sum
}
busy_ticks() { # the machine's non-idle CPU ticks (/proc/stat)
	awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}
tcp_mem_b() { # skmem r + w + f over every TCP socket of both namespaces
	{
		nsenter --net="/run/netns/$NS_A" ss -tmnH
		nsenter --net="/run/netns/$NS_B" ss -tmnH
	} | grep -o 'skmem:([^)]*)' | tr '(,)' '   ' |
		awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[rwf][0-9]/) s += substr($i, 2)}
			END {print s + 0}'
}
calc() { awk "BEGIN {printf \"%.1f\", $*}"; }

while read -r r m; do
	echo "# scale: round $r/$ROUNDS, $m" >&2
	mode $m
	for n in $FLOWS; do
		out=$LOGS/scale.out
		before=$(tunneled) rss0=$(rss_kib) kmem0=$(tcp_mem_b)
		# Bounded: a flow stuck in FIN-WAIT must not hang the benchmark.
		in_ns A timeout $((SECS + 30)) "$TOOLS/stream" send $IP_B 5500 --conns $n --seconds $SECS >"$out" &
		sender=$!
		while ! grep -qs established "$out" && kill -0 $sender 2>/dev/null; do
			sleep 0.05
		done
		ticks0=$(cpu_ticks) busy0=$(busy_ticks) t0=$(date +%s.%N)
		sleep "$(calc "$SECS / 2")"
		rss=$(($(rss_kib) - rss0)) kmem=$(($(tcp_mem_b) - kmem0))
		if ! wait $sender; then
			echo "bench: scale: $m, $n flows failed; agents restarted" >&2
			agents_kill
			start
			mode $m
			continue
		fi
		secs=$(calc "$(date +%s.%N) - $t0")
		hz=$(getconf CLK_TCK)
		agents=$(calc "($(cpu_ticks) - $ticks0) / $hz * 100 / $secs")
		cpu=$(calc "($(busy_ticks) - $busy0) / $hz * 100 / $secs")
		check_mode $m "$before" || continue
		gbit=$(awk '/^conns/ {print $NF}' "$out")
		echo "# scale: $m, $n flows: agents $agents% of a core, machine $cpu%" >&2
		sample scale_throughput $n $m "$gbit" Gbit/s higher
		sample scale_cpu $n $m "$cpu" "% core" lower
		sample scale_cpu_per_gbit $n $m "$(calc "$cpu / ($gbit + 0.001)")" "% core/(Gbit/s)" lower
		sample scale_mem_per_flow $n $m "$(calc "($kmem / 1024 + $rss) / $n")" KiB lower
		sample scale_kernel_mem_per_flow $n $m "$(calc "$kmem / 1024 / $n")" KiB lower
		sample scale_agent_rss_per_flow $n $m "$(calc "$rss / $n")" KiB lower
	done
done < <(rounds_modes $ROUNDS)
