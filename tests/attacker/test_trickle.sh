#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A local user against the agent's listeners (issue 14). In domain A, as
# `nobody` and in the app cgroup (where a local user's processes live):
# 32 clients trickle an endless request into the metrics port, one byte
# every 150 ms, 4 more send requests over the size bound, all of them
# reconnecting whenever dropped; `nobody` must not reach the control
# socket at all, so root clients trickle into it and sit idle there. For
# the whole attack `fastivc status` must answer within 1 s every 200 ms,
# three transfers A->B must finish through the tunnel with equal SHA-256
# at both ends, and the agent must count its drops (and log them once).
. "$(dirname "$0")/../netns/lib.sh"
PY=/usr/bin/python3 # Debian's: `nobody` cannot run a pyenv shim
TRICKLE=$(dirname "$0")/trickle.py
SECONDS_ATTACK=${SECONDS_ATTACK:-10}
BYTES=${BYTES:-$((1 << 20))}
MPORT=9464
CTL_N=${CTL_N:-8} # of each kind: 16 in all, the bound
FAILED=0
[ -x $PY ] || { skip "attacker tests: $PY missing"; exit 77; }
command -v setpriv >/dev/null || { skip "attacker tests: setpriv missing"; exit 77; }
netns_setup
agents_up --set metrics_listen=127.0.0.1:$MPORT || { fail "agents start"; exit 1; }
SOCK=$RUN/$TAG-a.sock

NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
# attack NAME nobody|root TRICKLE-ARGS...: in A's namespace and app cgroup.
attack() {
	local name=$1 who=()
	[ "$2" = nobody ] && who=("${NOBODY[@]}")
	shift 2
	in_ns A "${who[@]}" $PY - "$@" <"$TRICKLE" >"$LOGS/$name.out" 2>&1
}
ctr() { # ctr SIDE NAME: a counter from status --json
	json_get "$1" "d['counters'].get('$2', -1)"
}

check "nobody cannot connect to the control socket (EACCES)" \
	in_ns A "${NOBODY[@]}" $PY -c "
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(0)
sys.exit(1)" "$SOCK"

tx0=$(ctr A tunnel_bytes_tx) rx0=$(ctr B tunnel_bytes_rx)
say "attack: ${SECONDS_ATTACK} s; 32 trickling + 4 oversized metrics clients (nobody), $CTL_N trickling + $CTL_N idle control clients (root)"
pids=()
attack m-trickle nobody tcp 127.0.0.1:$MPORT metrics 32 "$SECONDS_ATTACK" &
pids+=($!)
attack m-large nobody tcp 127.0.0.1:$MPORT large 4 "$SECONDS_ATTACK" &
pids+=($!)
attack c-trickle root unix "$SOCK" control "$CTL_N" "$SECONDS_ATTACK" &
pids+=($!)
attack c-idle root unix "$SOCK" idle "$CTL_N" "$SECONDS_ATTACK" &
pids+=($!)
sleep 0.5

# Status every 200 ms for the attack: "milliseconds exit-code" per line.
(
	end=$(($(date +%s) + SECONDS_ATTACK - 1))
	while [ "$(date +%s)" -lt "$end" ]; do
		t0=$(date +%s%N)
		timeout 5 "$FASTIVC" status -i "$TAG-a" --run-dir "$RUN" --quiet \
			2>>"$LOGS/status-errors"
		rc=$?
		echo "$((($(date +%s%N) - t0) / 1000000)) $rc"
		sleep 0.2
	done
) >"$LOGS/status-times" &
poller=$!
# A well-behaved scraper meanwhile: "ok" or the error, one line per try.
nsenter --net="/run/netns/$NS_A" $PY - "$MPORT" "$SECONDS_ATTACK" >"$LOGS/scrapes" 2>&1 <<'PY' &
import sys, time, urllib.request
url, end = "http://127.0.0.1:%s/metrics" % sys.argv[1], time.time() + float(sys.argv[2]) - 1.5
while time.time() < end:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        print("ok", flush=True)
    except Exception as e:
        print(repr(e), flush=True)
    time.sleep(0.5)
PY
scraper=$!

# Victims: three transfers started during the attack, each with its own
# server in B; blast hashes what each end sent and received.
sleep 1
victims=()
for i in 1 2 3; do
	in_ns B timeout 30 "$BLAST" server $IP_B $((5300 + i)) --conns 1 --bytes "$BYTES" \
		>"$LOGS/server-$i.out" 2>&1 &
	victims+=($!)
