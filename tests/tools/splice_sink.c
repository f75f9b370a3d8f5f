// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * splice_sink: what splice() moves from a TCP socket, for the Xen lab's
 * splice() case (tests/xenlab/scenario-domU.sh; no fastivc code inside).
 *
 *   splice_sink serve ADDR PORT CONNS SECONDS
 *           accept CONNS connections one after another; splice each one's
 *           bytes into a pipe (drained) until its end of stream or until
 *           SECONDS pass; prints "spliced N" per connection
 *   splice_sink send ADDR PORT BYTES
 *           send BYTES, shut down the write side, wait for the server to
 *           close (at most 30 s)
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../util/testutil.h"

#define PIECE 65536

/* Bytes splice() moved from @fd within @seconds, to its end of stream. */
static long long splice_all(int fd, double seconds)
{
	double end = now_sec() + seconds;
	static char drain[PIECE];
	long long moved = 0;
	int p[2];

	if (pipe(p))
		return -1;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (now_sec() < end) {
		ssize_t n =
			splice(fd, NULL, p[1], NULL, PIECE, SPLICE_F_NONBLOCK);

		if (n < 0 && errno == EAGAIN) {
			usleep(10000);
			continue;
		}
		if (n <= 0)
			break;
		moved += n;
		while (n > 0) {
			ssize_t r = read(p[0], drain, sizeof(drain));

			if (r <= 0)
				break;
			n -= r;
		}
	}
	close(p[0]);
	close(p[1]);
	return moved;
}

static int serve(struct addrinfo *ai, long conns, double seconds)
{
	int one = 1, ls = socket(ai->ai_family, SOCK_STREAM, 0);

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, ai->ai_addr, ai->ai_addrlen) || listen(ls, 16)) {
		perror("splice_sink: listen");
		return 1;
	}
	for (long i = 0; i < conns; i++) {
		int c = accept(ls, NULL, NULL);

		if (c < 0) {
			perror("splice_sink: accept");
			return 1;
		}
		printf("spliced %lld\n", splice_all(c, seconds));
		fflush(stdout);
		close(c);
	}
	close(ls);
	return 0;
}

static int send_bytes(struct addrinfo *ai, long long bytes)
{
	struct timeval limit = {.tv_sec = 30};
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	static char buf[PIECE];

	if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		perror("splice_sink: connect");
		return 1;
	}
	memset(buf, 'x', sizeof(buf));
	while (bytes > 0) {
		ssize_t n = send(fd, buf, bytes < PIECE ? (size_t)bytes : PIECE,
				 MSG_NOSIGNAL);

		if (n <= 0) {
			perror("splice_sink: send");
			return 1;
		}
		bytes -= n;
	}
	shutdown(fd, SHUT_WR);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "serve"))
		return serve(tcp_resolve("splice_sink", argv[2], argv[3], true),
			     atol(argv[4]), atof(argv[5]));
	if (argc == 5 && !strcmp(argv[1], "send"))
		return send_bytes(
			tcp_resolve("splice_sink", argv[2], argv[3], false),
			atoll(argv[4]));
	fprintf(stderr, "usage: splice_sink serve ADDR PORT CONNS SECONDS\n"
			"       splice_sink send ADDR PORT BYTES\n");
	return 2;
}
