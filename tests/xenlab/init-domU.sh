#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A domU's /init. The kernel command line says role=server|client|late,
# lab_ip= and lab_peer_ip= (not ip=: the kernel may take that one); dom0
# writes the peer's domid to our data/xenlab-peer.
#   server: iperf3, rr and blast servers, then the xen ring's receiving side
#   client: netfront ping, iperf3, rr latency, blast, then the xen ring's
#           sender (tests/xenlab/xen_ring_xfer.c)
#   both:   first dom0's co-resident list (fastivc dom0 list) and a
#           `fastivc agent` (backend = xen, coresident = xenstore) filling
#           its peers map; after the measurements, scenario-domU.sh
#   late:   created by dom0 after it destroyed the server: scenario-domU.sh
# Results are "XENLAB-RESULT ok - NAME" / "XENLAB-RESULT not ok - NAME"
# ("skip - NAME: why" where this kernel cannot run the agent).
export PATH=/opt/fastivc:/opt/fastivc/tools:/opt/fastivc/tests:/usr/sbin:/usr/bin:/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
for a in $(cat /proc/cmdline); do
	case $a in
	role=* | lab_ip=* | lab_peer_ip=*) eval "${a%%=*}=${a#*=}" ;;
	esac
done

STREAM=$((64 << 20)) # bytes of one stream, over TCP and over the xen ring

phase() { echo "XENLAB-PHASE $role: $*"; }
result() { # result RC NAME
	rc=$1
	shift
	if [ "$rc" = 0 ]; then
		echo "XENLAB-RESULT ok - $*"
	else
		echo "XENLAB-RESULT not ok - $*"
	fi
	return $rc
}
# Centiseconds since boot (busybox date has no %N).
uptime_cs() { awk '{printf "%d", $1 * 100}' /proc/uptime; }
# MB/s for $1 bytes in $2 centiseconds.
mbps() { awk -v b="$1" -v cs="$2" 'BEGIN {printf "%.1f", cs ? b / cs / 1e4 : 0}'; }
# Run "$@" once a second until it succeeds, for at most $1 tries.
retry() {
	n=$1
	shift
	until "$@"; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 1
	done
}
# Run a program whose output has "ok - NAME" lines: mark them as results,
# and report a non-zero exit too (a crash prints no "not ok" of its own).
results_of() {
	{
		"$@" 2>&1
		echo "exit=$?"
	} | while read -r l; do
		case $l in
		"ok - "* | "not ok - "*) echo "XENLAB-RESULT $l" ;;
		exit=0) ;;
		exit=*) echo "XENLAB-RESULT not ok - $1 $2 exited ${l#exit=}" ;;
		*) echo "$l" ;;
		esac
	done
}

for m in $(cat /etc/modules); do
	insmod "/lib/modules/$m" || result 1 "$role insmod $m"
done
# gntalloc shares 1024 pages in all by default: 200 tunnels need more.
echo 16384 >/sys/module/xen_gntalloc/parameters/limit
. /etc/scenario.sh
mkdir -p /sys/fs/cgroup /sys/fs/bpf
mount -t cgroup2 none /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
# As systemd does on a real domU: the agent's splice() tracepoint attaches
# through tracefs (bpf/splice_watch.bpf.c).
mount -t tracefs tracefs /sys/kernel/tracing
# The apps the agent steers; the lab's own TCP tests stay outside.
mkdir -p /sys/fs/cgroup/lab-apps
agent_start() { # above the apps: under TCG 200 busy threads starve it
	fastivc agent --domid "$self" -g /sys/fs/cgroup/lab-apps \
		--set ifaces=eth0 --set coresident=xenstore --set backend=xen \
		--set channel_size=32768 --set setup_timeout_ms=10000 \
		--set drain_timeout_ms=2000 $LAB_AGENT_ARGS >>/tmp/agent.log 2>&1 &
	agent=$!
	renice -n -10 -p $agent >/dev/null
}
agent_said_flows() { # why flows failed, left their tunnel, or never had one
	grep -E "flow slot|refused|ring|steered on its side" /tmp/agent.log |
		tail -8 | sed "s/^/xenlab: $role agent: /"
}
agent_log() { # what the agent said about links and failures, its CPU
	grep -E "link|err:|warn:|ready" /tmp/agent.log | tail -40 |
		sed "s/^/xenlab: $role agent: /"
	awk -v u="$(awk '{print $1}' /proc/uptime)" '{printf "xenlab: '"$role"' agent: %.1f s of CPU in %.0f s\n", ($14 + $15) / 100, u}' \
		/proc/$agent/stat 2>/dev/null
}
ip link set lo up
retry 30 ip addr add "$lab_ip/24" dev eth0 # netfront probes asynchronously
ip link set eth0 up

retry 60 xenstore-exists data/xenlab-peer
peer=$(xenstore-read data/xenlab-peer)
result $? "$role learns its peer's domid ($peer)"
self=$(xenstore-read domid)
phase "up, domid $self, peer $peer"
if [ "$role" = late ]; then
	late_scenario
	agent_log
	echo XENLAB-GUEST-DONE
	poweroff -f
fi

