// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Steering end to end, with this program as a minimal agent.
 *
 * Two fresh network namespaces (a, b) joined by a veth pair; each side has
 * its own cgroup v2 child, its own instance of the programs (self_domid 11
 * and 22, maps pinned under /sys/fs/bpf/fastivc-test-TAG/{a,b}), sockops on
 * its cgroup, sk_msg on its socks, and NSLOTS loopback slot pairs X-Y in its
 * namespace. App sockets are made by a short-lived child that joins the
 * side's cgroup (cgroup.procs first, then setns) and hands the socket back
 * over SCM_RIGHTS: a socket's cgroup and netns are fixed when it is created,
 * and this process itself stays out of the app cgroups.
 *
 * Usage: test_steer [--tag TAG] (as root). Prints "ok - ", "not ok - " and
 * "skip - " lines; exits non-zero on a failure. tests/bpf/run.sh wraps it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "fastivc/bpf_abi.h"
#include "fastivc.skel.h"

#define NSLOTS 4
#define DOMID_A 11
#define DOMID_B 22
#define DOMID_WRONG 99
#define MAX_EVENTS 256
#define WAIT_MS 2000 /* for what must happen */
#define QUIET_MS 300 /* for what must not */
#define CONNECT_S 3  /* a hang is a failure, not a wait */
#define CGROOT "/sys/fs/cgroup/unified"
#define BPFFS "/sys/fs/bpf"

#define V4_A "10.77.0.1"
#define V4_B "10.77.0.2"
#define V4_B_NOT_PEER "10.77.1.2" /* b's, outside a's peers prefix */
#define V6_A "fd00:77::1"
#define V6_B "fd00:77::2"
#define V4M_B "::ffff:10.77.0.2"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

struct side {
	char name; /* 'a' or 'b' */
	__u32 domid;
	int netns_fd;
	char netns[64];
	char cg_path[256];
	int cg_fd;
	char pin_dir[256];
	struct fastivc_bpf *skel;
	struct bpf_link *sockops_link;
	bool skmsg_attached;
	struct ring_buffer *rb;
	struct fivc_event evs[MAX_EVENTS];
	int nev;
	__u64 stat0[FIVC_STAT__MAX]; /* at the start of the current test */
	int x[NSLOTS], y[NSLOTS];
};

static struct side side_a = {.name = 'a', .domid = DOMID_A};
static struct side side_b = {.name = 'b', .domid = DOMID_B};
static char tag[32];
static char pin_root[200];
static char veth[2][16];
static int orig_netns = -1;
static bool netns_made[2];
static int n_fail, n_ok, n_skip;
static bool cur_ok;
static uint64_t prng = 0x9E3779B97F4A7C15ULL;

static const char *const stat_names[FIVC_STAT__MAX] = {
	[FIVC_STAT_STEERED] = "steered",
	[FIVC_STAT_NOT_PEER] = "not_peer",
	[FIVC_STAT_NO_OPTION] = "no_option",
	[FIVC_STAT_BAD_OPTION] = "bad_option",
	[FIVC_STAT_NO_SLOT] = "no_slot",
	[FIVC_STAT_SOCKHASH_FULL] = "sockhash_full",
	[FIVC_STAT_EVENT_LOST] = "event_lost",
	[FIVC_STAT_MSG_REDIRECT] = "msg_redirect",
	[FIVC_STAT_MSG_PASS] = "msg_pass",
	[FIVC_STAT_INJECT] = "inject",
	[FIVC_STAT_INJECT_FAIL] = "inject_fail",
	[FIVC_STAT_VIA_X] = "via_x",
};

/* --- reporting ------------------------------------------------------------ */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

#define EXPECT(cond, fmt, ...)                                                 \
	({                                                                     \
		bool c_ = (cond);                                              \
		if (!c_) {                                                     \
			note("%s:%d: %s: " fmt, __FILE__, __LINE__, #cond,     \
			     ##__VA_ARGS__);                                   \
			cur_ok = false;                                        \
		}                                                              \
		c_;                                                            \
	})

static void t_begin(void)
{
	cur_ok = true;
}

static void t_end(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void t_end(const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", cur_ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	if (cur_ok)
		n_ok++;
	else
		n_fail++;
}

static void t_skip(const char *name, const char *why)
{
	printf("skip - %s: %s\n", name, why);
	fflush(stdout);
	n_skip++;
}

static uint64_t prng_next(void)
{
	prng ^= prng >> 12;
	prng ^= prng << 25;
	prng ^= prng >> 27;
	return prng * 0x2545F4914F6CDD1DULL;
}

/* A message of len bytes that names its test and is unlike any other. */
static void make_msg(char *buf, size_t len, const char *what)
{
	size_t n = (size_t)snprintf(buf, len, "%s:%016llx:", what,
				    (unsigned long long)prng_next());

	for (; n < len; n++)
		buf[n] = 'a' + (char)(prng_next() % 26);
}

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st != 0)
		note("command failed (%d): %s", st, cmd);
	return st == 0 ? 0 : -1;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- sockets -------------------------------------------------------------- */

static int send_fd(int via, int fd)
{
	char c = 0, cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = &c, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(via, &mh, 0) == 1 ? 0 : -1;
}

static int recv_fd(int via)
{
	char c, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = &c, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(via, &mh, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* A TCP socket created in s's namespace by this process (no app cgroup). */
static int plain_socket(struct side *s, int family)
{
	int fd, err;

	if (setns(s->netns_fd, CLONE_NEWNET)) {
		note("Failed to enter netns %s: %s", s->netns, strerror(errno));
		return -1;
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	err = errno;
	if (setns(orig_netns, CLONE_NEWNET)) {
		note("Failed to return to the original netns: %s",
		     strerror(errno));
		exit(2); /* everything after would be in the wrong place */
	}
	if (fd < 0)
		note("Failed to create a socket: %s", strerror(err));
	return fd;
}

/*
 * A TCP socket created by a child that joined s's cgroup and then s's
 * namespace: sockops runs for it and for the sockets it accepts.
 */
static int app_socket(struct side *s, int family)
{
	int sv[2], fd = -1, st;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		char path[300], buf[32];
		int cg, n, sock;

		snprintf(path, sizeof(path), "%s/cgroup.procs", s->cg_path);
		n = snprintf(buf, sizeof(buf), "%d\n", getpid());
		cg = open(path, O_WRONLY | O_CLOEXEC);
		if (cg < 0 || write(cg, buf, (size_t)n) != n)
			_exit(1);
		close(cg);
		if (setns(s->netns_fd, CLONE_NEWNET))
			_exit(2);
		sock = socket(family, SOCK_STREAM, 0);
		if (sock < 0 || send_fd(sv[1], sock))
			_exit(3);
		_exit(0);
	}
	close(sv[1]);
	fd = recv_fd(sv[0]);
	close(sv[0]);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		note("app socket helper for side %c failed (status %d)",
		     s->name, st);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int make_sockaddr(struct sockaddr_storage *ss, socklen_t *len,
			 int family, const char *ip, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return inet_pton(AF_INET, ip, &sin->sin_addr) == 1 ? 0 : -1;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1 ? 0 : -1;
	}
}

static uint16_t sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int listener(int fd, int family, const char *ip)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, zero = 0;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (make_sockaddr(&ss, &len, family, ip, 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
		note("Failed to listen on %s: %s", ip, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Connects cli to ip at lst's port and accepts; a handshake that takes
 * longer than CONNECT_S is a failure (a hang), never a wait.
 */
static int connect_accept(int cli, int lst, int family, const char *ip)
{
	struct timeval tv = {.tv_sec = CONNECT_S};
	struct pollfd pfd = {.fd = lst, .events = POLLIN};
	struct sockaddr_storage ss;
	socklen_t len;
	int srv;

	setsockopt(cli, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(cli, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (make_sockaddr(&ss, &len, family, ip, sock_port(lst)) ||
	    connect(cli, (struct sockaddr *)&ss, len)) {
		note("Failed to connect to %s: %s", ip, strerror(errno));
		return -1;
	}
	if (poll(&pfd, 1, CONNECT_S * 1000) != 1) {
		note("Failed to accept: no connection");
		return -1;
	}
	srv = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
	if (srv < 0)
		note("Failed to accept: %s", strerror(errno));
	else
		setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return srv;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			note("send: %s", n < 0 ? strerror(errno) : "0");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes within WAIT_MS; returns how many came. */
static size_t read_exact(int fd, void *buf, size_t len)
{
	long deadline = now_ms() + WAIT_MS;
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) != 1)
			break;
		n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
			break;
		if (n > 0)
			got += (size_t)n;
	}
	return got;
}

/* Whether nothing arrives on fd for QUIET_MS (data or EOF). */
static bool stays_quiet(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, QUIET_MS) == 0;
}

/* Whether recv() sees EOF within WAIT_MS. */
static bool sees_eof(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char c;

	return poll(&pfd, 1, WAIT_MS) == 1 &&
	       recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

/* Sends a fresh message on from and checks that to reads exactly it. */
static bool carries(int from, int to, const char *what)
{
	char out[777], in[sizeof(out)];
	size_t got;

	make_msg(out, sizeof(out), what);
	if (write_all(from, out, sizeof(out)))
		return false;
	got = read_exact(to, in, sizeof(in));
	if (got != sizeof(in) || memcmp(in, out, sizeof(in))) {
		note("%s: read %zu of %zu bytes%s", what, got, sizeof(in),
		     got == sizeof(in) ? ", content differs" : "");
		return false;
	}
	return true;
}

static __u64 sock_cookie(int fd)
{
	__u64 c = 0;
	socklen_t len = sizeof(c);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len))
		return 0;
	return c;
}

static void addr16(__u8 out[16], const struct sockaddr_storage *ss, __u16 *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &sin->sin_addr, 4);
		*port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		memcpy(out, &sin6->sin6_addr, 16);
		*port = ntohs(sin6->sin6_port);
	}
}

/* The flow key sockops builds for fd: its 4-tuple, IPv4 mapped. */
static int fd_flow_key(int fd, struct fivc_flow_key *k)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l), rl = sizeof(r);

	memset(k, 0, sizeof(*k));
	if (getsockname(fd, (struct sockaddr *)&l, &ll) ||
	    getpeername(fd, (struct sockaddr *)&r, &rl))
		return -1;
	addr16(k->laddr, &l, &k->lport);
	addr16(k->raddr, &r, &k->rport);
	return 0;
}

