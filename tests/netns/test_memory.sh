#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Kernel memory per flow stays bounded by the window while the receiver does
# not read: measured with `ss -m` (per socket) and /proc/net/sockstat (all
# TCP memory) during the reader's pause, for a 64 MiB blocking send.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
WINDOW=$((4 << 20))
SEM=$PWD/tests/netns/semantics.py
netns_setup
agents_up --set window=$WINDOW || { fail "agents start"; exit 1; }

tcp_mem_pages() { awk '/^TCP:/{for(i=1;i<NF;i++) if($i=="mem") print $(i+1)}' /proc/net/sockstat; }

# skmem SIDE FILTER FIELD: sum of one skmem field over matching sockets.
skmem() {
	local ns=$NS_A
	[ "$1" = B ] && ns=$NS_B
	ip netns exec "$ns" ss -tmnH $2 | python3 -c '
import re, sys
field = sys.argv[1]
print(sum(int(m.group(1)) for m in re.finditer(r"\b" + field + r"(\d+)", sys.stdin.read())))' "$3"
}

base=$(tcp_mem_pages)
tunnel_mark
in_ns B timeout 60 python3 "$SEM" server $IP_B 7100 backpressure-block >"$LOGS/mem-server.out" 2>&1 &
spid=$!
for _ in $(seq 50); do grep -q listening "$LOGS/mem-server.out" && break; sleep 0.1; done
in_ns A timeout 60 python3 "$SEM" client $IP_B 7100 backpressure-block >"$LOGS/mem-client.out" 2>&1 &
cpid=$!
# The server sleeps 2 s before reading: the most each side holds while it
# sleeps, sampled until its mark says it reads (one sample at a fixed time
# missed the full window under load).
app_rx=0 slot_tx=0 pages=0
mark=/tmp/fastivc-bp-reading-7100
while kill -0 $cpid 2>/dev/null && [ ! -e $mark ]; do
	v=$(skmem B "sport = :7100" r)
	# TCP memory (the whole kernel's) as the receiver's peaked
	[ "$v" -gt $app_rx ] && app_rx=$v pages=$(($(tcp_mem_pages) - base))
	v=$(($(skmem A "dst 127.0.0.1" w) + $(skmem A "dst 127.0.0.1" r)))
	[ "$v" -gt $slot_tx ] && slot_tx=$v
	sleep 0.1
done
wait $cpid
crc=$?
wait $spid
src=$?
say "receiver app socket rmem $app_rx B; sender slot (X queued + Y unread) $slot_tx B; TCP memory +$((pages * 4)) KiB (window $((WINDOW >> 10)) KiB)"
check "transfer completes after the pause" [ $crc = 0 -a $src = 0 ]
# What was measured is the tunnel's window only if the bytes took it.
check_tunneled "64 MiB blocking send" A $((64 << 20)) exact
check "receiver: app socket's unread bytes <= window + 10%" [ "$app_rx" -le $((WINDOW * 11 / 10)) ]
check "receiver: the window filled (the test measured something)" [ "$app_rx" -ge $((WINDOW / 2)) ]
check "sender: slot buffers <= window + 10%" [ "$slot_tx" -le $((WINDOW * 11 / 10)) ]
check "all TCP memory (sockstat) grew by <= 3 windows" [ $((pages * 4096)) -le $((3 * WINDOW)) ]
exit $FAILED
