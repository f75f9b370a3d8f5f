#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Kubernetes Services: A's app connects to a ClusterIP, and the rules
# kube-proxy writes in its nftables mode (table kube-proxy: nat-output ->
# the services map -> the Service's chain -> its endpoint's dnat) send the
# connection to a server in B. The same connections run over plain TCP
# (B no peer) and through fastivc, IPv4 and IPv6, with random bytes each
# way, half-close and digests at both ends; through fastivc A's agent must
# have carried them (tunnel counters, `service_dnat`) and shown the
# endpoint in its flow list. docs/steering.md, "Service addresses".
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
BYTES=${BYTES:-$((16 << 20))}
VIP=10.96.0.10
VIP6=fd96::10
FAILED=0
netns_setup
command -v nft >/dev/null || { fail "nft not installed (make deps)"; exit 1; }
agents_up --set services=10.96.0.0/12,fd96::/112 || { fail "agents start"; exit 1; }

# kube-proxy's nftables mode, one Service with one endpoint per family
# (the names are kube-proxy's: service-<hash>-<ns>/<name>/<proto>/<port>).
kube_proxy_rules() { # FAMILY VIP ENDPOINT
	local fam=$1 vip=$2 ep=$3 svc="service-3NZIQ3G4-default/web/tcp/http"
	local epc="endpoint-5ZPHY7LT-default/web/tcp/http__${ep//:/.}"
	local atype=ipv4_addr
	[ "$fam" = ip6 ] && ep="[$ep]" atype=ipv6_addr
	cat <<EOF
table $fam kube-proxy {
	map service-ips {
		type $atype . inet_proto . inet_service : verdict
		elements = { $vip . tcp . 80 : goto $svc }
	}
	chain services {
		${fam} daddr . meta l4proto . th dport vmap @service-ips
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		jump services
	}
	chain mark-for-masquerade {
		mark set mark or 0x4000
	}
	chain $svc {
		numgen random mod 1 vmap { 0 : goto $epc }
	}
	chain $epc {
		${fam} saddr ${ep//[\[\]]/} jump mark-for-masquerade
		meta l4proto tcp dnat to $ep:8080
	}
}
EOF
}
# A route to the Service range, as a node's default route gives one: the
# connect needs it before the DNAT picks the endpoint.
ip -n "$NS_A" route add 10.96.0.0/12 via $IP_B
ip -n "$NS_A" -6 route add fd96::/112 via $IP6_B
kube_proxy_rules ip $VIP $IP_B | ip netns exec "$NS_A" nft -f - ||
	{ fail "kube-proxy's rules load"; exit 1; }
kube_proxy_rules ip6 $VIP6 $IP6_B | ip netns exec "$NS_A" nft -f - ||
	{ fail "kube-proxy's IPv6 rules load"; exit 1; }

# In B, a port redirected to the server before B's stack sees it: a
# NodePort as kube-proxy's nftables mode writes it (IPv4), a REDIRECT
# (IPv6). The client connects to B's own address, port 30080.
ip netns exec "$NS_B" nft -f - <<EOF || { fail "B's NodePort rules load"; exit 1; }
table ip kube-proxy {
	map service-nodeports {
		type inet_proto . inet_service : verdict
		elements = { tcp . 30080 : goto external-3NZIQ3G4-default/web/tcp/http }
	}
	chain nodeports {
		meta l4proto . th dport vmap @service-nodeports
	}
	chain nat-prerouting {
		type nat hook prerouting priority -100; policy accept;
		fib daddr type local jump nodeports
	}
	chain external-3NZIQ3G4-default/web/tcp/http {
		goto service-3NZIQ3G4-default/web/tcp/http
	}
	chain service-3NZIQ3G4-default/web/tcp/http {
		numgen random mod 1 vmap { 0 : goto endpoint-5ZPHY7LT-default/web/tcp/http__$IP_B/8080 }
	}
	chain endpoint-5ZPHY7LT-default/web/tcp/http__$IP_B/8080 {
		meta l4proto tcp dnat to $IP_B:8080
	}
}
table ip6 port-redirect {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		tcp dport 30080 redirect to :8080
	}
}
EOF

# B's servers: each connection reads to EOF, then answers BYTES and closes.
for addr in $IP_B $IP6_B; do
	in_ns B python3 tests/netns/both_ways.py server "$addr" 8080 8 "$BYTES" \
		>"$LOGS/server-$addr.out" 2>&1 &
	for _ in $(seq 50); do grep -qs listening "$LOGS/server-$addr.out" && break; sleep 0.1; done
done

peers() { # add|del: A and B name each other (both families) or not
	if [ "$1" = add ]; then
		fivc A peer add $IP_B/32 $DOM_B && fivc A peer add $IP6_B/128 $DOM_B &&
			fivc B peer add $IP_A/32 $DOM_A && fivc B peer add $IP6_A/128 $DOM_A
	else
		fivc A peer del $IP_B/32 && fivc A peer del $IP6_B/128 &&
			fivc B peer del $IP_A/32 && fivc B peer del $IP6_A/128
	fi
}
stat() { json_get A "d[\"bpf\"][\"$1\"]"; }