static const char *key_str(const struct fivc_flow_key *k)
{
	static char buf[2][160];
	static int i;
	char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN];

	i ^= 1;
	inet_ntop(AF_INET6, k->laddr, l, sizeof(l));
	inet_ntop(AF_INET6, k->raddr, r, sizeof(r));
	snprintf(buf[i], sizeof(buf[i]), "[%s]:%u -> [%s]:%u", l, k->lport, r,
		 k->rport);
	return buf[i];
}

/* --- the agent's side of the maps ----------------------------------------- */

static int map_fd(struct bpf_map *m)
{
	return bpf_map__fd(m);
}

static __u64 stat_get(struct side *s, __u32 idx)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 vals[ncpu > 0 ? ncpu : 1], sum = 0;

	if (ncpu <= 0 ||
	    bpf_map_lookup_elem(map_fd(s->skel->maps.stats), &idx, vals))
		return 0;
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct side *s = ctx;

	if (len >= sizeof(struct fivc_event) && s->nev < MAX_EVENTS)
		memcpy(&s->evs[s->nev++], data, sizeof(struct fivc_event));
	return 0;
}

/* Start of a test: forget old events, remember the counters. */
static void side_reset(struct side *s)
{
	ring_buffer__consume(s->rb);
	s->nev = 0;
	for (__u32 i = 0; i < FIVC_STAT__MAX; i++)
		s->stat0[i] = stat_get(s, i);
}

static __u64 stat_delta(struct side *s, __u32 idx)
{
	return stat_get(s, idx) - s->stat0[idx];
}

/* Every counter moved by exactly what the test expects; else say which. */
static bool stats_are(struct side *s, const __u64 want[FIVC_STAT__MAX])
{
	bool ok = true;

	for (__u32 i = 0; i < FIVC_STAT__MAX; i++) {
		__u64 d = stat_delta(s, i);

		if (d != want[i]) {
			note("side %c: stat %s moved by %llu, expected %llu",
			     s->name, stat_names[i] ? stat_names[i] : "?",
			     (unsigned long long)d,
			     (unsigned long long)want[i]);
			ok = false;
		}
	}
	return ok;
}

/* An event of type (and new_state, unless 0) for cookie, within ms. */
static const struct fivc_event *
wait_event(struct side *s, __u32 type, __u32 new_state, __u64 cookie, int ms)
{
	long deadline = now_ms() + ms;

	for (;;) {
		for (int i = 0; i < s->nev; i++) {
			const struct fivc_event *e = &s->evs[i];

			if (e->type == type && e->cookie == cookie &&
			    (!new_state || e->new_state == new_state))
				return e;
		}
		if (now_ms() >= deadline)
			return NULL;
		ring_buffer__poll(s->rb, 20);
	}
}

static int count_events(struct side *s, __u32 type)
{
	int n = 0;

	ring_buffer__consume(s->rb);
	for (int i = 0; i < s->nev; i++)
		n += s->evs[i].type == type;
	return n;
}

