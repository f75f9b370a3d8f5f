#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A burst of connections both ways at once: hundreds of CREATEs and ACCEPTs
# cross on the link between the agents. Neither agent may block on the
# other (two agents blocked sending to each other deadlocked once): every
# transfer completes, both agents keep answering, and every flow ends (a
# FIN|ACK that acknowledged the peer's FIN once left 30% of them in LAST_ACK).
# Every connection takes a tunnel and every byte goes through one.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
CONNS=${CONNS:-300}
BYTES=65536
netns_setup
agents_up --set pool=$((CONNS * 2)) || { fail "agents start"; exit 1; }
sleep 0.5 # the pools fill
tunnel_mark

in_ns A timeout 90 "$BLAST" server $IP_A 6601 --conns $CONNS --bytes $BYTES >"$LOGS/server-A.out" 2>&1 &
sa=$!
in_ns B timeout 90 "$BLAST" server $IP_B 6602 --conns $CONNS --bytes $BYTES >"$LOGS/server-B.out" 2>&1 &
sb=$!
for _ in $(seq 50); do
	grep -qs listening "$LOGS/server-A.out" && grep -qs listening "$LOGS/server-B.out" && break
	sleep 0.1
done
in_ns A timeout 90 "$BLAST" client $IP_B 6602 --conns $CONNS --bytes $BYTES >"$LOGS/client-A.out" 2>&1 &
ca=$!
in_ns B timeout 90 "$BLAST" client $IP_A 6601 --conns $CONNS --bytes $BYTES >"$LOGS/client-B.out" 2>&1 &
cb=$!
bad=0
for p in $ca $cb $sa $sb; do wait "$p" || bad=$((bad + 1)); done
grep -h error "$LOGS"/client-*.out "$LOGS"/server-*.out | head -3 | sed 's/^/# /'
check "$CONNS connections each way at once: every client and server ok" [ $bad = 0 ]
check "both agents still answer" \
	sh -c "timeout 5 $FASTIVC status -i $TAG-a --run-dir $RUN >/dev/null &&
	       timeout 5 $FASTIVC status -i $TAG-b --run-dir $RUN >/dev/null"
for _ in $(seq 100); do # every connection closed: its flow is freed
	[ "$(json_get A 'd["counters"]["flows_done"]')" = $((CONNS * 2)) ] && break
	sleep 0.1
done
check "every flow finished (none left waiting on a FIN or its ACK)" \
	[ "$(json_get A 'd["counters"]["flows_done"]')" = $((CONNS * 2)) -a \
	  "$(json_get B 'd["counters"]["flows_done"]')" = $((CONNS * 2)) ]
tun="$(json_get A 'd["counters"]["flows_tunneled"]') $(json_get B 'd["counters"]["flows_tunneled"]')"
say "A: $(fivc A status | sed -n 2p)"
check "every connection took a tunnel at both ends (A B: $tun of $((CONNS * 2)))" \
	[ "$tun" = "$((CONNS * 2)) $((CONNS * 2))" ]
# Each agent's clients send CONNS x (8-byte index + BYTES), its server
# answers CONNS x BYTES.
check_tunneled "every byte A sent" A $((CONNS * (2 * BYTES + 8))) exact
check_tunneled "every byte B sent" B $((CONNS * (2 * BYTES + 8))) exact
exit $FAILED
