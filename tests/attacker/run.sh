#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The local attacker tier: every tests/attacker/test_*.sh (or those named),
# each of which sets up agents as root and attacks them as an unprivileged
# user, run by the netns tier's runner (exit 77 is a loud skip, which
# tests/run.sh fails on a machine that can run it).
cd "$(dirname "$0")/../.." || exit 1
[ $# = 0 ] && set -- tests/attacker/test_*.sh
exec tests/netns/run.sh "$@"