static int flows_count(struct side *s)
{
	struct fivc_flow_key k, next;
	int n = 0, fd = map_fd(s->skel->maps.flows);
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

static int slot_mode(struct side *s, __u32 slot, __u32 mode)
{
	struct fivc_slot v;
	int fd = map_fd(s->skel->maps.slots);

	if (bpf_map_lookup_elem(fd, &slot, &v))
		return -1;
	v.mode = mode;
	return bpf_map_update_elem(fd, &slot, &v, BPF_EXIST);
}

static __u64 sw_get(struct side *s, __u32 slot)
{
	__u64 v = ~0ULL;

	bpf_map_lookup_elem(map_fd(s->skel->maps.slot_sw), &slot, &v);
	return v;
}

static void drain(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/* What an agent does when a flow ends: its slot goes back to the queue. */
static void slot_recycle(struct side *s, __u32 slot,
			 const struct fivc_flow_key *k)
{
	struct fivc_slot idle = {0};
	__u64 zero = 0;

	if (slot >= NSLOTS)
		return;
	bpf_map_delete_elem(map_fd(s->skel->maps.flows), k);
	bpf_map_update_elem(map_fd(s->skel->maps.slots), &slot, &idle, BPF_ANY);
	bpf_map_update_elem(map_fd(s->skel->maps.slot_sw), &slot, &zero,
			    BPF_ANY);
	bpf_map_update_elem(map_fd(s->skel->maps.slot_rd), &slot, &zero,
			    BPF_ANY);
	drain(s->x[slot]);
	drain(s->y[slot]);
	bpf_map_update_elem(map_fd(s->skel->maps.free_slots), NULL, &slot, 0);
}

/* Empties free_slots; returns how many slots it held (into out). */
static int slots_take_all(struct side *s, __u32 out[NSLOTS])
{
	int fd = map_fd(s->skel->maps.free_slots), n = 0;
	__u32 v;

	while (n < NSLOTS && !bpf_map_lookup_and_delete_elem(fd, NULL, &v))
		out[n++] = v;
	return n;
}

static void slots_give_back(struct side *s, const __u32 *slots, int n)
{
	int fd = map_fd(s->skel->maps.free_slots);

	for (int i = 0; i < n; i++)
		bpf_map_update_elem(fd, NULL, &slots[i], 0);
}

static int set_peer(struct side *s, const char *ip6, __u32 plen, __u32 domid)
{
	struct fivc_peer_key k = {.prefixlen = plen};
	struct fivc_peer_val v = {.domid = domid};

	if (inet_pton(AF_INET6, ip6, k.addr) != 1)
		return -1;
	return bpf_map_update_elem(map_fd(s->skel->maps.peers), &k, &v,
				   BPF_ANY);
}

/* --- setup and teardown --------------------------------------------------- */

static int slots_setup(struct side *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int lst, err = -1;

	lst = listener(plain_socket(s, AF_INET), AF_INET, "127.0.0.1");
	if (lst < 0)
		return -1;
	for (__u32 i = 0; i < NSLOTS; i++) {
		struct fivc_sock_key kx = {.role = FIVC_SOCK_SLOT_X, .slot = i};
		struct fivc_sock_key ky = {.role = FIVC_SOCK_SLOT_Y, .slot = i};
		__u64 vx, vy;
		__u16 port;

		/*
		 * Y connects, X is accepted: Y's local port is then its own
		 * ephemeral port, unique per slot, which slot_ports needs.
		 */
		s->y[i] = plain_socket(s, AF_INET);
		if (s->y[i] < 0 ||
		    make_sockaddr(&ss, &len, AF_INET, "127.0.0.1",
				  sock_port(lst)) ||
		    connect(s->y[i], (struct sockaddr *)&ss, len))
			goto out;
		s->x[i] = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
		if (s->x[i] < 0)
			goto out;
		port = sock_port(s->y[i]);
		vx = (__u64)s->x[i];
		vy = (__u64)s->y[i];
		if (bpf_map_update_elem(map_fd(s->skel->maps.slot_ports), &port,
					&i, BPF_NOEXIST) ||
		    bpf_map_update_elem(map_fd(s->skel->maps.socks), &kx, &vx,
					BPF_NOEXIST) ||
		    bpf_map_update_elem(map_fd(s->skel->maps.socks), &ky, &vy,
					BPF_NOEXIST) ||
		    bpf_map_update_elem(map_fd(s->skel->maps.free_slots), NULL,
					&i, 0)) {
			note("Failed to register slot %u: %s", i,
			     strerror(errno));
			goto out;
		}
	}
	err = 0;
out:
	close(lst);
	return err;
}

static int side_setup(struct side *s, const char *const peers[][2],
		      __u32 peer_domid)
{
	struct bpf_map *m;
	char path[320];
	int err;

	snprintf(s->netns, sizeof(s->netns), "fivc-%s-%c", tag, s->name);
	snprintf(path, sizeof(path), "/run/netns/%s", s->netns);
	s->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->netns_fd < 0) {
		note("Failed to open %s: %s", path, strerror(errno));
		return -1;
	}

	snprintf(s->cg_path, sizeof(s->cg_path), "%s/fivc-test-%s-%c", CGROOT,
		 tag, s->name);
	if (mkdir(s->cg_path, 0755) && errno != EEXIST) {
		note("Failed to create cgroup %s: %s", s->cg_path,
		     strerror(errno));
		return -1;
	}
	s->cg_fd = open(s->cg_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->cg_fd < 0)
		return -1;

	s->skel = fastivc_bpf__open();
	if (!s->skel) {
		note("Failed to open the BPF skeleton: %s", strerror(errno));
		return -1;
	}
	s->skel->rodata->self_domid = s->domid;
	err = fastivc_bpf__load(s->skel);
	if (err) {
		note("Failed to load the BPF programs: %s", strerror(-err));
		return -1;
	}

	snprintf(s->pin_dir, sizeof(s->pin_dir), "%s/%c", pin_root, s->name);
	if (mkdir(s->pin_dir, 0700) && errno != EEXIST)
		return -1;
	bpf_object__for_each_map(m, s->skel->obj)
	{
		if (bpf_map__is_internal(m))
			continue;
		snprintf(path, sizeof(path), "%s/%s", s->pin_dir,
			 bpf_map__name(m));
		err = bpf_map__pin(m, path);
		if (err) {
			note("Failed to pin %s: %s", path, strerror(-err));
			return -1;
		}
	}

	s->sockops_link = bpf_program__attach_cgroup(
		s->skel->progs.fivc_sockops, s->cg_fd);
	if (!s->sockops_link) {
		note("Failed to attach sockops to %s: %s", s->cg_path,
		     strerror(errno));
		return -1;
	}
	if (bpf_prog_attach(bpf_program__fd(s->skel->progs.fivc_skmsg),
			    map_fd(s->skel->maps.socks), BPF_SK_MSG_VERDICT,
			    0)) {
		note("Failed to attach sk_msg to socks: %s", strerror(errno));
		return -1;
	}
	s->skmsg_attached = true;
	s->rb = ring_buffer__new(map_fd(s->skel->maps.events), on_event, s,
				 NULL);
	if (!s->rb) {
		note("Failed to open the events ring buffer: %s",
		     strerror(errno));
		return -1;
	}

	for (int i = 0; peers[i][0]; i++) {
		if (set_peer(s, peers[i][0], (__u32)atoi(peers[i][1]),
			     peer_domid)) {
			note("Failed to add peer %s/%s", peers[i][0],
			     peers[i][1]);
			return -1;
		}
	}
	return slots_setup(s);
}

static void side_teardown(struct side *s)
{
	struct bpf_map *m;
	char path[320];

	ring_buffer__free(s->rb);
	bpf_link__destroy(s->sockops_link);
	if (s->skmsg_attached)
		bpf_prog_detach2(bpf_program__fd(s->skel->progs.fivc_skmsg),
				 map_fd(s->skel->maps.socks),
				 BPF_SK_MSG_VERDICT);
	for (int i = 0; i < NSLOTS; i++) {
		if (s->x[i] > 0)
			close(s->x[i]);
		if (s->y[i] > 0)
			close(s->y[i]);
	}
	if (s->skel) {
		bpf_object__for_each_map(m, s->skel->obj)
		{
			if (bpf_map__is_internal(m))
				continue;
			snprintf(path, sizeof(path), "%s/%s", s->pin_dir,
				 bpf_map__name(m));
			unlink(path);
		}
		fastivc_bpf__destroy(s->skel);
	}
	if (s->pin_dir[0])
		rmdir(s->pin_dir);
	if (s->cg_fd > 0)
		close(s->cg_fd);
	if (s->cg_path[0] && rmdir(s->cg_path) && errno != ENOENT)
		note("Failed to remove cgroup %s: %s", s->cg_path,
		     strerror(errno));
	if (s->netns_fd > 0)
		close(s->netns_fd);
}

static int net_setup(void)
{
	static const char *const ns_ip4[2] = {V4_A "/16", V4_B "/16"};
	static const char *const ns_ip6[2] = {V6_A "/64", V6_B "/64"};
	char ns[2][64];

	for (int i = 0; i < 2; i++) {
		snprintf(ns[i], sizeof(ns[i]), "fivc-%s-%c", tag, 'a' + i);
		snprintf(veth[i], sizeof(veth[i]), "fv%.10s%c", tag, 'a' + i);
		if (run_cmd("ip netns add %s", ns[i]))
			return -1;
		netns_made[i] = true;
	}
	if (run_cmd("ip link add %s netns %s type veth peer name %s netns %s",
		    veth[0], ns[0], veth[1], ns[1]))
		return -1;
	for (int i = 0; i < 2; i++) {
		if (run_cmd("ip -n %s link set lo up", ns[i]) ||
		    run_cmd("ip -n %s addr add %s dev %s", ns[i], ns_ip4[i],
			    veth[i]) ||
		    run_cmd("ip -n %s addr add %s dev %s nodad", ns[i],
			    ns_ip6[i], veth[i]) ||
		    run_cmd("ip -n %s link set %s up", ns[i], veth[i]))
			return -1;
	}
	return run_cmd("ip -n %s addr add %s/16 dev %s", ns[1], V4_B_NOT_PEER,
		       veth[1]);
}

static void net_teardown(void)
{
	for (int i = 0; i < 2; i++) {
		if (netns_made[i])
			run_cmd("ip netns del fivc-%s-%c", tag, 'a' + i);
	}
}

/* Why the test cannot run here, or NULL. */
static const char *missing_feature(void)
{
	struct statfs sf;

	if (geteuid() != 0)
		return "needs root";
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		return "no kernel BTF (/sys/kernel/btf/vmlinux)";
	if (statfs(CGROOT, &sf) || sf.f_type != CGROUP2_SUPER_MAGIC)
		return "no cgroup v2 at " CGROOT;
	if (statfs(BPFFS, &sf) || sf.f_type != BPF_FS_MAGIC) {
		if (mount("bpf", BPFFS, "bpf", 0, NULL))
			return "no bpffs at " BPFFS " and mounting it failed";
	}
	if (system("ip -V >/dev/null 2>&1") != 0)
		return "no ip(8) (iproute2)";
	return NULL;
}

/* --- the wire ------------------------------------------------------------- */

/* A packet socket on side s's veth end: it sees both directions. */
static int capture_open(struct side *s, const char *ifname)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_protocol = htons(ETH_P_ALL)};
	int fd = -1;

	if (setns(s->netns_fd, CLONE_NEWNET))
		return -1;
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (sll.sll_ifindex)
		fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    htons(ETH_P_ALL));
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		close(fd);
		fd = -1;
	}
	if (setns(orig_netns, CLONE_NEWNET))
		exit(2);
	return fd;
}

