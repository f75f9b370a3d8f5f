#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Runs the ring and backend tests found in $1. With TSAN_ONLY=1 (a TSan
# build) only the concurrent ones run, with smaller volumes: TSan is ~10x
# slower and the volumes there are about interleavings, not bytes.
set -u
bin=$1
fail=0
GiB=$((1 << 30))
MiB=$((1 << 20))

run() {
	echo "# $*"
	"$@" || fail=1
}

if [ "${TSAN_ONLY:-0}" = 1 ]; then
	# One mapping for both sides: TSan tracks addresses, not pages.
	run "$bin/test_ring_stream" --same-mapping --bytes $((256 * MiB))
	run "$bin/test_ring_stream" --same-mapping --bytes $((64 * MiB)) --channels 2 --receivers 2
	run "$bin/test_ring_stream" --same-mapping --bytes $((64 * MiB)) --gen-first 0xffffff00 --size 65536
	run "$bin/test_ring_close"
	exit $fail
fi

# >= 1 GiB with random message sizes, threads and processes.
run "$bin/test_ring_stream" --bytes $GiB
run "$bin/test_ring_stream" --bytes $GiB --process --channels 8 --size 65536
# gen_num wrap-around, starting near UINT32_MAX.
run "$bin/test_ring_stream" --bytes $((256 * MiB)) --gen-first 0xffffff00
run "$bin/test_ring_stream" --bytes $((256 * MiB)) --process --gen-first 0xfffffffe --channels 2
# K = 2 receivers (and K = 8 once), threads and processes.
run "$bin/test_ring_stream" --bytes $((256 * MiB)) --receivers 2
run "$bin/test_ring_stream" --bytes $((256 * MiB)) --receivers 2 --process --channels 4 --size 16384
run "$bin/test_ring_stream" --bytes $((64 * MiB)) --receivers 8 --process --channels 64
run "$bin/test_ring_close"
run "$bin/test_ring_hostile"
for t in "$bin"/test_*; do
	case $(basename "$t") in
	test_ring_stream | test_ring_close | test_ring_hostile) ;;
	*) run "$t" ;;
	esac
done
exit $fail
