#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Real servers, unmodified, over plain TCP and through fastivc in the same
# run: the same case first with the peers unknown to the agents (plain
# TCP), then co-resident; each checks the client's own success, integrity
# and where the bytes went.
#   nginx (sendfile on, keep-alive) serves 3 x 4 MiB to curl over one
#   connection, from a plain listener and from a `listen ... deferred` one
#   (TCP_DEFER_ACCEPT keeps its connections on TCP: docs/steering.md,
#   "Socket options"); every file's SHA-256, the connection reused.
#   memcached: memccp stores a 512 KiB file, memccat reads it back (SHA-256),
#   memcslap runs its own load and must exit 0.
#   MariaDB under sysbench oltp_read_write (2 threads, 3 s): sysbench's exit
#   and its transactions.
#   OpenSSH: ssh -L forwards a port of A to nginx through sshd in B; curl
#   gets 4 MiB through the forward (SHA-256), ssh's own connection being
#   the one the tunnel carries.
#   HAProxy in A (mode tcp) in front of nginx in B, with `option
#   splice-auto` (which reads this response with recv() over TCP as well):
#   curl gets 4 MiB through it (SHA-256), HAProxy's backend connection
#   the one the tunnel carries. With `option splice-response`
#   (splice() from that connection, always; a backend of its own, nginx's
#   port 8082) it is the kernel's limit (docs/steering.md, "What the kernel
#   sets"; patch 0005): over TCP the file arrives; through fastivc the
#   first fetch ends at HAProxy's 3 s timeout (the check fails when a
#   kernel lets the file through, so that the list follows), A's agent
#   marks that backend (splice_marked, one log line), and the second fetch
#   takes plain TCP from the handshake (opt_splice) and gets the file.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tunnel.sh"
FAILED=0
for tool in nginx curl memcached memccp memccat memcslap mariadbd sysbench \
	ssh ssh-keygen haproxy; do
	command -v $tool >/dev/null || {
		skip "$tool is not installed (scripts/install-deps.sh)"
		exit 77
	}
done
netns_setup
agents_up || { fail "agents start"; exit 1; }

WWW=$RUN/www
mkdir -p "$WWW"
head -c $((4 << 20)) /dev/urandom >"$WWW/4m"
SHA=$(sha256sum <"$WWW/4m" | cut -d' ' -f1)
nginx_conf "$WWW" "8081 deferred" 8082
in_ns B nginx -p "$RUN/nginx" -e "$LOGS/nginx-error.log" -c "$RUN/nginx/nginx.conf" \
	-g 'daemon off;' >"$LOGS/nginx.out" 2>&1 &
in_ns B memcached -u root -l $IP_B -p 11211 -U 0 -m 64 >"$LOGS/memcached.out" 2>&1 &
for _ in $(seq 100); do
	[ "$(ip netns exec "$NS_B" ss -ltnH "( sport = :8080 or sport = :8081 or sport = :8082 or sport = :11211 )" |
		wc -l)" = 4 ] && break
	sleep 0.1
done

stat() { json_get "$1" "d[\"bpf\"][\"$2\"]"; }

# sshd in B, key-only, for root, forwarding allowed; a key for ssh in A.
# The machine's sshd, or one unpacked from Debian's package into $O/sshd:
# installing the package would start an sshd on the machine under test.
SSHD_BIN=/usr/sbin/sshd
if [ ! -x $SSHD_BIN ]; then
	SSHD_BIN=$PWD/$O/sshd/usr/sbin/sshd
	[ -x "$SSHD_BIN" ] || (mkdir -p "$O/sshd" && cd "$O/sshd" &&
		apt-get download -qq -o APT::Sandbox::User=root openssh-server &&
		dpkg-deb -x openssh-server_*.deb .) >"$LOGS/sshd-fetch.out" 2>&1 ||
		fail "sshd: could not unpack Debian's openssh-server: $(tail -1 "$LOGS/sshd-fetch.out")"
