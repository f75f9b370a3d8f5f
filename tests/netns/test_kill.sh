#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# An agent killed (SIGKILL) under load, on one side and then on the other
# (docs/steering.md, "An agent that is killed"): blast with SHA-256 at both
# ends, both ways, and iperf3 both ways, mid-transfer. Then:
#  - every client and server exits within a bound, never by its timeout,
#    with an error or with every byte (no connection reports success with
#    short or different data);
#  - the peer agent resets every flow it tunneled with the dead one, at once;
#  - restarted, the agent says what the dead one left, resets it, removes
#    its maps and tc filters, and new connections tunnel again;
#  - no flow entry is left in either agent's maps.
. "$(dirname "$0")/lib.sh"
FAILED=0
BYTES=$((4 << 30)) # per connection and direction: still moving at the kill
BOUND=20           # seconds from the kill for every app to have exited
ORPHAN=tests/netns/orphan.py
COUNTERS=tests/netns/counters.py
netns_setup
agents_up || { fail "agents start"; exit 1; }
command -v iperf3 >/dev/null || skip "iperf3: not installed (blast only)"

side_ip() { if [ "$1" = A ]; then echo $IP_A; else echo $IP_B; fi; }
other() { if [ "$1" = A ]; then echo B; else echo A; fi; }
pin() { echo "/sys/fs/bpf/fastivc/$TAG-$(echo "$1" | tr AB ab)"; }
agent_pid() { cat "$RUN/$TAG-$(echo "$1" | tr AB ab).pid"; }

# Every connection of a blast pair either failed (its line says error) or
# received all BYTES, with the digest the other end sent.
blast_honest() { # blast_honest CLIENT_OUT SERVER_OUT
	python3 - "$1" "$2" $BYTES <<'EOF'
import re, sys
LINE = re.compile(r"conn (\d+) sent (\d+) (\S*) received (\d+) (\S*)(.*)")
def conns(path):
    out = {}
    for line in open(path):
        m = LINE.match(line)
        if m:
            i, sent, ssha, got, rsha, rest = m.groups()
            out[i] = (int(sent), ssha, int(got), rsha, "error" in rest)
    return out
c, s, want = conns(sys.argv[1]), conns(sys.argv[2]), int(sys.argv[3])
short = 0
for me, peer in ((c, s), (s, c)):
    for i, (sent, ssha, got, rsha, err) in me.items():
        p = peer.get(i)
        if not err and (got != want or not p or p[0] != want or p[1] != rsha):
            short += 1
print(short)
EOF
}

