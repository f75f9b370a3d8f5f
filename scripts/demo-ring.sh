#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The ring demonstration: a checked transfer between two processes, then the
# ring against a pipe, a Unix socketpair and memcpy, side by side.
set -eu
O=${1:-build}
echo "== 1 GiB through the ring between two processes (local backend), SHA-256 on both sides"
"$O/tests/test_ring_stream" --process --bytes $((1 << 30)) --channels 8 --size 65536
echo
echo "== ring throughput next to pipe, socketpair and memcpy (quick run)"
QUICK=1 ./tests/bench/run_ring.sh "$O" >/dev/null
cat "$O/bench/results.md"
