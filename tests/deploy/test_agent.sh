#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# One agent (instance dep<pid>-a, private netns + cgroup): started with the
# unit's capabilities only, sd_notify, status --json against its schema,
# Prometheus metrics, SIGHUP reload, BTF field names in pinned maps.
. "$(dirname "$0")/lib.sh"
why=$(agent_unavailable)
[ -n "$why" ] && { skip "deploy agent tests: $why"; exit 77; }
need curl curl || { skip "deploy agent tests: curl missing"; exit 77; }
need setpriv util-linux || { skip "deploy agent tests: setpriv missing"; exit 77; }
agent_setup
PORT=9464
UNIT=deploy/systemd/fastivc-agent.service

# sd_notify: a datagram socket standing in for systemd's.
NOTIFY=$RUN/notify.sock
$PY - "$NOTIFY" >"$LOGS/notify.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
try:
    while True:
        print(s.recv(4096).decode().replace("\n", " | "), flush=True)
except socket.timeout:
    pass
PY
NOTIFY_PID=$!
for _ in $(seq 50); do [ -S "$NOTIFY" ] && break; sleep 0.1; done

# The agent with exactly the unit's capabilities (uid 0, like the unit).
caps=$(sed -n 's/^CapabilityBoundingSet=//p' $UNIT | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
printf 'log_level = info\nmetrics_listen = 127.0.0.1:%s\n' $PORT >"$LOGS/agent.conf"
if ! NOTIFY_SOCKET=$NOTIFY start_agent setpriv --bounding-set=-all,$caps --inh-caps=-all -- \
	--config "$LOGS/agent.conf"; then
	fail "agent starts with only the unit's capabilities ($caps)"
	exit 1
fi
ok "agent starts with only the unit's capabilities ($caps)"
# CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_PERFMON 38, CAP_BPF 39
check "agent's effective capabilities are the unit's four" \
	[ "$(awk '/^CapEff/ {print $2}' /proc/$AGENT_PID/status)" = 000000c000003000 ]
sleep 0.3
check "sd_notify: READY=1 with a STATUS= line" grep -q 'READY=1 | STATUS=instance' "$LOGS/notify.log"

# --- status --json ------------------------------------------------------------
status --json >"$LOGS/status.json"
if need_py jsonschema python3-jsonschema; then
	out=$($PY - deploy/status.schema.json "$LOGS/status.json" 2>&1 <<'PY'
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))
PY
)
	check "status --json validates against deploy/status.schema.json${out:+: $(echo "$out" | tail -1)}" [ -z "$out" ]
else
	skip "status --json schema: python3-jsonschema missing"
fi
check "status --json: schema_version 1, the instance" \
	$PY -c "import json; d=json.load(open('$LOGS/status.json')); assert d['schema_version'] == 1 and d['instance'] == '$INST'"
check "status --quiet: exit 0, no output" sh -c "[ -z \"\$('$FASTIVC' status -i $INST --run-dir $RUN --quiet)\" ]"
expect "status --quiet of a missing instance fails" "No agent answers" \
	"$FASTIVC" status -i "$TAG-none" --run-dir "$RUN" --quiet

# --- metrics ----------------------------------------------------------------
metrics() { nsenter --net="/run/netns/$NS" curl -fsS --max-time 5 "http://127.0.0.1:$PORT$1"; }
metrics /metrics >"$LOGS/metrics.txt"
check "metrics: GET /metrics answers" [ -s "$LOGS/metrics.txt" ]
missing=
for m in fastivc_info fastivc_tunnels fastivc_slots_free 'fastivc_flows{path="tunnel"}' \
	'fastivc_flows{path="failed"}' 'fastivc_flows_total{event="steered"}' \
	'fastivc_tunnel_bytes_total{direction="tx"}' 'fastivc_fallbacks_total{reason="not_peer"}' \
	'fastivc_fallbacks_total{reason="no_slot"}' 'fastivc_tunnel_errors_total{kind="create_refused"}' \
	fastivc_ring_full_total fastivc_ring_waits_total 'fastivc_ring_kicks_total{dir="sent"}' \
	'fastivc_bpf_stat_total{stat="steered"}'; do
	grep -qF "$m" "$LOGS/metrics.txt" || missing="$missing $m"
done
check "metrics: the documented names are there${missing:+ (missing:$missing)}" [ -z "$missing" ]
check "metrics: every sample is NAME{LABELS} NUMBER, every family has HELP and TYPE" \
	$PY - "$LOGS/metrics.txt" <<'PY'
