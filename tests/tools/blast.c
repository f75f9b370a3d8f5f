// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * blast: an ordinary TCP client/server pair (no fastivc code inside) that
 * moves seeded random data both ways over N parallel connections and
 * prints the SHA-256 of what each side sent and received.
 *
 *   blast server ADDR PORT [--conns N] [--bytes B]
 *   blast client ADDR PORT [--conns N] [--bytes B]
 *
 * Each connection: the client sends an 8-byte index, then B bytes, then
 * shuts down its write side (half-close) and keeps reading; the server
 * reads to EOF, then sends B bytes of its own and closes. Both print one
 * line per connection: "conn INDEX sent BYTES SHA received BYTES SHA".
 * The exit code is 0 only if every connection completed without error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../util/testutil.h"

#define CHUNK (256 * 1024)

struct conn {
	int fd;
	uint64_t index;
	uint64_t bytes;
	bool server;
	uint64_t sent, received;
	char sent_sha[65], recv_sha[65];
	int err;
	pthread_t th;
};

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t s = send(fd, p, n, MSG_NOSIGNAL);

		if (s < 0 && errno == EINTR)
			continue;
		if (s <= 0)
			return -errno;
		p += s;
		n -= (size_t)s;
	}
	return 0;
}

static int send_stream(struct conn *c, uint64_t seed)
{
	uint8_t *buf = malloc(CHUNK);
	struct sha256 h;
	uint8_t d[32];
	int err = 0;

	if (!buf || sha256_init(&h))
		return -ENOMEM;
	while (c->sent < c->bytes && !err) {
		size_t n =
			c->bytes - c->sent < CHUNK ? c->bytes - c->sent : CHUNK;

		prng_fill(&seed, buf, n);
		sha256_update(&h, buf, n);
		err = send_all(c->fd, buf, n);
		if (!err)
			c->sent += n;
	}
	sha256_final(&h, d);
	sha256_hex(d, c->sent_sha);
	free(buf);
	return err;
}

static int recv_stream(struct conn *c)
{
	uint8_t *buf = malloc(CHUNK);
	struct sha256 h;
	uint8_t d[32];
	ssize_t n;

	if (!buf || sha256_init(&h))
		return -ENOMEM;
	while ((n = recv(c->fd, buf, CHUNK, 0)) > 0 ||
	       (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		sha256_update(&h, buf, (size_t)n);
		c->received += (uint64_t)n;
	}
	sha256_final(&h, d);
	sha256_hex(d, c->recv_sha);
	free(buf);
	return n < 0 ? -errno : 0;
}

static int read_index(struct conn *c)
{
	uint8_t b[8];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = recv(c->fd, b + got, sizeof(b) - got, 0);

		if (n <= 0)
			return n ? -errno : -EPIPE;
		got += (size_t)n;
	}
	memcpy(&c->index, b, 8);
	return 0;
}

static void *run_conn(void *arg)
{
	struct conn *c = arg;
	uint64_t seed = 0x51ed5eedULL ^ (c->index << 1 | c->server);

	if (c->server) {
		c->err = read_index(c);
		seed = 0x51ed5eedULL ^ (c->index << 1 | 1);
		if (!c->err)
			c->err = recv_stream(c);
		if (!c->err)
			c->err = send_stream(c, seed);
	} else {
		c->err = send_all(c->fd, (const uint8_t *)&c->index, 8);
		if (!c->err)
			c->err = send_stream(c, seed);
		if (!c->err && shutdown(c->fd, SHUT_WR))
			c->err = -errno;
		if (!c->err)
			c->err = recv_stream(c);
	}
	close(c->fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct addrinfo *ai;
	struct conn *cs;
	uint64_t conns = 1, bytes = 1 << 20;
	bool server;
	int lfd = -1, bad = 0, one = 1;

	if (argc < 4 ||
	    (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
		fprintf(stderr, "usage: blast server|client ADDR PORT [--conns "
				"N] [--bytes B]\n");
		return 2;
	}
	server = !strcmp(argv[1], "server");
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--conns"))
			conns = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--bytes"))
			bytes = strtoull(argv[i + 1], NULL, 0);
	}
	ai = tcp_resolve("blast", argv[2], argv[3], server);
	cs = calloc(conns, sizeof(*cs));
	if (server) {
		lfd = socket(ai->ai_family, SOCK_STREAM, 0);
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(lfd, ai->ai_addr, ai->ai_addrlen) ||
		    listen(lfd, 1024)) {
			perror("blast: listen");
			return 1;
		}
		printf("listening\n");
		fflush(stdout);
	}
	for (uint64_t i = 0; i < conns; i++) {
		struct conn *c = &cs[i];

		c->server = server;
		c->bytes = bytes;
		c->index = i;
		if (server) {
			c->fd = accept(lfd, NULL, NULL);
		} else {
			c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
			if (connect(c->fd, ai->ai_addr, ai->ai_addrlen)) {
				perror("blast: connect");
				return 1;
			}
		}
		pthread_create(&c->th, NULL, run_conn, c);
	}
	for (uint64_t i = 0; i < conns; i++) {
		struct conn *c = &cs[i];

		pthread_join(c->th, NULL);
		printf("conn %llu sent %llu %s received %llu %s%s%s\n",
		       (unsigned long long)c->index,
		       (unsigned long long)c->sent, c->sent_sha,
		       (unsigned long long)c->received, c->recv_sha,
		       c->err ? " error " : "",
		       c->err ? strerror(-c->err) : "");
		bad += c->err != 0;
	}
	freeaddrinfo(ai);
	free(cs);
	return bad ? 1 : 0;
}
