#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make test`: every test tier, with a summary line CI can read. Each tier
# prints "ok - NAME", "not ok - NAME" or "skip - NAME: why" lines.
#
# The tiers that test the thing itself (the BPF programs, the agents with
# real clients, the local attacker) may not skip on a machine that can run
# them: a skip line from one of them, or an exit 77, is a failure unless our
# own probe (root, cgroup v2, bpffs, kernel BTF, sockops and sk_msg programs
# load) says this machine cannot, and then the reason is printed. With
# REQUIRE_TIERS=1 (.ci/run) they may not skip at all. The Xen lab may skip
# only where QEMU cannot start. `tests/run.sh --required` lists the rules.
set -u
cd "$(dirname "$0")/.." || exit 1

required() {
	cat <<'EOF'
required: BPF programs in two namespaces (make test-bpf)
required: agents in two namespaces, real clients (make test-netns)
required: local attacker, unprivileged user (make test-attacker)
skip allowed only where QEMU cannot start: Xen lab (make xen-lab)
EOF
}
if [ "${1:-}" = --required ]; then
	required
	exit 0
fi

log=build/test.log
mkdir -p build
: >"$log"
start=$(date +%s)
CG_ROOT=/sys/fs/cgroup/unified

# Why this machine cannot run the kernel tiers; nothing if it can.
probe_kernel() {
	[ "$(id -u)" = 0 ] || { echo "not root"; return; }
	grep -q " $CG_ROOT cgroup2 " /proc/mounts || { echo "no cgroup v2 at $CG_ROOT"; return; }
	[ -r /sys/kernel/btf/vmlinux ] || { echo "no kernel BTF"; return; }
	grep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf 2>/dev/null ||
		{ echo "no bpffs at /sys/fs/bpf and mounting it failed"; return; }
	command -v ip >/dev/null || { echo "no ip(8)"; return; }
	# bpftool loads a small program of each type. Without bpftool we
	# cannot tell, and make test installs it: not a reason to skip.
	command -v bpftool >/dev/null || return
	bpftool -j feature probe kernel 2>/dev/null | python3 -c '
import json, sys
t = json.load(sys.stdin)["program_types"]
for p in ("sock_ops", "sk_msg"):
    if not t.get("have_%s_prog_type" % p):
        print("the kernel does not load %s programs" % p)
        break' 2>/dev/null
}
probe_attacker() {
	local why
	why=$(probe_kernel)
	[ -n "$why" ] && { echo "$why"; return; }
	command -v setpriv >/dev/null || echo "no setpriv(1) to drop to an unprivileged user"
}
probe_qemu() {
	command -v qemu-system-x86_64 >/dev/null || { echo "no qemu-system-x86_64"; return; }
	echo quit | timeout 30 qemu-system-x86_64 -M none -accel tcg -display none \
		-nodefaults -no-user-config -monitor stdio >/dev/null 2>&1 ||
		echo "qemu-system-x86_64 does not start (TCG)"
}

# tier NAME PROBE CMD...: PROBE is "-" for a tier whose skips are its own
# business, else a probe_* function; a tier with a probe must run.
tier() {
	local name=$1 probe=$2 out rc skips why
	shift 2
	echo "== $name ($(($(date +%s) - start)) s)"
	out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	cat "$out" >>"$log"
	skips=$(grep -c '^skip - ' "$out")
	# Exit 77 says "skipped" (make reports a recipe's as "Error 77").
	if [ "$rc" = 77 ] || grep -q 'Error 77$' "$out"; then
		skips=$((skips + 1))
		rc=0
	fi
	# A tier that fails without saying which test (a build error) still fails.
	if [ "$rc" != 0 ] && ! grep -q '^not ok - ' "$out"; then
		echo "not ok - $name: exited with an error ($rc)" | tee -a "$log"
	fi
	if [ "$probe" != - ]; then
		why=$($probe)
		if [ "$skips" -gt 0 ] || ! grep -q '^ok - ' "$out"; then
			# CI requires the kernel tiers; the Xen lab needs QEMU only.
			if [ -n "$why" ] && { [ "${REQUIRE_TIERS:-0}" != 1 ] || [ "$probe" = probe_qemu ]; }; then
				echo "# $name: this machine cannot run it: $why"
			elif [ -n "$why" ]; then
				echo "not ok - $name: required (REQUIRE_TIERS=1) but this machine cannot run it: $why" | tee -a "$log"
			elif [ "$skips" -gt 0 ]; then
				echo "not ok - $name: $skips skip(s) on a machine that can run it" | tee -a "$log"
			else
				echo "not ok - $name: no test passed" | tee -a "$log"
			fi
		fi
	fi
	rm -f "$out"
}

tier "build (-Wall -Wextra -Werror)" - sh -c 'make -j2 all >/dev/null && echo "ok - build"  || echo "not ok - build"'
tier "clang-format" - sh -c 'make check >/dev/null 2>&1 && echo "ok - clang-format clean" || { make check 2>&1 | head -20; echo "not ok - clang-format clean"; }'
tier "ring tests" - make --no-print-directory test-ring
tier "ring tests under ASan+UBSan" - make --no-print-directory test-ring-san
tier "concurrent ring tests under TSan" - make --no-print-directory test-ring-tsan
tier "fuzzing: ring, tunnel messages, link stream, config, CLI (bounded)" - make --no-print-directory test-fuzz
tier "BPF programs in two namespaces" probe_kernel make --no-print-directory test-bpf
tier "agents in two namespaces, real clients" probe_kernel make --no-print-directory test-netns
tier "local attacker (unprivileged user)" probe_attacker make --no-print-directory test-attacker
tier "deploy files and one agent (systemd, k8s, metrics)" - make --no-print-directory test-deploy
tier "Xen lab: Xen + two PV domUs under QEMU" probe_qemu sh -c 'make --no-print-directory xen-lab || echo "not ok - xen lab"'

passed=$(grep -c '^ok - ' "$log")
failed=$(grep -c '^not ok - ' "$log")
skipped=$(grep -c '^skip - ' "$log")
echo "== done in $(($(date +%s) - start)) s"
grep '^skip - ' "$log" || true
grep '^not ok - ' "$log" || true
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
