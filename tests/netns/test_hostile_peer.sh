#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A malicious peer agent (tests/tools/hostile_peer) against a real victim
# agent built with ASan+UBSan: for each way of breaking the ring it offered
# (size > S, generation jump, pend_read > K, close over an empty channel,
# random headers) the victim tears that tunnel down with one log line, the
# app sees ECONNRESET from the victim's RST (IPv4, and once IPv6), the
# server's end in domain B is reset too, and the agent stays up and serves
# new connections. Also the modes of what the agent creates (docs/security.md).
# Then attacks on the link itself, from a fake peer speaking for a third
# domain while A and B have a real link (docs/security.md, "Link frames and
# parked messages"): (a) frames trickled a byte at a time and one never
# finished, (b) 5000 CREATEs for flows that do not exist, (c) a HELLO never
# finished, (d) a peer that never reads what the victim answers. Each time the victim must answer status within 1 s, keep its
# fds and parked messages bounded, drop the link on its deadline with a
# counter and one log line, and carry a transfer with B through the tunnel.
# Then (e) ring ids (docs/steering.md, "Ring reuse"): CREATEs naming
# a ring out of range, never offered, still read by a live flow, or cached
# with another geometry are refused (EINVAL, EBUSY), counted (ring_refused)
# and said once per cause, and the connection goes on over plain TCP.
#
# Domain B runs a real agent for the handshake option only; its link dir is
# its own, so the victim A's only link to domain B is the fake peer's.
. "$(dirname "$0")/lib.sh"
FAILED=0
ASAN_O=${ASAN_O:-build/asan-agent}
ASAN_FASTIVC=$PWD/$ASAN_O/fastivc
HOSTILE=$PWD/$O/tools/hostile_peer
RR=$PWD/$O/tools/rr
MODES=(size gen pend close random size)
# Where each mode's client connects: the last one over IPv6.
MODE_ADDR=($IP_B $IP_B $IP_B $IP_B $IP_B $IP6_B)
PORT=5301
netns_setup

[ -x "$HOSTILE" ] && [ -x "$RR" ] || { fail "tools built: $HOSTILE $RR"; exit 1; }
# The victim under ASan+UBSan: its own build folder, built once.
if ! make --no-print-directory -s O="$ASAN_O" SAN=address,undefined \
	"$ASAN_O/fastivc" >"$LOGS/asan-build.log" 2>&1; then
	cat "$LOGS/asan-build.log"
	fail "victim agent builds with SAN=address,undefined"
	exit 1
fi
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1

start_agent B --set link_dir="$RUN/link-b" || { fail "agent B starts"; exit 1; }
FASTIVC=$ASAN_FASTIVC start_agent A || { fail "victim agent A (ASan) starts"; exit 1; }
VICTIM=${AGENT_PIDS[1]}
fivc A peer add $IP_B/32 $DOM_B && fivc B peer add $IP_A/32 $DOM_A &&
	fivc A peer add $IP6_B/128 $DOM_B && fivc B peer add $IP6_A/128 $DOM_A ||
	{ fail "peers added"; exit 1; }

# What the agent creates: root only (docs/security.md, "Local users").
mode_is() { [ "$(stat -c %a "$2")" = "$1" ]; }
check "link dir is 0700" mode_is 700 "$RUN/link"
check "link socket is 0600" mode_is 600 "$RUN/link/dom$DOM_A.sock"
check "control socket is 0600" mode_is 600 "$RUN/$TAG-a.sock"
check "pin dir is 0700" mode_is 700 "/sys/fs/bpf/fastivc/$TAG-a"
check "pinned maps are 0600" sh -c "! find /sys/fs/bpf/fastivc/$TAG-a -type f ! -perm 600 | grep -q . &&
	[ -e /sys/fs/bpf/fastivc/$TAG-a/peers ]"
check "a non-root user cannot reach the link socket" sh -c "setpriv --reuid=65534 --regid=65534 \
	--clear-groups $HOSTILE $RUN/link/dom$DOM_A.sock $DOM_B size </dev/null 2>&1 |
	grep -q 'Permission denied'"

