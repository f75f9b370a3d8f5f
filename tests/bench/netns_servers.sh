#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Unmodified servers under their own benchmarks, plain veth TCP against
# fastivc in alternating rounds, each measurement checked for the tunnel:
#   server_nginx_wrk        nginx in B, wrk in A: 1 thread, 16 keep-alive
#                           connections, GET of a 1 KiB file (requests/s)
#   server_mariadb_sysbench MariaDB in B (data in the run dir, a tmpfs),
#                           sysbench oltp_read_write in A, 4 threads, one
#                           table of 10000 rows (transactions/s)
# A server or tool that cannot run here is a loud skip: "skip - bench
# servers: why" on stdout and in $O/bench/skipped, which the goal table
# shows; never a pass. The tools come from `scripts/install-deps.sh bench`.
. "$(dirname "$0")/lib.sh"
ROUNDS=3 SECS=5
[ "$QUICK" = 1 ] && ROUNDS=2 SECS=3
SKIPPED=$O/bench/skipped
mkdir -p "$O/bench"

# skip_server BENCHMARK WHY: that benchmark is not measured, and says why.
skip_server() {
	echo "skip - bench servers: $1: $2"
	echo "$1 $2" >>"$SKIPPED"
}

samples_open servers
netns_setup
bench_agents
mkdir -p "$RUN/www"
head -c 1024 /dev/urandom >"$RUN/www/1k"

NGINX=
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
	skip_server server_nginx_wrk "nginx or wrk is not installed (scripts/install-deps.sh bench)"
else
	serve_nginx "$RUN/www"
	if in_ns A curl -sf -o /dev/null "http://$IP_B:8080/1k"; then
		NGINX=yes
	else
		skip_server server_nginx_wrk "nginx did not answer ($(tail -1 "$LOGS/nginx-error.log" 2>/dev/null))"
	fi
fi

# db_up: MariaDB in B (mariadb_up), sysbench's table made over plain TCP.
DB=
db_up() {
	command -v sysbench >/dev/null ||
		{ WHY="sysbench is not installed (scripts/install-deps.sh bench)"; return 1; }
	mariadb_up || return 1
	mode tcp
	in_ns A "${SB[@]}" prepare >"$LOGS/sysbench-prepare.log" 2>&1 ||
		{ WHY="sysbench prepare failed: $(tail -1 "$LOGS/sysbench-prepare.log")"; return 1; }
}
if db_up; then DB=yes; else skip_server server_mariadb_sysbench "$WHY"; fi

while read -r r m; do
	echo "# servers: round $r/$ROUNDS, $m" >&2
	mode $m
	if [ -n "$NGINX" ]; then
		before=$(tunneled)
		out=$(in_ns A wrk -t 1 -c 16 -d ${SECS}s "http://$IP_B:8080/1k" 2>&1)
		check_mode $m "$before" &&
			sample server_nginx_wrk 1KiB $m "$(echo "$out" | awk '/^Requests\/sec/ {print $2}')" \
				req/s higher
	fi
	if [ -n "$DB" ]; then
		before=$(tunneled)
		out=$(in_ns A "${SB[@]}" --threads=4 --time=$SECS run 2>&1)
		check_mode $m "$before" &&
			sample server_mariadb_sysbench oltp_read_write $m \
				"$(echo "$out" | sed -n 's/.*transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p')" \
				tps higher
	fi
done < <(rounds_modes $ROUNDS)
