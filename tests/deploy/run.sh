#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make test-deploy`: the systemd unit, the config file, the Kubernetes
# manifests, the image recipe, --help, and one agent (private netns +
# cgroup, instance dep<pid>-a) for status --json, metrics, reload,
# sd_notify, BTF and capabilities. Prints "ok - NAME", "not ok - NAME" or
# "skip - NAME: why" lines; exit 77 from a test file is a loud skip.
cd "$(dirname "$0")/../.." || exit 1
fail=0
tests=("$@")
[ ${#tests[@]} = 0 ] && tests=(tests/deploy/test_*.sh)
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	echo "# $name"
	start=$(date +%s)
	bash "$t"
	rc=$?
	echo "# $name: rc $rc in $(($(date +%s) - start)) s"
	if [ $rc = 77 ]; then
		echo "skip - deploy $name: prerequisites missing (see above)"
	elif [ $rc != 0 ]; then
		fail=1
	fi
done
exit $fail