in_ns B "$RR" server $IP_B $PORT >"$LOGS/rr.log" 2>&1 &
in_ns B "$RR" server $IP6_B $PORT >"$LOGS/rr6.log" 2>&1 &
sleep 0.3

# client ADDR PORT wait|echo: "wait" prints what the connection came to
# (an errno name, EOF, data or timeout); "echo" a round trip's verdict,
# its first byte sent once the agent had time to see there is no link
# (a byte captured before that is reset by design, docs/steering.md).
CLIENT='import errno, socket, sys, time
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    if sys.argv[3] == "echo":
        time.sleep(0.5)
        s.sendall(b"ping" * 4096)
        got = b""
        while len(got) < 4 * 4096:
            d = s.recv(65536)
            if not d:
                break
            got += d
        print("echoed" if got == b"ping" * 4096 else "short %d" % len(got))
    else:
        print("data" if s.recv(1) else "EOF")
except socket.timeout:
    print("timeout")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))'

mkfifo "$LOGS/hold"
"$HOSTILE" "$RUN/link/dom$DOM_A.sock" $DOM_B "${MODES[@]}" <"$LOGS/hold" \
	>"$LOGS/hostile.out" 2>"$LOGS/hostile.err" &
HPID=$!
exec 3>"$LOGS/hold"
# TCP connections of domain B that an RST ended.
b_resets() { ip netns exec "$NS_B" nstat -az TcpEstabResets | awk '/TcpEstabResets/ {print $2}'; }
for i in "${!MODES[@]}"; do
	mode=${MODES[$i]} addr=${MODE_ADDR[$i]}
	[ "$addr" = "$IP6_B" ] && mode="$mode (IPv6)"
	before=$(grep -c 'peer broke the tunnel protocol' "$LOGS/agent-A.log")
	rst=$(json_get A "d['counters']['resets_rst']")
	abort=$(json_get A "d['counters']['resets_abort']")
	peer_resets=$(b_resets)
	got=$(in_ns A python3 -c "$CLIENT" "$addr" $PORT wait 2>&1)
	say "$mode: the app saw $got"
	check "$mode: the fake peer set the tunnel up" grep -qx "${mode% (IPv6)} up" "$LOGS/hostile.out"
	# As for an RST from the network (agent/reset.c); SOCK_DESTROY, the
	# fallback, would say ECONNABORTED.
	check "$mode: the app's connection is reset ($got)" [ "$got" = ECONNRESET ]
	check "$mode: by the agent's RST, not SOCK_DESTROY" \
		[ "$(json_get A "d['counters']['resets_rst']") $(json_get A "d['counters']['resets_abort']")" = "$((rst + 1)) $abort" ]
	check "$mode: the server's end, in domain B, was reset too" [ "$(b_resets)" -gt "$peer_resets" ]
	sleep 0.2
	after=$(grep -c 'peer broke the tunnel protocol' "$LOGS/agent-A.log")
	check "$mode: one log line says the peer broke the protocol" [ $((after - before)) = 1 ]
done
exec 3>&-
wait $HPID
check "the fake peer ran every mode" [ $? = 0 ]
grep 'peer broke the tunnel protocol' "$LOGS/agent-A.log" | sed 's/^/# /'

check "victim agent still runs" kill -0 "$VICTIM"
check "victim's status answers" sh -c "$FASTIVC status -i $TAG-a --run-dir $RUN >/dev/null"
# Each reset flow is freed once its app closed: rings unmapped, slot back.
flows_left() { [ "$($FASTIVC status -i $TAG-a --run-dir $RUN --json |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)["flows"]))')" = 0 ]; }
for _ in $(seq 50); do flows_left && break; sleep 0.1; done
check "no reset flow is left behind" flows_left
got=$(in_ns A python3 -c "$CLIENT" $IP_B $PORT echo 2>&1)
check "a new connection afterwards carries its bytes ($got)" [ "$got" = echoed ]
check "... on plain TCP: the fake peer's link is gone" \
	grep -q 'no tunnel: no link to the peer agent' "$LOGS/agent-A.log"

