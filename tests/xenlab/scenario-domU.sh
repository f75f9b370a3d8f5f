# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Sourced by init-domU.sh: fastivc on the xen backend between the domUs.
#   client: integrity (128 MiB each way, iperf3 -P 8, 200 connections) with
#           both agents' tunnel counters, per direction (the server's
#           answers the client's asks), and dom0's vif counters; kill -9 of
#           its own agent mid-transfer and a restart; xl destroy of the server
#           mid-transfer (dom0 does it when asked); forged CREATEs from the
#           server's domain (xen_forge in place of its agent); then a domain
#           created afterwards ("late"): plain TCP while it has no agent, a
#           tunnel once it starts one.
#   both:   after the integrity checks, the side-by-side benchmark
#           (bench-domU.sh)
#   server: the servers for all that, xen_forge while its agent is stopped,
#           then waits to be destroyed.
#   late:   no agent at first, then one when the client asks.
# With LAB_MODE=bench (make bench) only the benchmark runs, then both
# domUs power off.
# The domains talk through xenstore: `say` writes a key of ours that one
# other domain may read, `hear` waits for a key of another domain.
# Needs from init-domU.sh: self, peer, role, lab_ip, lab_peer_ip, result,
# phase, retry, uptime_cs, agent_start, agent.

XL=data/xlab
LAB_MODE=full
. /etc/xenlab/bench.conf
APPS=/sys/fs/cgroup/lab-apps
MIB=1048576

