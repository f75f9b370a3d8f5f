#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Boot the images of build-images.sh: Xen under QEMU (TCG; KVM guests hang
# on this kind of machine), dom0 from its initramfs, two PV domUs that run
# the scenario. Follows the serial log, prints one line per phase with the
# elapsed seconds, then each guest result as "ok - xen: NAME" or
# "not ok - xen: NAME", then the benchmark's tables. Exits non-zero on any
# failure; prints "skip - xen lab: why" and exits 0 if QEMU cannot run here.
# The benchmark (bench-domU.sh) prints samples; scripts/bench_reduce.py makes
# them rows of the bench contract: $OUT/bench.csv (this run), appended to
# $O/bench/results.csv, tables in $O/bench/xen.md, spread in $OUT/spread.md,
# the goal table of the performance issue in $O/bench/goals.md.
set -u
cd "$(dirname "$0")/../.."
O=${O:-build}
OUT=$O/xenlab
LOG=$OUT/serial.log
LIMIT=${XENLAB_TIMEOUT:-1650} # seconds for the whole boot-to-power-off
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

bench_rows() {
	samples=$OUT/samples.csv
	echo "benchmark,param,series,value,unit,better" >"$samples"
	tr -d '\r' <"$LOG" | sed -n 's/^XENLAB-SAMPLE //p' >>"$samples"
	[ "$(wc -l <"$samples")" -gt 1 ] || return 1
	rm -f "$OUT/bench.csv"
	python3 scripts/bench_reduce.py --env xen --baseline netfront_tcp \
		--baseline libxenvchan --csv "$OUT/bench.csv" \
		--spread "$OUT/spread.md" "$samples" || return 1
	mkdir -p "$O/bench"
	[ -s "$O/bench/results.csv" ] ||
		head -1 "$OUT/bench.csv" >"$O/bench/results.csv"
	tail -n +2 "$OUT/bench.csv" >>"$O/bench/results.csv"
}
bench_rows && bench=yes ||
	echo "not ok - xen: benchmark rows from the guests' samples" >>"$OUT/results"
cat "$OUT/results"
if [ -n "${bench:-}" ]; then
	echo "xenlab: benchmark, medians of the rounds ($OUT/bench.csv):"
	python3 scripts/bench_table.py --csv "$OUT/bench.csv" --out "$O/bench/xen.md"
	echo "xenlab: spread, median [min..max] n=rounds ($OUT/spread.md):"
	cat "$OUT/spread.md"
	python3 scripts/bench_goals.py --env xen --csv "$OUT/bench.csv" \
		--out "$O/bench/goals.md"
fi
echo "xenlab: done in $(elapsed) s"
! grep -q '^not ok' "$OUT/results" && grep -q '^ok' "$OUT/results"