# --- Ring ids (docs/steering.md, "Ring reuse") ---------------------
RMODES=(ringrange ringnone ringhold ringbusy ringgeom)
refused0=$(json_get A "d['counters']['ring_refused']")
lines0=$(grep -c 'named ring' "$LOGS/agent-A.log")
mkfifo "$LOGS/hold-ring"
"$HOSTILE" "$RUN/link/dom$DOM_A.sock" $DOM_B "${RMODES[@]}" <"$LOGS/hold-ring" \
	>"$LOGS/ring.out" 2>"$LOGS/ring.err" &
HPID=$!
exec 3>"$LOGS/hold-ring"
sleep 0.3
for mode in ringrange ringnone; do
	got=$(in_ns A python3 -c "$CLIENT" $IP_B $PORT echo 2>&1)
	check "$mode: refused EINVAL" grep -qx "$mode refused EINVAL" "$LOGS/ring.out"
	check "$mode: the connection goes on over plain TCP ($got)" [ "$got" = echoed ]
done
in_ns A python3 -c "$CLIENT" $IP_B $PORT wait >"$LOGS/ringhold.out" 2>&1 &
HOLD=$!
for _ in $(seq 50); do grep -qx 'ringhold up' "$LOGS/ring.out" && break; sleep 0.1; done
check "ringhold: the fake peer's ring 5 carries a live flow" grep -qx 'ringhold up' "$LOGS/ring.out"
got=$(in_ns A python3 -c "$CLIENT" $IP_B $PORT echo 2>&1)
check "ringbusy: naming ring 5 while a flow reads it is refused EBUSY" \
	grep -qx "ringbusy refused EBUSY" "$LOGS/ring.out"
check "ringbusy: the connection goes on over plain TCP ($got)" [ "$got" = echoed ]
wait $HOLD
check "ringbusy: ringhold's flow, reset by the peer after, ended ($(cat "$LOGS/ringhold.out"))" \
	grep -qx ECONNRESET "$LOGS/ringhold.out"
sleep 0.2 # its flow freed
got=$(in_ns A python3 -c "$CLIENT" $IP_B $PORT echo 2>&1)
check "ringgeom: the victim released ring 5 and keeps it cached" \
	grep -qx "released 5 kept 1" "$LOGS/ring.out"
check "ringgeom: naming it with another geometry is refused EINVAL" \
	grep -qx "ringgeom refused EINVAL" "$LOGS/ring.out"
check "ringgeom: the connection goes on over plain TCP ($got)" [ "$got" = echoed ]
exec 3>&-
wait $HPID
check "the fake peer ran every ring mode" [ $? = 0 ]
refused=$(json_get A "d['counters']['ring_refused']")
check "ring ids: 4 refusals counted (ring_refused $refused0 -> $refused)" [ $((refused - refused0)) = 4 ]
check "ring ids: one log line per cause (EINVAL, EBUSY)" \
	[ $(($(grep -c 'named ring' "$LOGS/agent-A.log") - lines0)) = 2 ]
grep 'named ring' "$LOGS/agent-A.log" | sed 's/^/# /'
check "victim agent still runs after the ring modes" kill -0 "$VICTIM"

# --- Link frames and parked messages (docs/security.md) -------------------
# From here on A and B also have a real link (each finds the other's
# socket), and the fake peer speaks for a third domain on its own link:
# what it does to that link must not reach the link to B or its flows.
DOM_EVIL=13
PARK_MAX=128 # 4 x pool (32): agent/park.c
ln -s "$RUN/link-b/dom$DOM_B.sock" "$RUN/link/dom$DOM_B.sock"
ln -s "$RUN/link/dom$DOM_A.sock" "$RUN/link-b/dom$DOM_A.sock"

