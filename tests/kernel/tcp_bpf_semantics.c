// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What a kernel answers where tcp_bpf and plain TCP differ (docs/kernel/).
 *
 * Each case builds loopback TCP pairs, puts them in a sockmap whose sk_msg
 * program redirects to the map's key 1 (egress, or ingress with
 * BPF_F_INGRESS), and compares what the socket calls answer with what TCP
 * answers on the same call (--tcp: the same calls without the sockmap,
 * which must all answer as TCP). No libbpf and no BTF, so that it links
 * statically and runs in a User-Mode Linux built from any source tree
 * (tests/kernel/uml.sh). Prints one line per case; exits with the number
 * of cases that differ from TCP, or 100 on a set-up error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "tcp_bpf_semantics: %s: %s\n", what, strerror(errno));
	exit(100);
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/* A sockmap of two entries whose sk_msg program redirects every send of
 * the socket at key 0 to the socket at key 1. Returns the map's fd.
 */
static int plain; /* --tcp: no sockmap, to show TCP's own answers */

static int redirect_map(int src, int dst, int ingress)
{
	union bpf_attr a;
	int map, prog, key;

	if (plain)
		return -1;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_SOCKMAP;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 2;
	map = sys_bpf(BPF_MAP_CREATE, &a);
	if (map < 0)
		die("sockmap");

	/* r2 = map; r3 = 1; r4 = flags; r0 = msg_redirect_map(r1..r4) */
	struct bpf_insn insns[] = {
		{.code = BPF_LD | BPF_DW | BPF_IMM,
		 .dst_reg = 2,
		 .src_reg = BPF_PSEUDO_MAP_FD,
		 .imm = map},
		{0},
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 3, .imm = 1},
		{.code = BPF_ALU64 | BPF_MOV | BPF_K,
		 .dst_reg = 4,
		 .imm = ingress ? BPF_F_INGRESS : 0},
		{.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_msg_redirect_map},
		{.code = BPF_JMP | BPF_EXIT},
	};
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SK_MSG;
	a.insns = (unsigned long)insns;
	a.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	a.license = (unsigned long)"GPL";
	prog = sys_bpf(BPF_PROG_LOAD, &a);
	if (prog < 0)
		die("sk_msg program");

	memset(&a, 0, sizeof(a));
	a.target_fd = map;
	a.attach_bpf_fd = prog;
	a.attach_type = BPF_SK_MSG_VERDICT;
	if (sys_bpf(BPF_PROG_ATTACH, &a))
		die("attach");
	close(prog);

	for (key = 0; key < 2; key++) {
		int fd = key ? dst : src;

		memset(&a, 0, sizeof(a));
		a.map_fd = map;
		a.key = (unsigned long)&key;
		a.value = (unsigned long)&fd;
		if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a))
			die("sockmap update");
	}
	return map;
}

/* A connected loopback TCP pair: *c the client's end, *s the server's. */
static void tcp_pair(int *c, int *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int l, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, 4) ||
	    bind(l, (void *)&sa, len) || listen(l, 1) ||
	    getsockname(l, (void *)&sa, &len))
		die("listener");
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (void *)&sa, len))
		die("connect");
	*s = accept(l, NULL, NULL);
	if (*s < 0)
		die("accept");
	/* Small sends go out at once: Nagle would hold the second one until
	 * the peer's delayed ACK.
	 */
	setsockopt(*c, IPPROTO_TCP, TCP_NODELAY, &one, 4);
	close(l);
}

static int answers, differs;