/* The segments of one IPv4 connection seen on the wire. */
struct wire {
	int syn, synack, other;		    /* segments */
	int syn_opt, synack_opt, other_opt; /* of those, with our option */
	bool syn_ok, synack_ok;		    /* option fields as expected */
};

static const uint8_t *find_opt(const uint8_t *p, const uint8_t *end)
{
	while (p < end && p[0] != 0 /* EOL */) {
		if (p[0] == 1 /* NOP */) {
			p++;
			continue;
		}
		if (end - p < 2 || p[1] < 2 || p[1] > end - p)
			return NULL;
		if (p[0] == FIVC_TCPOPT_KIND && p[1] >= 4 &&
		    p[2] == (FIVC_TCPOPT_EXID >> 8) &&
		    p[3] == (FIVC_TCPOPT_EXID & 0xff))
			return p;
		p += p[1];
	}
	return NULL;
}

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static bool opt_is(const uint8_t *o, uint32_t domid, uint32_t nonce)
{
	return o[1] == FIVC_TCPOPT_LEN && be32_at(o + 4) == domid &&
	       be32_at(o + 8) == nonce;
}

static void capture_read(int fd, uint16_t port, uint32_t nonce, struct wire *w)
{
	uint8_t buf[2048];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		const uint8_t *ip = buf + ETH_HLEN, *tcp, *opt;
		size_t ihl, doff;
		uint16_t sport, dport;
		uint8_t flags;

		if (n < ETH_HLEN + 40 || buf[12] != 0x08 || buf[13] != 0x00 ||
		    ip[9] != IPPROTO_TCP)
			continue;
		ihl = (size_t)(ip[0] & 0xf) * 4;
		tcp = ip + ihl;
		if (ETH_HLEN + ihl + 20 > (size_t)n)
			continue;
		doff = (size_t)(tcp[12] >> 4) * 4;
		if (doff < 20 || ETH_HLEN + ihl + doff > (size_t)n)
			continue;
		sport = (uint16_t)(tcp[0] << 8 | tcp[1]);
		dport = (uint16_t)(tcp[2] << 8 | tcp[3]);
		if (sport != port && dport != port)
			continue;
		flags = tcp[13];
		opt = find_opt(tcp + 20, tcp + doff);
		if ((flags & 0x12) == 0x02) { /* SYN */
			w->syn++;
			w->syn_opt += !!opt;
			w->syn_ok = opt && opt_is(opt, DOMID_A, nonce);
		} else if ((flags & 0x12) == 0x12) { /* SYN-ACK */
			w->synack++;
			w->synack_opt += !!opt;
			w->synack_ok = opt && opt_is(opt, DOMID_B, nonce);
		} else {
			w->other++;
			w->other_opt += !!opt;
		}
	}
}

/* --- the tests ------------------------------------------------------------ */

static bool same_key(const struct fivc_flow_key *a,
		     const struct fivc_flow_key *b)
{
	return !memcmp(a, b, sizeof(*a));
}

/* The slot's registration agrees with the event: flows and slots. */
static bool flow_recorded(struct side *s, const struct fivc_event *e,
			  const struct fivc_flow_key *k)
{
	struct fivc_flow f;
	struct fivc_slot sl;
	bool ok = true;

	ok &= EXPECT(!bpf_map_lookup_elem(map_fd(s->skel->maps.flows), k, &f),
		     "side %c: no flows entry for %s", s->name, key_str(k));
	if (ok) {
		ok &= EXPECT(f.slot == e->slot && f.nonce == e->nonce &&
				     f.peer_domid == e->peer_domid &&
				     f.dir == e->dir && f.cookie == e->cookie,
			     "side %c: flows entry differs from the event",
			     s->name);
	}
	ok &= EXPECT(e->slot < NSLOTS, "side %c: slot %u", s->name, e->slot);
	if (e->slot < NSLOTS &&
	    !bpf_map_lookup_elem(map_fd(s->skel->maps.slots), &e->slot, &sl))
		ok &= EXPECT(same_key(&sl.flow, k) && sl.mode == FIVC_SLOT_IDLE,
			     "side %c: slots[%u] = %s mode %u", s->name,
			     e->slot, key_str(&sl.flow), sl.mode);
	return ok;
}

static void check_bpftool_dump(void)
{
	char cmd[400], out[65536];
	size_t n = 0;
	FILE *p;

	if (system("bpftool version >/dev/null 2>&1") != 0) {
		t_skip("(i) bpftool map dump shows BTF field names",
		       "no bpftool");
		return;
	}
	t_begin();
	snprintf(cmd, sizeof(cmd), "bpftool map dump pinned %s/flows 2>&1",
		 side_a.pin_dir);
	p = popen(cmd, "r");
	if (EXPECT(p != NULL, "popen")) {
		n = fread(out, 1, sizeof(out) - 1, p);
		pclose(p);
	}
	out[n] = 0;
	EXPECT(strstr(out, "\"peer_domid\"") && strstr(out, "\"laddr\"") &&
		       strstr(out, "\"tx_bytes\""),
	       "output: %.300s", out);
	t_end("(i) bpftool map dump pinned .../flows shows BTF field names "
	      "(peer_domid, laddr, tx_bytes)");
}

