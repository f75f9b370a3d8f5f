# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=sh
# The Xen lab's side-by-side benchmark (busybox sh), sourced by both domUs'
# /init at the end of the scenario: it uses role, lab_ip, lab_peer_ip and
# the phase, result and retry helpers of init-domU.sh. Three paths between
# the domUs, measured in the same boot over BENCH_ROUNDS rounds
# (/etc/xenlab/bench.conf), their order reversed every other round:
#   netfront_tcp  plain TCP over netfront, clients and servers outside the
#                 agent's cgroup
#   fastivc       the same programs inside /sys/fs/cgroup/lab-apps, the
#                 cgroup the agent steers
#   libxenvchan   tests/xenlab/vchan_bench: libxenvchan, 128 KiB rings (the
#                 agent's 4 channels of 32 KiB: the same ring memory)
# Each: one-way throughput for BENCH_SECS (iperf3; vchan_bench stream, as
# iperf3 needs sockets), 64-byte request/response p50/p99 over 1000 round
# trips or 2 x BENCH_SECS, whichever ends first (rr latency; vchan_bench rr)
# and, over TCP, the connection rate (rr connrate: connect, 1-byte exchange,
# close) for BENCH_SECS. Bulk again with 16 KiB and 1 MiB sends (iperf3 -l;
# vchan_bench stream SEND): send_throughput, param the send size.
# Next to each throughput, its CPU cost: CPU seconds per GB moved of the
# client domU (busy time in its /proc/stat: user, nice, system, irq,
# softirq; steal and idle out), the sending side only, as the server's
# domU cannot tell when a measurement starts; all of a domU's kernel and
# processes are the lab's path, so whole-domU time is the path's.
# The client prints every value as "XENLAB-SAMPLE benchmark,param,series,
# value,unit,better" (tests/xenlab/run.sh reduces them) and the figures of
# each path and round as a "# " line: a figure is not a test. A fastivc
# measurement whose bytes did not go through the tunnels (the client
# agent's tunnel_bytes_tx and tunnel_bytes_rx, before and after: each must
# grow, as every measurement sends both ways) is series fastivc_untunneled,
# never fastivc, and its round is "not ok"; so is a measurement that gave
# no value.
# The fastivc path needs the agent that the scenario leaves running in both
# domUs, steering lab-apps (the listeners here open after it attached). None
# is started here: an agent that cannot reach its peer's agent resets the
# steered connections that sent bytes before the tunnel, which measures
# nothing. Without an agent, the fastivc path is plain TCP in the cgroup.

BENCH_ROUNDS=3 BENCH_SECS=3
[ -f /etc/xenlab/bench.conf ] && . /etc/xenlab/bench.conf
RR_SECS=$((2 * BENCH_SECS))
BENCH_LIMIT=60 # seconds for one measurement before it is killed
APPS=/sys/fs/cgroup/lab-apps
# sh -c "$IN_CG" CGROUP CMD...: CMD in CGROUP.
IN_CG='echo $$ >"$0/cgroup.procs" && exec "$@"'
self=$(xenstore-read domid)
peer=$(xenstore-read data/xenlab-peer)
FLAGS=/local/domain/$peer/data/xenlab-bench # the peer's flags, for us
VCHAN=data/xenlab-bench/vchan               # under the server's area

bench_cg() { # PATH: the cgroup PATH's programs run in
	if [ "$1" = fastivc ]; then echo $APPS; else echo /sys/fs/cgroup; fi
}
bench_flag() { # NAME: data/xenlab-bench/NAME, for the peer to read
	xenstore-write "data/xenlab-bench/$1" 1 &&
		xenstore-chmod "data/xenlab-bench/$1" "n$self" "r$peer"
}
bench_tunneled() { # "TX RX" tunnel bytes of this domU's agent, 0 without one
	set -- $(fastivc status --json 2>/dev/null | sed -n \
		's/.*"tunnel_bytes_tx":\([0-9]*\),"tunnel_bytes_rx":\([0-9]*\).*/\1 \2/p')
	echo "${1:-0} ${2:-0}"
}

bench_server() {
	pids=""
	for p in netfront_tcp fastivc; do
		n=1
		[ $p = fastivc ] && n=2
		sh -c "$IN_CG" "$(bench_cg $p)" iperf3 -s -p 521$n >/dev/null 2>&1 &
		pids="$pids $!"
		sh -c "$IN_CG" "$(bench_cg $p)" rr server "$lab_ip" 531$n >/dev/null &
		pids="$pids $!"
	done
	vchan_bench server "$peer" "/local/domain/$self/$VCHAN" &
	pids="$pids $!"
	sleep 1
	bench_flag ready
	retry $((BENCH_ROUNDS * 120)) xenstore-exists $FLAGS/done
	result $? "bench: server ran until the client was done"
	kill $pids
}

