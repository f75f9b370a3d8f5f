#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Socket options (tests/netns/sockopts.py; docs/steering.md, "Socket
# options"). Every case runs over plain TCP first (no agents: the case
# checks TCP's own behaviour), then with the agents, where it must behave
# the same: through the tunnel for the options it honours (SO_LINGER,
# SO_OOBINLINE), on TCP for those it cannot (SO_RCVLOWAT, TCP_DEFER_ACCEPT),
# with the reason counted on the side that set the option. A deferring
# listener opened before the agents must be found by the adoption walk. An
# SO_RCVLOWAT set on a steered socket leaves it on the tunnel, counted.
# SO_REUSEPORT siblings share their listener entry.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
PROG=$PWD/tests/netns/sockopts.py
CASES=${CASES:-"defer-accept rcvlowat-client rcvlowat-listener linger oobinline"}

# Where a case goes: "tcp SIDE STAT" (the side whose socket carries the
# option, the bpf stat naming it) or "tunnel BYTES" (what A sends).
expect() {
	case $1 in
	defer-accept) echo "tcp B opt_defer_accept" ;;
	rcvlowat-client) echo "tcp A opt_rcvlowat" ;;
	rcvlowat-listener) echo "tcp B opt_rcvlowat" ;;
	linger) echo "tunnel $((256 << 10))" ;;
	oobinline) echo "tunnel 7" ;;
	esac
}

stat() { json_get "$1" "d[\"bpf\"][\"$2\"]"; }

# mark [SIDE STAT]: the steered counts, and SIDE's STAT, before a
# connection.
mark() {
	steered_a=$(stat A steered) steered_b=$(stat B steered)
	mark_side=${1:-B} mark_stat=${2:-steered}
	mark_before=$(stat "$mark_side" "$mark_stat")
}
# steered_both WHAT: the connection since mark was steered on both sides.
steered_both() {
	check "$1: steered on both sides" \
		[ "$(stat A steered) $(stat B steered)" = "$((steered_a + 1)) $((steered_b + 1))" ]
}
# stayed_tcp WHAT: it stayed on TCP, counted once as mark's STAT.
stayed_tcp() {
	check "$1: stayed on TCP, counted once as $mark_stat on $mark_side" \
		[ "$(stat A steered)$(stat B steered)" = "$steered_a$steered_b" -a \
		  "$(stat "$mark_side" "$mark_stat")" = $((mark_before + 1)) ]
}

# serve CASE ADDR PORT N: the case's server, in the background ($SPID).
serve() {
	in_ns B timeout 120 python3 "$PROG" server "$2" "$3" "$1" "$4" \
		>"$LOGS/sockopts-$1-$3-server.out" 2>&1 &
	SPID=$!
	for _ in $(seq 50); do grep -qs listening "$LOGS/sockopts-$1-$3-server.out" && break; sleep 0.1; done
}

# client CASE ADDR PORT: the case's client; its exit status.
client() {
	in_ns A timeout 60 python3 "$PROG" client "$2" "$3" "$1" \
		>"$LOGS/sockopts-$1-$3-client.out" 2>&1
}

# run CASE ADDR PORT [BIND]: one connection, both ends, the server bound to
# BIND (default ADDR); true if both passed.
run() {
	local crc src
	serve "$1" "${4:-$2}" "$3" 1
	client "$1" "$2" "$3"
	crc=$?
	wait $SPID
	src=$?
	grep -h -v '^ok$\|^listening$\|^conn 0 ok$' "$LOGS/sockopts-$1-$3-"*.out | sed 's/^/# /'
	[ $crc = 0 ] && [ $src = 0 ]
}

netns_setup

port=6100
for fam in 4 6; do
	addr=$IP_B
	[ $fam = 6 ] && addr=$IP6_B
	for c in $CASES; do
		port=$((port + 1))
		check "plain TCP, IPv$fam $c: as TCP says" run "$c" "$addr" $port
	done
done

# Opened before the agents, kept across their start.
serve defer-accept $IP_B 6200 2
ADOPTED=$SPID
check "plain TCP: a deferring listener answers" client defer-accept $IP_B 6200

agents_up || { fail "agents start"; exit 1; }

mark B opt_defer_accept
check "the deferring listener opened before the agents: answered in time" \
	client defer-accept $IP_B 6200
check "... and wait for its server" wait $ADOPTED
stayed_tcp "the deferring listener opened before the agents"

