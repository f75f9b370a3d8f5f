#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# An app in its own network namespace, as a Kubernetes pod is: namespace P
# behind A (a veth, A forwards), its processes in A's app cgroup, A's
# agent in A. The agent's write-space poke, a segment (an ACK with our
# option, taken by sockops), must reach P's namespace. Over plain TCP and
# through fastivc:
# a server in P writes 32 MiB to a client in B that reads nothing for 3 s,
# waiting for room with epoll edge-triggered and blocking; it must finish,
# every byte read. The other way, a reader in P that reads nothing for 3 s
# holds no more unread than the agent's window: sock_diag does not see P's
# namespace, the agent's rmem probe does. And a connection from P to a
# Service address stays on plain TCP with its reason (the DNAT is not where
# tc sees the socket). docs/steering.md, "Backpressure with bounded memory",
# "Service addresses".
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
netns_setup
NS_P=$TAG-p
IP_P=10.78.0.2
cleanup() {
	netns_cleanup
	ip netns pids "$NS_P" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$NS_P" 2>/dev/null
}
trap cleanup EXIT
ip netns add "$NS_P"
ip link add "$TAG-pa" type veth peer name "$TAG-pp"
ip link set "$TAG-pa" netns "$NS_A"
ip link set "$TAG-pp" netns "$NS_P"
ip -n "$NS_A" addr add 10.78.0.1/24 dev "$TAG-pa"
ip -n "$NS_P" addr add $IP_P/24 dev "$TAG-pp"
ip -n "$NS_A" link set "$TAG-pa" up
ip -n "$NS_P" link set "$TAG-pp" up
ip -n "$NS_P" link set lo up
ip -n "$NS_P" route add default via 10.78.0.1
ip netns exec "$NS_A" sysctl -qw net.ipv4.ip_forward=1
ip -n "$NS_B" route add 10.78.0.0/24 via $IP_A
WINDOW=$((4 << 20)) # the default, named for the paused reader's bound
agents_up --set services=10.96.0.0/12 --set window=$WINDOW || { fail "agents start"; exit 1; }

in_pod() { # CMD...: in P's namespace and A's app cgroup
	sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec nsenter --net="/run/netns/$@"' \
		sh "$CG_A" "$NS_P" "$@"
}
pod_peer() { # add|del: B names P's address as A's domain
	if [ "$1" = add ]; then fivc B peer add $IP_P/32 $DOM_A; else fivc B peer del $IP_P/32 2>/dev/null; fi
}
ctr() { json_get A "d[\"counters\"][\"$1\"]"; }
stat() { json_get A "d[\"bpf\"][\"$1\"]"; }

# blocked NAME STYLE [WHERE [LATE]]: a server in P (or in A: WHERE=A)
# writes 32 MiB, waiting in STYLE; B's client reads nothing for 3 s, then
# all. Both must finish in time. LATE=late: A's agent is stopped for 1 s
# from the connect on, so that the app fills X before the agent sees its
# flow (until this was handled, the edge of X's first drain was taken for
# its registration and such a writer hung, in either namespace).
port=7100
blocked() {
	local name=$1 style=$2 where=${3:-P} late=${4:-} run=in_pod addr=$IP_P w wrc got
	[ "$where" = A ] && run="in_ns A" addr=$IP_A
	port=$((port + 1))
	$run timeout 30 python3 tests/bench/blocked_writer.py server $addr $port "$style" \
		>"$LOGS/writer-$port.out" 2>&1 &
	w=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/writer-$port.out" && break; sleep 0.1; done
	if [ "$late" = late ]; then
		kill -STOP "${AGENT_PIDS[0]}"
		(sleep 1; kill -CONT "${AGENT_PIDS[0]}") &
	fi
	got=$(in_ns B timeout 30 python3 tests/bench/blocked_writer.py client $addr $port 3)
	wait $w
	wrc=$?
	say "$name: writer rc $wrc ($(tail -1 "$LOGS/writer-$port.out")), reader: $got"
	check "$name: the writer in $where finished and B read all 32 MiB" \
		[ $wrc = 0 -a "$got" = "got $((32 << 20))" ]
}

for style in epoll-et blocking; do
	pod_peer del
	tunnel_mark
	blocked "plain TCP, $style" $style
	check "plain TCP, $style: nothing went through a tunnel" [ "$(tunnel_moved A)" = "0 0" ]

	pod_peer add
	tunnel_mark
	pokes=$(ctr pokes) taken=$(stat pokes_taken)
	blocked "fastivc, $style" $style
	check_tunneled "fastivc, $style" A $((32 << 20))
	if [ $style = epoll-et ]; then
		pokes=$(($(ctr pokes) - pokes)) taken=$(($(stat pokes_taken) - taken))
		check "fastivc, $style: A's agent poked P's socket with segments ($pokes), and sockops took them ($taken)" \
			[ $pokes -gt 0 -a $taken -gt 0 ]
	else
		check "fastivc, $style: none taken (X wakes a blocking sender itself)" \
			[ "$(stat pokes_taken)" = "$taken" ]
	fi
