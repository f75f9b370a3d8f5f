#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# dom0's /init: start the Xen toolstack, boot the server and client domUs,
# copy their consoles to ours, then print every guest's results and
# reboot (QEMU runs with -no-reboot, so it exits). On the client's word it
# reads the client's vif counters, destroys the server mid-transfer and
# creates a third domU, "late" (tests/xenlab/scenario-domU.sh).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Seconds the domUs get to finish: about 1.5x what they take on the
# slowest host the lab has run on (TCG's speed varies 5x between hosts).
GUEST_LIMIT=1500
CONS=/var/log/xen/console
LAB_MODE=full
. /etc/xenlab/bench.conf
ROLES="server client late"
[ "$LAB_MODE" = bench ] && ROLES="server client" # the benchmark alone

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /var/run/xen /var/lib/xen /var/lib/xenstored $CONS
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run

phase() { echo "XENLAB-PHASE dom0: $*"; }
fail() { echo "XENLAB-RESULT not ok - $*"; }
pass() { echo "XENLAB-RESULT ok - $*"; }

for m in $(cat /etc/modules); do
	insmod "/lib/modules/$m" || fail "dom0 insmod $m"
done
mount -t xenfs xenfs /proc/xen
xenstored --pid-file=/run/xenstored.pid
xen-init-dom0 >/dev/null
xenconsoled --log=guest --log-dir=$CONS
brctl addbr xenbr0
ip link set xenbr0 up
phase "toolstack up"

create() { # create ROLE N PEER_N: domU 10.0.0.N, its peer 10.0.0.PEER_N
	role=$1 n=$2
	cat >/tmp/$role.cfg <<CFG
name="$role"
type="pv"
kernel="/boot/vmlinuz"
ramdisk="/boot/domU.img"
memory=256
vcpus=1
extra="console=hvc0 quiet role=$role lab_ip=10.0.0.$n lab_peer_ip=10.0.0.$3"
vif=['bridge=xenbr0,mac=00:16:3e:00:00:0$n,script=/etc/vif-hotplug']
on_poweroff="destroy"
on_reboot="destroy"
on_crash="destroy"
CFG
	if xl create -q /tmp/$role.cfg; then
		phase "$role created"
	else
		fail "xl create $role"
	fi
	# Live view of the guest, prefixed; the results are printed again below.
	tail -n +1 -F $CONS/guest-$role.log 2>/dev/null |
		while read -r l; do echo "[$role] $l"; done &
}
create server 1 2
create client 2 1

# dom0's list of co-resident domains (fastivc dom0), before the domUs
# learn their peer: server 10.0.0.1 fd00::1, client 10.0.0.2 fd00::2. Once
# both agents say they are up, each domain gets 10.0.0.10N as well: the
# agents must see it through their xenstore watch.
CORES=/local/domain/0/data/fastivc/coresident
coresident() {
	fastivc dom0 publish "$server" 10.0.0.1 fd00::1 &&
		fastivc dom0 publish "$client" 10.0.0.2 fd00::2
	[ $? = 0 ] && pass "dom0: fastivc dom0 publish, both domUs" ||
		fail "dom0: fastivc dom0 publish, both domUs"
	perms=$(xenstore-ls -p $CORES | grep -vc '(r0)$')
	[ "$perms" = 0 ] && pass "dom0: every node of the list is owned by dom0, read for all (r0)" ||
		fail "dom0: $perms nodes of the list not r0: $(xenstore-ls -p $CORES)"
	! fastivc dom0 publish 4000 10.0.0.0/24 2>/dev/null &&
		! fastivc dom0 publish 4000 10.0.0.400 2>/dev/null &&
		! xenstore-exists $CORES/4000
	[ $? = 0 ] && pass "dom0: fastivc dom0 publish refuses a prefix and a bad address" ||
		fail "dom0: fastivc dom0 publish refuses a prefix and a bad address"
	fastivc dom0 publish 4000 10.0.0.40 && fastivc dom0 remove 4000 &&
		! xenstore-exists $CORES/4000 && fastivc dom0 remove 4000
	[ $? = 0 ] && pass "dom0: fastivc dom0 remove (and again: no error)" ||
		fail "dom0: fastivc dom0 remove (and again: no error)"
}
grow() {
	t=0
	until xenstore-exists /local/domain/$server/data/xenlab-agent-up &&
		xenstore-exists /local/domain/$client/data/xenlab-agent-up; do
		t=$((t + 1))
		[ $t -lt 120 ] || return
		sleep 1
	done
	fastivc dom0 publish "$server" 10.0.0.1 fd00::1 10.0.0.101
	fastivc dom0 publish "$client" 10.0.0.2 fd00::2 10.0.0.102
	phase "coresident list grown"
}

# The client's word, a key under its data/xlab/: wait for it (or give up).
await() {
	t=0
	until xenstore-exists /local/domain/$client/data/xlab/$1; do
		t=$((t + 1))
		[ $t -lt $GUEST_LIMIT ] || return 1
		sleep 1
	done
}
vif_bytes() {
	v=/sys/class/net/vif$client.0/statistics
	echo $(($(cat $v/rx_bytes) + $(cat $v/tx_bytes)))
}
conduct() {
	await vif-start || return
	v0=$(vif_bytes)
	xenstore-write /local/domain/$client/data/xlab-vif-start 1
	await vif-end || return
	d=$(($(vif_bytes) - v0))
	xenstore-write /local/domain/$client/data/xlab-vif-end 1
	[ $d -lt $((16 << 20)) ] &&
		pass "dom0: the client's vif carried $d bytes while 512 MiB and more went through fastivc" ||
		fail "dom0: the client's vif carried $d bytes (>= 16 MiB) while fastivc was to carry the traffic"
	await destroy-peer || return
	xl destroy server && pass "dom0: xl destroy server mid-transfer" ||
		fail "dom0: xl destroy server"
	fastivc dom0 remove "$server" # what the toolstack's hook does
	phase "server destroyed; creating late"
	create late 3 2
	late=$(xl domid late)
	fastivc dom0 publish "$late" 10.0.0.3
	xenstore-write /local/domain/$late/data/xenlab-peer "$client"
	xenstore-write /local/domain/$client/data/xenlab-late "$late"
}

# Each domU learns the other's domid from its own data/ area.
server=$(xl domid server 2>/dev/null)
client=$(xl domid client 2>/dev/null)
if [ -n "$server" ] && [ -n "$client" ]; then
	coresident
	grow &
	conduct &
	xenstore-write /local/domain/$server/data/xenlab-peer "$client"
	xenstore-write /local/domain/$client/data/xenlab-peer "$server"
fi

t0=$(date +%s)
running() {
	for r in $ROLES; do
		xl domid $r >/dev/null 2>&1 && return 0
	done
	return 1
}
while running; do
	if [ $(($(date +%s) - t0)) -ge $GUEST_LIMIT ]; then
		fail "domUs finished within $GUEST_LIMIT s"
		for r in $ROLES; do xl destroy $r 2>/dev/null; done
		break
	fi
	sleep 1
done
phase "domUs gone after $(($(date +%s) - t0)) s"
sleep 1

for role in $ROLES; do
	tr -d '\r' <$CONS/guest-$role.log | grep '^XENLAB-RESULT '
	grep -q '^XENLAB-GUEST-DONE' $CONS/guest-$role.log ||
		fail "$role ran to the end"
done
tr -d '\r' <$CONS/guest-client.log | grep '^XENLAB-SAMPLE ' # bench-domU.sh
echo XENLAB-DONE
reboot -f
