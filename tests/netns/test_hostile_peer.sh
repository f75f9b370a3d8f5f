#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A malicious peer agent (tests/tools/hostile_peer) against a real victim
# agent built with ASan+UBSan: for each way of breaking the ring it offered
# (size > S, generation jump, pend_read > K, close over an empty channel,
# random headers) the victim tears that tunnel down with one log line, the
# app sees its connection reset, and the agent stays up and serves new
# connections. Also the modes of what the agent creates (docs/security.md).
#
# Domain B runs a real agent for the handshake option only; its link dir is
# its own, so the victim A's only link to domain B is the fake peer's.
. "$(dirname "$0")/lib.sh"
FAILED=0
ASAN_O=${ASAN_O:-build/asan-agent}
ASAN_FASTIVC=$PWD/$ASAN_O/fastivc
HOSTILE=$PWD/$O/tools/hostile_peer
RR=$PWD/$O/tools/rr
MODES=(size gen pend close random)
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
fivc A peer add $IP_B/32 $DOM_B && fivc B peer add $IP_A/32 $DOM_A ||
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
for mode in "${MODES[@]}"; do
	before=$(grep -c 'peer broke the tunnel protocol' "$LOGS/agent-A.log")
	got=$(in_ns A python3 -c "$CLIENT" $IP_B $PORT wait 2>&1)
	say "$mode: the app saw $got"
	check "$mode: the fake peer set the tunnel up" grep -qx "$mode up" "$LOGS/hostile.out"
	# SOCK_DESTROY reports ECONNABORTED to the local app (tcp_abort).
	check "$mode: the app's connection is reset ($got)" \
		[ "$got" = ECONNRESET -o "$got" = ECONNABORTED ]
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

kill "$VICTIM"
wait "$VICTIM"
check "victim agent exits cleanly" [ $? = 0 ]
check "no ASan or UBSan report from the victim" \
	sh -c "! grep -E 'AddressSanitizer|LeakSanitizer|runtime error' $LOGS/agent-A.log"
[ $FAILED = 0 ] || tail -30 "$LOGS/agent-A.log" | sed 's/^/# A: /'
exit $FAILED
