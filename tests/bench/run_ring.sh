#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Ring throughput against pipe, socketpair and memcpy; rows are appended to
# <build-dir>/bench/results.csv, the table goes to <build-dir>/bench/results.md.
#   usage: run_ring.sh <build-dir> [bench_ring options]
#   QUICK=1: fewer points, one round (bench_ring --quick).
set -eu

O=${1:?usage: run_ring.sh <build-dir> [bench_ring options]}
shift
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$O/bench/bench_ring
csv=$O/bench/results.csv

if [ ! -x "$bin" ]; then
	echo "run_ring: $bin is missing; build it with make first" >&2
	exit 1
fi
mkdir -p "$O/bench"
if [ "${QUICK:-0}" = 1 ]; then
	set -- --quick "$@"
fi
"$bin" --csv "$csv" "$@"
python3 "$top/scripts/bench_table.py" --csv "$csv" \
	--benchmark ring_throughput --out "$O/bench/results.md"