fi
# sshd drops privileges to its own user, which the package would create.
id sshd >/dev/null 2>&1 ||
	useradd --system --no-create-home --home-dir /run/sshd \
		--shell /usr/sbin/nologin sshd
SSHD=$RUN/ssh
mkdir -p "$SSHD" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$SSHD/host" &&
	ssh-keygen -q -t ed25519 -N '' -f "$SSHD/client" &&
	cp "$SSHD/client.pub" "$SSHD/authorized_keys"
cat >"$SSHD/sshd_config" <<EOF
ListenAddress $IP_B:2222
HostKey $SSHD/host
AuthorizedKeysFile $SSHD/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
PidFile $SSHD/sshd.pid
EOF
in_ns B "$SSHD_BIN" -D -e -f "$SSHD/sshd_config" >"$LOGS/sshd.out" 2>&1 &

head -c $((512 << 10)) /dev/urandom >"$LOGS/512k"
MC=--servers=$IP_B:11211
mode tcp
mariadb_up && in_ns A "${SB[@]}" prepare >"$LOGS/sysbench-prepare.log" 2>&1 ||
	fail "MariaDB and sysbench's table: ${WHY:-$(tail -1 "$LOGS/sysbench-prepare.log")}"

# fetch NAME PORT: curl gets /4m three times over one connection; checks
# its exit, the files and the reuse.
fetch() {
	local name=$1 port=$2 out rc i ok=yes
	out=$(in_ns A timeout 60 curl -sS --fail \
		-o "$LOGS/4m-1" "http://$IP_B:$port/4m" -o "$LOGS/4m-2" "http://$IP_B:$port/4m" \
		-o "$LOGS/4m-3" "http://$IP_B:$port/4m" -w '%{num_connects}/%{time_total} ' 2>&1)
	rc=$?
	say "$name: curl exit $rc, connects/seconds per file: $out"
	for i in 1 2 3; do
		[ "$(sha256sum <"$LOGS/4m-$i" | cut -d' ' -f1)" = "$SHA" ] || ok=no
		rm -f "$LOGS/4m-$i"
	done
	check "$name: curl exit 0, 3 files with the right SHA-256" [ $rc = 0 -a $ok = yes ]
	check "$name: one connection, kept alive" \
		[ "$(echo "$out" | sed 's|/[0-9.]*||g' | xargs)" = "1 0 0" ]
}

# listening_a PORT: wait (up to 10 s) until something listens on PORT in A.
listening_a() {
	for _ in $(seq 100); do
		ip netns exec "$NS_A" ss -ltnH "( sport = :$1 )" | grep -q . && return
		sleep 0.1
	done
}

# ssh_forward WHERE: ssh in A forwards 127.0.0.1:9022 to nginx in B through
# sshd; curl fetches /4m through it. Checks curl's exit and the file.
ssh_forward() {
	local pid rc got
	in_ns A ssh -F /dev/null -i "$SSHD/client" -o BatchMode=yes \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o ExitOnForwardFailure=yes -N -L 127.0.0.1:9022:$IP_B:8080 \
		-p 2222 root@$IP_B >"$LOGS/ssh-$1.out" 2>&1 &
	pid=$!
	listening_a 9022
	in_ns A timeout 60 curl -sS --fail -o "$LOGS/4m-ssh" http://127.0.0.1:9022/4m \
		>>"$LOGS/ssh-$1.out" 2>&1
	rc=$?
	got=$(sha256sum <"$LOGS/4m-ssh" 2>/dev/null | cut -d' ' -f1)
	say "ssh -L over $1: curl exit $rc$(grep -v '^Warning: Permanently' "$LOGS/ssh-$1.out" | tail -1 | sed 's/^/; /')"
	check "ssh -L over $1: curl exit 0 through the forward, the file intact" \
		[ $rc = 0 -a "$got" = "$SHA" ]
	# $! is the subshell of in_ns, not ssh: end ssh by its key file.
	pkill -f "ssh -F /dev/null -i $SSHD/client"
	wait $pid 2>/dev/null
	rm -f "$LOGS/4m-ssh"
}

