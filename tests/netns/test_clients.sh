#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Real clients, unmodified, across the tunnel. Each case checks that the
# client succeeded AND that the agents' counters carried its bytes, per
# direction: the sender's agent sent them, the receiver's delivered them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
netns_setup
agents_up || { fail "agents start"; exit 1; }

wait_port() { # wait_port SIDE PORT: until something listens there
	local ns=$NS_B
	[ "$1" = A ] && ns=$NS_A
	for _ in $(seq 100); do
		ip netns exec "$ns" ss -ltn "sport = :$2" | grep -q LISTEN && return 0
		sleep 0.1
	done
	return 1
}

# --- iperf3 -P 8, both directions ---------------------------------------
if command -v iperf3 >/dev/null; then
	in_ns B iperf3 -s -p 5201 -D --logfile "$LOGS/iperf3-server.log"
	wait_port B 5201
	for dir in "" "-R"; do
		name="iperf3 -P 8 ${dir:-forward}"
		from=A
		[ "$dir" = -R ] && from=B # the server sends
		tunnel_mark
		in_ns A timeout 60 iperf3 -c $IP_B -p 5201 -P 8 -t 3 $dir -J \
			>"$LOGS/iperf3$dir.json" 2>&1
		rc=$?
		bytes=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["end"]["sum_received"]["bytes"]))' \
			"$LOGS/iperf3$dir.json" 2>/dev/null || echo 0)
		say "$name: $bytes bytes received"
		check "$name: exit 0 and data received" [ $rc = 0 -a "$bytes" -gt 0 ]
		check_tunneled "$name" $from "$bytes"
	done
else
	skip "iperf3: not installed"
fi

# --- curl: a large file from an HTTP/1.0 server that closes after it ------
FILE=$LOGS/www/big.bin
mkdir -p "$LOGS/www"
head -c $((256 << 20)) /dev/urandom >"$FILE"
head -c 1 /dev/urandom >"$LOGS/www/small0.bin"
head -c 1000 /dev/urandom >"$LOGS/www/small1.bin"
head -c 70000 /dev/urandom >"$LOGS/www/small2.bin"
(cd "$LOGS/www" && in_ns B python3 -m http.server 8080 --bind $IP_B \
	>"$LOGS/http.log" 2>&1 &)
wait_port B 8080
tunnel_mark
in_ns A timeout 120 curl -sS -o "$LOGS/big.got" "http://$IP_B:8080/big.bin"
rc=$?
check "curl 256 MiB over HTTP/1.0: exit 0" [ $rc = 0 ]
check "curl 256 MiB: SHA-256 matches" \
	[ "$(sha256sum <"$FILE")" = "$(sha256sum <"$LOGS/big.got" 2>/dev/null)" ]
check_tunneled "curl 256 MiB" B $((256 << 20))
rm -f "$LOGS/big.got"
# Many short request-then-close exchanges: the server's FIN must never
# overtake its response. Each of them takes a tunnel: both agents count 60
# more, and the bodies (20 of each size) come through tunnels.
bad=0
tunnel_mark
tun0="$(json_get A 'd["counters"]["flows_tunneled"]') $(json_get B 'd["counters"]["flows_tunneled"]')"
for i in $(seq 60); do
	f=small$((i % 3)).bin
	in_ns A timeout 10 curl -sS -o "$LOGS/small.got" "http://$IP_B:8080/$f" &&
		cmp -s "$LOGS/small.got" "$LOGS/www/$f" || bad=$((bad + 1))
done
check "60 HTTP/1.0 request-then-close exchanges (1 B, 1000 B, 70 kB): none lost" [ $bad = 0 ]
set -- $tun0
tun=$(($(json_get A 'd["counters"]["flows_tunneled"]') - $1)):$(($(json_get B 'd["counters"]["flows_tunneled"]') - $2))
check "60 request-then-close exchanges: each took a tunnel at both ends (A:B $tun)" [ "$tun" = 60:60 ]
check_tunneled "60 request-then-close exchanges" B $((20 * (1 + 1000 + 70000)))

# --- redis-server + redis-benchmark (event-driven, non-blocking) -------
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
	in_ns B redis-server --port 6379 --bind $IP_B --save '' --appendonly no \
		--protected-mode no --daemonize yes --logfile "$LOGS/redis.log"
	wait_port B 6379
	tunnel_mark
	in_ns A timeout 120 redis-benchmark -h $IP_B -p 6379 -q -n 20000 -c 20 \
		-t set,get,lpush,lpop >"$LOGS/redis-bench.out" 2>&1
	rc=$?
	say "$(tr '\r' '\n' <"$LOGS/redis-bench.out" | grep -E 'requests per second' | tr '\n' ' ')"
	check "redis-benchmark: exit 0, every test reported" \
		[ $rc = 0 -a "$(tr '\r' '\n' <"$LOGS/redis-bench.out" | grep -c 'requests per second')" -ge 4 ]
	# 80000 requests of 26 bytes or more (LPOP: *2 $4 LPOP $6 mylist),
	# 80000 replies of 4 bytes or more (LPUSH: ":N\r\n")
	check_tunneled "redis-benchmark requests" A $((80000 * 26))
	check_tunneled "redis-benchmark replies" B $((80000 * 4))
else
	skip "redis: not installed"
fi
check "no flow failed on either side" \
	[ "$(json_get A 'd["counters"]["flows_failed"]')" = 0 -a "$(json_get B 'd["counters"]["flows_failed"]')" = 0 ]
exit $FAILED
