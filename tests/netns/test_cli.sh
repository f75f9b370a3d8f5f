#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The CLI: one clear line (and a non-zero exit) for each way to misuse it,
# and peer add/del/list round trips through the pinned map.
. "$(dirname "$0")/lib.sh"
FAILED=0
netns_setup

# expect NAME PATTERN CMD...: CMD fails, and its first error line matches.
expect() {
	local name=$1 pat=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	say "$name: $(echo "$out" | grep -m1 -E 'err|usage|Usage|unknown|bad' || echo "$out" | head -1)"
	check "$name: exit non-zero with a clear line" \
		[ $rc != 0 -a -n "$(echo "$out" | grep -E -m1 -- "$pat")" ]
}

AG=("$FASTIVC" agent --instance "$TAG-cli" --set run_dir="$RUN" --set link_dir="$RUN/link")
expect "no domain id" "domain id is not set" "${AG[@]}" --cgroup "$CG_A"
expect "bad argument" "unexpected argument|unknown|Usage" "${AG[@]}" --domid 3 bogus
expect "bad config value" "bad value '70000' for 'channel_size'" "${AG[@]}" --domid 3 --set channel_size=70000
printf 'domid = 3\nchannels = 99\n' >"$LOGS/bad.conf"
expect "bad config file" "bad.conf:2: bad value '99' for key 'channels'" "${AG[@]}" --config "$LOGS/bad.conf"
expect "unknown command" "unknown command" "$FASTIVC" frobnicate
expect "cgroup2 not mounted there" "is not a cgroup v2 directory" "${AG[@]}" --domid 3 --cgroup /tmp
expect "bpffs not mounted there" "is not a bpffs mount" "${AG[@]}" --domid 3 --cgroup "$CG_A" --set bpffs=/tmp
if command -v setpriv >/dev/null; then
	expect "not root" "needs root" setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=-all --bounding-set=-all "${AG[@]}" --domid 3 --cgroup "$CG_A"
else
	skip "not root: setpriv missing"
fi
start_agent A || { fail "agent A starts"; exit 1; }
expect "second agent for the same instance" "already running for instance '$TAG-a'" \
	nsenter --net="/run/netns/$NS_A" "$FASTIVC" agent --instance "$TAG-a" --domid $DOM_A \
	--cgroup "$CG_A" --set run_dir="$RUN" --set link_dir="$RUN/link"
expect "peer add with a bad prefix" "bad prefix" fivc A peer add 10.1.2.300/24 5
expect "status of a missing instance" "No agent answers" "$FASTIVC" status -i nosuch --run-dir "$RUN"
check "peer add, list shows it" sh -c "$FASTIVC peer -i $TAG-a add 10.9.0.0/16 7 &&
	$FASTIVC peer -i $TAG-a list | grep -q '10.9.0.0/16 *7'"
check "maps carry BTF: bpftool shows the field names" sh -c \
	"bpftool map dump pinned /sys/fs/bpf/fastivc/$TAG-a/peers | grep -q '\"prefixlen\": 112' &&
	 bpftool map dump pinned /sys/fs/bpf/fastivc/$TAG-a/peers | grep -q '\"domid\": 7'"
check "peer del, list no longer shows it" sh -c "$FASTIVC peer -i $TAG-a del 10.9.0.0/16 &&
	! $FASTIVC peer -i $TAG-a list | grep -q '10.9.0.0'"
check "status --json parses and names the instance" \
	[ "$(json_get A 'd["instance"]')" = "$TAG-a" ]
exit $FAILED
