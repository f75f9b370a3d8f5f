#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Listeners the apps opened before their agent started (an agent upgrade or
# restart under running servers): B's servers listen (IPv4 in B's app
# cgroup, IPv6 in a cgroup below it) while no agent runs; A connects over
# plain TCP; then the agents start, B's adopts both listeners, and A's next
# connections to the same listeners go through the tunnel, each way, with
# equal digests. A listener in B's namespace but outside its app cgroup is
# left alone. docs/steering.md, "Listeners opened before the agent".
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
BYTES=${BYTES:-$((16 << 20))}
FAILED=0
netns_setup
CG_SUB=$CG_B/sub
cleanup() {
	netns_cleanup
	for _ in $(seq 20); do rmdir "$CG_SUB" 2>/dev/null && break; sleep 0.1; done
	rmdir "$CG_B" 2>/dev/null
}
trap cleanup EXIT
mkdir "$CG_SUB"

in_cg() { # in_cg CGROUP CMD...: in B's namespace and that cgroup
	local cg=$1
	shift
	sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec nsenter --net="/run/netns/$@"' \
		sh "$cg" "$NS_B" "$@"
}

serve() { # serve NAME CGROUP ADDR PORT: 2 connections, in the background
	in_cg "$2" python3 tests/netns/both_ways.py server "$3" "$4" 2 "$BYTES" \
		>"$LOGS/server-$1.out" 2>&1 &
	for _ in $(seq 50); do grep -qs listening "$LOGS/server-$1.out" && break; sleep 0.1; done
}

# connect NAME ADDR PORT N: A's client; the server's Nth line must match.
connect() {
	both_ways_check "$1" \
		"$(in_ns A timeout 60 python3 tests/netns/both_ways.py client "$2" "$3" "$BYTES")" \
		"$LOGS/server-$1.out" "$4" "$BYTES"
}

serve ipv4 "$CG_B" $IP_B 5301
serve ipv6 "$CG_SUB" $IP6_B 5302
# Outside B's app cgroup: not the apps', never adopted.
nsenter --net="/run/netns/$NS_B" python3 -c 'import socket,time
s=socket.socket(); s.bind(("0.0.0.0", 5303)); s.listen(); time.sleep(600)' &
OUTSIDER=$!

connect ipv4 $IP_B 5301 1
connect ipv6 $IP6_B 5302 1

agents_up --set metrics_listen=127.0.0.1:9464 || { fail "agents start"; exit 1; }
check "B adopted its 2 listeners, not the one outside its cgroup" \
	[ "$(json_get B 'd["listeners"]["adopted"]')" = 2 ]
check "B left none on plain TCP" \
	[ "$(json_get B '"%d %s" % (d["listeners"]["not_adopted"], d["listeners"]["reason"] or "-")')" = "0 -" ]
check "A had none to adopt" [ "$(json_get A 'd["listeners"]["adopted"]')" = 0 ]
check "B's log says so" grep -q "Adopted 2 listeners opened before the agent" "$LOGS/agent-B.log"
nsenter --net="/run/netns/$NS_B" python3 -c 'import urllib.request as u
print(u.urlopen("http://127.0.0.1:9464/metrics").read().decode())' >"$LOGS/metrics-B.txt"
check "B's metrics say so" grep -qx 'fastivc_listeners_adopted 2' "$LOGS/metrics-B.txt"

for fam in ipv4 ipv6; do
	if [ $fam = ipv4 ]; then addr=$IP_B port=5301; else addr=$IP6_B port=5302; fi
	tunnel_mark
	connect $fam "$addr" $port 2
	check_tunneled "$fam: A to B" A "$BYTES"
	check_tunneled "$fam: B to A" B "$BYTES"
done
check "no flow failed" [ "$(json_get A 'd["counters"]["flows_failed"]')$(json_get B 'd["counters"]["flows_failed"]')" = 00 ]
fivc B status >"$LOGS/status-B.txt"
kill $OUTSIDER 2>/dev/null
exit $FAILED