say() { # say NAME VALUE [READER]
	xenstore-write "$XL/$1" "$2" &&
		xenstore-chmod "$XL/$1" "n$self" "r${3:-$peer}"
}
hear() { # hear DOMID NAME [SECONDS]: print its value once it is there
	n=${3:-300}
	until xenstore-read "/local/domain/$1/$XL/$2" 2>/dev/null; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 1
	done
}
in_apps() { # run a command in the cgroup the agent steers
	sh -c 'echo $$ >'"$APPS"'/cgroup.procs && exec "$@"' in_apps "$@"
}
ctr() { # ctr NAME: a number from the agent's status
	fastivc status --json 2>/dev/null | grep -o "\"$1\":[0-9]*" |
		head -1 | cut -d: -f2
}
ctr_above() { [ "$(ctr "$1")" -gt "$2" ]; } # ctr_above NAME VALUE
unmapped() { [ "$(ctr pages_mapped)" = 0 ]; }
link_up() { fastivc status --json 2>/dev/null | grep -q "\"domid\":$1,\"up\":true"; }
# "SENT RECEIVED" digests of a blast log, one line per connection, as one
# hash; $1 = 1: in the peer's order (its received is our sent).
digests() {
	if [ "$2" = 1 ]; then
		awk '/^conn/ {print $8, $5}' "$1"
	else
		awk '/^conn/ {print $5, $8}' "$1"
	fi | sort | sha256sum | cut -c1-64
}
# blast_serve NAME PORT CONNS BYTES: in the background; when it exits, say
# NAME = "RC DIGESTS" for the client to check.
blast_serve() {
	(
		in_apps blast server "$lab_ip" "$2" --conns "$3" --bytes "$4" \
			>/tmp/$1.out 2>&1
		rc=$?
		# fin_early: peer FINs that completed a handshake, held
		echo "xenlab: $1 server (port $2): rc $rc, fin_early $(ctr fin_early)"
		# Each connection's digests (received:sent:ok|err), for a
		# check connection by connection; nodes inherit the perms.
		say "$1-d" 1 "${5:-$peer}" && xenstore-write $(awk -v d="$XL/$1-d" \
			'/^conn/ && length($5) == 64 && length($8) == 64 {
				print d "/" $2, $8 ":" $5 ":" ($9 == "error" ? "err" : "ok")}' /tmp/$1.out)
		say "$1" "$rc $(digests /tmp/$1.out 1)" "${5:-$peer}"
		[ $rc = 0 ] || { grep -m3 -e ' error ' -e '^blast' /tmp/$1.out; fastivc status | head -6; } | sed "s/^/xenlab: $1 server: /"
		[ $rc = 0 ] || agent_said_flows
	) &
}
# blast_check NAME RC PEER: our blast against the server's report.
blast_check() {
	srv=$(hear "$3" "$1" 120)
	[ "$2" = 0 ] && [ "${srv%% *}" = 0 ] &&
		[ "${srv#* }" = "$(digests /tmp/$1.out)" ] && return
	echo "xenlab: $1: client rc $2, $(grep -c '^conn' /tmp/$1.out) connections done, server said '$srv'"
	grep -v '^conn' /tmp/$1.out | head -3
	grep -m3 ' error ' /tmp/$1.out
	fastivc status | head -12
	return 1
}
# blast_each NAME PEER: connection by connection against the server's
# digests. Prints "DONE FAILED BAD": complete at both ends with equal
# digests, failed with an error at either end, and complete here with
# digests that differ from what the peer sent or received (silent loss).
blast_each() {
	hear "$2" "$1" 120 >/dev/null || return 1
	# One line per connection: its digests at the server, or "none".
	for i in $(awk '/^conn/ {print $2}' /tmp/$1.out); do
		xenstore-read "/local/domain/$2/$XL/$1-d/$i" 2>/dev/null || echo none
	done >/tmp/$1.srv
	awk 'NR == FNR {srv[FNR] = $0; next}
		/^conn/ {
			n++; split(srv[n], s, ":")
			if (length($5) != 64 || length($8) != 64) failed++
			else if ($9 != "error" && $8 != s[2]) bad++
			else if ($9 == "error" || s[3] != "ok") failed++
			else if ($5 == s[1]) done++
			else bad++
		}
		END {print done + 0, failed + 0, bad + 0}' /tmp/$1.srv /tmp/$1.out
}
wait_tunnel() { # wait_tunnel BYTES: until we sent that much through tunnels
	n=600
	while [ "$(ctr tunnel_bytes_tx)" -lt "$1" ] 2>/dev/null; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.1
	done
}
# The tunnel counters of both agents, per direction, each byte counted once:
# what one agent sent through tunnels (tunnel_bytes_tx) the other must have
# delivered (tunnel_bytes_rx). The server answers the client's asks.
ctr_answer() { # server, in the background: ctr-ask-K -> ctr-K "TX RX"
	k=1
	while hear "$peer" ctr-ask-$k 900 >/dev/null; do
		say ctr-$k "$(ctr tunnel_bytes_tx) $(ctr tunnel_bytes_rx)"
		k=$((k + 1))
	done
}
ask=0
# client: the peer agent's "TX RX" now, in $q_now (not to be called in a
# $(...): the count of asks must outlive it)
peer_tunneled() {
	ask=$((ask + 1))
	say ctr-ask-$ask 1
	q_now=$(hear "$peer" ctr-$ask 60)
}
tunnel_mark() { # client: both agents' counters, for tunnel_check
	m_tx=$(ctr tunnel_bytes_tx) m_rx=$(ctr tunnel_bytes_rx)
	peer_tunneled
	set -- $q_now
	p_tx=${1:-0} p_rx=${2:-0}
}
# tunnel_check NAME OUT IN min|exact: since tunnel_mark, our agent sent OUT
# bytes through tunnels and the peer's delivered them, the peer's sent IN
# and ours delivered them: at least, or exactly.
tunnel_check() {
	peer_tunneled
	set -- "$@" "$q_now"
	o_tx=$(($(ctr tunnel_bytes_tx) - m_tx)) o_rx=$(($(ctr tunnel_bytes_rx) - m_rx))
	q_tx=$((${5%% *} - p_tx)) q_rx=$((${5##* } - p_rx))
	[ -n "$5" ] || q_tx=-1 q_rx=-1 # no answer
	if [ "$4" = exact ]; then
		[ $o_tx = "$2" ] && [ $q_rx = "$2" ] && [ $q_tx = "$3" ] && [ $o_rx = "$3" ]
	else
		[ $o_tx -ge "$2" ] && [ $q_rx -ge "$2" ] && [ $q_tx -ge "$3" ] && [ $o_rx -ge "$3" ]
	fi
	result $? "fastivc: $1 through the tunnels ($4): out $2: sent $o_tx here, delivered $q_rx there; in $3: sent $q_tx there, delivered $o_rx here"
}
vif_mark() { # dom0 reads our vif's counters when we ask and says so
	xenstore-write "$XL/vif-$1" 1
	retry 60 xenstore-exists "data/xlab-vif-$1"
}

server_scenario() {
	blast_serve integrity 6001 1 $((128 * MIB))
	in_apps iperf3 -s -p 5202 -D >/dev/null
	blast_serve many 6002 200 $((64 * 1024))
	blast_serve kill 6003 1 $((512 * MIB))
	blast_serve restarted 6005 1 $((16 * MIB))
	blast_serve grants-long 6008 1 $((32 * MIB))
	blast_serve grants 6009 8 $((1 * MIB))
	[ "$LAB_MODE" = bench ] || server_splice &
	ctr_answer &
	say server-ready 1
	. /etc/xenlab/bench-domU.sh # netfront, fastivc, libxenvchan
	if [ "$LAB_MODE" != bench ]; then
		server_forge
		# For client_destroy: opened after our agent's restart.
		in_apps blast server "$lab_ip" 6004 --bytes $((1024 * MIB)) \
			>/dev/null 2>&1 &
		say destroy-ready 1
	fi
	# The client's checks need the reports above; dom0 destroys us later.
	hear "$peer" done 600 >/dev/null
	if [ "$LAB_MODE" = bench ]; then
		say bye 1 # the client waits for it: its area goes with it
		return
	fi
	agent_log
	echo XENLAB-GUEST-DONE
	sleep 600
}

# splice() from a tunneled socket (docs/steering.md, "What the kernel
# sets"): the lab's kernel loads fentry, so the agent watches
# tcp_splice_read() (agent/splice_watch.c; the netns tier's kernel refuses
# fentry and tests the syscall tracepoint). Two connections of the client's
# to one listener here: the first is tunneled and splice() finds nothing in
# it; the agent marks the listener at that first splice(), so the second
# takes plain TCP, where splice() moves every byte.
server_splice() {
	refused=$(ctr opt_splice)
	in_apps splice_sink serve "$lab_ip" 6012 2 3 >/tmp/splice.out 2>&1
	grep -q "watched at tcp_splice_read() (fentry)" /tmp/agent.log
	result $? "fastivc: splice() watched by fentry on tcp_splice_read()"
	set -- $(awk '{print $2}' /tmp/splice.out)
	[ "$*" = "0 100000" ] && grep -q "the app spliced from its socket" /tmp/agent.log &&
		[ "$(ctr opt_splice)" = $((refused + 1)) ]
	result $? "fastivc: splice() from a tunneled socket: ${1:-none} then ${2:-none} of 100000 bytes spliced, the listener marked, its second connection on TCP (opt_splice)"
}

# A forged CREATE from the other domU (docs/security.md, "claim a domain id
# that is not its own"). The server stops its agent (SIGSTOP: its BPF still
# puts the option on SYN-ACKs, so our connections to it are still steered)
# and runs xen_forge in its place: it sets the link up with our agent as
# agent/xlink.c does, answers the CREATEs of 3 real flows with forged ones
# for the same tunnels (pages and port of domain 0, of our own domain, then
# grant refs it never made), floods CREATEs for flows that do not exist and
# ends with a malformed one (geometry larger than its region). Then it kills
# its agent and starts a new one.
server_forge() {
	hear "$peer" forge-go 900 >/dev/null || return
	phase "fastivc: our agent stopped, xen_forge in its place"
	# Opened while our agent runs: its SYN-ACKs carry the option.
	in_apps timeout 150 blast server "$lab_ip" 6010 --conns 3 \
		--bytes 65536 >/dev/null 2>&1 &
	sleep 1
	kill -STOP $agent
	(retry 150 grep -q "^ok - xen_forge: link up" /tmp/forge.out &&
		say forge-linked 1) &
	xen_forge "$peer" 3 >/tmp/forge.out 2>&1
	rc=$?
	awk '/^(ok|not ok) - / {print "XENLAB-RESULT " $0; next}
		{print "xenlab: server: " $0}' /tmp/forge.out
	[ $rc = 0 ] || grep -q "^not ok" /tmp/forge.out ||
		result 1 "xen_forge exited $rc"
	say forge "$rc $(sed -n 's/^xen_forge: summary: //p' /tmp/forge.out)"
	n0=$(grep -c "agent ready" /tmp/agent.log)
	kill -9 $agent
	kill -CONT $agent 2>/dev/null
	wait $agent 2>/dev/null
	agent_start
	retry 60 sh -c "[ \$(grep -c 'agent ready' /tmp/agent.log) -gt $n0 ]"
	result $? "fastivc: the server's new agent starts after xen_forge"
	# After the new agent: a listener opened before it is not steered.
	blast_serve forge-after 6011 1 $((16 * MIB))
	say forge-served 1
}

client_forge() {
	phase "fastivc: forged CREATEs from domain $peer (xen_forge)"
	say forge-go 1
	hear "$peer" forge-linked 180 >/dev/null
	retry 30 link_up "$peer"
	result $? "fastivc: xen_forge links up with our agent in place of domain $peer's"
	m0=$(ctr pages_mapped) cr0=$(ctr creates_refused) pr0=$(ctr parked_refused)
	# pages_mapped every half second while the forger talks
	(while :; do
		ctr pages_mapped
		sleep 0.5
	done) >/tmp/forge-pages 2>/dev/null &
	sampler=$!
	# Steered (the server's BPF), refused (the forger's CREATEs), on TCP
	in_apps timeout 150 blast client "$lab_peer_ip" 6010 --conns 3 \
		--bytes 65536 >/tmp/forge-conns.out 2>&1 &
	conns=$!
	srv=$(hear "$peer" forge 300)
	kill $sampler
	max=$(sort -n /tmp/forge-pages | tail -1)
	echo "xenlab: xen_forge said: $srv"
	cr=$(($(ctr creates_refused) - cr0)) pr=$(($(ctr parked_refused) - pr0))
	[ -n "$srv" ] && [ "${srv%% *}" = 0 ] && [ $cr -ge 3 ] && [ $pr -ge 1 ]
	result $? "fastivc: our agent refused every forged CREATE (creates_refused +$cr, parked_refused +$pr; xen_forge: ${srv#* })"
	[ -n "$max" ] && [ "$max" -le "$m0" ]
	result $? "fastivc: it mapped nothing of them (pages_mapped at most ${max:-?}, $m0 with the forger's link alone)"
	kill -0 $agent && fastivc status >/dev/null
	result $? "fastivc: our agent stays up and answers fastivc status"
	hear "$peer" forge-served 120 >/dev/null
	retry 60 link_up "$peer"
	result $? "fastivc: link up again with domain $peer's new agent"
	tb0=$(ctr tunnel_bytes_tx) rb0=$(ctr tunnel_bytes_rx) tb= rb=
	in_apps timeout 120 blast client "$lab_peer_ip" 6011 \
		--bytes $((16 * MIB)) >/tmp/forge-after.out 2>&1
	blast_check forge-after $? "$peer" &&
		tb=$(($(ctr tunnel_bytes_tx) - tb0)) rb=$(($(ctr tunnel_bytes_rx) - rb0)) &&
		[ $tb -ge $((16 * MIB)) ] && [ $rb -ge $((16 * MIB)) ]
	result $? "fastivc: after xen_forge, 16 MiB each way through a tunnel, SHA-256 equal (tunnels carried ${tb:-?} bytes out, ${rb:-?} in)"
	kill $conns 2>/dev/null # the refused ones, if still there
}

client_integrity() {
	phase "fastivc: integrity over grant pages"
	vif_mark start
	# blast: the client sends an 8-byte index and BYTES, the server BYTES.
	tunnel_mark
	in_apps timeout 300 blast client "$lab_peer_ip" 6001 \
		--bytes $((128 * MIB)) >/tmp/integrity.out 2>&1
	blast_check integrity $? "$peer"
	result $? "fastivc: 128 MiB each way, SHA-256 equal at both ends"
	tunnel_check "128 MiB each way" $((128 * MIB + 8)) $((128 * MIB)) exact
	tunnel_mark
	in_apps timeout 120 iperf3 -c "$lab_peer_ip" -p 5202 -P 8 -t 5 -J \
		>/tmp/iperf8.json 2>&1
	rc=$?
	# end.sum_received: what the server received, over how long
	set -- $(awk '/"sum_received"/ {f = 1; next}
		f && /"bytes"/ {b = $2} f && /"seconds"/ {s = $2} f && /}/ {f = 0}
		END {gsub(/[^0-9.]/, "", b); gsub(/[^0-9.]/, "", s)
			print (b == "" ? 0 : b), (s == "" ? 0 : s)}' /tmp/iperf8.json)
	[ $rc = 0 ] && [ "$1" -gt 0 ]
	result $? "fastivc: iperf3 -P 8 ($1 bytes, $(awk -v b="$1" -v s="$2" \
		'BEGIN {printf "%.0f", s ? b * 8 / s / 1e6 : 0}') Mbit/s)"
	tunnel_check "iperf3 -P 8" "$1" 0 min
	tunnel_mark
	tun0=$(ctr flows_tunneled) ns0=$(ctr no_slot)
	in_apps timeout 300 blast client "$lab_peer_ip" 6002 --conns 200 \
		--bytes $((64 * 1024)) >/tmp/many.out 2>&1
	set -- $(blast_each many "$peer")
	many="$1 complete with equal SHA-256 at both ends, $2 failed, ${3:-?} with digests that differ"
	[ "${1:-0}" = 200 ]
	result $? "fastivc: 200 concurrent connections, 64 KiB each way: $many" ||
		grep -m3 ' error ' /tmp/many.out
	echo "xenlab: 200 connections: $(($(ctr flows_tunneled) - tun0)) tunneled here, $(($(ctr no_slot) - ns0)) without a slot"
	tunnel_check "200 connections" $((200 * (64 * 1024 + 8))) $((200 * 64 * 1024)) exact
	[ "$(ctr flows_failed)" = 0 ]
	result $? "fastivc: no flow failed" || agent_said_flows
	vif_mark end
}

client_splice() { # the server checks (server_splice)
	phase "fastivc: splice() from a tunneled socket"
	for _ in 1 2; do
		in_apps timeout 60 splice_sink send "$lab_peer_ip" 6012 100000
	done
}

# gntalloc's page limit lowered under the agent, with a flow in its tunnel:
# the agent keeps its pool to the rings that still fit, so a burst of new
# connections stays on plain TCP from the handshake (no_slot), every byte
# intact, instead of meeting a full grant table after it. Rings cached for
# reuse (granted already) count as room too: at most rings_cached more.
GNT_LIMIT=/sys/module/xen_gntalloc/parameters/limit
client_grants() {
	phase "fastivc: gntalloc's limit lowered to 2 more rings"
	in_apps timeout 300 blast client "$lab_peer_ip" 6008 \
		--bytes $((32 * MIB)) >/tmp/grants-long.out 2>&1 &
	long=$!
	wait_tunnel $(($(ctr tunnel_bytes_tx) + 4 * MIB))
	limit0=$(cat $GNT_LIMIT) short0=$(ctr pool_shm_short)
	# 4 channels of 32 KiB and the header page: 33 pages a ring
	echo $(($(ctr pages_granted) + 2 * 33)) >$GNT_LIMIT
	retry 10 ctr_above pool_shm_short "$short0"
	result $? "fastivc: the agent saw the grant room shrink (pool_shm_short)"
	tun0=$(ctr flows_tunneled) ns0=$(ctr no_slot) fail0=$(ctr flows_failed)
	reused0=$(ctr rings_reused)
	in_apps timeout 300 blast client "$lab_peer_ip" 6009 --conns 8 \
		--bytes $((1 * MIB)) >/tmp/grants.out 2>&1
	blast_check grants $? "$peer"
	result $? "fastivc: 8 connections beyond the grant room: SHA-256 equal at both ends"
	tun=$(($(ctr flows_tunneled) - tun0)) ns=$(($(ctr no_slot) - ns0))
	# A ring cached before the burst, or given back by one of its
	# connections that ended early, is reused: only new rings need grants.
	reused=$(($(ctr rings_reused) - reused0))
	[ $((tun - reused)) -le 2 ] && [ $((tun + ns)) -ge 8 ] &&
		[ "$(ctr flows_no_shm)" = 0 ] && [ "$(ctr flows_failed)" = "$fail0" ]
	result $? "fastivc: $tun of them tunneled ($reused on reused rings; room: 2 new rings), $ns stayed on TCP from the handshake (no_slot), none failed for want of grants"
	wait $long
	blast_check grants-long $? "$peer"
	result $? "fastivc: the flow already in its tunnel went on: 32 MiB each way, SHA-256 equal"
	echo "$limit0" >$GNT_LIMIT
}

client_kill() {
	phase "fastivc: kill -9 of our agent mid-transfer"
	in_apps timeout 120 blast client "$lab_peer_ip" 6003 \
		--bytes $((512 * MIB)) >/tmp/kill.out 2>&1 &
	app=$!
	wait_tunnel $(($(ctr tunnel_bytes_tx) + 32 * MIB))
	kill -9 $agent
	wait $app
	rc=$?
	srv=$(hear "$peer" kill 120)
	# Each side either failed or got exactly what the other sent.
	ok=1
	[ -n "$srv" ] || ok=0
	# busybox timeout exits 143 (SIGTERM), coreutils 124: a hang
	case "$rc ${srv%% *}" in *124* | *143*) ok=0 ;; esac
	if [ $rc = 0 ] && [ "${srv%% *}" = 0 ]; then
		[ "${srv#* }" = "$(digests /tmp/kill.out)" ] || ok=0
	fi
	[ $ok = 1 ]
	result $? "fastivc: kill -9 mid-transfer: client rc $rc, server rc ${srv%% *}, no hang, no short transfer taken as whole"
	agent_start
	retry 60 link_up "$peer"
	result $? "fastivc: the restarted agent links up with the peer again"
	in_apps timeout 120 blast client "$lab_peer_ip" 6005 \
		--bytes $((16 * MIB)) >/tmp/restarted.out 2>&1
	blast_check restarted $? "$peer" && [ "$(ctr tunnel_bytes_tx)" -ge $((16 * MIB)) ]
	result $? "fastivc: after the restart, 16 MiB each way through a tunnel, SHA-256 equal"
}

client_destroy() {
	phase "fastivc: xl destroy of the peer mid-transfer"
	in_apps timeout 120 blast client "$lab_peer_ip" 6004 \
		--bytes $((1024 * MIB)) >/tmp/destroy.out 2>&1 &
	app=$!
	wait_tunnel $(($(ctr tunnel_bytes_tx) + 32 * MIB))
	t0=$(uptime_cs)
	xenstore-write "$XL/destroy-peer" 1
	wait $app
	rc=$?
	s=$((($(uptime_cs) - t0) / 100))
	[ $rc != 0 ] && [ $rc != 124 ] && [ $rc != 143 ] && [ $s -le 20 ]
	result $? "fastivc: peer destroyed: our app got an error (rc $rc) after $s s"
	retry 30 unmapped
	result $? "fastivc: the agent unmapped every grant of the destroyed domain" ||
		fastivc status
	[ "$(ctr tunnels)" = 0 ] && kill -0 $agent
	result $? "fastivc: no tunnel left, the agent keeps running"
}

client_late() {
	retry 180 xenstore-exists data/xenlab-late
	late=$(xenstore-read data/xenlab-late)
	phase "fastivc: domain $late, first without an agent"
	hear "$late" late-ready 300 >/dev/null
	st0=$(ctr flows_steered)
	in_apps timeout 120 blast client 10.0.0.3 6006 --bytes $((16 * MIB)) \
		>/tmp/noagent.out 2>&1
	blast_check noagent $? "$late" && [ "$(ctr flows_steered)" = "$st0" ] &&
		! fastivc peer list | grep -q '^10.0.0.3/'
	result $? "fastivc: peer without an agent: plain TCP, SHA-256 equal, nothing steered"
	say late-agent 1 "$late"
	retry 120 link_up "$late"
	result $? "fastivc: link up with domain $late once its agent runs"
	hear "$late" late-serving 120 >/dev/null
	tb0=$(ctr tunnel_bytes_tx)
	in_apps timeout 120 blast client 10.0.0.3 6007 --bytes $((64 * MIB)) \
		>/tmp/late.out 2>&1
	blast_check late $? "$late" &&
		[ $(($(ctr tunnel_bytes_tx) - tb0)) -ge $((64 * MIB)) ]
	result $? "fastivc: after the destroy, the agent tunnels to a new domain: 64 MiB each way, SHA-256 equal"
	say late-checked 1 "$late"
	# Our area goes with us too: stay until late has read that.
	hear "$late" late-bye 30 >/dev/null
}

client_scenario() {
	hear "$peer" server-ready 300 >/dev/null
	retry 60 link_up "$peer"
	result $? "fastivc: link up with domain $peer (grant pages, event channels)"
	# The xen backend's default (agent/config.c): 3 is SCHED_BATCH.
	[ "$(awk '{print $41}' /proc/$agent/stat)" = 3 ]
	result $? "fastivc: the agent works at SCHED_BATCH (sched_batch's xen default)"
	if [ "$LAB_MODE" != bench ]; then
		# First: rings cached by the others count as room too, and a
		# cache that covers the pool leaves no shortage to see.
		client_grants
		client_integrity
		client_splice
	fi
	. /etc/xenlab/bench-domU.sh # netfront, fastivc, libxenvchan
	if [ "$LAB_MODE" = bench ]; then
		say done 1
		hear "$peer" bye 60 >/dev/null
		return
	fi
	client_kill
	client_forge
	hear "$peer" destroy-ready 120 >/dev/null
	say done 1
	client_destroy
	client_late
}

late_scenario() {
	blast_serve noagent 6006 1 $((16 * MIB)) "$peer"
	say late-ready 1
	hear "$peer" late-agent 600 >/dev/null
	agent_start
	retry 60 grep -q "agent ready" /tmp/agent.log
	# A listener opened before the agent cannot be adopted before Linux
	# 6.10 (docs/steering.md), and the lab runs 6.1: this one comes after.
	blast_serve late 6007 1 $((64 * MIB)) "$peer"
	serving=$!
	say late-serving 1
	wait $serving # (busybox: not a list of pids, one may be gone)
	# Our xenstore area goes with us: stay until the client read it.
	hear "$peer" late-checked 120 >/dev/null
	say late-bye 1
}