done
for i in 1 2 3; do
	for _ in $(seq 50); do grep -qs listening "$LOGS/server-$i.out" && break; sleep 0.1; done
	in_ns A timeout 30 "$BLAST" client $IP_B $((5300 + i)) --conns 1 --bytes "$BYTES" \
		>"$LOGS/client-$i.out" 2>&1 &
	victims+=($!)
done
vrc=0
for p in "${victims[@]}"; do wait "$p" || vrc=1; done
wait $poller $scraper
for p in "${pids[@]}"; do wait "$p"; done

read -r n_status max_ms n_slow n_fail < <(awk '{ n++; if ($1 > m) m = $1; if ($1 > 1000) s++;
	if ($2 != 0) f++ } END { print n + 0, m + 0, s + 0, f + 0 }' "$LOGS/status-times")
say "status during the attack: $n_status asked, slowest $max_ms ms, $n_slow over 1 s, $n_fail failed"
sort "$LOGS/status-errors" 2>/dev/null | uniq -c | sed "s/^ */# status error x/"
check "status answered every 200 ms poll within 1 s during the attack" \
	[ "$n_status" -ge 5 -a "$n_slow" = 0 -a "$n_fail" = 0 ]
say "metrics scrapes during the attack: $(grep -c '^ok' "$LOGS/scrapes") of $(wc -l <"$LOGS/scrapes") answered"
for f in m-trickle m-large c-trickle c-idle; do say "$f: $(tail -1 "$LOGS/$f.out")"; done

same_sha() { # the client's sent digest is the server's received, and back
	local c s
	c=$(grep '^conn 0' "$LOGS/client-$1.out") s=$(grep '^conn 0' "$LOGS/server-$1.out")
	[ -n "$c" -a -n "$s" ] || return 1
	# conn 0 sent N SHA received N SHA: client's, then server's
	set -- $c $s
	[ "$5" = "${16}" -a "$8" = "${13}" -a "$4" = "$BYTES" -a "$7" = "$BYTES" \
		-a "${12}" = "$BYTES" -a "${15}" = "$BYTES" ]
}
check "the 3 transfers finished (none hung or failed)" [ $vrc = 0 ]
for i in 1 2 3; do
	check "transfer $i: SHA-256 of $BYTES bytes equal at both ends, each way" same_sha $i
done
sleep 0.5
dtx=$(($(ctr A tunnel_bytes_tx) - tx0)) drx=$(($(ctr B tunnel_bytes_rx) - rx0))
say "tunnel bytes: A tx +$dtx, B rx +$drx (3 x $BYTES sent)"
check "the transfers went through the tunnel: A's tunnel_bytes_tx grew by >= 3 x $BYTES" \
	[ "$dtx" -ge $((3 * BYTES)) ]
check "... and B's tunnel_bytes_rx by the same (each byte counted once)" [ "$drx" = "$dtx" ]

# Fewer trickling clients than the bound: held until their deadline.
say "then 8 trickling metrics clients (nobody) for 2.5 s"
attack m-few nobody tcp 127.0.0.1:$MPORT metrics 8 2.5
say "m-few: $(tail -1 "$LOGS/m-few.out")"
drops=$(json_get A "' '.join(str(d['counters'].get(k, -1)) for k in
	('metrics_clients_dropped_deadline', 'metrics_clients_dropped_too_many',
	 'metrics_clients_dropped_too_large', 'control_clients_dropped_deadline'))")
say "drops (metrics deadline, too many, too large; control deadline): $drops"
read -r md mm ml cd <<<"$drops"
check "metrics drops counted: deadline, too many, too large" [ "$md" -gt 0 -a "$mm" -gt 0 -a "$ml" -gt 0 ]
check "control drops counted: deadline" [ "$cd" -gt 0 ]
metrics_has() { # metrics_has TEXT: A's /metrics holds TEXT
	nsenter --net="/run/netns/$NS_A" $PY - "$MPORT" "$1" <<'PY'
import sys, urllib.request
url = "http://127.0.0.1:%s/metrics" % sys.argv[1]
sys.exit(sys.argv[2] not in urllib.request.urlopen(url, timeout=2).read().decode())
PY
}
check "metrics answer after the attack and show the drops" \
	metrics_has 'fastivc_clients_dropped_total{listener="metrics",cause="deadline"}'
nlog=$(grep -c 'dropping clients' "$LOGS/agent-A.log")
say "agent A logged $nlog 'dropping clients' lines"
check "drops logged once per listener and episode, not per client" [ "$nlog" -ge 1 -a "$nlog" -le 4 ]
check "agent A still runs" kill -0 "${AGENT_PIDS[0]}"
exit $FAILED