static void report(const char *name, const char *tcp, const char *fmt, ...)
{
	char got[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(got, sizeof(got), fmt, ap);
	va_end(ap);
	answers++;
	if (strcmp(got, tcp)) {
		differs++;
		printf("%-9s differs from TCP: %s (TCP: %s)\n", name, got, tcp);
	} else {
		printf("%-9s as TCP: %s\n", name, got);
	}
	fflush(stdout);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Sends or pokes from another thread after a pause. */
struct later {
	int fd, ms, what; /* what: bytes to send, or 0 for the poke */
};

static void *later_run(void *arg)
{
	struct later *l = arg;
	char buf[2000];
	int v = 1 << 20;

	sleep_ms(l->ms);
	memset(buf, 'x', sizeof(buf));
	if (l->what)
		send(l->fd, buf, l->what, 0);
	else /* calls the socket's sk_write_space: a wake-up without data */
		setsockopt(l->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, 4);
	return NULL;
}

static pthread_t later(struct later *l)
{
	pthread_t t;

	if (pthread_create(&t, NULL, later_run, l))
		die("thread");
	return t;
}

/* An app whose egress redirect found its target full asks poll() whether
 * it may send: TCP says no until there is room, then yes. With --tcp the
 * app's own connection is the one that fills.
 */
static void case_poll(void)
{
	int c0, s0, c1, s1, map, small = 4096, n = 0, ready;
	struct pollfd p;
	char buf[65536];

	tcp_pair(&c0, &s0);
	tcp_pair(&c1, &s1);
	setsockopt(plain ? c0 : c1, SOL_SOCKET, SO_SNDBUF, &small, 4);
	setsockopt(plain ? s0 : s1, SOL_SOCKET, SO_RCVBUF, &small, 4);
	map = redirect_map(c0, c1, 0);
	memset(buf, 'p', sizeof(buf));
	while (n < 1024 && send(c0, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		n++;
	if (errno != EAGAIN)
		die("send into a full target");
	p = (struct pollfd){.fd = c0, .events = POLLOUT};
	report("poll", "POLLOUT no", "POLLOUT %s",
	       poll(&p, 1, 0) == 1 ? "yes" : "no");
	for (n = 0, ready = 0; n < 100 && !ready; n++) {
		while (recv(plain ? s0 : s1, buf, sizeof(buf), MSG_DONTWAIT) >
		       0)
			; /* the target's reader drains it */
		p = (struct pollfd){.fd = c0, .events = POLLOUT};
		ready = poll(&p, 1, 100) == 1;
	}
	report("poll", "POLLOUT after drain yes", "POLLOUT after drain %s",
	       ready ? "yes" : "no");
	close(map);
	close(c0), close(s0), close(c1), close(s1);
}

/* Bytes injected into s (redirected ingress by c, its peer) and read with
 * one recv() while more come 100 ms later.
 */
static void case_recv(const char *name, int flags, int lowat, int first,
		      int second, int want, int poke)
{
	struct later l, p;
	char buf[4000] = {0}, tcp[64];
	pthread_t t, tp;
	int c, s, map;
	ssize_t r;

	tcp_pair(&c, &s);
	map = redirect_map(c, s, 1);
	if (lowat && setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, 4))
		die("SO_RCVLOWAT");
	if (first && send(c, buf, first, 0) != first)
		die("send");
	l = (struct later){c, 100, second};
	t = later(&l);
	p = (struct later){s, 50, 0};
	if (poke)
		tp = later(&p);
	r = recv(s, buf, want, flags);
	snprintf(tcp, sizeof(tcp), "got %d", poke ? second : want);
	if (r < 0)
		report(name, tcp, "got error %s", strerror(errno));
	else
		report(name, tcp, "got %zd", r);
	pthread_join(t, NULL);
	if (poke)
		pthread_join(tp, NULL);
	close(map);
	close(c), close(s);
}

/* Urgent data sent through a redirect, then asked for while injected bytes
 * wait. TCP delivers the urgent byte as urgent and the stream intact; a
 * kernel that cannot carry urgency may refuse the send (EOPNOTSUPP), but
 * must not hand out a byte of the stream as the urgent one.
 */
static void case_oob(void)
{
	const char *tcp = "urgent byte urgent or refused, stream abc";
	char buf[16] = {0}, urg = 0, stream[16] = {0};
	int c, s, map, sent, refused;
	ssize_t r;

	tcp_pair(&c, &s);
	map = redirect_map(c, s, 1);
	send(c, "abc", 3, 0);
	sent = send(c, "!", 1, MSG_OOB) == 1;
	refused = !sent && errno == EOPNOTSUPP;
	sleep_ms(50);
	if (recv(s, buf, 1, MSG_OOB | MSG_DONTWAIT) == 1)
		urg = buf[0];
	r = recv(s, stream, sizeof(stream) - 1, MSG_DONTWAIT);
	if (r < 0)
		r = 0;
	stream[r] = 0;
	if (((sent && urg == '!') || refused) && !strcmp(stream, "abc"))
		report("oob", tcp, "%s", tcp);
	else
		report("oob", tcp, "send %s, recv(MSG_OOB) '%c', stream %s",
		       sent ? "took it" : strerror(errno), urg ? urg : '-',
		       stream);
	close(map);
	close(c), close(s);
}

/* close() with injected bytes unread: TCP resets the connection. */
static void case_close(void)
{
	char buf[100] = {0};
	int c, s, map;
	ssize_t r;

	tcp_pair(&c, &s);
	map = redirect_map(c, s, 1);
	if (send(c, buf, sizeof(buf), 0) != sizeof(buf))
		die("send");
	sleep_ms(50);
	close(s);
	sleep_ms(100);
	r = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
	if (r < 0)
		report("close", "peer ECONNRESET", "peer %s",
		       errno == ECONNRESET ? "ECONNRESET" : strerror(errno));
	else
		report("close", "peer ECONNRESET", "peer read %zd", r);
	close(map);
	close(c);
}

/* splice() from a non-blocking socket (HAProxy's way) holding injected
 * bytes: TCP moves them to the pipe in order. (From a blocking one the
 * unpatched kernel waits for ever.)
 */
static void case_splice(void)
{
	char buf[10000], got[10000];
	int c, s, map, pfd[2], i, n = 0;
	ssize_t r;

	for (i = 0; i < (int)sizeof(buf); i++)
		buf[i] = 'a' + i % 26;
	tcp_pair(&c, &s);
	if (pipe(pfd) || fcntl(s, F_SETFL, O_NONBLOCK))
		die("pipe");
	map = redirect_map(c, s, 1);
	if (send(c, buf, sizeof(buf), 0) != sizeof(buf))
		die("send");
	for (i = 0; i < 100 && n < (int)sizeof(buf); i++) {
		r = splice(s, NULL, pfd[1], NULL, sizeof(buf) - n,
			   SPLICE_F_NONBLOCK);
		if (r > 0 && read(pfd[0], got + n, r) == r)
			n += r;
		else
			sleep_ms(10);
	}
	report("splice", "spliced 10000 in order", "spliced %d%s", n,
	       n && !memcmp(got, buf, n) ? " in order" : "");
	close(map);
	close(pfd[0]), close(pfd[1]);
	close(c), close(s);
}

int main(int argc, char **argv)
{
	plain = argc > 1 && !strcmp(argv[1], "--tcp");
	alarm(60);
	case_poll();
	case_recv("waitall", MSG_WAITALL, 0, 1000, 1000, 2000, 0);
	case_recv("rcvlowat", 0, 50, 10, 90, 100, 0);
	case_recv("wakeup", 0, 0, 0, 5, 1000, 1);
	case_oob();
	case_close();
	case_splice();
	printf("%d of %d answers differ from TCP\n", differs, answers);
	return differs;
}