# haproxy_fetch WHERE OPTION [PORT]: HAProxy in A with OPTION in front of
# nginx's PORT (8080) in B; curl in A gets /4m through it. Sets HAP_RC
# (curl's exit), HAP_OK (yes: the file intact) and HAP_S (curl's seconds).
haproxy_fetch() {
	local cfg=$RUN/haproxy-$2.cfg out
	cat >"$cfg" <<EOF
defaults
	mode tcp
	timeout connect 5s
	timeout client 3s
	timeout server 3s
	option $2
frontend apps
	bind $IP_A:9000
	default_backend nginx
backend nginx
	server b $IP_B:${3:-8080}
EOF
	in_ns A haproxy -db -f "$cfg" >>"$LOGS/haproxy-$2-$1.out" 2>&1 &
	listening_a 9000
	out=$(in_ns A timeout 30 curl -sS --fail -o "$LOGS/4m-hap" -w '%{time_total}' \
		"http://$IP_A:9000/4m" 2>>"$LOGS/haproxy-$2-$1.out")
	HAP_RC=$? HAP_S=${out:-?} HAP_OK=no
	[ "$(sha256sum "$LOGS/4m-hap" 2>/dev/null | cut -d' ' -f1)" = "$SHA" ] && HAP_OK=yes
	say "HAProxy $2 over $1: curl exit $HAP_RC in $HAP_S s, file intact: $HAP_OK"
	# $! is the subshell of in_ns, not HAProxy: end it by its config.
	pkill -f "haproxy -db -f $cfg"
	for _ in $(seq 50); do pgrep -f "haproxy -db -f $cfg" >/dev/null || break; sleep 0.1; done
	rm -f "$LOGS/4m-hap"
}