# start_load: blast and iperf3, both ways, through the tunnels.
start_load() { # start_load ROUND
	local r=$1 p
	LOAD_PIDS=()
	LOAD_NAMES=()
	for srv in A B; do
		p=$((7100 + ${#LOAD_PIDS[@]}))
		in_ns $srv timeout 90 "$BLAST" server "$(side_ip $srv)" $p --conns 2 \
			--bytes $BYTES >"$LOGS/$r-blast-$srv-server.out" 2>&1 &
		LOAD_PIDS+=($!)
		LOAD_NAMES+=("blast server on $srv")
		for _ in $(seq 50); do grep -qs listening "$LOGS/$r-blast-$srv-server.out" && break; sleep 0.1; done
		in_ns "$(other $srv)" timeout 90 "$BLAST" client "$(side_ip $srv)" $p --conns 2 \
			--bytes $BYTES >"$LOGS/$r-blast-$srv-client.out" 2>&1 &
		LOAD_PIDS+=($!)
		LOAD_NAMES+=("blast client to $srv")
	done
	command -v iperf3 >/dev/null || return 0
	for dir in "" -R; do
		p=$((7200 + ${#LOAD_PIDS[@]}))
		in_ns B timeout 90 iperf3 -s -1 -p $p >"$LOGS/$r-iperf3$dir-server.out" 2>&1 &
		LOAD_PIDS+=($!)
		LOAD_NAMES+=("iperf3$dir server")
		sleep 0.3
		in_ns A timeout 90 iperf3 -c $IP_B -p $p -P 2 -t 60 $dir -J \
			>"$LOGS/$r-iperf3$dir-client.json" 2>&1 &
		LOAD_PIDS+=($!)
		LOAD_NAMES+=("iperf3$dir client")
	done
}

# Bytes move both ways through A's tunnels (so both sides are mid-transfer).
wait_moving() {
	local tx rx
	for _ in $(seq 100); do
		tx=$(json_get A 'd["counters"]["tunnel_bytes_tx"]')
		rx=$(json_get A 'd["counters"]["tunnel_bytes_rx"]')
		[ "${tx:-0}" -gt $((64 << 20)) ] && [ "${rx:-0}" -gt $((64 << 20)) ] && return 0
		sleep 0.1
	done
	return 1
}

maps_gone() { # maps_gone ID...: none of these maps exists any more
	local id
	for id in "$@"; do
		bpftool map show id "$id" >/dev/null 2>&1 && return 1
	done
	return 0
}

map_empty() { # map_empty PINNED_PATH
	bpftool -j map dump pinned "$1" |
		python3 -c 'import json,sys; sys.exit(len(json.load(sys.stdin)))'
}

# One round: load, SIGKILL SIDE's agent, judge every app, restart it.
kill_round() { # kill_round SIDE
	local side=$1 peer pid rc t0 t n late=0 hung=0 short=0 old_maps \
		new_tc tun_before failed_before reset_ms
	peer=$(other "$side")
	pid=$(agent_pid "$side")
	start_load "$side"
	check "$side: load is moving through the tunnels both ways" wait_moving
	old_maps=$(for n in flows socks held_fins; do
		bpftool map show pinned "$(pin "$side")/$n" -j | python3 -c \
			'import json,sys; print(json.load(sys.stdin)["id"])'
	done)
	tun_before=$(json_get "$peer" 'd["tunnels"]')
	failed_before=$(json_get "$peer" 'd["counters"]["flows_failed"]')

	t0=$(date +%s%N)
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	# The peer agent resets what it tunneled with the dead one.
	for _ in $(seq 200); do
		[ "$(json_get "$peer" 'd["tunnels"]')" = 0 ] && break
		sleep 0.01
	done
	reset_ms=$((($(date +%s%N) - t0) / 1000000))
	check "$side killed: $peer reset its $tun_before tunnels ($reset_ms ms)" \
		[ "$(json_get "$peer" 'd["tunnels"]')" = 0 -a "$tun_before" -ge 6 ]
	check "$side killed: $peer counts them failed, reason 'peer agent gone'" \
		[ "$(json_get "$peer" 'd["counters"]["flows_failed"]')" -ge \
		  $((failed_before + tun_before)) -a \
		  "$(grep -c 'peer agent gone; resetting' "$LOGS/agent-$peer.log")" -ge "$tun_before" ]

	for i in "${!LOAD_PIDS[@]}"; do
		wait "${LOAD_PIDS[$i]}"
		rc=$?
		t=$((($(date +%s%N) - t0) / 1000000))
		say "$side killed: ${LOAD_NAMES[$i]}: rc $rc after $t ms"
		[ $rc = 124 ] || [ $rc = 137 ] && hung=$((hung + 1))
		[ $t -gt $((BOUND * 1000)) ] && late=$((late + 1))
	done
	check "$side killed: no client or server hung (none hit its timeout)" [ $hung = 0 ]
	check "$side killed: every client and server exited within $BOUND s" [ $late = 0 ]
	for srv in A B; do
		n=$(blast_honest "$LOGS/$side-blast-$srv-client.out" \
			"$LOGS/$side-blast-$srv-server.out")
		short=$((short + ${n:-1}))
	done
	grep -h '^conn' "$LOGS/$side"-blast-*.out | sed 's/^/# /'
	check "$side killed: no connection reported success with short or other data" \
		[ $short = 0 ]
	for dir in "" -R; do
		[ -s "$LOGS/$side-iperf3$dir-client.json" ] || continue
		check "$side killed: iperf3$dir failed, or received what was sent" \
			python3 -c "import json,sys
d = json.load(open(sys.argv[1]))
e = d.get('end', {})
sys.exit(0 if 'error' in d or e.get('sum_sent', {}).get('bytes') ==
         e.get('sum_received', {}).get('bytes', -1) else 1)" \
			"$LOGS/$side-iperf3$dir-client.json"
	done
	grep -h 'guard' "$LOGS/agent-$side.log" | sed 's/^/# /'

	check "$side killed: its sockops program went with it" \
		sh -c "! bpftool cgroup show $CG_ROOT/$TAG-$(echo "$side" | tr AB ab) | grep -q sock_ops"
	mv "$LOGS/agent-$side.log" "$LOGS/agent-$side.killed.log"
	start_agent "$side" || { fail "$side restarts"; return; }
	grep -h 'previous agent\|tc filters' "$LOGS/agent-$side.log" | sed 's/^/# /'
	check "$side restarted: it says the previous agent did not stop cleanly" \
		grep -q 'the previous agent did not stop cleanly' "$LOGS/agent-$side.log"
	check "$side restarted: the dead agent's maps are gone" maps_gone $old_maps
	new_tc=$(nsenter --net="/run/netns/$TAG-$(echo "$side" | tr AB ab)" \
		tc filter show dev "$TAG-v$(echo "$side" | tr AB ab)" ingress | grep -c 'handle 0xf1c0')
	check "$side restarted: one FIN hold filter on its interface" [ "$new_tc" = 1 ]
}

# After a round: new connections tunnel, and every flow ends cleanly.
fresh_round() { # fresh_round NAME
	local name=$1 a_tun b_tun
	a_tun=$(json_get A 'd["counters"]["flows_tunneled"]')
	b_tun=$(json_get B 'd["counters"]["flows_tunneled"]')
	in_ns B timeout 30 "$BLAST" server $IP_B 7301 --conns 2 --bytes $((16 << 20)) \
		>"$LOGS/$name-fresh-server.out" 2>&1 &
	local spid=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/$name-fresh-server.out" && break; sleep 0.1; done
	in_ns A timeout 30 "$BLAST" client $IP_B 7301 --conns 2 --bytes $((16 << 20)) \
		>"$LOGS/$name-fresh-client.out" 2>&1
	local crc=$? src
	wait $spid
	src=$?
	check "$name: a new transfer completes with matching digests" \
		sh -c "[ $crc = 0 ] && [ $src = 0 ] && [ \"\$(awk '/^conn/{print \$5, \$8}' $LOGS/$name-fresh-client.out | sort)\" = \
		\"\$(awk '/^conn/{print \$8, \$5}' $LOGS/$name-fresh-server.out | sort)\" ]"
	check "$name: new connections tunnel again (both agents count them)" \
		[ "$(json_get A 'd["counters"]["flows_tunneled"]')" -ge $((a_tun + 2)) -a \
		  "$(json_get B 'd["counters"]["flows_tunneled"]')" -ge $((b_tun + 2)) ]
	for _ in $(seq 100); do
		[ "$(json_get A 'len(d["flows"])')" = 0 ] && [ "$(json_get B 'len(d["flows"])')" = 0 ] && break
		sleep 0.1
	done
	for s in A B; do
		check "$name: no flow entry left in $s's maps" \
			sh -c "$(declare -f map_empty); map_empty $(pin $s)/flows &&
			       map_empty $(pin $s)/held_fins && map_empty $(pin $s)/fin_ok"
	done
}

# Round 0: A's agent dies while B's is frozen (SIGSTOP), so that only A's tc
# can act: a FIN that A held must reach its app as an RST, not an EOF, and
# what A's app sends after the kill must not reach B's app behind the
# bytes that died with the agent.
orphan_round() {
	local a_pid b_pid go=$LOGS/orphan-go stop=$LOGS/orphan-stop \
		rpid spid recv_pid t0 t rst drop
	a_pid=$(agent_pid A)
	b_pid=$(agent_pid B)
	in_ns B timeout 60 python3 "$ORPHAN" fin-writer $IP_B 7401 65536 "$go" \
		>"$LOGS/orphan-writer.out" 2>&1 &
	in_ns B timeout 60 python3 "$COUNTERS" receive $IP_B 7402 \
		>"$LOGS/orphan-receiver.out" 2>&1 &
	recv_pid=$!
	for _ in $(seq 50); do
		grep -qs listening "$LOGS/orphan-writer.out" &&
			grep -qs listening "$LOGS/orphan-receiver.out" && break
		sleep 0.1
	done
	in_ns A timeout 60 python3 "$ORPHAN" reader $IP_B 7401 >"$LOGS/orphan-reader.out" 2>&1 &
	rpid=$!
	# Sending until told: still at it when the agent dies, however long
	# the set-up took (4 s of sending were over before it under load).
	rm -f "$stop"
	in_ns A timeout 60 python3 "$COUNTERS" send $IP_B 7402 30 "$stop" \
		>"$LOGS/orphan-sender.out" 2>&1 &
	spid=$!
	for _ in $(seq 100); do
		[ "$(json_get A 'd["tunnels"]')" = 2 ] &&
			[ "$(json_get A 'd["counters"]["tunnel_bytes_tx"]')" -gt 0 ] && break
		sleep 0.1
	done
	kill -STOP "$a_pid"
	touch "$go" # B's app sends 64 KiB and its FIN; A's tc holds the FIN
	sleep 0.5
	kill -STOP "$b_pid"
	t0=$(date +%s%N)
	kill -KILL "$a_pid"
	wait "$a_pid" 2>/dev/null
	wait $rpid
	t=$((($(date +%s%N) - t0) / 1000000))
	say "A killed, B frozen: reader: $(cat "$LOGS/orphan-reader.out") after $t ms"
	check "A killed, B frozen: the held FIN reached the app as a reset, not an EOF" \
		grep -q 'then ECONNRESET' "$LOGS/orphan-reader.out"
	check "A killed, B frozen: ... within 10 s" [ $t -lt 10000 ]
	sleep 1 # the sender goes on without its agent: tc drops it
	touch "$stop"
	wait $spid
	kill -CONT "$b_pid"
	wait $recv_pid
	say "A killed, B frozen: A's app $(cat "$LOGS/orphan-sender.out"); B's app $(tail -n1 "$LOGS/orphan-receiver.out")"
	check "A killed, B frozen: B's app read no byte behind a gap" \
		grep -q 'contiguous' "$LOGS/orphan-receiver.out"
	mv "$LOGS/agent-A.log" "$LOGS/agent-A.orphan.log"
	start_agent A || { fail "A restarts"; return; }
	rst=$(grep -o '[0-9]* peer segments became RSTs' "$LOGS/agent-A.log" | cut -d' ' -f1)
	drop=$(grep -o '[0-9]* app segments were dropped' "$LOGS/agent-A.log" | cut -d' ' -f1)
	check "A killed, B frozen: A's tc made RSTs ($rst) and dropped app bytes ($drop)" \
		[ "${rst:-0}" -ge 1 -a "${drop:-0}" -ge 1 ]
}

orphan_round
say "$SECONDS s"
kill_round A
say "$SECONDS s"
fresh_round A-restarted
say "$SECONDS s"
kill_round B
say "$SECONDS s"
fresh_round B-restarted
say "$SECONDS s"
exit $FAILED
