#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make test`: every test tier, with a summary line CI can read. Each tier
# prints "ok - NAME", "not ok - NAME" or "skip - NAME: why" lines.
set -u
cd "$(dirname "$0")/.."
log=build/test.log
mkdir -p build
: >"$log"
start=$(date +%s)

tier() {
	name=$1
	shift
	echo "== $name ($(($(date +%s) - start)) s)"
	before=$(grep -c '^not ok - ' "$log")
	"$@" 2>&1 | tee -a "$log"
	# A tier that fails without saying which test (a build error) still fails.
	if [ "${PIPESTATUS[0]}" != 0 ] && [ "$(grep -c '^not ok - ' "$log")" = "$before" ]; then
		echo "not ok - $name: exited with an error" | tee -a "$log"
	fi
}

tier "build (-Wall -Wextra -Werror)" sh -c 'make -j2 all >/dev/null && echo "ok - build"  || echo "not ok - build"'
tier "clang-format" sh -c 'make check >/dev/null 2>&1 && echo "ok - clang-format clean" || { make check 2>&1 | head -20; echo "not ok - clang-format clean"; }'
tier "ring tests" make --no-print-directory test-ring
tier "ring tests under ASan+UBSan" make --no-print-directory test-ring-san
tier "concurrent ring tests under TSan" make --no-print-directory test-ring-tsan
tier "fuzzing: ring, tunnel messages, link stream, config, CLI (bounded)" make --no-print-directory test-fuzz
tier "BPF programs in two namespaces" make --no-print-directory test-bpf
tier "agents in two namespaces, real clients" make --no-print-directory test-netns
tier "deploy files and one agent (systemd, k8s, metrics)" make --no-print-directory test-deploy
tier "Xen lab: Xen + two PV domUs under QEMU" sh -c 'make --no-print-directory xen-lab || echo "not ok - xen lab"'

passed=$(grep -c '^ok - ' "$log")
failed=$(grep -c '^not ok - ' "$log")
skipped=$(grep -c '^skip - ' "$log")
echo "== done in $(($(date +%s) - start)) s"
grep '^skip - ' "$log" || true
grep '^not ok - ' "$log" || true
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
