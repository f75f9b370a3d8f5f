#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Two "domUs" on one kernel: network namespaces A and B joined by veth, each
# with its own cgroup v2 child for its applications and its own agent
# (instance, pin dir, control socket), linked through a private link dir.
# Source it, call netns_setup, and everything is removed on exit.

O=${O:-build}
FASTIVC=${FASTIVC:-$PWD/$O/fastivc}
BLAST=${BLAST:-$PWD/$O/tools/blast}
# Names of namespaces, cgroups, pins and run dirs start with $TAG; a caller
# may choose the prefix (interface names allow 15 characters: keep it short).
TAG=${TAG_PREFIX:-fivc}$$
NS_A=$TAG-a
NS_B=$TAG-b
IP_A=10.77.0.1
IP_B=10.77.0.2
IP6_A=fd77::1
IP6_B=fd77::2
DOM_A=11
DOM_B=12
CG_ROOT=/sys/fs/cgroup/unified
CG_A=$CG_ROOT/$TAG-a
CG_B=$CG_ROOT/$TAG-b
RUN=/run/$TAG
LOGS=${LOGS:-$PWD/$O/test-logs/$TAG}
AGENT_PIDS=()

say() { echo "# $*"; }
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; FAILED=1; }
skip() { echo "skip - $*"; }

check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else fail "$name"; fi
}

netns_cleanup() {
	agents_down
	ip netns pids "$NS_A" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns pids "$NS_B" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$NS_A" 2>/dev/null
	ip netns del "$NS_B" 2>/dev/null
	rmdir "$CG_A" "$CG_B" 2>/dev/null
	rm -rf "/sys/fs/bpf/fastivc/$TAG-a" "/sys/fs/bpf/fastivc/$TAG-b" "$RUN"
}

# Skip loudly (exit 77) when this machine cannot run the tier.
netns_require() {
	[ "$(id -u)" = 0 ] || { skip "netns tests: not root"; exit 77; }
	[ -d $CG_ROOT ] && grep -q cgroup2 /proc/mounts ||
		{ skip "netns tests: no cgroup v2 at $CG_ROOT"; exit 77; }
	grep -q ' /sys/fs/bpf bpf' /proc/mounts || mount -t bpf bpf /sys/fs/bpf ||
		{ skip "netns tests: cannot mount bpffs"; exit 77; }
	# As systemd does: the agents' splice() watch needs it where the kernel
	# refuses fentry (agent/splice_watch.c).
	grep -q ' /sys/kernel/tracing tracefs' /proc/mounts ||
		mount -t tracefs tracefs /sys/kernel/tracing ||
		say "no tracefs at /sys/kernel/tracing: splice() is watched only where fentry loads"
	[ -x "$FASTIVC" ] || { fail "netns tests: $FASTIVC not built"; exit 1; }
}

netns_setup() {
	netns_require
	trap netns_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$LOGS" "$RUN"
	ip netns add "$NS_A" && ip netns add "$NS_B" || exit 1
	ip link add "$TAG-va" type veth peer name "$TAG-vb"
	ip link set "$TAG-va" netns "$NS_A"
	ip link set "$TAG-vb" netns "$NS_B"
	ip -n "$NS_A" addr add $IP_A/24 dev "$TAG-va"
	ip -n "$NS_B" addr add $IP_B/24 dev "$TAG-vb"
	ip -n "$NS_A" addr add $IP6_A/64 dev "$TAG-va" nodad
	ip -n "$NS_B" addr add $IP6_B/64 dev "$TAG-vb" nodad
	for ns in "$NS_A" "$NS_B"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$NS_A" link set "$TAG-va" up
	ip -n "$NS_B" link set "$TAG-vb" up
	mkdir "$CG_A" "$CG_B"
}

# in_ns A|B CMD...: run CMD in that domain's namespace AND app cgroup.
# nsenter, not ip netns exec: the latter remounts /sys, hiding bpffs and
# cgroup2 from the agent and the cgroup from the shell.
in_ns() {
	local side=$1 ns cg
	shift
	if [ "$side" = A ]; then ns=$NS_A cg=$CG_A; else ns=$NS_B cg=$CG_B; fi
	sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec nsenter --net="/run/netns/$@"' \
		sh "$cg" "$ns" "$@"
}

# start_agent A|B [extra agent args]: the agent runs in the namespace but
# outside the app cgroup; waits until it says it is ready.
start_agent() {
	local side=$1 ns cg dom log
	shift
	if [ "$side" = A ]; then ns=$NS_A cg=$CG_A dom=$DOM_A; else ns=$NS_B cg=$CG_B dom=$DOM_B; fi
	log=$LOGS/agent-$side.log
	# Emptied first: the agent's shell may open it only after the wait
	# below began, which must not find a "ready" of an earlier run.
	: >"$log"
	nsenter --net="/run/netns/$ns" "$FASTIVC" agent --instance "$TAG-$(echo "$side" | tr AB ab)" \
		--domid "$dom" --cgroup "$cg" --set run_dir="$RUN" \
		--set link_dir="$RUN/link" "$@" >"$log" 2>&1 &
	AGENT_PIDS+=($!)
	for _ in $(seq 100); do
		grep -qs 'agent ready' "$log" && return 0
		kill -0 "$!" 2>/dev/null || break
		sleep 0.1
	done
	cat "$log" >&2
	return 1
}

