#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The handshake's last ACK does not reach the server's TCP, so the client's
# FIN completes the handshake while the server's side of the flow is still
# a reservation (the client's bytes took the tunnel and its FIN is its
# first segment after the ACK). That FIN must be held like any other: the
# server reads every byte, then EOF (tests/netns/backlog.py).
#   1. lost: netfilter in B drops the last ACK of every connection.
#   2. overflow: a burst into a listener whose accept queue is full, which
#      drops the last ACKs itself.
. "$(dirname "$0")/lib.sh"
FAILED=0
B=${B:-8}
BACKLOG=$PWD/tests/netns/backlog.py
netns_setup
command -v nft >/dev/null || { skip "test_backlog: no nft (nftables)"; exit 77; }
agents_up --set pool=$((B * 4)) || { fail "agents start"; exit 1; }
sleep 0.5 # the pools fill

nstat_b() { in_ns B nstat -asz "$1" | awk -v n="$1" '$1 == n {print $2}'; }
early() { json_get B 'd["bpf"]["fin_early"]'; }

# run_case NAME PORT: B's server and A's clients, B - 1 + B connections.
run_case() {
	local name=$1 port=$2 crc src
	in_ns B timeout 60 python3 "$BACKLOG" server $IP_B "$port" $B 65536 2 0 \
		>"$LOGS/$name-server.out" 2>&1 &
	src=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/$name-server.out" && break; sleep 0.1; done
	in_ns A timeout 60 python3 "$BACKLOG" client $IP_B "$port" $B 65536 \
		>"$LOGS/$name-client.out" 2>&1
	crc=$?
	wait $src
	src=$?
	grep -hv '^listening$' "$LOGS/$name"-*.out | head -4 | sed "s/^/# $name: /"
	check "$name: $((2 * B - 1)) request-then-close connections: the server read every byte, then EOF" \
		[ $crc = 0 -a $src = 0 ]
}

# 1. The second packet of each connection from A (the handshake's ACK) is
#    dropped after tc has seen it: only A's FIN can complete the handshake.
in_ns B sysctl -qw net.netfilter.nf_conntrack_acct=1
in_ns B nft -f - <<NFT
table inet fivc_test {
	chain input {
		type filter hook input priority 0;
		tcp dport 6701 ct original packets 2 tcp flags == ack drop
	}
}
NFT
before=$(early)
run_case lost 6701
say "B: fin_early $(($(early) - before)), $(fivc B status | grep -m1 -o 'fin_held [0-9]*')"
check "lost: B held FINs that completed the handshake (fin_early)" \
	[ "$(($(early) - before))" -ge $((2 * B - 1)) ]
in_ns B nft delete table inet fivc_test

# 2. No netfilter: the accept queue overflows on its own.
before=$(nstat_b TcpExtListenOverflows)
run_case overflow 6702
say "B: listen overflows $(($(nstat_b TcpExtListenOverflows) - before))"
check "overflow: the accept queue overflowed (the case under test happened)" \
	[ "$(($(nstat_b TcpExtListenOverflows) - before))" -ge 1 ]
check "the connections took the tunnel" \
	[ "$(json_get A 'd["counters"]["flows_tunneled"]')" -ge $((4 * B - 2)) ]
exit $FAILED
