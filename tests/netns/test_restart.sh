#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Stopping and restarting an agent (SIGTERM, what systemd sends):
#  - it drains: tunneled transfers in flight finish intact, new connections
#    meanwhile stay on plain TCP, then it exits 0;
#  - past drain_timeout_ms it resets what is left: the apps get an error,
#    never a short transfer reported as complete;
#  - started again, it tunnels new connections (the peers map was kept).
# SIGKILL: docs/steering.md, "RST, close() and failures".
. "$(dirname "$0")/lib.sh"
FAILED=0
netns_setup
agents_up --set drain_timeout_ms=90000 || { fail "agents start"; exit 1; }

blast_pair() { # blast_pair NAME PORT BYTES: B serves, A sends, 2 flows, in background
	in_ns B timeout 120 "$BLAST" server $IP_B "$2" --conns 2 --bytes "$3" \
		>"$LOGS/server-$1.out" 2>&1 &
	SPID=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/server-$1.out" && break; sleep 0.1; done
	in_ns A timeout 120 "$BLAST" client $IP_B "$2" --conns 2 --bytes "$3" \
		>"$LOGS/client-$1.out" 2>&1 &
	CPID=$!
}

digests_match() { # digests_match NAME: both sides saw the same bytes
	[ "$(awk '/^conn/{print $5, $8}' "$LOGS/client-$1.out" | sort)" = \
	  "$(awk '/^conn/{print $8, $5}' "$LOGS/server-$1.out" | sort)" ]
}

a_pid=${AGENT_PIDS[0]}
# 1. SIGTERM mid-transfer: the drain lets both flows finish.
blast_pair drain 6401 $((512 << 20))
for _ in $(seq 100); do # until bytes flow through the tunnels
	[ "$(json_get A 'd["counters"]["tunnel_bytes_tx"]')" -gt 0 ] && break
	sleep 0.05
done
kill -TERM "$a_pid"
sleep 0.3
in_ns B timeout 30 "$BLAST" server $IP_B 6402 --conns 1 --bytes $((1 << 20)) \
	>"$LOGS/server-during.out" 2>&1 &
dpid=$!
for _ in $(seq 50); do grep -qs listening "$LOGS/server-during.out" && break; sleep 0.1; done
in_ns A timeout 30 "$BLAST" client $IP_B 6402 --conns 1 --bytes $((1 << 20)) \
	>"$LOGS/client-during.out" 2>&1
during=$?
wait $dpid || during=1
no_slot=$(json_get A 'd["bpf"]["no_slot"]')
wait $CPID
crc=$?
wait $SPID
src=$?
wait "$a_pid"
arc=$?
fivc B status | sed -n 2,3p | sed 's/^/# B: /'
say "$(grep -h 'draining\|drained\|drain timed out' "$LOGS/agent-A.log")"
check "drain: transfers in flight complete" [ $crc = 0 -a $src = 0 ]
check "drain: both sides saw the same bytes (SHA-256)" digests_match drain
check "drain: a connection opened meanwhile works, on plain TCP" \
	[ "$during" = 0 -a "${no_slot:-0}" -ge 1 ]
check "drain: the agent said so and exited 0 once drained" \
	sh -c "[ $arc = 0 ] && grep -q 'drained: stopping' $LOGS/agent-A.log"

mv "$LOGS/agent-A.log" "$LOGS/agent-A.first.log"

# 2. Restarted, with a short drain: a long transfer is cut, and says so.
start_agent A --set drain_timeout_ms=300 || { fail "agent A restarts"; exit 1; }
a_pid=${AGENT_PIDS[-1]}
blast_pair cut 6403 $((8 << 30))
sleep 1
check "restart: the new agent tunnels new connections" \
	[ "$(json_get A 'd["counters"]["flows_tunneled"]')" -ge 2 ]
kill -TERM "$a_pid"
wait "$a_pid"
wait $CPID
crc=$?
wait $SPID
src=$?
say "client rc $crc, server rc $src; $(grep -h 'drain timed out' "$LOGS/agent-A.log")"
check "drain timeout: client and server both fail loudly (reset)" \
	[ $crc != 0 -a $src != 0 ]

exit $FAILED