for fam in 4 6; do
	addr=$IP_B
	[ $fam = 6 ] && addr=$IP6_B
	for c in $CASES; do
		port=$((port + 1))
		set -- $(expect "$c")
		way=$1 side=${2:-} name=${3:-}
		if [ "$way" = tcp ]; then mark "$side" "$name"; else mark; fi
		tunnel_mark
		check "with the agents, IPv$fam $c: as TCP says" run "$c" "$addr" $port
		if [ "$way" = tunnel ]; then
			steered_both "IPv$fam $c"
			check_tunneled "IPv$fam $c" A "$side" exact
			continue
		fi
		stayed_tcp "IPv$fam $c"
	done
done

# Listeners bound to a wildcard, found by their family's wildcard entry
# (an IPv4 client of a dual-stack listener by ::).
for pair in "0.0.0.0 $IP_B" ":: $IP_B" ":: $IP6_B"; do
	set -- $pair
	port=$((port + 1))
	mark B opt_defer_accept
	check "defer-accept, listener on $1, client to $2: as TCP says" run defer-accept "$2" $port "$1"
	stayed_tcp "defer-accept, listener on $1, client to $2"
done

# SO_REUSEPORT siblings share one entry (sockopts.py siblings): a closed
# sibling leaves the others theirs (tunneled), a deferring sibling keeps
# the group on TCP until the last one closes, and nothing of the group is
# left for the next listener on the port (tunneled again).
port=$((port + 1))
in_ns B timeout 120 python3 "$PROG" siblings $IP_B $port >"$LOGS/sockopts-siblings.out" 2>&1 &
SPID=$!
for phase in 1 2 3 4; do
	for _ in $(seq 50); do grep -qs "ready $phase" "$LOGS/sockopts-siblings.out" && break; sleep 0.1; done
	mark B opt_defer_accept
	check "SO_REUSEPORT siblings, phase $phase: as TCP says" client defer-accept $IP_B $port
	if [ $phase = 1 ] || [ $phase = 4 ]; then
		steered_both "SO_REUSEPORT siblings, phase $phase"
	else
		stayed_tcp "SO_REUSEPORT siblings, phase $phase"
	fi
done
wait $SPID
check "SO_REUSEPORT siblings: the server served all four phases" [ $? = 0 ]
grep -v '^ready [1-4]$' "$LOGS/sockopts-siblings.out" | sed 's/^/# /'

# Another uid holds more listeners than listen_opts holds (a local user
# may): a deferring listener opened meanwhile has no entry, and its
# connections stay on TCP, counted as listener_unknown. Once they close,
# their entries go: a listener then has its entry again, and the tunnel.
FLOOD=5000
full=$(stat B listen_opts_full)
in_ns B sh -c "ulimit -n $((FLOOD + 100)) && exec setpriv --reuid=65534 --regid=65534 --clear-groups \
	timeout 300 python3 $PROG flood $IP_B 20000 $FLOOD" >"$LOGS/sockopts-flood.out" 2>&1 &
FLOODER=$!
for _ in $(seq 600); do grep -qs holding "$LOGS/sockopts-flood.out" && break; sleep 0.1; done
check "another uid holds $FLOOD deferring listeners" grep -q "holding $FLOOD" "$LOGS/sockopts-flood.out"
check "... the table filled: listen_opts_full counted on B" [ "$(stat B listen_opts_full)" -gt "$full" ]
port=$((port + 1))
mark B listener_unknown
check "defer-accept while the table is full: as TCP says" run defer-accept $IP_B $port
stayed_tcp "defer-accept while the table is full"
pkill -TERM -f "$PROG flood" # the flooder, not the shell of in_ns
wait $FLOODER
for c in defer-accept oobinline; do
	port=$((port + 1))
	set -- $(expect "$c")
	mark B opt_defer_accept
	check "$c after the flood closed: as TCP says" run "$c" $IP_B $port
	if [ "$1" = tunnel ]; then
		steered_both "$c after the flood closed (its listener has its entry)"
	else
		stayed_tcp "$c after the flood closed"
	fi
done

# An option set on a steered socket: it stays on the tunnel, counted.
port=$((port + 1))
before=$(stat A opt_late)
tunnel_mark
check "late SO_RCVLOWAT: 1 MiB echoed intact" run late $IP_B $port
check "late SO_RCVLOWAT: counted once as opt_late on A" [ "$(stat A opt_late)" = $((before + 1)) ]
check_tunneled "late SO_RCVLOWAT: A to B" A $((1 << 20)) exact
check_tunneled "late SO_RCVLOWAT: B to A" B $((1 << 20)) exact
exit $FAILED
