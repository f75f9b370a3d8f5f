// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The rmem probe through BPF_PROG_TEST_RUN, over real sockets: 64 TCP
 * connections on loopback in a namespace of our own, their accepted ends
 * in socks as app sockets, each with its own count of unread bytes. One
 * run answers all 64 keys with each socket's cookie and sk_rmem_alloc (at
 * least the unread bytes, 0 when there are none, 0 again once the app
 * read everything); a key not in socks gets cookie 0. Prints what one run
 * costs with 1 key and with 64 (docs/steering.md quotes it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "fastivc/bpf_abi.h"
#include "fastivc.skel.h"

#define N FIVC_RMEM_PROBE_MAX
#define RUNS 1000

static int n_ok, n_fail;

static void check(bool cond, const char *what)
{
	printf("%s - rmem_probe: %s\n", cond ? "ok" : "not ok", what);
	cond ? n_ok++ : n_fail++;
}

static struct fivc_sock_key key_of(int i)
{
	return (struct fivc_sock_key){.role = FIVC_SOCK_APP,
				      .flow.lport = (__u16)(i + 1)};
}

/* One run over keys @first, @first + 1, ... (@n of them). 0 or -errno. */
static int probe(struct fastivc_bpf *s, struct fivc_rmem_probe *p, int first,
		 int n)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p,
		    .data_size_in = sizeof(*p), .data_out = p,
		    .data_size_out = sizeof(*p));

	memset(p, 0, sizeof(*p));
	p->n = (__u16)n;
	for (int i = 0; i < n; i++)
		p->q[i].key = key_of(first + i);
	if (bpf_prog_test_run_opts(bpf_program__fd(s->progs.fivc_rmem_probe),
				   &o))
		return -errno;
	return o.data_size_out == sizeof(*p) ? 0 : -EIO;
}

/* Microseconds one run with @n keys takes, as the agent calls it. */
static double cost_us(struct fastivc_bpf *s, int n)
{
	struct fivc_rmem_probe p;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int r = 0; r < RUNS; r++)
		if (probe(s, &p, 0, n))
			return -1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
		(double)(t1.tv_nsec - t0.tv_nsec)) /
	       1e3 / RUNS;
}

static int lo_up(void)
{
	struct ifreq ifr = {.ifr_name = "lo"};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		err = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!err && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* @n connections on loopback; srv[i]: the accepted end. 0 or -errno. */
static int connect_all(int *cli, int *srv, int n)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int lfd, err = 0;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, n) || getsockname(lfd, (struct sockaddr *)&a, &len))
		err = -errno;
	for (int i = 0; i < n && !err; i++) {
		cli[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (cli[i] < 0 ||
		    connect(cli[i], (struct sockaddr *)&a, sizeof(a)))
			err = -errno;
		else if ((srv[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			err = -errno;
	}
	if (lfd >= 0)
		close(lfd);
	return err;
}

/*
 * Client i sends i * 1000 bytes; true once all are acknowledged, so wait
 * in srv[i] (whose FIONREAD counts the sockhash's own queue only).
 */
static bool send_all(const int *cli, int n)
{
	static char buf[N * 1000];

	for (int i = 0; i < n; i++) {
		int unacked = 1;

		if (send(cli[i], buf, (size_t)i * 1000, 0) != i * 1000)
			return false;
		for (int t = 0; t < 1000 && unacked; t++) {
			if (ioctl(cli[i], SIOCOUTQ, &unacked) < 0)
				return false;
			if (unacked)
				poll(NULL, 0, 1);
		}
		if (unacked)
			return false;
	}
	return true;
}

int main(void)
{
	int cli[N], srv[N], err;
	ssize_t n, got;
	struct fivc_rmem_probe p;
	bool cookies = true, rmems = true;
	struct fastivc_bpf *s = NULL;
	char buf[4096];
	__u64 cookie[N];

	if (geteuid() != 0) {
		printf("skip - rmem_probe: needs root\n");
		return 0;
	}
	if (unshare(CLONE_NEWNET) || lo_up()) {
		printf("not ok - rmem_probe: a namespace of our own: %s\n",
		       strerror(errno));
		return 1;
	}
	memset(cli, -1, sizeof(cli));
	memset(srv, -1, sizeof(srv));
	s = fastivc_bpf__open_and_load();
	if (!s) {
		printf("not ok - rmem_probe: load the programs: %s\n",
		       strerror(errno));
		return 1;
	}
	err = connect_all(cli, srv, N);
	check(!err, "64 connections on loopback");
	for (int i = 0; i < N && !err; i++) {
		struct fivc_sock_key k = key_of(i);
		socklen_t len = sizeof(cookie[i]);
		__u64 fd = (__u64)srv[i];

		if (getsockopt(srv[i], SOL_SOCKET, SO_COOKIE, &cookie[i],
			       &len) ||
		    bpf_map__update_elem(s->maps.socks, &k, sizeof(k), &fd,
					 sizeof(fd), BPF_ANY))
			err = -errno;
	}
	check(!err, "their accepted ends in socks");
	check(!err && send_all(cli, N),
	      "i * 1000 bytes wait unread in the i-th");
	if (err)
		goto out;

	err = probe(s, &p, 0, N);
	check(!err, "one run with 64 keys");
	for (int i = 0; i < N && !err; i++) {
		cookies = cookies && p.q[i].ans.cookie == cookie[i];
		rmems = rmems && (i ? p.q[i].ans.rmem >= (__u32)i * 1000
				    : p.q[i].ans.rmem == 0);
	}
	check(!err && cookies, "each answer has its socket's cookie");
	check(!err && rmems,
	      "each rmem is at least the unread bytes, 0 for none");

	err = probe(s, &p, N, 1);
	check(!err && !p.q[0].ans.cookie, "a key not in socks: cookie 0");

	got = 0;
	while ((n = recv(srv[5], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		got += n;
	err = probe(s, &p, 5, 1);
	check(!err && got == 5000 && p.q[0].ans.cookie == cookie[5] &&
		      p.q[0].ans.rmem == 0,
	      "the app read everything: rmem 0");

	printf("# rmem probe: %.2f us a run with 1 key, %.2f us with 64 "
	       "(%d runs each)\n",
	       cost_us(s, 1), cost_us(s, N), RUNS);
out:
	for (int i = 0; i < N; i++) {
		if (cli[i] >= 0)
			close(cli[i]);
		if (srv[i] >= 0)
			close(srv[i]);
	}
	fastivc_bpf__destroy(s);
	printf("# %d passed, %d failed\n", n_ok, n_fail);
	return n_fail ? 1 : 0;
}
