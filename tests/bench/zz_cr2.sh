. tests/bench/lib.sh
netns_setup
bench_agents
serve B "$TOOLS/rr" server $IP_B 5300
sleep 0.5
mode fastivc
for i in 1 2; do
echo "run $i $(in_ns A timeout 30 "$TOOLS/rr" connrate $IP_B 5300 8)"
done
grep -h "timed out\|relayed\|warn\|err" $LOGS/agent-*.log | head
top -b -n1 | grep fastivc | head -3
for side in a b; do
for m in flows held_fins fin_ok fin_sent peer_fin_end poke; do
  n=$(bpftool map dump pinned /sys/fs/bpf/fastivc/$TAG-$side/$m 2>/dev/null | grep -c '"key"')
  echo "map $side $m $n"
done
done
ls /sys/fs/bpf/fastivc/$TAG-a/
in_ns A ss -tan | awk '{print $1}' | sort | uniq -c
