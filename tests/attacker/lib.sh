#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The local-attacker tier: two domains as in tests/netns (its lib.sh),
# attackers running as an unprivileged user inside domain A, and victim
# transfers that must go on through the tunnel meanwhile, checked end to
# end. Source it after ../netns/lib.sh and ../netns/tunnel.sh; call
# attacker_setup after netns_setup.

ATTACKER=${ATTACKER:-nobody}
VICTIM_USER=${VICTIM_USER:-daemon}
PY=/usr/bin/python3 # Debian's: the user's own python may be out of reach

# What an unprivileged user runs must be readable by it wherever the
# checkout is (CI may clone under /root, mode 0700): copies under $RUN.
attacker_setup() {
	[ -x $PY ] || { fail "attacker tier: $PY missing"; exit 1; }
	id "$ATTACKER" >/dev/null && id "$VICTIM_USER" >/dev/null ||
		{ fail "attacker tier: users $ATTACKER and $VICTIM_USER exist"; exit 1; }
	TOOLS=$RUN/tools
	mkdir -p "$TOOLS"
	cp "$BLAST" "$(dirname "$0")"/*.py "$TOOLS/"
	chmod 755 "$RUN" "$TOOLS" "$TOOLS"/*
}

# as_user USER A|B CMD...: CMD as USER, without capabilities, in that
# domain's namespace and app cgroup.
as_user() {
	local user=$1 side=$2
	shift 2
	in_ns "$side" setpriv --reuid="$user" --regid="$(id -g "$user")" \
		--clear-groups --inh-caps=-all "$@"
}

# Answer time of `fastivc status` for A, every 200 ms until stopped; the
# worst one in ms goes to $LOGS/status-ms (status_watch_start / _stop).
status_watch_start() {
	(
		worst=0
		while :; do
			t0=$(date +%s%N)
			timeout 5 "$FASTIVC" status -i "$TAG-a" --run-dir "$RUN" >/dev/null 2>&1 ||
				worst=5000
			ms=$((($(date +%s%N) - t0) / 1000000))
			[ $ms -gt $worst ] && worst=$ms
			echo $worst >"$LOGS/status-ms"
			sleep 0.2
		done
	) &
	STATUS_WATCH=$!
}

status_watch_stop() {
	kill "$STATUS_WATCH" 2>/dev/null
	wait "$STATUS_WATCH" 2>/dev/null
	STATUS_MS=$(cat "$LOGS/status-ms" 2>/dev/null || echo 9999)
	check "A's agent answered status within 1 s throughout (worst ${STATUS_MS} ms)" \
		[ "$STATUS_MS" -lt 1000 ]
}

# Counters of A or B (`fastivc status` gives up after 10 s by itself).
ctr() { json_get "$1" "d['counters'].get('$2', 0)"; }
bpf_stat() { json_get "$1" "d['bpf'].get('$2', 0)"; }

# victim NAME PORT CONNS BYTES: a client of $VICTIM_USER in A and a server
# in B exchange BYTES each way on CONNS connections (60 s at most). Checks
# both exits, SHA-256 at both ends, and that the tunnel carried every byte,
# counted once per agent and direction (A sent and B received them, and
# the other way).
victim() {
	local name=$1 port=$2 conns=$3 bytes=$4 crc src
	tunnel_mark
	in_ns B timeout 60 "$TOOLS/blast" server $IP_B "$port" --conns "$conns" \
		--bytes "$bytes" >"$LOGS/victim-$name-server.out" 2>&1 &
	local spid=$!
	for _ in $(seq 50); do
		grep -qs listening "$LOGS/victim-$name-server.out" && break
		sleep 0.1
	done
	as_user "$VICTIM_USER" A timeout 60 "$TOOLS/blast" client $IP_B "$port" \
		--conns "$conns" --bytes "$bytes" >"$LOGS/victim-$name-client.out" 2>&1
	crc=$?
	wait $spid
	src=$?
	check "$name: victim client and server exit 0, none hung (rc $crc/$src)" \
		[ $crc = 0 -a $src = 0 ]
	check "$name: SHA-256 of $conns x $bytes bytes each way equal at both ends" \
		$PY tests/netns/blast_compare.py "$LOGS/victim-$name-client.out" \
		"$LOGS/victim-$name-server.out" "$bytes" "$conns"
	check_tunneled "$name: A to B" A $((conns * bytes))
	check_tunneled "$name: B to A" B $((conns * bytes))
}
