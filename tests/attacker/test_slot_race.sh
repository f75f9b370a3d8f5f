#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# An unprivileged user in domain A races the agent for its slot pairs: it
# keeps hundreds of connections to the slot listener open, so that an
# agent that took the first socket in the queue as X would redirect other
# users' app bytes to it (issue 14: 19.4 MB read in 15 s, victims hung).
# The agent must accept only its own Ys' peers: the thief reads nothing,
# every victim transfer completes through the tunnel with equal SHA-256 at
# both ends, and status answers within 1 s throughout.
. "$(dirname "$0")/../netns/lib.sh"
. "$(dirname "$0")/../netns/tunnel.sh"
. "$(dirname "$0")/lib.sh"
FAILED=0
SECONDS_ATTACK=${SECONDS_ATTACK:-15}
netns_setup
attacker_setup
agents_up || { fail "agents start"; exit 1; }

pid_a=${AGENT_PIDS[0]}
# The slot listener: the agent's only listening TCP socket on loopback.
port=$(nsenter --net="/run/netns/$NS_A" ss -ltnpH 2>/dev/null |
	awk -v p="pid=$pid_a," '$4 ~ /^127\.0\.0\.1:/ && index($0, p) { split($4, a, ":"); print a[2]; exit }')
check "found A's slot listener on loopback (port ${port:-none})" [ -n "$port" ]
[ -n "$port" ] || exit 1

status_watch_start
as_user "$ATTACKER" A $PY "$TOOLS/slot_thief.py" 127.0.0.1 "$port" "$SECONDS_ATTACK" "${THIEF_CONNS:-300}" \
	>"$LOGS/thief.out" 2>&1 &
thief=$!
# The thief's connections sit in the listener's queue before the pool
# refills: more victim connections than the pool (32) holds reach them.
sleep 1
for round in 1 2 3; do
	victim "round $round" $((6700 + round)) 16 $((1 << 20))
done
wait $thief
status_watch_stop
say "thief: $(cat "$LOGS/thief.out")"
read_bytes=$(awk '/bytes_read/ { print $6 }' "$LOGS/thief.out")
check "the thief ran and connected (as $ATTACKER)" \
	[ "$(awk '/connects/ { print $2 }' "$LOGS/thief.out")" -gt 0 ] 2>/dev/null
check "the thief read 0 bytes of other flows (read ${read_bytes:-?})" [ "${read_bytes:-1}" = 0 ]
check "A's agent closed the thief's connections (slot_impostors > 0)" \
	[ "$(ctr A slot_impostors)" -gt 0 ]
grep -h "slot listener" "$LOGS/agent-A.log" | head -2 | sed 's/^/# /'
exit $FAILED