done

blocked "fastivc, epoll-et, A's agent late" epoll-et P late
blocked "fastivc, epoll-et, in A's namespace, A's agent late" epoll-et A late

# paused NAME: B's writer sends 32 MiB of random bytes to a reader in P
# that reads nothing for 3 s, then 16 MiB slowly (256 KiB per 25 ms), then
# the rest; both SHA-256 must match. RMEM, RMEM_SLOW: the most P's socket
# held unread (ss's skmem r, its sk_rmem_alloc, injected bytes included)
# during the pause and during the slow reads, sampled every 0.1 s.
paused() {
	local name=$1 w r v sent got out
	port=$((port + 1))
	out="$LOGS/preader-$port.out"
	in_ns B timeout 60 python3 tests/netns/paused_reader.py writer $IP_B $port $((32 << 20)) \
		>"$LOGS/pwriter-$port.out" 2>&1 &
	w=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/pwriter-$port.out" && break; sleep 0.1; done
	in_pod timeout 60 python3 tests/netns/paused_reader.py reader $IP_B $port 3 $((16 << 20)) \
		>"$out" 2>&1 &
	r=$!
	RMEM=0 RMEM_SLOW=0
	while kill -0 $r 2>/dev/null; do
		v=$(nsenter --net="/run/netns/$NS_P" ss -tmnH dst $IP_B:$port |
			sed -n 's/.*skmem:(r\([0-9]*\),.*/\1/p')
		# Where the reader was once the sample was taken.
		grep -qs fast "$out" && break
		if grep -qs reading "$out"; then
			[ "${v:-0}" -gt $RMEM_SLOW ] && RMEM_SLOW=$v
		else
			[ "${v:-0}" -gt $RMEM ] && RMEM=$v
		fi
		sleep 0.1
	done
	wait $r
	wait $w
	sent=$(tail -1 "$LOGS/pwriter-$port.out") got=$(tail -1 "$out")
	say "$name: writer: $sent; reader: $got; P's socket held up to $RMEM B unread in the pause, $RMEM_SLOW B in the slow reads"
	check "$name: 32 MiB from B to P, SHA-256 equal at both ends" \
		[ "$sent" = "${got/got/sent}" -a "${sent% *}" = "sent $((32 << 20))" ]
}

pod_peer del
tunnel_mark
paused "plain TCP, a paused reader in P"
tcp_rmem=$RMEM
check "plain TCP, a paused reader in P: nothing went through a tunnel" [ "$(tunnel_moved B)" = "0 0" ]

pod_peer add
tunnel_mark
probes=$(ctr rmem_probes)
paused "fastivc, a paused reader in P"
probes=$(($(ctr rmem_probes) - probes))
check_tunneled "fastivc, a paused reader in P" B $((32 << 20))
say "unread in P's socket during the pause: fastivc $RMEM B (window $WINDOW B), plain TCP $tcp_rmem B; $probes rmem probes"
check "fastivc, a paused reader in P: its unread bytes <= window + 10%" \
	[ $RMEM -le $((WINDOW * 11 / 10)) ]
# A resume counts what the app still holds: not window/2 + window.
check "fastivc, a slow reader in P: its unread bytes <= window + 10% ($RMEM_SLOW)" \
	[ $RMEM_SLOW -le $((WINDOW * 11 / 10)) ]
check "fastivc, a paused reader in P: the window filled (the test measured something)" \
	[ $RMEM -ge $((WINDOW / 2)) ]
# The 1 ms re-measure probes only while a flow is paused.
check "fastivc, a paused reader in P: A's agent paused it and re-measured it through the probe ($probes probes)" \
	[ $probes -gt 100 ]

# A Service address from P: kube-proxy's DNAT (in A's PREROUTING here) sends
# it to B, but A's tc never sees P's socket: TCP, with the reason, even
# where a peers prefix happens to cover the Service range.
ip netns exec "$NS_A" nft -f - <<EOF || fail "the DNAT rule loads"
table ip kube-proxy {
	chain nat-prerouting {
		type nat hook prerouting priority -100; policy accept;
		ip daddr 10.96.0.10 tcp dport 80 dnat to $IP_B:8080
	}
}
EOF
in_ns B python3 tests/netns/both_ways.py server $IP_B 8080 1 $((1 << 20)) >"$LOGS/svc-server.out" 2>&1 &
for _ in $(seq 50); do grep -qs listening "$LOGS/svc-server.out" && break; sleep 0.1; done
fivc A peer add 10.96.0.0/12 $DOM_B
tunnel_mark
before=$(stat service_other_netns)
both_ways_check "a Service from P, over plain TCP" \
	"$(in_pod timeout 30 python3 tests/netns/both_ways.py client 10.96.0.10 80 $((1 << 20)))" \
	"$LOGS/svc-server.out" 1 $((1 << 20))
check "a Service from P: nothing went through a tunnel" [ "$(tunnel_moved A)" = "0 0" ]
check "a Service from P: counted as service_other_netns" \
	[ "$(stat service_other_netns)" = $((before + 1)) ]
exit $FAILED
