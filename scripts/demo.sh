#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make demo`: two "domUs" (network namespaces joined by veth, a cgroup and
# an agent each, local backend), the same iperf3 -P 4 transfer and the same
# 64-byte request/response over plain TCP and through fastivc, measured the
# same way in alternating rounds (ROUNDS, 3 by default), each checked for
# where its bytes went (a plain TCP round that touched a tunnel, or a
# fastivc one that did not, is void), then side by side: medians, the
# ratio (higher is better for fastivc) and the CPU cost of the whole path.
# Everything is removed at the end, Ctrl-C included.
cd "$(dirname "$0")/.." || exit 1
export O=${O:-build}
. tests/bench/lib.sh
SECS=${SECS:-5} ROUNDS=${ROUNDS:-3}
# The demo's samples and void rounds stay out of the benchmarks' files.
SAMPLES=$O/demo-samples.csv NOT_OK=$O/demo-not-ok
echo "benchmark,param,series,value,unit,better" >"$SAMPLES"
rm -f "$NOT_OK"
netns_setup
echo "== two domains: $NS_A ($IP_A, domain $DOM_A) and $NS_B ($IP_B, domain $DOM_B)"
bench_agents
serve B iperf3 -s -p 5201
serve B "$TOOLS/rr" server $IP_B 5300
sleep 0.5

veth_bytes() {
	ip -n "$NS_A" -s -j link show "$TAG-va" | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["stats64"]
print(s["rx"]["bytes"] + s["tx"]["bytes"])'
}

while read -r r m; do
	mode $m
	v0=$(veth_bytes) before=$(tunneled) cpu=$(cpu_usec)
	out=$(iperf3_run -p 5201 -P 4 -t "$SECS")
	cost=$(cpu_per_gb "$cpu" "${out#* }")
	echo "== round $r/$ROUNDS, $m: iperf3 -P 4 ${out% *} Gbit/s, $cost CPU s/GB," \
		"$(numfmt --to=iec $(($(veth_bytes) - v0))) over veth," \
		"$(numfmt --to=iec $(($(tunneled) - before))) through tunnels"
	check_mode $m "$before" || continue
	sample iperf3 P=4 $m "${out% *}" Gbit/s higher
	sample cpu P=4 $m "$cost" s/GB lower
	before=$(tunneled)
	p50=$(in_ns A "$TOOLS/rr" latency $IP_B 5300 64 5000 | awk '{print $2}')
	echo "== round $r/$ROUNDS, $m: 64 B request/response p50 $p50 us"
	check_mode $m "$before" && sample rr_p50 64 $m "$p50" us lower
done < <(rounds_modes "$ROUNDS")

echo
python3 - "$SAMPLES" <<'PY'
import csv, statistics, sys
v = {}
for row in csv.DictReader(open(sys.argv[1])):
    v.setdefault((row["benchmark"], row["series"]), []).append(float(row["value"]))
print("| medians of %d rounds | plain TCP (veth) | fastivc | fastivc / TCP |"
      % max(len(x) for x in v.values()))
print("|---|---:|---:|---:|")
for b, what, higher in (("iperf3", "iperf3 -P 4, Gbit/s", 1),
                        ("cpu", "CPU s per GB moved (apps, agents, softirq)", 0),
                        ("rr_p50", "64 B request/response p50, us", 0)):
    t, f = v.get((b, "veth_tcp")), v.get((b, "fastivc"))
    if not t or not f:
        print("| %s | %s | %s | no value |" % (what, t, f))
        continue
    t, f = statistics.median(t), statistics.median(f)
    r = f / t if higher else t / f
    print("| %s | %.3g | %.3g | %.2fx %s |" % (what, t, f, r,
          "(fastivc better)" if r >= 1 else "(plain TCP better)"))
PY
echo
fivc A status | head -3
[ -s "$NOT_OK" ] && echo "demo: some rounds were void (not ok above) and left out"
exit 0