/*
 * (a)-(d), (h), (k) over one family: a's app connects to b's app through
 * the veth, both sides steer, and the test moves bytes the way an agent
 * would.
 */
/* What an agent does after reading from Y: slot_rd says how much. */
static void rd_set(struct side *s, __u32 slot, __u64 n)
{
	bpf_map_update_elem(map_fd(s->skel->maps.slot_rd), &slot, &n, BPF_ANY);
}

/*
 * (r) The route of a's sends (cli's slot sa; ROUTE_WINDOW in flight): Y's
 * queue directly until the bytes the agent has not read would pass the
 * window, then X, and back to Y only once every byte was read. The agent
 * reads them in the order sent: Y's queue before X's bytes.
 */
#define ROUTE_WINDOW (64 * 1024)
#define ROUTE_CHUNK (24 * 1024)

static void test_routes(int cli, __u32 sa, const char *fam)
{
	static char out[5][ROUTE_CHUNK], in[sizeof(out)];
	__u64 read0 = sw_get(&side_a, sa) >> FIVC_SW_SENT_SHIFT;
	__u64 via_x[5];

	t_begin();
	side_reset(&side_a);
	rd_set(&side_a, sa, read0);
	side_a.skel->bss->ingress_window = ROUTE_WINDOW;
	for (int i = 0; i < 5; i++) {
		char what[32];

		snprintf(what, sizeof(what), "r:route %d", i);
		make_msg(out[i], ROUTE_CHUNK, what);
		/*
		 * Before send 4 the agent reads two of the three (X's
		 * still unread, the window open again); before send 5 the
		 * rest.
		 */
		if (i == 3 || i == 4) {
			EXPECT(read_exact(side_a.y[sa], in, 2 * ROUTE_CHUNK) ==
					       2 * ROUTE_CHUNK &&
				       !memcmp(in, out[2 * i - 6],
					       2 * ROUTE_CHUNK),
			       "Y did not give sends %d-%d in order", 2 * i - 5,
			       2 * i - 4);
			rd_set(&side_a, sa,
			       read0 + (2 * (__u64)i - 4) * ROUTE_CHUNK);
		}
		EXPECT(!write_all(cli, out[i], ROUTE_CHUNK), "send %d", i);
		via_x[i] = stat_delta(&side_a, FIVC_STAT_VIA_X);
	}
	EXPECT(read_exact(side_a.y[sa], in, ROUTE_CHUNK) == ROUTE_CHUNK &&
		       !memcmp(in, out[4], ROUTE_CHUNK),
	       "Y did not give the fifth send");
	EXPECT(via_x[0] == 0 && via_x[1] == 0, "sends 1-2 took X (%llu)",
	       (unsigned long long)via_x[1]);
	EXPECT(via_x[2] >= 1, "send 3 (past the window) did not take X");
	EXPECT(via_x[3] > via_x[2],
	       "send 4 (X's bytes unread, window open) did not take X");
	EXPECT(via_x[4] == via_x[3], "send 5 (all read) took X");
	rd_set(&side_a, sa, read0 + 5 * ROUTE_CHUNK);
	side_a.skel->bss->ingress_window = 0;
	t_end("(r) %s: sends go straight into Y while the unread bytes stay "
	      "under the window, then through X until every byte was read; "
	      "Y gives them in the order sent",
	      fam);
}