fivc() { # fivc A|B SUBCOMMAND...: the CLI against that side's agent
	local side=$1 inst
	shift
	inst="$TAG-$(echo "$side" | tr AB ab)"
	case $1 in
	status) "$FASTIVC" status -i "$inst" --run-dir "$RUN" "${@:2}" ;;
	*) "$FASTIVC" "$1" -i "$inst" "${@:2}" ;;
	esac
}

# Both agents up, and each knows the other as co-resident.
agents_up() {
	start_agent A "$@" && start_agent B "$@" || return 1
	fivc A peer add $IP_B/32 $DOM_B && fivc A peer add $IP6_B/128 $DOM_B &&
		fivc B peer add $IP_A/32 $DOM_A && fivc B peer add $IP6_A/128 $DOM_A
}

# mode tcp|fastivc: whether the peers are co-resident. Connections opened
# after this take the mode.
mode() {
	if [ "$1" = fastivc ]; then
		fivc A peer add $IP_B/32 $DOM_B && fivc B peer add $IP_A/32 $DOM_A
	else
		fivc A peer del $IP_B/32 2>/dev/null
		fivc B peer del $IP_A/32 2>/dev/null
	fi
	return 0
}

# Both agents stopped (their pins go with them), e.g. to restart them with
# other fixed config keys.
agents_down() {
	local pid
	# SIGINT then SIGTERM: the first starts a drain, the second ends it.
	for pid in "${AGENT_PIDS[@]}"; do
		kill -INT "$pid" 2>/dev/null
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${AGENT_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	AGENT_PIDS=()
}

# json_get SIDE EXPR: a value from `fastivc status --json`, via python3.
json_get() {
	fivc "$1" status --json |
		python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"
}

# both_ways_check NAME CLIENT_LINE SERVER_OUT N BYTES: tests/netns/
# both_ways.py's client line and its server's Nth line (in the file
# SERVER_OUT) say BYTES each way, with equal SHA-256 at both ends.
both_ways_check() {
	local name=$1 c=$2 out=$3 n=$4 bytes=$5 s
	for _ in $(seq 50); do
		s=$(sed -n "/^conn $((n - 1)) /p" "$out")
		[ -n "$s" ] && break
		sleep 0.1
	done
	say "client: $c; server: $s"
	set -- $c
	local csent=$2 csha=$3 crecv=$5 crsha=$6
	set -- $s
	check "$name: $bytes bytes each way, SHA-256 equal at both ends" \
		[ "$csent" = "$bytes" -a "$crecv" = "$bytes" -a "$4" = "$bytes" -a \
		  "$7" = "$bytes" -a "$csha" = "$5" -a "$crsha" = "$8" ]
}

# nginx_conf ROOT [LISTEN...]: $RUN/nginx/nginx.conf, for nginx in B
# serving ROOT on $IP_B:8080 and on each LISTEN (e.g. "8081 deferred"):
# sendfile on, keep-alive as configured by default, its state under
# $RUN/nginx. Run it with -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf".
nginx_conf() {
	local root=$1 l listens="listen $IP_B:8080;"
	shift
	for l in "$@"; do listens="$listens listen $IP_B:$l;"; done
	mkdir -p "$RUN/nginx"
	cat >"$RUN/nginx/nginx.conf" <<CONF
# root: the files live under the build folder, whatever its permissions.
user root;
worker_processes 1;
pid $RUN/nginx/nginx.pid;
error_log $LOGS/nginx-error.log;
events {}
http {
	access_log off;
	sendfile on;
	client_body_temp_path $RUN/nginx;
	proxy_temp_path $RUN/nginx;
	fastcgi_temp_path $RUN/nginx;
	uwsgi_temp_path $RUN/nginx;
	scgi_temp_path $RUN/nginx;
	server {
		$listens
		root $root;
	}
}
CONF
}

# mariadb_up: MariaDB in B as root (data under $RUN/mysql, a tmpfs), on a
# socket for the setup and on $IP_B:3306, with database sbtest for user
# sb (password sb); SB is sysbench's oltp_read_write against it, one table
# of 10000 rows. Sets WHY when it cannot.
SB=(sysbench oltp_read_write --db-driver=mysql "--mysql-host=$IP_B" --mysql-port=3306
	--mysql-user=sb --mysql-password=sb --mysql-db=sbtest --tables=1 --table-size=10000)
mariadb_up() {
	local dir=$RUN/mysql
	command -v mariadbd >/dev/null ||
		{ WHY="mariadb-server is not installed (scripts/install-deps.sh)"; return 1; }
	mkdir -p "$dir/data"
	mariadb-install-db --no-defaults --user=root --datadir="$dir/data" \
		>"$LOGS/mariadb-install.log" 2>&1 ||
		{ WHY="mariadb-install-db failed: $(tail -1 "$LOGS/mariadb-install.log")"; return 1; }
	in_ns B mariadbd --no-defaults --user=root --datadir="$dir/data" \
		--socket="$dir/sock" --pid-file="$dir/pid" --bind-address=$IP_B --port=3306 \
		--log-error="$LOGS/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
	for _ in $(seq 100); do
		mariadb --no-defaults -S "$dir/sock" -u root -e 'select 1' >/dev/null 2>&1 && break
		sleep 0.2
	done
	mariadb --no-defaults -S "$dir/sock" -u root -e "create database sbtest;
		create user sb@'%' identified by 'sb'; grant all on sbtest.* to sb@'%';" \
		2>"$LOGS/mariadb-setup.log" ||
		{ WHY="mariadb did not start: $(tail -1 "$LOGS/mariadb.log" 2>/dev/null)"; return 1; }
}