for where in tcp fastivc; do
	mode $where
	steered_a=$(stat A steered) steered_b=$(stat B steered) defer=$(stat B opt_defer_accept)
	tunnel_mark
	fetch "nginx over $where" 8080
	if [ $where = fastivc ]; then
		check "nginx over fastivc: steered on both sides" \
			[ "$(stat A steered) $(stat B steered)" = "$((steered_a + 1)) $((steered_b + 1))" ]
		check_tunneled "nginx over fastivc: the files" B $((3 << 22))
		check_tunneled "nginx over fastivc: the requests" A 100
	else
		check_untunneled "nginx over tcp"
	fi
	steered_a=$(stat A steered) steered_b=$(stat B steered)
	fetch "nginx deferred over $where" 8081
	check "nginx deferred over $where: stayed on TCP" \
		[ "$(stat A steered) $(stat B steered)" = "$steered_a $steered_b" ]
	if [ $where = fastivc ]; then
		check "nginx deferred over fastivc: counted as opt_defer_accept on B" \
			[ "$(stat B opt_defer_accept)" = $((defer + 1)) ]
	fi

	steered_a=$(stat A steered)
	tunnel_mark
	(cd "$LOGS" && in_ns A timeout 30 memccp "$MC" --set 512k) &&
		in_ns A timeout 30 memccat "$MC" 512k >"$LOGS/512k.back"
	rc=$?
	# memccat ends what it prints with a newline.
	printf '\n' | cat "$LOGS/512k" - | cmp -s - "$LOGS/512k.back" || rc="$rc, differs"
	check "memcached over $where: memccp and memccat exit 0, the file back intact ($rc)" \
		[ "$rc" = 0 ]
	in_ns A timeout 60 memcslap "$MC" --concurrency=4 --execute-number=2000 \
		>"$LOGS/memcslap-$where.out" 2>&1
	rc=$?
	say "memcslap over $where: $(grep 'Time total' "$LOGS/memcslap-$where.out" | xargs)"
	check "memcslap over $where: exit 0" [ $rc = 0 ]
	if [ $where = fastivc ]; then
		check "memcached over fastivc: its 6 connections or more steered ($(stat A steered) after $steered_a)" \
			[ "$(stat A steered)" -ge $((steered_a + 6)) ]
		check_tunneled "memcached over fastivc: the stored file" A $((512 << 10))
		check_tunneled "memcached over fastivc: the file read back" B $((512 << 10))
	else
		check_untunneled "memcached over tcp"
	fi

	steered_a=$(stat A steered)
	tunnel_mark
	ssh_forward $where
	if [ $where = fastivc ]; then
		check "ssh over fastivc: its connection steered" \
			[ "$(stat A steered)" -ge $((steered_a + 1)) ]
		check_tunneled "ssh over fastivc: the forwarded file" B $((4 << 20))
	else
		check_untunneled "ssh over tcp"
	fi

	steered_a=$(stat A steered)
	tunnel_mark
	haproxy_fetch $where splice-auto
	check "HAProxy splice-auto over $where: curl exit 0, the file intact" \
		[ $HAP_RC = 0 -a $HAP_OK = yes ]
	if [ $where = fastivc ]; then
		check "HAProxy over fastivc: its backend connection steered" \
			[ "$(stat A steered)" -ge $((steered_a + 1)) ]
		check_tunneled "HAProxy over fastivc: the file" B $((4 << 20))
	else
		check_untunneled "HAProxy over tcp"
	fi
	marked=$(stat A splice_marked) refused=$(stat A opt_splice)
	haproxy_fetch $where splice-response 8082
	if [ $where = fastivc ]; then
		check "HAProxy splice-response over fastivc: the kernel's limit, ended by HAProxy's timeout (curl exit $HAP_RC, no file)" \
			[ $HAP_RC != 0 -a $HAP_OK = no ]
		said=no
		grep -q "the app spliced from its socket.*connections to port 8082 stay on TCP" \
			"$LOGS/agent-A.log" && said=yes
		check "HAProxy splice-response over fastivc: A's agent marked the backend ($(stat A splice_marked) after $marked), and said so ($said)" \
			[ "$(stat A splice_marked)" = $((marked + 1)) -a $said = yes ]
		tunnel_mark
		haproxy_fetch $where splice-response 8082
		check "HAProxy splice-response over fastivc, again: curl exit 0, the file intact" \
			[ $HAP_RC = 0 -a $HAP_OK = yes ]
		check "HAProxy splice-response over fastivc, again: plain TCP from the handshake, counted as opt_splice" \
			[ "$(stat A opt_splice)" = $((refused + 1)) ]
		check_untunneled "HAProxy splice-response over fastivc, again"
	else
		check "HAProxy splice-response over tcp: curl exit 0, the file intact" \
			[ $HAP_RC = 0 -a $HAP_OK = yes ]
	fi

	steered_a=$(stat A steered)
	tunnel_mark
	out=$(in_ns A timeout 60 "${SB[@]}" --threads=2 --time=3 run 2>&1)
	rc=$?
	echo "$out" >"$LOGS/sysbench-$where.out"
	tps=$(echo "$out" | sed -n 's/.*transactions: *\([0-9]*\) *(\([0-9.]*\) per sec.*/\1 \2/p')
	say "sysbench over $where: exit $rc, transactions, per second: ${tps:-none}"
	check "MariaDB under sysbench over $where: exit 0, transactions done" \
		[ $rc = 0 -a "${tps%% *}" -gt 0 ]
	if [ $where = fastivc ]; then
		check "MariaDB over fastivc: its 2 connections steered" \
			[ "$(stat A steered)" -ge $((steered_a + 2)) ]
		check_tunneled "MariaDB over fastivc: the queries" A 10000
		check_tunneled "MariaDB over fastivc: the results" B 10000
	else
		check_untunneled "MariaDB over tcp"
	fi
done
exit $FAILED
