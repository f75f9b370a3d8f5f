#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Runs every tests/netns/test_*.sh (or those named); exit 77 from a test is
# a loud skip, anything else non-zero a failure.
cd "$(dirname "$0")/../.." || exit 1
fail=0
tests=("$@")
[ ${#tests[@]} = 0 ] && tests=(tests/netns/test_*.sh)
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	echo "# $name"
	start=$(date +%s)
	bash "$t"
	rc=$?
	echo "# $name: rc $rc in $(($(date +%s) - start)) s"
	if [ $rc = 77 ]; then
		echo "skip - $name: prerequisites missing (see above)"
	elif [ $rc != 0 ]; then
		fail=1
	fi
done
exit $fail