ctr() { json_get A "d['counters'].get('$1', 'missing')"; }
# status_ms: how long the victim takes to answer `fastivc status --json`,
# in ms (10000: no answer in 10 s); the answer goes to $LOGS/status.json.
status_ms() {
	local t0 t1
	t0=$(date +%s%N)
	timeout 10 "$FASTIVC" status -i "$TAG-a" --run-dir "$RUN" --json \
		>"$LOGS/status.json" 2>/dev/null || { echo 10000; return; }
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
# sample_until SECS FILE PATTERN: every 0.2 s, time a status request and
# count the victim's fds and parked messages, until PATTERN is in FILE or
# SECS passed. Sets SLOWEST (ms), FDS_MAX and PARKED_MAX.
sample_until() {
	local end=$(($(date +%s) + $1)) t n p
	SLOWEST=0 FDS_MAX=0 PARKED_MAX=0
	while [ "$(date +%s)" -lt $end ]; do
		t=$(status_ms)
		[ "$t" -gt $SLOWEST ] && SLOWEST=$t
		n=$(ls /proc/"$VICTIM"/fd | wc -l)
		[ "$n" -gt $FDS_MAX ] && FDS_MAX=$n
		p=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("parked", 0))' \
			"$LOGS/status.json" 2>/dev/null || echo 0)
		[ "$p" -gt $PARKED_MAX ] && PARKED_MAX=$p
		grep -q "$3" "$2" && break
		sleep 0.2
	done
}
# hostile NAME ARGS...: the fake peer for domain 13 in the background, its
# stdin held open until unhold.
hostile() {
	local name=$1
	shift
	rm -f "$LOGS/hold-$name"
	mkfifo "$LOGS/hold-$name"
	"$HOSTILE" "$RUN/link/dom$DOM_A.sock" $DOM_EVIL "$@" <"$LOGS/hold-$name" \
		>"$LOGS/$name.out" 2>&1 &
	HPID=$!
	exec 4>"$LOGS/hold-$name"
}
unhold() { exec 4>&-; wait $HPID; }
# bounded NAME COUNTER BASE LOG-TEXT LINES-BEFORE: the bound's counter grew
# by one since BASE and the agent said so in one log line.
bounded() {
	check "$1: counted ($2 $3 -> $(ctr "$2"))" [ "$(ctr "$2")" = $(($3 + 1)) ]
	check "$1: one log line" \
		[ $(($(grep -c "$4" "$LOGS/agent-A.log") - $5)) = 1 ]
}
# transfer NAME PORT BYTES: BYTES each way between A and B, SHA-256 at both
# ends, and the tunnel counters: every byte through the tunnel, counted
# once (A's bytes_tx = B's bytes_rx = what the client sent, the 8-byte
# index included, and the other way round).
transfer() {
	local name=$1 port=$2 bytes=$3 a0 b0 a1 b1 spid rc
	a0=$(json_get A 'd["counters"]["tunnel_bytes_tx"], d["counters"]["tunnel_bytes_rx"]')
	b0=$(json_get B 'd["counters"]["tunnel_bytes_tx"], d["counters"]["tunnel_bytes_rx"]')
	in_ns B "$BLAST" server $IP_B "$port" --conns 1 --bytes "$bytes" \
		>"$LOGS/server-$name.out" 2>&1 &
	spid=$!
	for _ in $(seq 50); do grep -q listening "$LOGS/server-$name.out" && break; sleep 0.1; done
	in_ns A "$BLAST" client $IP_B "$port" --conns 1 --bytes "$bytes" \
		>"$LOGS/client-$name.out" 2>&1
	rc=$?
	wait $spid || rc=1
	sleep 0.3 # the agents' last ring events
	a1=$(json_get A 'd["counters"]["tunnel_bytes_tx"], d["counters"]["tunnel_bytes_rx"]')
	b1=$(json_get B 'd["counters"]["tunnel_bytes_tx"], d["counters"]["tunnel_bytes_rx"]')
	python3 - "$LOGS/client-$name.out" "$LOGS/server-$name.out" "$bytes" \
		"$rc" "$a0" "$a1" "$b0" "$b1" <<'PY'
import sys
def row(p):
    for line in open(p):
        f = line.split()
        if f and f[0] == "conn":
            return int(f[3]), f[4], int(f[6]), f[7]
    return None
c, s, n, rc = row(sys.argv[1]), row(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
a0, a1, b0, b1 = (tuple(int(x) for x in v.split()) for v in sys.argv[5:9])
ok = rc == "0" and c and s and c[0] == n and s[2] == n or False
ok = ok and c[1] == s[3] and s[1] == c[3] and s[0] == n and c[2] == n
atx, arx, btx, brx = a1[0] - a0[0], a1[1] - a0[1], b1[0] - b0[0], b1[1] - b0[1]
print("# client %s server %s; tunnel A tx %d rx %d, B tx %d rx %d" % (c, s, atx, arx, btx, brx))
ok = ok and atx == brx == n + 8 and btx == arx == n
sys.exit(0 if ok else 1)
PY
}

# (a) Trickled frames: 5 KEEPALIVEs a byte every 80 ms (1.3 s a frame),
# then a header that never ends, while A moves 64 MiB each way with B.
base=$(ctr link_frame_timeouts)
lines0=$(grep -c 'a link frame did not complete' "$LOGS/agent-A.log")
hostile trickle trickle 5 80
sleep 0.3
transfer trickle 5302 $((64 << 20)) >"$LOGS/transfer-trickle.out" 2>&1 &
TPID=$!
sample_until 20 "$LOGS/trickle.out" 'dropped'
wait $TPID
trc=$?
unhold
cat "$LOGS/transfer-trickle.out"
say "trickle: slowest status ${SLOWEST} ms; fake peer: $(tr '\n' ';' <"$LOGS/trickle.out")"
check "trickle: status answered within 1 s throughout (slowest ${SLOWEST} ms)" [ "$SLOWEST" -lt 1000 ]
check "trickle: frames trickled a byte at a time cost nothing" grep -qx trickled "$LOGS/trickle.out"
check "trickle: a transfer with B meanwhile: SHA-256 equal, each byte through the tunnel once" [ $trc = 0 ]
dropped=$(sed -n 's/^dropped after \([0-9.]*\) s$/\1/p' "$LOGS/trickle.out")
check "trickle: the link with the unfinished frame was dropped on the deadline (${dropped:-never} s after its last byte)" \
	python3 -c "import sys; sys.exit(not (0.5 <= float('${dropped:-99}') <= 5))"
bounded "trickle" link_frame_timeouts "$base" 'a link frame did not complete' "$lines0"

# (b) A flood of CREATEs for flows that do not exist, 3 fds each.
sleep 0.5
fds0=$(ls /proc/"$VICTIM"/fd | wc -l)
base=$(ctr parked_refused) exp0=$(ctr parked_expired)
lines0=$(grep -c 'parked messages from domain' "$LOGS/agent-A.log")
hostile flood flood 5000
sample_until 20 "$LOGS/flood.out" 'flooded'
s1=$SLOWEST f1=$FDS_MAX p1=$PARKED_MAX
sample_until 1 /dev/null never
[ $SLOWEST -gt $s1 ] && s1=$SLOWEST
[ $FDS_MAX -gt $f1 ] && f1=$FDS_MAX
[ $PARKED_MAX -gt $p1 ] && p1=$PARKED_MAX
refused=$(ctr parked_refused)
say "flood: $(cat "$LOGS/flood.out" | tr '\n' ';') fds $fds0 -> at most $f1, parked at most $p1, parked_refused $base -> $refused, slowest status $s1 ms"
check "flood: the fake peer sent its 5000 CREATEs" grep -qx 'flooded 5000' "$LOGS/flood.out"
check "flood: status answered within 1 s throughout (slowest ${s1} ms)" [ "$s1" -lt 1000 ]
check "flood: parked messages stayed bounded (at most $p1 <= $PARK_MAX)" [ "$p1" -le $PARK_MAX ]
check "flood: the rest were refused and counted (parked_refused +$((refused - base)))" \
	[ "$refused" != missing ] && [ $((refused - base)) -ge $((5000 - PARK_MAX)) ]
check "flood: the victim's fds stayed bounded ($fds0 -> at most $f1)" \
	[ "$f1" -le $((fds0 + 3 * PARK_MAX + 32)) ]
check "flood: one log line" \
	[ $(($(grep -c 'parked messages from domain' "$LOGS/agent-A.log") - lines0)) = 1 ]
sleep 2.5 # setup_timeout_ms, the link still up: what was parked expires
exp=$(ctr parked_expired)
check "flood: the parked CREATEs expired and were counted (parked_expired $exp0 -> $exp)" \
	[ $((exp - exp0)) -ge 1 ] && [ $((exp - exp0)) -le "$p1" ]
unhold
sleep 0.5
check "flood: the parked fds were closed ($fds0 -> $(ls /proc/"$VICTIM"/fd | wc -l))" \
	[ "$(ls /proc/"$VICTIM"/fd | wc -l)" -le "$fds0" ]
transfer after-flood 5303 $((8 << 20)) >"$LOGS/transfer-flood.out" 2>&1
frc=$?
cat "$LOGS/transfer-flood.out"
check "flood: a later flow is tunneled: SHA-256 equal, each byte through the tunnel once" [ $frc = 0 ]

# (c) A HELLO that never ends.
base=$(ctr link_hello_timeouts)
lines0=$(grep -c 'did not finish its HELLO' "$LOGS/agent-A.log")
hostile hello slowhello
sample_until 12 "$LOGS/hello.out" 'dropped'
unhold
dropped=$(sed -n 's/^dropped after \([0-9.]*\) s$/\1/p' "$LOGS/hello.out")
say "slow hello: slowest status ${SLOWEST} ms; fake peer: $(tr '\n' ';' <"$LOGS/hello.out")"
check "slow hello: status answered within 1 s throughout (slowest ${SLOWEST} ms)" [ "$SLOWEST" -lt 1000 ]
check "slow hello: the link was closed on the deadline (${dropped:-never} s)" \
	python3 -c "import sys; sys.exit(not (1 <= float('${dropped:-99}') <= 6))"
bounded "slow hello" link_hello_timeouts "$base" 'did not finish its HELLO' "$lines0"

# (d) A peer that never reads: FALLBACKs for flows that do not exist, each
# answered with a REJECT that it leaves unread.
base=$(ctr link_out_overflows)
lines0=$(grep -c 'the peer reads nothing' "$LOGS/agent-A.log")
hostile fbflood fbflood 100000
sample_until 30 "$LOGS/fbflood.out" 'dropped'
unhold
sent=$(sed -n 's/^flooded //p' "$LOGS/fbflood.out")
say "no reader: slowest status ${SLOWEST} ms; fake peer: $(tr '\n' ';' <"$LOGS/fbflood.out")"
check "no reader: status answered within 1 s throughout (slowest ${SLOWEST} ms)" [ "$SLOWEST" -lt 1000 ]
check "no reader: the link was dropped once 65536 answers waited (after ${sent:-?} of 100000)" \
	sh -c "grep -q dropped '$LOGS/fbflood.out' && [ '${sent:-100000}' -lt 100000 ]"
bounded "no reader" link_out_overflows "$base" 'the peer reads nothing' "$lines0"

kill "$VICTIM"
wait "$VICTIM"
check "victim agent exits cleanly" [ $? = 0 ]
check "no ASan or UBSan report from the victim" \
	sh -c "! grep -E 'AddressSanitizer|LeakSanitizer|runtime error' $LOGS/agent-A.log"
[ $FAILED = 0 ] || tail -30 "$LOGS/agent-A.log" | sed 's/^/# A: /'
exit $FAILED
