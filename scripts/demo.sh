#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make demo`: two "domUs" (network namespaces joined by veth, a cgroup and
# an agent each, local backend), the same iperf3 transfer first over plain
# TCP, then through fastivc, and a side-by-side table: throughput and where
# the bytes went. Everything is removed at the end, Ctrl-C included.
cd "$(dirname "$0")/.." || exit 1
export O=${O:-build}
. tests/netns/lib.sh
SECS=${SECS:-5}
netns_setup
echo "== two domains: $NS_A ($IP_A, domain $DOM_A) and $NS_B ($IP_B, domain $DOM_B)"
start_agent A && start_agent B || { echo "demo: agents did not start"; exit 1; }
in_ns B iperf3 -s -p 5201 -D --logfile "$LOGS/iperf3.log"
sleep 0.5

veth_bytes() {
	ip -n "$NS_A" -s -j link show "$TAG-va" | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["stats64"]
print(s["rx"]["bytes"] + s["tx"]["bytes"])'
}
tunnel_bytes() { json_get A 'd["counters"]["tunnel_bytes_tx"]+d["counters"]["tunnel_bytes_rx"]'; }

run() { # run LABEL: iperf3 -P 4 for SECS seconds; prints a table row
	local v0 t0 gbps
	v0=$(veth_bytes) t0=$(tunnel_bytes)
	gbps=$(in_ns A iperf3 -c $IP_B -p 5201 -P 4 -t "$SECS" -J |
		python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
	printf '| %-22s | %8s | %16s | %18s |\n' "$1" "$gbps" \
		"$(numfmt --to=iec $(($(veth_bytes) - v0)))" "$(numfmt --to=iec $(($(tunnel_bytes) - t0)))"
}

echo "== iperf3 -P 4 for ${SECS}s, $NS_A -> $NS_B: plain TCP (the peers are not co-resident yet)"
row_tcp=$(run "plain TCP (veth)")
echo "== the agents learn that the two domains are co-resident; same transfer again"
fivc A peer add $IP_B/32 $DOM_B && fivc B peer add $IP_A/32 $DOM_A
row_fivc=$(run "fastivc (shared ring)")
echo
printf '| %-22s | %8s | %16s | %18s |\n' path Gbit/s "bytes over veth" "bytes via tunnel"
echo "|------------------------|---------:|-----------------:|-------------------:|"
echo "$row_tcp"
echo "$row_fivc"
echo
fivc A status | head -3