# bench_measure PATH CMD...: $out is CMD's output, run on PATH under a time
# limit; $moved "TX RX": the tunnel bytes our agent sent and delivered.
bench_measure() {
	path=$1 cg=$(bench_cg "$1")
	shift
	before=$(bench_tunneled)
	out=$(timeout -s KILL $BENCH_LIMIT sh -c "$IN_CG" "$cg" "$@" \
		2>/tmp/bench.err) || {
		echo "bench: $1 $2 failed: $(tail -1 /tmp/bench.err)"
		[ "$path" = fastivc ] && agent_said_flows
	}
	set -- $before $(bench_tunneled)
	moved="$(($3 - $1)) $(($4 - $2))"
}

busy_ticks() { # this domU's busy clock ticks so far
	awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8}' /proc/stat
}

# What this domU spent so far, for where a run's time went: ticks of user,
# system and softirq time, context switches, interrupts, the agent's time
# on a CPU (ns, its threads' schedstat: exact, where ticks are samples) and
# times it ran, its tunnels' notifications sent and taken, and its waits
# for a free channel (ring_full) and for data (ring_waits).
cost_snapshot() {
	json=$(fastivc status --json 2>/dev/null)
	agent=$(echo "$json" | sed -n 's/.*"pid":\([0-9]*\),.*/\1/p')
	awk '$1 == "cpu" {printf "%s %s %s ", $2 + $3, $4 + $7, $8}
		$1 == "ctxt" {printf "%s ", $2} $1 == "intr" {printf "%s ", $2}' /proc/stat
	cat /proc/"${agent:-0}"/task/*/schedstat 2>/dev/null |
		awk '{t += $1; n += $3} END {printf "%.0f %.0f ", t, n}'
	for c in kicks_sent kicks_taken ring_full ring_waits; do
		n=$(echo "$json" | sed -n "s/.*\"$c\":\([0-9]*\).*/\1/p")
		printf "%s " "${n:-0}"
	done
	echo
}

# cost_line WHAT UNIT COUNT BEFORE AFTER: one line of what COUNT UNITs
# (MB moved, connections) cost each (clock ticks are 1/CLK_TCK s).
cost_line() {
	echo "$4 $5" | awk -v what="$1" -v unit="$2" -v n="$3" \
		-v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" \
		'n > 0 {ms = 1000 / hz / n
		printf "XENLAB-RESULT # bench cost %s, per %s: %.1f context switches, %.1f interrupts, CPU ms user %.2f system %.2f softirq %.2f; agent %.2f ms in %.1f runs, kicks sent %.1f taken %.1f, ring full %.1f, waits for data %.1f\n", what, unit,
		($15 - $4) / n, ($16 - $5) / n, ($12 - $1) * ms, ($13 - $2) * ms, ($14 - $3) * ms, ($17 - $6) / 1e6 / n, ($18 - $7) / n,
		($19 - $8) / n, ($20 - $9) / n, ($21 - $10) / n, ($22 - $11) / n}'
}

# What the agent costs this domU while no flow runs: its CPU over 10 s.
agent_idle_cost() {
	c0=$(cost_snapshot)
	sleep 10
	echo "$c0 $(cost_snapshot)" | awk '{printf "XENLAB-RESULT # bench: the idle agent ran %.2f ms per second, %.1f times\n",
		($17 - $6) / 1e7, ($18 - $7) / 10}'
}

# bench_bulk BENCHMARK PARAM PATH CMD...: a throughput measurement and its
# CPU cost; the command prints Mbit/s as its last "receiver"/"mbit" figure.
bench_bulk() {
	bb=$1 bp=$2 bpath=$3
	shift 3
	t0=$(busy_ticks) c0=$(cost_snapshot)
	bench_measure "$bpath" "$@"
	mbit=$(echo "$out" | awk '/receiver/ {print $7} / mbit / {print $6}')
	cost_line "$bb $bp $bpath" MB "$(awk -v m="${mbit:-0}" -v s=$BENCH_SECS \
		'BEGIN {print m * s / 8}')" "$c0" "$(cost_snapshot)"
	cost=$(awk -v t=$(($(busy_ticks) - t0)) -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" \
		-v m="$mbit" -v s=$BENCH_SECS 'BEGIN {if (m > 0) printf "%.4g", t / hz / (m * s / 8000)}')
	bench_sample "$bb" "$bp" "$bpath" "$mbit" Mbit/s higher
	cpu_b=iperf3_cpu
	[ "$bb" = send_throughput ] && cpu_b=send_cpu
	bench_sample $cpu_b "$bp" "$bpath" "$cost" s/GB lower
}

# bench_sample BENCHMARK PARAM PATH VALUE UNIT higher|lower
bench_sample() {
	s=$3
	if [ -z "$4" ]; then
		ok=1 sum="$sum $1 failed;"
		return
	fi
	case "$s $moved" in
	"fastivc 0 "* | "fastivc "*" 0")
		s=fastivc_untunneled untunneled=$((untunneled + 1)) ok=1
		sum="$sum $1 $4 $5 NOT through the tunnels (sent, delivered: $moved);"
		echo "XENLAB-SAMPLE $1,$2,$s,$4,$5,$6"
		return
		;;
	esac
	echo "XENLAB-SAMPLE $1,$2,$s,$4,$5,$6"
	sum="$sum $1 $4 $5;"
}

