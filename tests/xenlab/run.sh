#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Boot the images of build-images.sh: Xen under QEMU (TCG; KVM guests hang
# on this kind of machine), dom0 from its initramfs, two PV domUs that run
# the scenario. Follows the serial log, prints one line per phase with the
# elapsed seconds, then each guest result as "ok - xen: NAME" or
# "not ok - xen: NAME". Exits non-zero on any failure; prints
# "skip - xen lab: why" and exits 0 if QEMU cannot run here.
set -u
cd "$(dirname "$0")/../.."
O=${O:-build}
OUT=$O/xenlab
LOG=$OUT/serial.log
LIMIT=${XENLAB_TIMEOUT:-900} # seconds for the whole boot-to-power-off
start=$(date +%s)

elapsed() { echo $(($(date +%s) - start)); }
skip() {
	echo "skip - xen lab: $*"
	exit 0
}

command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64"
for f in xen vmlinuz dom0.img; do
	[ -f "$OUT/$f" ] || skip "no $OUT/$f (run tests/xenlab/build-images.sh)"
done

: >"$LOG"
qemu-system-x86_64 -accel tcg -cpu qemu64 -smp 2 -m 2048 \
	-display none -monitor none -nic none -no-reboot \
	-serial "file:$LOG" -kernel "$OUT/xen" \
	-append "console=com1 com1=115200 dom0_mem=1024M,max:1024M" \
	-initrd "$OUT/vmlinuz console=hvc0 earlyprintk=xen panic=-1 quiet,$OUT/dom0.img" \
	>"$OUT/qemu.log" 2>&1 &
qemu=$!
echo "xenlab: [0 s] QEMU started (pid $qemu), serial log in $LOG"

# Follow the log until QEMU exits or the time is up.
seen=0
while kill -0 $qemu 2>/dev/null; do
	if [ "$(elapsed)" -ge "$LIMIT" ]; then
		echo "xenlab: [$(elapsed) s] timeout after $LIMIT s, killing QEMU"
		kill $qemu
		break
	fi
	sleep 1
	n=$(grep -c 'XENLAB-PHASE' "$LOG")
	if [ "$n" -gt "$seen" ]; then
		grep -a -o 'XENLAB-PHASE .*' "$LOG" | tr -d '\r' |
			sed -n "$((seen + 1)),${n}p" |
			sed "s/^XENLAB-PHASE /xenlab: [$(elapsed) s] /"
		seen=$n
	fi
done
wait $qemu
rc=$?
echo "xenlab: [$(elapsed) s] QEMU exited ($rc)"

# QEMU that could not start at all: nothing from Xen on the serial line.
if ! grep -q 'Xen' "$LOG"; then
	[ "$rc" != 0 ] && skip "QEMU failed: $(head -1 "$OUT/qemu.log")"
fi

tr -d '\r' <"$LOG" | sed -n 's/^XENLAB-RESULT //p' | sed 's/ - / - xen: /' \
	>"$OUT/results"
grep -q '^XENLAB-DONE' "$LOG" ||
	echo "not ok - xen: scenario ran to the end (see $LOG)" >>"$OUT/results"
cat "$OUT/results"
echo "xenlab: done in $(elapsed) s"
! grep -q '^not ok' "$OUT/results" && grep -q '^ok' "$OUT/results"
