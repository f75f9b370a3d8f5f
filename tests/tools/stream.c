// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * stream: one-way bulk TCP with a fixed send size over N connections, for
 * the benchmarks (no fastivc code inside).
 *
 *   stream sink ADDR PORT
 *   stream send ADDR PORT [--chunk BYTES] [--conns N] [--seconds S]
 *
 * The sender opens N connections, prints "established" once all are up,
 * then every connection calls send() with CHUNK bytes for S seconds, shuts
 * down its write side and waits for the sink's 8-byte count of what
 * arrived. Only then is the clock stopped, so the throughput is what the
 * receiving application got, not what sat in buffers:
 *   "conns N chunk C bytes B seconds T gbps G"
 * A count that differs from what was sent is an error (exit 1).
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../util/testutil.h"

#define SINK_BUF (256 * 1024)
/* 1000 flows are 1000 threads on each side: keep their stacks small. */
#define STACK (256 * 1024)

struct flow {
	int fd;
	uint64_t sent, acked;
	int err;
	pthread_t th;
};

static size_t chunk = 65536;
static atomic_bool stop;
static pthread_barrier_t go;

static int xfer(int fd, void *buf, size_t n, bool wr)
{
	char *p = buf;

	while (n) {
		ssize_t r = wr ? send(fd, p, n, MSG_NOSIGNAL)
			       : recv(fd, p, n, MSG_WAITALL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r ? -errno : -EPIPE;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void *sink_conn(void *arg)
{
	int fd = (int)(long)arg;
	char *buf = malloc(SINK_BUF);
	uint64_t got = 0;

	while (buf) {
		ssize_t n = recv(fd, buf, SINK_BUF, 0);

		if (n > 0)
			got += (uint64_t)n;
		else if (n == 0 || errno != EINTR)
			break;
	}
	xfer(fd, &got, sizeof(got), true);
	close(fd);
	free(buf);
	return NULL;
}

static void spawn(pthread_t *th, void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;

	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, STACK);
	if (pthread_create(th, &a, fn, arg)) {
		fprintf(stderr, "stream: pthread_create failed\n");
		exit(1);
	}
	pthread_attr_destroy(&a);
}

static int sink(struct addrinfo *ai)
{
	int one = 1, ls = socket(ai->ai_family, SOCK_STREAM, 0);

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, ai->ai_addr, ai->ai_addrlen) || listen(ls, 4096)) {
		perror("stream: listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		pthread_t th;

		if (fd < 0)
			continue;
		spawn(&th, sink_conn, (void *)(long)fd);
		pthread_detach(th);
	}
}

static void *send_flow(void *arg)
{
	struct flow *f = arg;
	char *buf = malloc(chunk);

	if (buf)
		memset(buf, 0x5a, chunk);
	pthread_barrier_wait(&go);
	if (!buf)
		f->err = -ENOMEM;
	while (!f->err && !atomic_load_explicit(&stop, memory_order_relaxed)) {
		f->err = xfer(f->fd, buf, chunk, true);
		f->sent += f->err ? 0 : chunk;
	}
	if (!f->err && shutdown(f->fd, SHUT_WR))
		f->err = -errno;
	if (!f->err)
		f->err = xfer(f->fd, &f->acked, sizeof(f->acked), false);
	if (!f->err && f->acked != f->sent)
		f->err = -EBADMSG;
	close(f->fd);
	free(buf);
	return NULL;
}

static int sender(struct addrinfo *ai, long conns, double seconds)
{
	struct flow *fs = calloc((size_t)conns, sizeof(*fs));
	uint64_t bytes = 0;
	double t0, el;
	int bad = 0;

	pthread_barrier_init(&go, NULL, (unsigned)conns + 1);
	for (long i = 0; i < conns; i++) {
		fs[i].fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (connect(fs[i].fd, ai->ai_addr, ai->ai_addrlen)) {
			fprintf(stderr, "stream: connect %ld: %s\n", i,
				strerror(errno));
			return 1;
		}
		spawn(&fs[i].th, send_flow, &fs[i]);
	}
	printf("established\n");
	fflush(stdout);
	pthread_barrier_wait(&go);
	t0 = now_sec();
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&stop, true);
	for (long i = 0; i < conns; i++) {
		pthread_join(fs[i].th, NULL);
		if (fs[i].err) {
			fprintf(stderr,
				"stream: flow %ld: sent %llu acked %llu: %s\n",
				i, (unsigned long long)fs[i].sent,
				(unsigned long long)fs[i].acked,
				strerror(-fs[i].err));
			bad++;
		}
		bytes += fs[i].acked;
	}
	el = now_sec() - t0;
	printf("conns %ld chunk %zu bytes %llu seconds %.3f gbps %.4f\n", conns,
	       chunk, (unsigned long long)bytes, el,
	       (double)bytes * 8 / el / 1e9);
	free(fs);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	long conns = 1;
	double seconds = 2;

	if (argc >= 4 && !strcmp(argv[1], "sink"))
		return sink(tcp_resolve("stream", argv[2], argv[3], true));
	if (argc < 4 || strcmp(argv[1], "send")) {
		fprintf(stderr, "usage: stream sink ADDR PORT | send ADDR PORT "
				"[--chunk B] [--conns N] [--seconds S]\n");
		return 2;
	}
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--chunk"))
			chunk = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--conns"))
			conns = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
	}
	if (!chunk || conns < 1) {
		fprintf(stderr, "stream: --chunk and --conns must be >= 1\n");
		return 2;
	}
	return sender(tcp_resolve("stream", argv[2], argv[3], false), conns,
		      seconds);
}
