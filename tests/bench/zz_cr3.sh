. tests/bench/lib.sh
netns_setup
bench_agents
serve B "$TOOLS/rr" server $IP_B 5300
sleep 0.5
mode fastivc
for i in 1 2 3; do
in_ns A timeout 30 "$TOOLS/rr" connrate $IP_B 5300 6 > $LOGS/cr$i.out 2>&1 &
c=$!
sleep 2; kill -STOP ${AGENT_PIDS[0]}; sleep 2.5; kill -CONT ${AGENT_PIDS[0]}
wait $c; echo "run $i rc $? $(cat $LOGS/cr$i.out)"
sleep 1
top -b -n1 | grep fastivc | head -4
done
grep -h "timed out\|relayed\|warn\|err" $LOGS/agent-*.log | sort | uniq -c | head
