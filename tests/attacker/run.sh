#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The local attacker tier: runs every tests/attacker/test_*.sh (or those
# named), each of which sets up agents as root and attacks them as an
# unprivileged user. Exit 77 from a test is a loud skip (tests/run.sh
# fails it on a machine that can run it), anything else non-zero a failure.
cd "$(dirname "$0")/../.." || exit 1
fail=0
tests=("$@")
[ ${#tests[@]} = 0 ] && tests=(tests/attacker/test_*.sh)
for t in "${tests[@]}"; do
	[ -e "$t" ] || continue # no test yet: tests/run.sh says "no test passed"
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
