#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Helpers for tests/deploy: TAP-like lines, and one agent in a private
# network namespace + cgroup v2 child, set up the way tests/netns/lib.sh
# does. Instances are named dep<pid>-* so that they never collide with
# the netns tests running beside them; only their own pins are removed.

O=${O:-build}
FASTIVC=${FASTIVC:-$PWD/$O/fastivc}
TAG=dep$$
NS=$TAG-a
CG_ROOT=/sys/fs/cgroup/unified
CG=$CG_ROOT/$TAG-a
RUN=/run/$TAG
INST=$TAG-a
LOGS=${LOGS:-$PWD/$O/test-logs/$TAG}
AGENT_PID=
FAILED=0

say() { echo "# $*"; }
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; FAILED=1; }
skip() { echo "skip - $*"; }

check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else fail "$name"; fi
}

# expect NAME PATTERN CMD...: CMD fails, and its output has a line matching
# PATTERN (an extended regular expression).
expect() {
	local name=$1 pat=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	say "$name: $(echo "$out" | head -1)"
	check "$name" [ $rc != 0 -a -n "$(echo "$out" | grep -E -m1 -- "$pat")" ]
}

agent_cleanup() {
	if [ -n "$AGENT_PID" ]; then
		kill "$AGENT_PID" 2>/dev/null
		wait "$AGENT_PID" 2>/dev/null
	fi
	ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rmdir "$CG" 2>/dev/null
	rm -rf "/sys/fs/bpf/fastivc/$INST" "$RUN"
}

# Why an agent cannot run here, or nothing.
agent_unavailable() {
	[ "$(id -u)" = 0 ] || { echo "not root"; return; }
	[ -d $CG_ROOT ] && grep -q cgroup2 /proc/mounts ||
		{ echo "no cgroup v2 at $CG_ROOT"; return; }
	grep -q ' /sys/fs/bpf bpf' /proc/mounts || mount -t bpf bpf /sys/fs/bpf ||
		{ echo "cannot mount bpffs"; return; }
	[ -x "$FASTIVC" ] || echo "$FASTIVC not built"
}

agent_setup() {
	trap agent_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$LOGS" "$RUN"
	ip netns add "$NS" || return 1
	ip -n "$NS" link set lo up
	mkdir "$CG"
}

# start_agent [PREFIX...] -- [agent args]: the agent in the namespace,
# outside the app cgroup, optionally under a wrapper (setpriv ...); waits
# for "agent ready".
start_agent() {
	local pre=() log=$LOGS/agent.log
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		pre+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	: >"$log"
	nsenter --net="/run/netns/$NS" "${pre[@]}" "$FASTIVC" agent \
		--instance "$INST" --domid 21 --cgroup "$CG" \
		--set run_dir="$RUN" --set link_dir="$RUN/link" "$@" \
		>>"$log" 2>&1 &
	AGENT_PID=$!
	for _ in $(seq 100); do
		grep -qs 'agent ready' "$log" && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$log" >&2
	return 1
}

stop_agent() {
	[ -n "$AGENT_PID" ] || return 0
	kill "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
}

# wait_log PATTERN: up to 5 s for the agent's log to show PATTERN.
wait_log() {
	for _ in $(seq 50); do
		grep -qE -- "$1" "$LOGS/agent.log" && return 0
		sleep 0.1
	done
	return 1
}

status() { "$FASTIVC" status -i "$INST" --run-dir "$RUN" "$@"; }

# need CMD PACKAGE: CMD on PATH, installing the Debian PACKAGE if absent
# (as root); 1 when it cannot be had.
need() {
	command -v "$1" >/dev/null && return 0
	[ "$(id -u)" = 0 ] || return 1
	say "installing $2 for $1"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$2"; } >/dev/null 2>&1
	command -v "$1" >/dev/null
}

# Debian's python3 (its packages: jsonschema, yaml), not a pyenv shim.
PY=/usr/bin/python3
need_py() { # need_py MODULE PACKAGE
	$PY -c "import $1" 2>/dev/null && return 0
	[ "$(id -u)" = 0 ] || return 1
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$2"; } >/dev/null 2>&1
	$PY -c "import $1" 2>/dev/null
}