# --- co-residency from dom0's list (fastivc dom0, coresident = xenstore) ----
# dom0 published 10.0.0.N and fd00::N for each domU; once both agents are
# up it adds 10.0.0.10N. Our own data/ area holds a list of our making
# (10.9.9.9 for the peer) that nothing may read as dom0's.
CORES=/local/domain/0/data/fastivc/coresident
n_peer=${lab_peer_ip##*.} n_self=${lab_ip##*.}
# has "LIST COMMAND" ADDR DOMID: a line "ADDR[/len] DOMID" in its output.
has() {
	$1 | awk -v a="$2" -v d="$3" '{sub("/.*", "", $1)} $1 == a && $2 == d {f = 1}
		END {exit !f}'
}
xenstore-write data/fastivc/coresident/$peer 10.9.9.9
! xenstore-write $CORES/$self 10.6.6.6 2>/dev/null &&
	! xenstore-rm $CORES/$peer 2>/dev/null
result $? "$role cannot write or remove nodes of dom0's list"
retry 30 has "fastivc dom0 list" "$lab_peer_ip" "$peer" &&
	has "fastivc dom0 list" "fd00::$n_peer" "$peer"
result $? "$role reads dom0's list: $lab_peer_ip and fd00::$n_peer are domain $peer"
! fastivc dom0 list | grep -q 10.9.9.9
result $? "$role ignores the list in its own xenstore area"

phase "fastivc agent, backend = xen, coresident = xenstore"
agent_start
agent_has() { # ... or the agent is gone: no use waiting
	kill -0 $agent 2>/dev/null || return 0
	has "fastivc peer list" "$1" "$2"
}
agent_checks() {
	retry 60 agent_has "$lab_peer_ip" "$peer"
	has "fastivc peer list" "$lab_peer_ip" "$peer" &&
		has "fastivc peer list" "fd00::$n_peer" "$peer"
	result $? "$role agent fills its peers map from dom0's list ($lab_peer_ip, fd00::$n_peer -> $peer)"
	fastivc peer list >/tmp/peers &&
		! grep -q -e "^$lab_ip/" -e 10.9.9.9 -e "fd00::$n_self/" /tmp/peers
	result $? "$role peers map: nothing for its own domain, nothing from its own area"
	xenstore-write data/xenlab-agent-up 1
	retry 120 agent_has "10.0.0.10$n_peer" "$peer"
	has "fastivc peer list" "10.0.0.10$n_peer" "$peer"
	result $? "$role agent follows dom0's list through its watch (10.0.0.10$n_peer -> $peer)"
	kill -0 $agent 2>/dev/null
	result $? "$role agent still running"
}
started() { grep -q "agent ready" /tmp/agent.log || ! kill -0 $agent 2>/dev/null; }
retry 60 started
if grep -q "agent ready" /tmp/agent.log; then
	agent_checks
else
	# The checks above read dom0's list through the same code.
	why=$(grep -m1 "err:" /tmp/agent.log)
	echo "XENLAB-RESULT skip - $role fastivc agent did not start: ${why#*err: }"
	# The verifier's own words, for the serial log.
	grep "libbpf:" /tmp/agent.log | tail -40 | sed "s/^/xenlab: $role: /"
	xenstore-write data/xenlab-agent-up 1
fi
retry 120 has "fastivc dom0 list" "10.0.0.10$n_peer" "$peer"
result $? "$role reads dom0's list again after it changed (10.0.0.10$n_peer -> $peer)"
grep coresident /tmp/agent.log

if [ "$LAB_MODE" = bench ]; then
	# The benchmark alone (scenario-domU.sh): no netfront and ring checks.
	retry 60 ping -c 1 -W 1 "$lab_peer_ip" >/dev/null 2>&1
elif [ "$role" = server ]; then
	iperf3 -s -D >/dev/null
	rr server "$lab_ip" 5300 >/dev/null &
	# Its digests go to the client, which compares them with its own.
	(
		blast server "$lab_ip" 5400 --bytes $STREAM >/tmp/netfront.out 2>&1
		say netfront "$? $(digests /tmp/netfront.out 1)"
	) &
	say servers-up 1
	results_of xen_ring_xfer server "$peer"
else
	retry 60 ping -c 1 -W 1 "$lab_peer_ip" >/dev/null 2>&1
	result $? "netfront ping $lab_peer_ip"
	hear "$peer" servers-up 120 >/dev/null
	phase "iperf3"
	mbit=$(iperf3 -c "$lab_peer_ip" -t 5 -f m |
		awk '/receiver/ {print $7}')
	[ -n "$mbit" ]
	result $? "iperf3 over netfront, 5 s ($mbit Mbit/s)"
	phase "rr"
	lat=$(rr latency "$lab_peer_ip" 5300 64 1000)
	result $? "rr 64 B over netfront x 1000 ($lat us)"
	phase "blast"
	t0=$(uptime_cs)
	blast client "$lab_peer_ip" 5400 --bytes $STREAM >/tmp/netfront.out 2>&1
	rc=$? cs=$(($(uptime_cs) - t0))
	blast_check netfront $rc "$peer"
	result $? "TCP over netfront, 64 MiB each way, SHA-256 equal at both ends ($(
		mbps $((2 * STREAM)) $cs) MB/s)"
	phase "xen ring"
	results_of xen_ring_xfer client "$peer" $((STREAM >> 20))
fi
if kill -0 $agent 2>/dev/null; then
	${role}_scenario
else
	echo "XENLAB-RESULT not ok - $role fastivc agent is running for the scenario"
fi
agent_log
echo XENLAB-GUEST-DONE
poweroff -f