bench_tcp() { # PATH PORT_DIGIT
	bench_bulk iperf3_throughput P=1 $1 iperf3 -c "$lab_peer_ip" -p 521$2 \
		-t $BENCH_SECS -f m
	for len in 16384 1048576; do
		bench_bulk send_throughput $len $1 iperf3 -c "$lab_peer_ip" -p 521$2 \
			-t $BENCH_SECS -f m -l $len
	done
	bench_measure $1 rr latency "$lab_peer_ip" 531$2 64 1000 $RR_SECS
	bench_sample rr_latency_p50 64 $1 "$(echo "$out" | awk '{print $2}')" us lower
	bench_sample rr_latency_p99 64 $1 "$(echo "$out" | awk '{print $4}')" us lower
	c0=$(cost_snapshot)
	bench_measure $1 rr connrate "$lab_peer_ip" 531$2 $BENCH_SECS
	cost_line "connection_rate $1" connection \
		"$(echo "$out" | awk -v s=$BENCH_SECS '{print $4 * s}')" "$c0" "$(cost_snapshot)"
	bench_sample connection_rate 1 $1 "$(echo "$out" | awk '{print $4}')" conn/s higher
}

# Sessions are numbered in the order the server serves them.
bench_vchan() {
	at=/local/domain/$peer/$VCHAN
	bench_bulk iperf3_throughput P=1 libxenvchan vchan_bench stream "$peer" \
		$at/$session $BENCH_SECS
	bench_measure libxenvchan vchan_bench rr "$peer" $at/$((session + 1)) \
		64 1000 $RR_SECS
	bench_sample rr_latency_p50 64 libxenvchan "$(echo "$out" | awk '{print $2}')" us lower
	bench_sample rr_latency_p99 64 libxenvchan "$(echo "$out" | awk '{print $4}')" us lower
	session=$((session + 2))
	for len in 16384 1048576; do
		bench_bulk send_throughput $len libxenvchan vchan_bench stream "$peer" \
			$at/$session $BENCH_SECS $len
		session=$((session + 1))
	done
}

bench_client() {
	session=0 untunneled=0
	retry 120 xenstore-exists $FLAGS/ready
	result $? "bench: the server is ready"
	agent_idle_cost
	r=1
	while [ $r -le "$BENCH_ROUNDS" ]; do
		order="netfront_tcp fastivc libxenvchan"
		[ $((r % 2)) = 0 ] && order="libxenvchan fastivc netfront_tcp"
		for p in $order; do
			phase "bench round $r/$BENCH_ROUNDS: $p"
			ok=0 sum=""
			case $p in
			netfront_tcp) bench_tcp $p 1 ;;
			fastivc)
				bench_tcp $p 2
				# What polling did (poll_us), so far in this boot.
				sum="$sum agent $(fastivc status 2>/dev/null | sed -n 's/^polling: //p');"
				;;
			libxenvchan) bench_vchan ;;
			esac
			if [ $ok = 0 ]; then
				echo "XENLAB-RESULT # bench round $r $p:$sum"
			else
				result 1 "bench round $r $p:$sum"
			fi
		done
		r=$((r + 1))
	done
	[ $untunneled = 0 ]
	result $? "bench: every fastivc value went through the agent's tunnels" \
		"($untunneled fastivc_untunneled values)" ||
		fastivc status 2>&1 | head -20 | sed 's/^/bench: agent: /'
	bench_flag done
}

phase "bench: $BENCH_ROUNDS rounds of netfront_tcp, fastivc, libxenvchan"
fastivc status >/dev/null 2>&1 ||
	echo "bench: WARNING: no fastivc agent runs here: the fastivc path is" \
		"plain TCP in $APPS"
if [ "$role" = server ]; then bench_server; else bench_client; fi
