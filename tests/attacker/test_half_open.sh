#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# An unprivileged user in domain A floods half-open handshakes: hundreds of
# connects to a co-resident port whose SYNs are dropped, held open. Each
# would hold a slot until it gave up (2 minutes) and empty the pool, so
# that every other user's new connections stay on plain TCP. The agent must
# keep that user to its share and reap stalled handshakes: another user's
# transfers started during the flood go through the tunnel with equal
# SHA-256 at both ends, and status answers within 1 s throughout.
. "$(dirname "$0")/../netns/lib.sh"
. "$(dirname "$0")/../netns/tunnel.sh"
. "$(dirname "$0")/lib.sh"
FAILED=0
HOLD=${HOLD:-25}
DEAD_PORT=7777
netns_setup
attacker_setup
agents_up || { fail "agents start"; exit 1; }

# B drops every SYN to DEAD_PORT: A's connects there stay in SYN_SENT.
nsenter --net="/run/netns/$NS_B" nft -f - <<NFT || { fail "nft rule in B"; exit 1; }
table inet fivc_halfopen {
	chain input {
		type filter hook input priority 0;
		tcp dport $DEAD_PORT drop
	}
}
NFT

status_watch_start
as_user "$ATTACKER" A $PY "$TOOLS/half_open.py" $IP_B $DEAD_PORT 500 "$HOLD" \
	>"$LOGS/half-open.out" 2>&1 &
flood=$!
for _ in $(seq 50); do grep -qs opened "$LOGS/half-open.out" && break; sleep 0.1; done
say "flood: $(cat "$LOGS/half-open.out")"
victim "during the flood" 6801 8 $((2 << 20))
sleep 11 # past the 10 s reservation deadline: stalled handshakes reaped
victim "after the reap" 6802 8 $((2 << 20))
wait $flood
status_watch_stop
check "the flood ran as $ATTACKER (500 connects under way)" \
	grep -q "opened 500" "$LOGS/half-open.out"
check "A kept the flooding user to its share (bpf uid_limit > 0)" \
	[ "$(bpf_stat A uid_limit)" -gt 0 ]
check "A reaped the stalled handshakes' reservations (holds_reaped > 0)" \
	[ "$(ctr A holds_reaped)" -gt 0 ]
grep -h "stalled\|beyond its share" "$LOGS/agent-A.log" | head -2 | sed 's/^/# /'
exit $FAILED
