// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * rr: request/response latency and connection rate over ordinary TCP (no
 * fastivc code inside), for the benchmarks.
 *
 *   rr server ADDR PORT                  echo whatever arrives, per connection
 *   rr latency ADDR PORT SIZE COUNT [SECONDS]
 *                                        one connection, COUNT round trips of
 *                                        SIZE bytes, or fewer if SECONDS pass
 *                                        first: prints p50 p99 mean (us)
 *   rr connrate ADDR PORT SECONDS        connect, 1-byte exchange, close, in a
 *                                        loop: prints connections per second,
 *                                        then the first exchange's latency
 *                                        (connect to answer): p50 p99 mean
 */
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../util/testutil.h"

static int full(int fd, void *buf, size_t n, bool wr)
{
	char *p = buf;

	while (n) {
		ssize_t r =
			wr ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);

		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void *echo(void *arg)
{
	int fd = (int)(long)arg;
	char buf[65536];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		if (full(fd, buf, (size_t)n, true))
			break;
	close(fd);
	return NULL;
}

static int serve(struct addrinfo *ai)
{
	int one = 1, ls = socket(ai->ai_family, SOCK_STREAM, 0);

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, ai->ai_addr, ai->ai_addrlen) || listen(ls, 4096)) {
		perror("rr: listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		pthread_t th;

		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_create(&th, NULL, echo, (void *)(long)fd);
		pthread_detach(th);
	}
}

static int dial(struct addrinfo *ai)
{
	int one = 1, fd = socket(ai->ai_family, SOCK_STREAM, 0);

	if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		perror("rr: connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int latency(struct addrinfo *ai, size_t size, long count, double seconds)
{
	double *t = calloc((size_t)count, sizeof(*t)), start = now_sec();
	char *buf = calloc(1, size);
	int fd = dial(ai);
	long i;

	for (i = 0; i < count && now_sec() - start < seconds; i++) {
		double t0 = now_sec();

		if (full(fd, buf, size, true) || full(fd, buf, size, false)) {
			fprintf(stderr, "rr: round trip %ld failed\n", i);
			return 1;
		}
		t[i] = (now_sec() - t0) * 1e6;
	}
	print_latency(t, (size_t)i);
	close(fd);
	return 0;
}

static int connrate(struct addrinfo *ai, double seconds)
{
	double t0 = now_sec(), el, t1, *first = NULL;
	size_t n = 0, cap = 0;
	char c = 'x';

	while ((el = now_sec() - t0) < seconds) {
		int fd;

		if (n == cap) {
			cap = cap ? 2 * cap : 4096;
			first = realloc(first, cap * sizeof(*first));
			if (!first) {
				fprintf(stderr, "rr: out of memory\n");
				return 1;
			}
		}
		t1 = now_sec();
		fd = dial(ai);
		if (full(fd, &c, 1, true) || full(fd, &c, 1, false)) {
			fprintf(stderr, "rr: exchange %zu failed\n", n);
			return 1;
		}
		first[n++] = (now_sec() - t1) * 1e6;
		close(fd);
	}
	printf("conns %zu rate %.1f first ", n, (double)n / el);
	if (n)
		print_latency(first, n);
	else
		printf("none\n");
	free(first);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "server"))
		return serve(tcp_resolve("rr", argv[2], argv[3], true));
	if (argc >= 6 && !strcmp(argv[1], "latency"))
		return latency(tcp_resolve("rr", argv[2], argv[3], false),
			       strtoul(argv[4], NULL, 0), atol(argv[5]),
			       argc >= 7 ? atof(argv[6]) : HUGE_VAL);
	if (argc >= 5 && !strcmp(argv[1], "connrate"))
		return connrate(tcp_resolve("rr", argv[2], argv[3], false),
				atof(argv[4]));
	fprintf(stderr, "usage: rr server|latency|connrate ...\n");
	return 2;
}