# client TAG ADDR PORT [HOLD]: A's client, its line in $LOGS/TAG.out; with
# HOLD, its connection stays open HOLD seconds after it sent, while SIDE's
# flow list is asked WHAT (a python expression over status --json's d):
# SEEN keeps the first answer that is not [].
client() {
	local tag=$1 addr=$2 port=$3 hold=${4:-0} pid shown
	in_ns A timeout 60 python3 tests/netns/both_ways.py client "$addr" "$port" "$BYTES" "$hold" \
		>"$LOGS/$tag.out" 2>&1 &
	pid=$!
	[ "$hold" = 0 ] || SEEN=
	while [ "$hold" != 0 ] && kill -0 $pid 2>/dev/null; do
		shown=$(json_get "$SIDE" "$WHAT")
		[ "$shown" != "[]" ] && [ -z "$SEEN" ] && SEEN=$shown
	done
	wait $pid
}

# digests NAME TAG ENDPOINT N: client TAG's line and B's Nth must match.
digests() {
	both_ways_check "$1" "$(cat "$LOGS/$2.out")" "$LOGS/server-$3.out" "$4" "$BYTES"
}

# runs NAME TAG ADDR PORT ENDPOINT FIRST LAST: B's connections FIRST to
# LAST, to ADDR:PORT, each with its digests; the first is held open while
# status is asked (client, SEEN).
runs() {
	local n
	for n in $(seq "$6" "$7"); do
		client "$2$n" "$3" "$4" $([ "$n" = "$6" ] && echo 1)
		digests "$1 $n" "$2$n" "$5" "$n"
	done
}

for fam in ipv4 ipv6; do
	if [ $fam = ipv4 ]; then vip=$VIP ep=$IP_B; else vip=$VIP6 ep=$IP6_B; fi

	peers del
	tunnel_mark
	before=$(stat not_peer)
	client "$fam-tcp" $vip 80
	digests "$fam plain TCP" "$fam-tcp" $ep 1
	check "$fam plain TCP: nothing went through a tunnel" [ "$(tunnel_moved A)" = "0 0" ]
	check "$fam plain TCP: A counted its endpoint as no peer" [ "$(stat not_peer)" -gt "$before" ]

	peers add
	tunnel_mark
	before=$(stat service_dnat)
	# Three: the end of stream must not overtake the tunnel's bytes. While
	# they run, A's flow list shows the Service and its endpoint.
	SIDE=A WHAT="[f['wire'].split()[1] for f in d['flows'] if f['remote'] == '$vip' and f['rport'] == 80]"
	runs "$fam fastivc" "$fam-fastivc" $vip 80 $ep 2 4
	check "$fam fastivc: A's status showed $vip:80 going to $ep:8080" [ "$SEEN" = "['$ep:8080']" ]
	check_tunneled "$fam fastivc: A to B" A $((3 * BYTES))
	check_tunneled "$fam fastivc: B to A" B $((3 * BYTES))
	check "$fam fastivc: A steered them through the DNAT (service_dnat +3)" \
		[ "$(stat service_dnat)" = $((before + 3)) ]
done
# B's side: a connection to B's port 30080, which B's rules send to 8080.
# A names the tunnel by what it connected to, B must too.
bstat() { json_get B "d[\"bpf\"][\"$1\"]"; }
for fam in ipv4 ipv6; do
	if [ $fam = ipv4 ]; then addr=$IP_B; else addr=$IP6_B; fi

	peers del
	tunnel_mark
	client "$fam-np-tcp" $addr 30080
	digests "$fam NodePort plain TCP" "$fam-np-tcp" $addr 5
	check "$fam NodePort plain TCP: nothing went through a tunnel" [ "$(tunnel_moved A)" = "0 0" ]

	peers add
	tunnel_mark
	before=$(bstat port_dnat)
	SIDE=B WHAT="[f['wire'].split()[0] for f in d['flows'] if f['lport'] == 8080]"
	runs "$fam NodePort fastivc" "$fam-np" $addr 30080 $addr 6 7
	check "$fam NodePort fastivc: B's status showed the connection to $addr:30080" \
		[ "$SEEN" = "['$addr:30080']" ]
	check_tunneled "$fam NodePort fastivc: A to B" A $((2 * BYTES))
	check_tunneled "$fam NodePort fastivc: B to A" B $((2 * BYTES))
	check "$fam NodePort fastivc: B answered through the DNAT (port_dnat +2)" \
		[ "$(bstat port_dnat)" = $((before + 2)) ]
done
# A peers prefix that happens to cover the Service range: the tunnel is
# still named by the endpoint (until this was so, by the Service address,
# which B never sees).
fivc A peer add 10.96.0.0/12 $DOM_B
tunnel_mark
before=$(stat service_dnat)
client cover $VIP 80
digests "a peers prefix covering the Service" cover $IP_B 8
check_tunneled "a peers prefix covering the Service: A to B" A "$BYTES"
check_tunneled "a peers prefix covering the Service: B to A" B "$BYTES"
check "a peers prefix covering the Service: steered through the DNAT" \
	[ "$(stat service_dnat)" = $((before + 1)) ]
fivc A peer del 10.96.0.0/12

for side in a b; do
	check "no nat_flows entry is left in $side" \
		[ "$(bpftool map dump pinned "/sys/fs/bpf/fastivc/$TAG-$side/nat_flows" -j | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ]
done
exit $FAILED
