#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A domU's /init. The kernel command line says role=server|client,
# lab_ip= and lab_peer_ip= (not ip=: the kernel may take that one); dom0
# writes the peer's domid to our data/xenlab-peer.
#   server: iperf3, rr and blast servers, then the xen ring's receiving side
#   client: netfront ping, iperf3, rr latency, blast, then the xen ring's
#           sender (tests/xenlab/xen_ring_xfer.c)
# Results are "XENLAB-RESULT ok - NAME" / "XENLAB-RESULT not ok - NAME".
export PATH=/opt/fastivc/tools:/opt/fastivc/tests:/usr/sbin:/usr/bin:/sbin:/bin

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
ip link set lo up
retry 30 ip addr add "$lab_ip/24" dev eth0 # netfront probes asynchronously
ip link set eth0 up

retry 60 xenstore-exists data/xenlab-peer
peer=$(xenstore-read data/xenlab-peer)
result $? "$role learns its peer's domid ($peer)"
phase "up, domid $(xenstore-read domid), peer $peer"

if [ "$role" = server ]; then
	iperf3 -s -D >/dev/null
	rr server "$lab_ip" 5300 >/dev/null &
	blast server "$lab_ip" 5400 --bytes $STREAM >/dev/null &
	results_of xen_ring_xfer server "$peer"
else
	retry 60 ping -c 1 -W 1 "$lab_peer_ip" >/dev/null 2>&1
	result $? "netfront ping $lab_peer_ip"
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
	blast client "$lab_peer_ip" 5400 --bytes $STREAM >/dev/null
	result $? "TCP over netfront, 64 MiB each way, SHA-256 at both ends ($(
		mbps $((2 * STREAM)) $(($(uptime_cs) - t0))) MB/s)"
	phase "xen ring"
	results_of xen_ring_xfer client "$peer" $((STREAM >> 20))
fi
echo XENLAB-GUEST-DONE
poweroff -f
