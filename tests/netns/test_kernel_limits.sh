#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# What the kernel decides for a steered socket (tests/netns/kernel_limits.py;
# docs/steering.md, "What the kernel sets"): each case runs over plain TCP
# (no agents) and through the tunnel, and both outcomes are printed. Over
# TCP the case must give TCP's answer (the probe is right); through the
# tunnel it must give TCP's answer or exactly the deviation docs/steering.md
# documents, on a connection the tunnel carried. A kernel that changes one
# fails here, so that the documentation follows it. splice2 is the
# mitigation of splice: after a splice() from a steered socket, its
# listener's later connections take plain TCP, where splice() works.
. "$(dirname "$0")/lib.sh"
FAILED=0
PROG=$PWD/tests/netns/kernel_limits.py

# CASE|TCP's outcome|the tunnel's on this kernel ("=": the same)
EXPECT="waitall|client MSG_WAITALL got 2000 of 2000|client MSG_WAITALL got 1000 of 2000
oob|server urgent b'!' stream b'abcdef'|server urgent b'a' stream b'bc!def'
shutrd|client after SHUT_RD read 100 then 100|=
splice|server spliced 100000 of 100000|server spliced 0 of 100000
splice2|server spliced 100000 then 100000 of 100000|server spliced 0 then 100000 of 100000
sendfile|client got 1048576, intact; server sendfile 1048576|=
tcpinfo|client bytes_acked 5001; server FIONREAD 5000 bytes_received 5000|="

# run CASE PORT: both ends; prints their OUTCOME lines as "side what; ...".
run() {
	local out=$LOGS/limits-$1-$2
	in_ns B timeout 30 python3 "$PROG" server $IP_B "$2" "$1" >"$out-server.out" 2>&1 &
	local spid=$!
	for _ in $(seq 50); do grep -qs listening "$out-server.out" && break; sleep 0.1; done
	in_ns A timeout 30 python3 "$PROG" client $IP_B "$2" "$1" >"$out-client.out" 2>&1
	wait $spid
	grep -h -v '^listening$\|^OUTCOME ' "$out-"*.out | sed 's/^/# /' >&2
	grep -h '^OUTCOME ' "$out-client.out" "$out-server.out" | cut -d' ' -f2- |
		paste -sd ';' | sed 's/;/; /g'
}

netns_setup
port=6300
declare -A TCP_GOT
while IFS='|' read -r c tcp _; do
	port=$((port + 1))
	TCP_GOT[$c]=$(run "$c" $port)
	say "$c over TCP: ${TCP_GOT[$c]}"
	check "$c: over TCP, TCP's answer" [ "${TCP_GOT[$c]}" = "$tcp" ]
done <<<"$EXPECT"

agents_up || { fail "agents start"; exit 1; }
while IFS='|' read -r c tcp tunnel; do
	port=$((port + 1))
	[ "$tunnel" = = ] && tunnel=$tcp
	steered=$(json_get A 'd["bpf"]["steered"]')
	marked=$(json_get B 'd["bpf"]["splice_marked"]') refused=$(json_get B 'd["bpf"]["opt_splice"]')
	got=$(run "$c" $port)
	say "$c through the tunnel: $got"
	check "$c: carried by the tunnel" [ "$(json_get A 'd["bpf"]["steered"]')" = $((steered + 1)) ]
	if [ "$tunnel" = "$tcp" ]; then
		check "$c: through the tunnel as over TCP" [ "$got" = "$tcp" ]
	else
		check "$c: through the tunnel as documented (TCP: $tcp)" [ "$got" = "$tunnel" ]
	fi
	case $c in splice*)
		said=no
		grep -q "the app spliced from its socket.*connections to its listener on port $port stay on TCP" \
			"$LOGS/agent-B.log" && said=yes
		check "$c: B's agent marked the listener, and said so ($said)" \
			[ "$(json_get B 'd["bpf"]["splice_marked"]')" = $((marked + 1)) -a $said = yes ]
		;;
	esac
	[ $c = splice2 ] &&
		check "$c: its second connection kept on TCP, counted as opt_splice" \
			[ "$(json_get B 'd["bpf"]["opt_splice"]')" = $((refused + 1)) ]
done <<<"$EXPECT"
exit $FAILED
