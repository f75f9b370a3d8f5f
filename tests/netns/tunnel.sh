# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Sourced after lib.sh: did a transfer go through the tunnels? Asked of the
# agents' counters, per direction and per agent, each byte counted once:
# tunnel_bytes_tx is what an agent put into its rings, tunnel_bytes_rx what
# it delivered out of the peer's. A transfer of N bytes from A to B is A's
# tx and B's rx; never a sum over both agents or both directions, which
# counts every byte twice and passes with half of them on plain TCP.

tunnel_now() { # "A_TX A_RX B_TX B_RX"
	local side
	for side in A B; do
		json_get $side '"%d %d" % (d["counters"]["tunnel_bytes_tx"], d["counters"]["tunnel_bytes_rx"])'
	done | tr '\n' ' '
}

# tunnel_mark: the counters from which tunnel_moved and check_tunneled count.
tunnel_mark() { TUNNEL_MARK=$(tunnel_now); }

# tunnel_moved FROM: "TX RX" since tunnel_mark: what FROM's agent sent
# through tunnels, what the other agent delivered from them.
tunnel_moved() {
	local from=$1
	# shellcheck disable=SC2046,SC2086 # word splitting wanted
	set -- $TUNNEL_MARK $(tunnel_now)
	if [ "$from" = A ]; then
		echo $(($5 - $1)) $(($8 - $4))
	else
		echo $(($7 - $3)) $(($6 - $2))
	fi
}

# check_tunneled NAME FROM N [exact]: since tunnel_mark, FROM's agent sent
# at least N bytes (exactly N with "exact") through tunnels, and the other
# agent delivered as many.
check_tunneled() {
	local name=$1 from=$2 n=$3 how=${4:-} to=B moved
	[ "$from" = B ] && to=A
	moved=$(tunnel_moved "$from")
	set -- $moved
	if [ "$how" = exact ]; then
		check "$name: $from's agent sent exactly $n bytes through tunnels ($1)" [ "$1" = "$n" ]
		check "$name: $to's agent delivered exactly $n bytes from tunnels ($2)" [ "$2" = "$n" ]
	else
		check "$name: $from's agent sent >= $n bytes through tunnels ($1)" [ "$1" -ge "$n" ]
		check "$name: $to's agent delivered >= $n bytes from tunnels ($2)" [ "$2" -ge "$n" ]
	fi
}

# check_untunneled NAME: since tunnel_mark, nothing went through the
# tunnels, either way (a case over plain TCP).
check_untunneled() {
	local moved
	moved="$(tunnel_moved A) $(tunnel_moved B)"
	check "$1: nothing through the tunnels ($moved)" [ "$moved" = "0 0 0 0" ]
}