static void test_steered(const char *fam, int family, const char *b_ip,
			 bool extra)
{
	const struct fivc_event *ea = NULL, *eb = NULL, *e;
	struct fivc_event ea_c = {0}, eb_c = {0};
	struct fivc_flow_key ka, kb;
	int lst, cli = -1, srv = -1;
	__u64 want_a[FIVC_STAT__MAX] = {0}, want_b[FIVC_STAT__MAX] = {0};
	__u64 ca = 0, cb = 0;
	__u32 sa = NSLOTS, sb = NSLOTS;
	char out[1000], in[sizeof(out)];
	int cap = -1;

	side_reset(&side_a);
	side_reset(&side_b);
	if (extra)
		cap = capture_open(&side_b, veth[1]);
	t_begin();
	lst = listener(app_socket(&side_b, family), family,
		       family == AF_INET ? V4_B : "::");
	if (EXPECT(lst >= 0, "listener")) {
		cli = app_socket(&side_a, family);
		if (EXPECT(cli >= 0, "client socket"))
			srv = connect_accept(cli, lst, family, b_ip);
		close(lst);
	}
	if (EXPECT(srv >= 0, "connection") && !fd_flow_key(cli, &ka) &&
	    !fd_flow_key(srv, &kb)) {
		ca = sock_cookie(cli);
		cb = sock_cookie(srv);
		ea = wait_event(&side_a, FIVC_EV_ESTABLISHED, 0, ca, WAIT_MS);
		eb = wait_event(&side_b, FIVC_EV_ESTABLISHED, 0, cb, WAIT_MS);
	}
	EXPECT(ea, "no ESTABLISHED event on side a");
	EXPECT(eb, "no ESTABLISHED event on side b");
	if (ea && eb) {
		ea_c = *ea;
		eb_c = *eb;
		sa = ea->slot;
		sb = eb->slot;
		EXPECT(ea->dir == FIVC_FLOW_ACTIVE &&
			       eb->dir == FIVC_FLOW_PASSIVE,
		       "dir %u/%u", ea->dir, eb->dir);
		EXPECT(ea->peer_domid == DOMID_B && eb->peer_domid == DOMID_A,
		       "peer_domid %u/%u", ea->peer_domid, eb->peer_domid);
		EXPECT(ea->nonce == eb->nonce, "nonce %08x/%08x", ea->nonce,
		       eb->nonce);
		EXPECT(same_key(&ea->flow, &ka), "a's key %s, socket's %s",
		       key_str(&ea->flow), key_str(&ka));
		EXPECT(same_key(&eb->flow, &kb), "b's key %s, socket's %s",
		       key_str(&eb->flow), key_str(&kb));
		EXPECT(!memcmp(ka.laddr, kb.raddr, 16) && ka.lport == kb.rport,
		       "the two sides disagree on the 4-tuple");
		flow_recorded(&side_a, ea, &ka);
		flow_recorded(&side_b, eb, &kb);
	}
	want_a[FIVC_STAT_STEERED] = want_b[FIVC_STAT_STEERED] = 1;
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	t_end("(a) %s: both sides steer; ESTABLISHED events carry the same "
	      "nonce, the other side's domid and mirrored 4-tuples",
	      fam);
	if (!ea || !eb) {
		t_skip("(b)-(d),(h) steered data path", "(a) failed");
		goto out;
	}

	if (extra)
		check_bpftool_dump();

	/* (b) the app's bytes go to its slot's Y, nothing crosses TCP. */
	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	EXPECT(sw_get(&side_a, sa) == 0, "a: slot_sw %#llx before any send",
	       (unsigned long long)sw_get(&side_a, sa));
	make_msg(out, sizeof(out), "b:client->Y");
	if (!write_all(cli, out, sizeof(out)))
		EXPECT(read_exact(side_a.y[sa], in, sizeof(in)) == sizeof(in) &&
			       !memcmp(in, out, sizeof(in)),
		       "a's Y did not read the client's bytes");
	EXPECT(stays_quiet(srv), "bytes reached the server over TCP");
	EXPECT(carries(srv, side_b.y[sb], "b:server->Y"),
	       "b's Y did not read the server's bytes");
	EXPECT(stays_quiet(cli), "bytes reached the client over TCP");
	{
		struct fivc_flow f;

		if (EXPECT(!bpf_map_lookup_elem(map_fd(side_a.skel->maps.flows),
						&ka, &f),
			   "flow gone"))
			EXPECT(f.tx_msgs == 1 && f.tx_bytes == sizeof(out),
			       "tx_msgs %llu tx_bytes %llu",
			       (unsigned long long)f.tx_msgs,
			       (unsigned long long)f.tx_bytes);
	}
	memset(want_a, 0, sizeof(want_a));
	memset(want_b, 0, sizeof(want_b));
	want_a[FIVC_STAT_MSG_REDIRECT] = want_b[FIVC_STAT_MSG_REDIRECT] = 1;
	/* ingress_window is 0 here: every send takes X (see (r)). */
	want_a[FIVC_STAT_VIA_X] = want_b[FIVC_STAT_VIA_X] = 1;
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	EXPECT(sw_get(&side_a, sa) ==
		       (FIVC_SW_CAPTURED | (__u64)sizeof(out)
						   << FIVC_SW_SENT_SHIFT),
	       "a: slot_sw %#llx after the first send, want CAPTURED and "
	       "%zu bytes",
	       (unsigned long long)sw_get(&side_a, sa), sizeof(out));
	t_end("(b) %s: app sends arrive on the own side's Y, by content, and "
	      "not at the peer app; the first one marks the flow CAPTURED, "
	      "slot_sw counts its bytes",
	      fam);

	if (extra)
		test_routes(cli, sa, fam);

	/* (c) IDLE: Y's bytes stay on loopback; INJECT: the app reads them. */
	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	EXPECT(carries(side_a.y[sa], side_a.x[sa], "c:idle Y->X"),
	       "IDLE: Y's bytes should reach X over loopback");
	EXPECT(!slot_mode(&side_a, sa, FIVC_SLOT_INJECT) &&
		       !slot_mode(&side_b, sb, FIVC_SLOT_INJECT),
	       "set mode");
	EXPECT(carries(side_a.y[sa], cli, "c:inject->client"),
	       "client did not read the injected bytes");
	EXPECT(carries(side_b.y[sb], srv, "c:inject->server"),
	       "server did not read the injected bytes");
	EXPECT(stays_quiet(side_a.x[sa]), "bytes leaked to X");
	memset(want_a, 0, sizeof(want_a));
	memset(want_b, 0, sizeof(want_b));
	want_a[FIVC_STAT_INJECT_FAIL] = 1;
	want_a[FIVC_STAT_INJECT] = want_b[FIVC_STAT_INJECT] = 1;
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	t_end("(c) %s: INJECT: the app reads exactly the bytes written on Y "
	      "(IDLE: they stay on loopback, inject_fail counted)",
	      fam);

	/* (d) RELAY: Y's bytes leave through the app socket's own TCP. */
	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	EXPECT(!slot_mode(&side_a, sa, FIVC_SLOT_RELAY), "set mode");
	EXPECT(carries(side_a.y[sa], srv, "d:relay->server"),
	       "server did not receive the relayed bytes over TCP");
	EXPECT(stays_quiet(side_b.y[sb]), "relayed bytes went to b's Y");
	EXPECT(stays_quiet(cli), "relayed bytes came back to the client");
	memset(want_a, 0, sizeof(want_a));
	memset(want_b, 0, sizeof(want_b));
	want_a[FIVC_STAT_INJECT] = 1;
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	t_end("(d) %s: RELAY: bytes written on Y reach the server over TCP",
	      fam);

	if (extra) {
		/* (k) No X to redirect to: pass to TCP, never drop. */
		struct fivc_sock_key kx = {.role = FIVC_SOCK_SLOT_X,
					   .slot = sa};
		__u64 vx = (__u64)side_a.x[sa];
		int socks = map_fd(side_a.skel->maps.socks);

		t_begin();
		side_reset(&side_a);
		EXPECT(!bpf_map_delete_elem(socks, &kx), "delete X");
		EXPECT(carries(cli, srv, "k:no X, 1"),
		       "first send without X did not pass to TCP");
		EXPECT(carries(cli, srv, "k:no X, 2"),
		       "second send failed: the socket was poisoned");
		EXPECT(stat_delta(&side_a, FIVC_STAT_MSG_PASS) == 2,
		       "msg_pass moved by %llu",
		       (unsigned long long)stat_delta(&side_a,
						      FIVC_STAT_MSG_PASS));
		EXPECT(!bpf_map_update_elem(socks, &kx, &vx, BPF_NOEXIST),
		       "re-insert X");
		EXPECT(carries(cli, side_a.y[sa], "k:X back"),
		       "with X back, sends go to Y again");
		t_end("(k) %s: a failed redirect returns SK_PASS (plain TCP, "
		      "msg_pass counted), the socket keeps working",
		      fam);
	}

	/* (h) STATE events for shutdown and close, steered sockets only. */
	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	EXPECT(!shutdown(cli, SHUT_WR), "shutdown");
	e = wait_event(&side_a, FIVC_EV_STATE, BPF_TCP_FIN_WAIT1, ca, WAIT_MS);
	EXPECT(e && e->old_state == BPF_TCP_ESTABLISHED,
	       "a: no ESTABLISHED -> FIN_WAIT1 event");
	{
		/* After the FIN no byte takes the slot (the count is final). */
		__u64 sw = sw_get(&side_a, sa);

		EXPECT(send(cli, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE,
		       "a send after shutdown did not fail with EPIPE");
		EXPECT(sw_get(&side_a, sa) == sw,
		       "slot_sw %#llx after a send past the FIN, was %#llx",
		       (unsigned long long)sw_get(&side_a, sa),
		       (unsigned long long)sw);
	}
	EXPECT(sees_eof(srv), "server did not see EOF");
	close(srv);
	srv = -1;
	e = wait_event(&side_b, FIVC_EV_STATE, BPF_TCP_LAST_ACK, cb, WAIT_MS);
	EXPECT(e && e->old_state == BPF_TCP_CLOSE_WAIT,
	       "b: no CLOSE_WAIT -> LAST_ACK event");
	EXPECT(wait_event(&side_b, FIVC_EV_STATE, BPF_TCP_CLOSE, cb, WAIT_MS),
	       "b: no -> CLOSE event");
	EXPECT(wait_event(&side_a, FIVC_EV_STATE, BPF_TCP_CLOSE, ca, WAIT_MS),
	       "a: no -> CLOSE event");
	for (int i = 0; i < side_a.nev + side_b.nev; i++) {
		e = i < side_a.nev ? &side_a.evs[i]
				   : &side_b.evs[i - side_a.nev];
		EXPECT(e->new_state == BPF_TCP_FIN_WAIT1 ||
			       e->new_state == BPF_TCP_LAST_ACK ||
			       e->new_state == BPF_TCP_CLOSE,
		       "an event for state %u, which the agent does not use",
		       e->new_state);
	}
	for (int i = 0; i < side_a.nev; i++) {
		e = &side_a.evs[i];
		EXPECT(e->type == FIVC_EV_STATE && e->slot == sa &&
			       e->nonce == ea_c.nonce &&
			       e->dir == FIVC_FLOW_ACTIVE &&
			       same_key(&e->flow, &ka),
		       "a: event %d (type %u %u->%u) does not match the flow",
		       i, e->type, e->old_state, e->new_state);
	}
	for (int i = 0; i < side_b.nev; i++) {
		e = &side_b.evs[i];
		EXPECT(e->type == FIVC_EV_STATE && e->slot == sb &&
			       e->nonce == eb_c.nonce &&
			       e->dir == FIVC_FLOW_PASSIVE &&
			       same_key(&e->flow, &kb),
		       "b: event %d (type %u %u->%u) does not match the flow",
		       i, e->type, e->old_state, e->new_state);
	}
	t_end("(h) %s: STATE events on shutdown (a: FIN_WAIT1) and close (b: "
	      "LAST_ACK, CLOSE on both), all naming the flow, none for the "
	      "states the agent does not use (FIN_WAIT2, CLOSE_WAIT, "
	      "TIME_WAIT); a send after the FIN fails (EPIPE) and is not "
	      "counted",
	      fam);

	if (extra && family == AF_INET) {
		struct wire w = {0};

		if (cap < 0) {
			t_skip("(a) on the wire", "no AF_PACKET socket");
			goto out;
		}
		t_begin();
		capture_read(cap, kb.lport, ea_c.nonce, &w);
		EXPECT(w.syn >= 1 && w.syn_opt == w.syn && w.syn_ok,
		       "SYN: %d seen, %d with the option, fields %s", w.syn,
		       w.syn_opt, w.syn_ok ? "ok" : "wrong");
		EXPECT(w.synack >= 1 && w.synack_opt == w.synack && w.synack_ok,
		       "SYN-ACK: %d seen, %d with the option, fields %s",
		       w.synack, w.synack_opt, w.synack_ok ? "ok" : "wrong");
		EXPECT(w.other >= 3 && w.other_opt == 0,
		       "later segments: %d seen, %d with the option", w.other,
		       w.other_opt);
		t_end("(a) %s on the wire: SYN {kind 254, len 12, ExID 0x%04X, "
		      "domid %u, nonce} and SYN-ACK {domid %u, same nonce}, "
		      "big "
		      "endian; none of the %d later segments carries it",
		      fam, FIVC_TCPOPT_EXID, DOMID_A, DOMID_B, w.other);
	}
out:
	if (cap >= 0)
		close(cap);
	if (cli >= 0)
		close(cli);
	if (srv >= 0)
		close(srv);
	if (ea && eb) {
		slot_recycle(&side_a, sa, &ka);
		slot_recycle(&side_b, sb, &kb);
	}
}

/*
 * (l) The agent gives a steered flow back to TCP before its first byte
 * (CANCELLED, what it does when no tunnel comes up): every send passes.
 */
static void test_cancelled(void)
{
	const struct fivc_event *ea = NULL, *eb = NULL;
	struct fivc_flow_key ka, kb;
	__u64 cancelled = FIVC_SW_CANCELLED;
	int lst, cli = -1, srv = -1;

	side_reset(&side_a);
	side_reset(&side_b);
	t_begin();
	lst = listener(app_socket(&side_b, AF_INET), AF_INET, V4_B);
	if (EXPECT(lst >= 0, "listener")) {
		cli = app_socket(&side_a, AF_INET);
		if (EXPECT(cli >= 0, "client socket"))
			srv = connect_accept(cli, lst, AF_INET, V4_B);
		close(lst);
	}
	if (EXPECT(srv >= 0, "connection") && !fd_flow_key(cli, &ka) &&
	    !fd_flow_key(srv, &kb)) {
		ea = wait_event(&side_a, FIVC_EV_ESTABLISHED, 0,
				sock_cookie(cli), WAIT_MS);
		eb = wait_event(&side_b, FIVC_EV_ESTABLISHED, 0,
				sock_cookie(srv), WAIT_MS);
	}
	if (EXPECT(ea && eb, "both sides steer")) {
		__u32 slot = ea->slot;
		struct fivc_sock_key kx = {.role = FIVC_SOCK_SLOT_X,
					   .slot = slot};
		__u64 vx = (__u64)side_a.x[slot];
		int socks = map_fd(side_a.skel->maps.socks);

		/* No X before the first byte: TCP, and the flow stays free. */
		EXPECT(!bpf_map_delete_elem(socks, &kx), "delete X");
		EXPECT(carries(cli, srv, "l:no X yet"),
		       "a first send without X must take TCP");
		EXPECT(sw_get(&side_a, slot) == 0,
		       "slot_sw %#llx after a void claim, want 0",
		       (unsigned long long)sw_get(&side_a, slot));
		EXPECT(!bpf_map_update_elem(socks, &kx, &vx, BPF_NOEXIST),
		       "re-insert X");
		side_reset(&side_a);

		EXPECT(!bpf_map_update_elem(map_fd(side_a.skel->maps.slot_sw),
					    &slot, &cancelled, BPF_ANY),
		       "cancel");
		EXPECT(carries(cli, srv, "l:cancelled, 1") &&
			       carries(cli, srv, "l:cancelled, 2"),
		       "sends of a cancelled flow must take TCP");
		EXPECT(stays_quiet(side_a.y[slot]), "bytes reached Y");
		EXPECT(stat_delta(&side_a, FIVC_STAT_CANCELLED) == 2 &&
			       stat_delta(&side_a, FIVC_STAT_MSG_REDIRECT) == 0,
		       "cancelled moved by %llu, msg_redirect by %llu",
		       (unsigned long long)stat_delta(&side_a,
						      FIVC_STAT_CANCELLED),
		       (unsigned long long)stat_delta(&side_a,
						      FIVC_STAT_MSG_REDIRECT));
		EXPECT(sw_get(&side_a, slot) == FIVC_SW_CANCELLED,
		       "slot_sw %#llx, want CANCELLED only",
		       (unsigned long long)sw_get(&side_a, slot));
	}
	t_end("(l) before a flow's first byte, a missing X leaves it on TCP; "
	      "cancelled, every send passes to TCP (cancelled counted), "
	      "nothing reaches Y");
	if (cli >= 0)
		close(cli);
	if (srv >= 0)
		close(srv);
	if (ea && eb) {
		slot_recycle(&side_a, ea->slot, &ka);
		slot_recycle(&side_b, eb->slot, &kb);
	}
}

/*
 * A connection that must stay plain TCP: from side cs (in its cgroup or
 * not) to side ss (likewise) at ip; returns whether it worked both ways
 * with no ESTABLISHED event and no flows entry on either side.
 */
static bool plain_connection(struct side *cs, bool c_app, struct side *ss,
			     bool s_app, int family, const char *bind_ip,
			     const char *ip)
{
	int lst, cli, srv = -1;
	bool ok = true;
	long t0;

	lst = listener(s_app ? app_socket(ss, family)
			     : plain_socket(ss, family),
		       family, bind_ip);
	cli = c_app ? app_socket(cs, family) : plain_socket(cs, family);
	if (!EXPECT(lst >= 0 && cli >= 0, "sockets"))
		goto out;
	t0 = now_ms();
	srv = connect_accept(cli, lst, family, ip);
	ok &= EXPECT(srv >= 0, "connection");
	ok &= EXPECT(now_ms() - t0 < 1000, "handshake took %ld ms",
		     now_ms() - t0);
	if (srv >= 0) {
		ok &= EXPECT(carries(cli, srv, "plain client->server"),
			     "client->server over TCP");
		ok &= EXPECT(carries(srv, cli, "plain server->client"),
			     "server->client over TCP");
	}
out:
	ok &= EXPECT(count_events(&side_a, FIVC_EV_ESTABLISHED) == 0 &&
			     count_events(&side_b, FIVC_EV_ESTABLISHED) == 0,
		     "unexpected ESTABLISHED event");
	ok &= EXPECT(flows_count(&side_a) == 0 && flows_count(&side_b) == 0,
		     "unexpected flows entry");
	if (lst >= 0)
		close(lst);
	if (cli >= 0)
		close(cli);
	if (srv >= 0)
		close(srv);
	return ok;
}

static void test_not_peer(void)
{
	__u64 want_a[FIVC_STAT__MAX] = {0}, want_b[FIVC_STAT__MAX] = {0};

	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	plain_connection(&side_a, true, &side_b, true, AF_INET, "0.0.0.0",
			 V4_B_NOT_PEER);
	want_a[FIVC_STAT_NOT_PEER] = 1;
	want_b[FIVC_STAT_NO_OPTION] = 1; /* a is b's peer, but sent nothing */
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	t_end("(e) remote not in peers: plain TCP both ways, not_peer counted "
	      "(and no_option on the passive side)");
}

static void test_no_program(void)
{
	__u64 want_a[FIVC_STAT__MAX] = {0}, want_b[FIVC_STAT__MAX] = {0};

	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	plain_connection(&side_a, true, &side_b, false, AF_INET, V4_B, V4_B);
	want_a[FIVC_STAT_NO_OPTION] = 1;
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	t_end("(f) active side, peer without the program: no_option, plain "
	      "TCP, handshake under 1 s");

	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	plain_connection(&side_b, false, &side_a, true, AF_INET, V4_A, V4_A);
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	t_end("(f) passive side, peer without the program: no_option, plain "
	      "TCP");
}

static void test_no_slot(void)
{
	__u64 want_a[FIVC_STAT__MAX] = {0}, want_b[FIVC_STAT__MAX] = {0};
	__u32 held[NSLOTS];
	int n;

	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	n = slots_take_all(&side_a, held);
	EXPECT(n == NSLOTS, "a had %d free slots", n);
	plain_connection(&side_a, true, &side_b, true, AF_INET, V4_B, V4_B);
	slots_give_back(&side_a, held, n);
	want_a[FIVC_STAT_NO_SLOT] = 1;
	want_b[FIVC_STAT_NO_OPTION] = 1;
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	t_end("(g) active side without a free slot: no_slot, no option "
	      "offered, plain TCP");

	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	n = slots_take_all(&side_b, held);
	EXPECT(n == NSLOTS, "b had %d free slots", n);
	plain_connection(&side_a, true, &side_b, true, AF_INET, V4_B, V4_B);
	slots_give_back(&side_b, held, n);
	memset(want_a, 0, sizeof(want_a));
	memset(want_b, 0, sizeof(want_b));
	want_a[FIVC_STAT_NO_OPTION] = 1; /* b did not answer */
	want_b[FIVC_STAT_NO_SLOT] = 1;
	EXPECT(stats_are(&side_a, want_a), "side a counters");
	EXPECT(stats_are(&side_b, want_b), "side b counters");
	t_end("(g) passive side without a free slot: no_slot, SYN-ACK "
	      "unanswered (a: no_option), plain TCP");
}

/*
 * (j) a's peers say b is another domain: a refuses b's answer. b steered
 * already (it cannot see a's verdict); its agent would find no tunnel
 * partner and relay. Here only a's side is checked.
 */
static void test_bad_option(void)
{
	const struct fivc_event *eb;
	struct fivc_flow_key kb;
	int lst, cli = -1, srv = -1;

	t_begin();
	side_reset(&side_a);
	side_reset(&side_b);
	EXPECT(!set_peer(&side_a, "::ffff:10.77.0.0", 120, DOMID_WRONG),
	       "set peer");
	lst = listener(app_socket(&side_b, AF_INET), AF_INET, V4_B);
	cli = app_socket(&side_a, AF_INET);
	if (EXPECT(lst >= 0 && cli >= 0, "sockets"))
		srv = connect_accept(cli, lst, AF_INET, V4_B);
	if (EXPECT(srv >= 0, "connection")) {
		EXPECT(carries(cli, srv, "j:client->server"),
		       "client->server over TCP");
		EXPECT(stat_delta(&side_a, FIVC_STAT_BAD_OPTION) == 1 &&
			       stat_delta(&side_a, FIVC_STAT_STEERED) == 0,
		       "a: bad_option %llu steered %llu",
		       (unsigned long long)stat_delta(&side_a,
						      FIVC_STAT_BAD_OPTION),
		       (unsigned long long)stat_delta(&side_a,
						      FIVC_STAT_STEERED));
		EXPECT(count_events(&side_a, FIVC_EV_ESTABLISHED) == 0 &&
			       flows_count(&side_a) == 0,
		       "a steered");
		eb = wait_event(&side_b, FIVC_EV_ESTABLISHED, 0,
				sock_cookie(srv), QUIET_MS);
		note("(j) passive side %s (expected: it cannot see the active "
		     "side's verdict)",
		     eb ? "steered" : "did not steer");
		if (eb && !fd_flow_key(srv, &kb))
			slot_recycle(&side_b, eb->slot, &kb);
	}
	EXPECT(!set_peer(&side_a, "::ffff:10.77.0.0", 120, DOMID_B),
	       "restore peer");
	if (lst >= 0)
		close(lst);
	if (cli >= 0)
		close(cli);
	if (srv >= 0)
		close(srv);
	t_end("(j) SYN-ACK with a domid other than peers says: bad_option, "
	      "the active side stays plain TCP");
}

int main(int argc, char **argv)
{
	static const char *const peers_of_a[][2] = {
		{"::ffff:10.77.0.0", "120"}, /* b's 10.77.0.0/24 */
		{"fd00:77::2", "128"},
		{NULL, NULL},
	};
	static const char *const peers_of_b[][2] = {
		{"::ffff:" V4_A, "128"},
		{"fd00:77::", "64"},
		{NULL, NULL},
	};
	const char *why;
	int setup_ok;

	snprintf(tag, sizeof(tag), "%d", getpid());
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			snprintf(tag, sizeof(tag), "%s", argv[++i]);
	}
	prng ^= (uint64_t)getpid() << 17 ^ (uint64_t)time(NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	why = missing_feature();
	if (why) {
		t_skip("bpf steering", why);
		return 0;
	}
	orig_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	snprintf(pin_root, sizeof(pin_root), "%s/fastivc-test-%s", BPFFS, tag);

	t_begin();
	setup_ok = orig_netns >= 0 && mkdir(pin_root, 0700) == 0 &&
		   net_setup() == 0 &&
		   side_setup(&side_a, peers_of_a, DOMID_B) == 0 &&
		   side_setup(&side_b, peers_of_b, DOMID_A) == 0;
	EXPECT(setup_ok, "see above");
	t_end("setup: two netns, two cgroups, two program instances, %d slot "
	      "pairs each",
	      NSLOTS);
	if (setup_ok) {
		test_steered("IPv4", AF_INET, V4_B, true);
		test_cancelled();
		test_steered("IPv6", AF_INET6, V6_B, false);
		test_steered("IPv4-mapped on AF_INET6 sockets", AF_INET6, V4M_B,
			     false);
		test_not_peer();
		test_no_program();
		test_no_slot();
		test_bad_option();
	}

	side_teardown(&side_a);
	side_teardown(&side_b);
	rmdir(pin_root);
	net_teardown();
	printf("# %d passed, %d failed, %d skipped\n", n_ok, n_fail, n_skip);
	return n_fail ? 1 : 0;
}
