#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Shared by the netns benchmark parts (tests/bench/netns_*.sh): the two
# "domUs" of tests/netns/lib.sh under their own name prefix, the two modes
# (plain veth TCP, fastivc), the alternating rounds and the raw samples.
# Each part writes $O/bench/samples/<part>.csv (benchmark,param,series,
# value,unit,better); scripts/bench_reduce.py turns them into result rows.
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
export O=${O:-build}
# "fb<pid>": never the tests' "fivc<pid>" names, never another run's.
TAG_PREFIX=fb
. tests/netns/lib.sh
TOOLS=$PWD/$O/tools
QUICK=${QUICK:-0}
# 1000 flows: a socket pair, a memfd and eventfds per flow in each agent.
ulimit -n "$(ulimit -Hn)"
SERVER_PIDS=()

# samples_open PART: this part's sample file, replacing a previous run's.
samples_open() {
	mkdir -p "$O/bench/samples"
	SAMPLES=$O/bench/samples/$1.csv
	echo "benchmark,param,series,value,unit,better" >"$SAMPLES"
}

# sample BENCHMARK PARAM MODE VALUE UNIT higher|lower
sample() {
	[ -n "$4" ] || { echo "bench: no value for $1 $2 $3" >&2; return 1; }
	local series=veth_tcp
	[ "$3" = fastivc ] && series=fastivc
	echo "$1,$2,$series,$4,$5,$6" >>"$SAMPLES"
}

# serve B|A CMD...: a server in that domain, stopped by bench_agents.
serve() {
	in_ns "$@" >>"$LOGS/servers.log" 2>&1 &
	SERVER_PIDS+=($!)
}

# bench_agents [agent args]: (re)start both agents, e.g. with other fixed
# keys (channels, channel_size), each knowing the other as co-resident.
# BENCH_AGENT_ARGS (make bench-netns BENCH_AGENT_ARGS='--set poll_us=1000')
# go to every part's agents first, for an experiment.
# Servers are stopped first: a listener only answers the handshake option
# if it was opened while its domain's agent was attached, so start them
# again afterwards.
bench_agents() {
	local pid
	for pid in "${SERVER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	SERVER_PIDS=()
	agents_down
	# shellcheck disable=SC2086 # words on purpose
	agents_up ${BENCH_AGENT_ARGS:-} "$@" || { echo "bench: agents did not start" >&2; exit 1; }
}

# Bytes both agents have put into tunnels so far; bounded, since a stuck
# agent does not answer its control socket.
tunneled() {
	local side sum=0 n
	for side in a b; do
		n=$(timeout 10 "$FASTIVC" status -i "$TAG-$side" --run-dir "$RUN" --json |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["tunnel_bytes_tx"])') ||
			n=0
		sum=$((sum + n))
	done
	echo $sum
}

# agents_kill: SIGKILL both agents; SIGTERM does not stop one that is
# blocked in a send to its peer (seen with 1000 flows set up at once).
agents_kill() {
	kill -9 "${AGENT_PIDS[@]}" 2>/dev/null
	agents_down
}

# rounds_modes ROUNDS: "round mode" lines, the order alternating per round
# so neither mode always runs first (caches, the other work on the box).
# Loop over them with `done < <(rounds_modes N)`, not a pipe: an agent
# restarted in the loop must be a child of the main shell, to be reaped.
rounds_modes() {
	local r
	for r in $(seq "$1"); do
		if [ $((r % 2)) = 1 ]; then
			echo "$r tcp" && echo "$r fastivc"
		else
			echo "$r fastivc" && echo "$r tcp"
		fi
	done
}

# check_mode MODE BEFORE: a fastivc measurement must have used the tunnels
# and a tcp one must not; otherwise the comparison is void: a "not ok" line,
# recorded in $O/bench/not-ok (run_netns.sh fails on it), and return 1 so
# that the caller drops the sample. NOT_OK: another file for those lines.
check_mode() {
	local moved=$(($(tunneled) - $2)) why=
	if [ "$1" = fastivc ] && [ $moved = 0 ]; then
		why="a fastivc measurement used no tunnel"
	elif [ "$1" = tcp ] && [ $moved != 0 ]; then
		why="a tcp measurement moved $moved bytes through tunnels"
	fi
	[ -z "$why" ] && return 0
	echo "not ok - bench $(basename "$0" .sh): $why (dropped)" | tee -a "${NOT_OK:-$O/bench/not-ok}"
	return 1
}

# cpu_usec: CPU microseconds used so far by the whole path: both app
# cgroups (clients, servers, and the softirq work run in their context: this
# kernel has no IRQ_TIME_ACCOUNTING, so softirq time is charged to the task
# it interrupts), both agents (utime+stime of all their threads) and the
# ksoftirqd threads (softirq deferred out of any task). Counted per process,
# not from /proc/stat, because other work shares this machine.
cpu_usec() {
	local hz pids
	hz=$(getconf CLK_TCK)
	pids="${AGENT_PIDS[*]} $(pgrep -d ' ' '^ksoftirqd/')"
	{
		cat "$CG_A/cpu.stat" "$CG_B/cpu.stat" | awk '$1 == "usage_usec" {print $2}'
		for p in $pids; do
			# Fields 14 and 15 (utime, stime) after the ")" that ends comm.
			sed 's/.*) //' "/proc/$p/stat" 2>/dev/null |
				awk -v hz="$hz" '{print ($12 + $13) * 1e6 / hz}'
		done
	} | awk '{s += $1} END {printf "%.0f\n", s}'
}

# cpu_per_gb USEC_BEFORE BYTES: CPU seconds of the whole path per GB
# (1e9 bytes) moved since USEC_BEFORE, BYTES being what the receiver got.
cpu_per_gb() {
	awk -v d=$(($(cpu_usec) - $1)) -v b="$2" \
		'BEGIN {if (b > 0) printf "%.4g", d / 1e6 / (b / 1e9)}'
}

# iperf3_run ARGS...: iperf3 -c from A with ARGS; prints "GBIT_S BYTES"
# (what the receiver got), nothing if it failed.
iperf3_run() {
	in_ns A iperf3 -c $IP_B -J "$@" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)["end"]["sum_received"]
print("%.3f %d" % (s["bits_per_second"] / 1e9, s["bytes"]))' 2>/dev/null
}

# serve_nginx ROOT: nginx in B on $IP_B:8080 serving ROOT (nginx_conf);
# stopped with the other servers.
serve_nginx() {
	nginx_conf "$1"
	serve B nginx -p "$RUN/nginx" -e "$LOGS/nginx-error.log" -c "$RUN/nginx/nginx.conf" \
		-g 'daemon off;'
	sleep 0.5
}
