#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Thesis Figure 11, data from disk: nginx in B serves files of 1 B..64 MiB
# from $O/bench/www (ext4 or whatever holds the build folder) to curl in A,
# a new connection per file (Connection: close), as the thesis's FTP client
# opened a data connection per file. Each file is dropped from the page
# cache before each fetch, so nginx reads it from the disk. Per file size:
#   file_fetch_throughput  size / curl's time_total (connect to last byte),
#                          median of the fetches of a round (MB/s)
. "$(dirname "$0")/lib.sh"
ROUNDS=3 FETCHES=10
SIZES="1 16 256 4096 65536 1048576 16777216 67108864"
[ "$QUICK" = 1 ] && ROUNDS=2 FETCHES=3 SIZES="1 4096 1048576 67108864"
WWW=$PWD/$O/bench/www

# Debian's nginx; its package starts no server where there is no init
# system, and ours below runs on its own config only.
command -v nginx >/dev/null || {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		nginx >/dev/null || { echo "bench: cannot install nginx" >&2; exit 1; }
}
samples_open files
mkdir -p "$WWW"
for s in $SIZES; do
	[ "$(stat -c %s "$WWW/$s" 2>/dev/null)" = "$s" ] ||
		head -c "$s" /dev/urandom >"$WWW/$s"
done
netns_setup
bench_agents
serve_nginx "$WWW"

# fetch SIZE: one fetch of a cold file; prints curl's seconds, or nothing
# if the wrong number of bytes came.
fetch() {
	dd if="$WWW/$1" iflag=nocache count=0 status=none
	in_ns A curl -s -o /dev/null -H 'Connection: close' \
		-w '%{time_total} %{size_download}\n' "http://$IP_B:8080/$1" |
		awk -v want="$1" '$2 == want {print $1}'
}

while read -r r m; do
	echo "# files: round $r/$ROUNDS, $m" >&2
	mode $m
	for s in $SIZES; do
		before=$(tunneled)
		t=$(for _ in $(seq $FETCHES); do fetch "$s"; done |
			sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
		check_mode $m "$before" &&
			sample file_fetch_throughput "$s" $m \
				"$(awk -v s="$s" -v t="$t" 'BEGIN {if (t > 0) printf "%.6g", s / t / 1e6}')" \
				MB/s higher
	done
done < <(rounds_modes $ROUNDS)
