#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Install the Debian 12 packages the build, the tests and the demo need.
# Idempotent and quick when everything is present. Run as root.
#   install-deps.sh         what make all, make test and make demo need
#   install-deps.sh bench   the real servers and tools of the benchmarks only
#                           (make bench-netns): nginx, wrk, MariaDB, sysbench
set -eu

PKGS="make gcc clang llvm libclang-rt-14-dev pkg-config clang-format
libbpf-dev bpftool libelf-dev zlib1g-dev libxen-dev libssl-dev libsystemd-dev
iproute2 nftables iperf3 curl nginx memcached libmemcached-tools
mariadb-server mariadb-client sysbench redis-server redis-tools busybox
openssh-client haproxy python3 gnuplot-nox valgrind"
[ "${1:-}" = bench ] && PKGS="nginx wrk mariadb-server mariadb-client sysbench"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing; run as root to install them" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
