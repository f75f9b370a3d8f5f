#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Runs the BPF tests in $1 (as root) under a time limit, then
# removes whatever a killed run left behind: its namespaces, cgroups and
# pinned maps, all named by this run's tag and nobody else's.
set -u
bin=$1
tag=$$
if [ "$(id -u)" != 0 ]; then
	echo "skip - bpf steering: needs root"
	exit 0
fi
timeout -k 5 180 "$bin/test_steer" --tag "$tag"
rc=$?
timeout -k 5 60 "$bin/test_fin_hold" || [ $rc != 0 ] || rc=1
timeout -k 5 60 "$bin/test_rmem_probe" || [ $rc != 0 ] || rc=1
for s in a b; do
	ip netns del "fivc-$tag-$s" 2>/dev/null
	rmdir "/sys/fs/cgroup/unified/fivc-test-$tag-$s" 2>/dev/null
done
rm -rf "/sys/fs/bpf/fastivc-test-$tag"
if [ $rc = 124 ] || [ $rc = 137 ]; then
	echo "not ok - bpf steering: timed out"
fi
exit $rc