import re, sys
fams, typed = set(), set()
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        typed.add(line.split()[2]); continue
    if line.startswith("#"):
        continue
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (\S+)', line)
    assert m, "bad sample line: " + line
    float(m.group(3))
    fams.add(m.group(1))
assert fams and fams <= typed, fams - typed
PY
check "metrics: the values agree with status --json" $PY - "$LOGS/metrics.txt" "$LOGS/status.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[2]))
v = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[1]) if not l.startswith("#")}
assert v["fastivc_slots_free"] == d["slots_free"]
assert v['fastivc_flows_total{event="steered"}'] == d["counters"]["flows_steered"]
assert v['fastivc_bpf_stat_total{stat="not_peer"}'] == d["bpf"]["not_peer"]
PY
check "metrics: other paths are 404" sh -c "! nsenter --net=/run/netns/$NS curl -fsS --max-time 5 http://127.0.0.1:$PORT/nope >/dev/null 2>&1"
check "metrics: the agent still answers afterwards" status --quiet

# --- reload -------------------------------------------------------------------
policy() { chrt -p "$AGENT_PID" | grep -q "policy: $1\$"; }
check "the local backend's agent works at SCHED_OTHER (sched_batch 0)" policy SCHED_OTHER
printf 'log_level = debug\nwindow = 8388608\nchannels = 8\nmetrics_listen = 127.0.0.1:%s\nsched_batch = 1\n' \
	$PORT >"$LOGS/agent.conf"
seen=$(wc -l <"$LOGS/notify.log")
kill -HUP "$AGENT_PID"
check "reload: run-time keys applied" wait_log 'reload: applied window 8388608 \(was 4194304\).*sched_batch 1 \(was 0\).*log_level debug'
check "reload: sched_batch 1 is SCHED_BATCH" policy SCHED_BATCH
check "reload: a restart-only key is named in one line" \
	wait_log 'reload: changed keys that need a restart, left as they were: channels$'
check "sd_notify: RELOADING=1, then READY=1" sh -c \
	"sleep 0.3; tail -n +$((seen + 1)) '$LOGS/notify.log' | head -1 | grep -q '^RELOADING=1' &&
		tail -n +$((seen + 2)) '$LOGS/notify.log' | grep -q '^READY=1'"
printf 'window = 12\n' >"$LOGS/agent.conf"
kill -HUP "$AGENT_PID"
check "reload: a bad file leaves the configuration as it was" \
	wait_log "agent.conf:1: bad value '12' for key 'window'"
check "reload: ... and the agent goes on" sh -c "sleep 0.2 && kill -0 $AGENT_PID && '$FASTIVC' status -i $INST --run-dir $RUN --quiet"
printf 'metrics_listen = 127.0.0.1:%s\n' $((PORT + 1)) >"$LOGS/agent.conf"
kill -HUP "$AGENT_PID"
wait_log "metrics on http://127.0.0.1:$((PORT + 1))"
check "reload: metrics_listen moves" sh -c \
	"nsenter --net=/run/netns/$NS curl -fsS --max-time 5 http://127.0.0.1:$((PORT + 1))/metrics | grep -q fastivc_info"

# --- BTF in the pinned maps -------------------------------------------------
if need bpftool bpftool; then
	PIN=/sys/fs/bpf/fastivc/$INST
	"$FASTIVC" peer -i "$INST" add 10.99.0.0/16 7 >/dev/null
	bpftool map dump pinned "$PIN/peers" >"$LOGS/peers.dump" 2>&1
	bpftool map dump pinned "$PIN/slots" >"$LOGS/slots.dump" 2>&1
	check "bpftool map dump pinned $PIN/peers: struct fivc_peer_key/val field names" sh -c \
		"grep -q '\"prefixlen\": 112' '$LOGS/peers.dump' && grep -q '\"addr\":' '$LOGS/peers.dump' &&
			grep -q '\"domid\": 7' '$LOGS/peers.dump' && grep -q '\"flags\":' '$LOGS/peers.dump'"
	check "bpftool map dump pinned $PIN/slots: struct fivc_slot field names" sh -c \
		"grep -q '\"flow\":' '$LOGS/slots.dump' && grep -q '\"laddr\":' '$LOGS/slots.dump' &&
			grep -q '\"mode\":' '$LOGS/slots.dump'"
else
	skip "BTF field names: bpftool missing"
fi
stop_agent
kill "$NOTIFY_PID" 2>/dev/null
exit $FAILED
