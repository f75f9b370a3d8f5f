#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Runs every fuzz target in $1 for $2 seconds each, starting from the corpus
# kept in tests/fuzz/corpus/<target>/ (new inputs go to a scratch copy).
# The targets' own output is closed (-close_fd_mask=3): parsers log every
# refusal; libFuzzer's and the sanitizers' reports still come through.
set -eu
dir=$1
secs=$2
here=$(dirname "$0")
fail=0
for t in "$dir"/fuzz_*; do
	name=$(basename "$t")
	work=$(mktemp -d)
	if [ -d "$here/corpus/$name" ]; then
		cp "$here/corpus/$name"/* "$work"/ 2>/dev/null || true
	fi
	echo "# fuzz $name for ${secs}s"
	if "$t" -max_total_time="$secs" -print_final_stats=1 -max_len=4096 \
		-timeout=10 -rss_limit_mb=1024 -close_fd_mask=3 "$work" >"$work.log" 2>&1; then
		grep -E '^stat::(number_of_executed_units|peak_rss_mb)|cov: ' "$work.log" | tail -3 | sed 's/^/# /'
		echo "ok - fuzz $name"
	else
		tail -40 "$work.log"
		echo "not ok - fuzz $name"
		fail=1
	fi
	rm -rf "$work" "$work.log"
done
exit $fail
