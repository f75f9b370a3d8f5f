// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vchan_bench: libxenvchan between two domUs, the raw shared-memory figure
 * the Xen lab's benchmark sets beside netfront TCP and fastivc.
 *
 *   vchan_bench server PEER_DOMID PREFIX
 *       serve sessions PREFIX/0, PREFIX/1, ... in turn, until killed
 *   vchan_bench stream PEER_DOMID PATH SECONDS [SEND]
 *       send for SECONDS, in writes of SEND bytes (a multiple of 512 up
 *       to 1 MiB; 64 KiB by default); prints "bytes N seconds S mbit M"
 *   vchan_bench rr PEER_DOMID PATH SIZE COUNT SECONDS
 *       COUNT round trips of SIZE bytes, or fewer if SECONDS pass first;
 *       prints "p50 X p99 Y mean Z" (us)
 *
 * The server offers each session as libxenvchan does: grant pages, an
 * unbound event channel, and ring-ref/event-channel under the session's
 * path in its own xenstore area, readable by the peer alone; the session's
 * end removes them. A client names the path absolutely
 * (/local/domain/<server>/...) and retries until it appears. Rings are
 * 128 KiB each way, as the lab agent's 4 channels of 32 KiB. A session starts
 * with a hello naming the test; the server echoes rr messages until the client
 * closes. The stream holds its own offset every STAMP bytes
 * and ends with a stamp of END_STAMP; the server checks every stamp and
 * answers with the bytes it got and the stamps that were wrong.
 */
#include <errno.h>
#include <libxenvchan.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/testutil.h"

/* The lab agent's ring memory per direction (4 channels of 32 KiB, in
 * init-domU.sh): the bulk goal compares the two with the same memory. */
#define RING_SIZE (128u * 1024u)
#define CHUNK (64u * 1024u)
#define SEND_MAX (1024u * 1024u) /* the lab's largest send size */
#define STAMP 512u
#define END_STAMP UINT64_MAX
#define HELLO_MAGIC 0x76636862u /* "vchb" */
#define CONNECT_S 30.0 /* the server offers each session as the last ends */
#define MAX_COUNT 10000000u

enum op { OP_STREAM = 1, OP_RR = 2 };

/* The client's first message of a session. */
struct hello {
	uint32_t magic;
	uint32_t op;
	uint32_t size; /* rr: bytes each way per round trip */
};

/* The server's answer at the end of a stream. */
struct tally {
	uint64_t bytes; /* before the end stamp */
	uint64_t bad;	/* stamps that did not hold their offset */
};

static uint64_t buf[CHUNK / sizeof(uint64_t)];
static uint64_t sendbuf[SEND_MAX / sizeof(uint64_t)];

/*
 * Read into buf at the stream offset modulo CHUNK, so that a stamp (8-byte
 * aligned, never across buf's end) read in two pieces is whole in place.
 */
static int serve_stream(struct libxenvchan *v)
{
	struct tally t = {0};
	uint64_t off = 0, next = 0; /* bytes read; the next stamp's offset */

	for (;;) {
		size_t at = off % CHUNK;
		int n = libxenvchan_read(v, (char *)buf + at, CHUNK - at);

		if (n <= 0) {
			fprintf(stderr,
				"vchan_bench: stream ended after %llu bytes "
				"without its end stamp\n",
				(unsigned long long)off);
			return 1;
		}
		off += (uint64_t)n;
		for (; next + sizeof(uint64_t) <= off; next += STAMP) {
			uint64_t s = buf[next % CHUNK / sizeof(uint64_t)];

			if (s == END_STAMP) {
				t.bytes = next;
				return libxenvchan_send(v, &t, sizeof(t)) !=
				       (int)sizeof(t);
			}
			t.bad += s != next;
		}
	}
}

/* Echo until the client closes (recv fails once it has and all is read). */
static int serve_rr(struct libxenvchan *v, uint32_t size)
{
	if (!size || size > RING_SIZE)
		return 1;
	while (libxenvchan_recv(v, buf, size) == (int)size)
		if (libxenvchan_send(v, buf, size) != (int)size)
			return 1;
	return 0;
}

/* One session: -1 if the vchan cannot be offered, 1 if the session broke. */
static int serve_one(int peer, const char *path)
{
	struct libxenvchan *v =
		libxenvchan_server_init(NULL, peer, path, RING_SIZE, RING_SIZE);
	struct hello h;
	int err = 1;

	if (!v) {
		fprintf(stderr,
			"vchan_bench: Failed to offer a vchan at %s: %s\n",
			path, strerror(errno));
		return -1;
	}
	v->blocking = 1;
	while (libxenvchan_is_open(v) == 2) /* no client yet */
		if (libxenvchan_wait(v))
			goto out;
	if (libxenvchan_recv(v, &h, sizeof(h)) != (int)sizeof(h) ||
	    h.magic != HELLO_MAGIC)
		goto out;
	if (h.op == OP_STREAM)
		err = serve_stream(v);
	else if (h.op == OP_RR)
		err = serve_rr(v, h.size);
out:
	libxenvchan_close(v);
	return err;
}

static int serve(int peer, const char *prefix)
{
	char path[256];

	for (unsigned int n = 0;; n++) {
		int err;

		snprintf(path, sizeof(path), "%s/%u", prefix, n);
		err = serve_one(peer, path);
		if (err < 0)
			return 1;
		if (err)
			fprintf(stderr, "vchan_bench: session %s broke\n",
				path);
	}
}

static struct libxenvchan *dial(int peer, const char *path)
{
	double t0 = now_sec();
	struct libxenvchan *v;

	while (!(v = libxenvchan_client_init(NULL, peer, path))) {
		if (now_sec() - t0 > CONNECT_S) {
			fprintf(stderr,
				"vchan_bench: no vchan at %s after %.0f s\n",
				path, CONNECT_S);
			return NULL;
		}
		usleep(20000);
	}
	v->blocking = 1;
	return v;
}

static int stream(struct libxenvchan *v, double seconds, uint32_t send)
{
	const struct hello h = {.magic = HELLO_MAGIC, .op = OP_STREAM};
	const uint64_t end = END_STAMP;
	double t0 = now_sec(), el;
	uint64_t off = 0;
	struct tally t;

	memset(sendbuf, 0xa5, sizeof(sendbuf));
	if (libxenvchan_send(v, &h, sizeof(h)) != (int)sizeof(h))
		goto broken;
	while (now_sec() - t0 < seconds) {
		for (size_t i = 0; i < send; i += STAMP)
			sendbuf[i / sizeof(uint64_t)] = off + i;
		if (libxenvchan_write(v, sendbuf, send) != (int)send)
			goto broken;
		off += send;
	}
	if (libxenvchan_write(v, &end, sizeof(end)) != (int)sizeof(end) ||
	    libxenvchan_recv(v, &t, sizeof(t)) != (int)sizeof(t))
		goto broken;
	el = now_sec() - t0;
	if (t.bytes != off || t.bad) {
		fprintf(stderr,
			"vchan_bench: sent %llu bytes, the server got %llu "
			"with %llu wrong stamps\n",
			(unsigned long long)off, (unsigned long long)t.bytes,
			(unsigned long long)t.bad);
		return 1;
	}
	printf("bytes %llu seconds %.3f mbit %.1f\n", (unsigned long long)off,
	       el, (double)off * 8 / el / 1e6);
	return 0;
broken:
	fprintf(stderr, "vchan_bench: stream broke after %llu bytes\n",
		(unsigned long long)off);
	return 1;
}

static int rr(struct libxenvchan *v, uint32_t size, uint32_t count,
	      double seconds)
{
	const struct hello h = {HELLO_MAGIC, OP_RR, size};
	double *us = calloc(count, sizeof(*us)), start = now_sec();
	uint32_t i;

	if (!us || libxenvchan_send(v, &h, sizeof(h)) != (int)sizeof(h)) {
		free(us);
		return 1;
	}
	for (i = 0; i < count && now_sec() - start < seconds; i++) {
		double t0 = now_sec();

		if (libxenvchan_send(v, buf, size) != (int)size ||
		    libxenvchan_recv(v, buf, size) != (int)size) {
			fprintf(stderr, "vchan_bench: round trip %u failed\n",
				i);
			free(us);
			return 1;
		}
		us[i] = (now_sec() - t0) * 1e6;
	}
	print_latency(us, i);
	free(us);
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: vchan_bench server PEER_DOMID PREFIX\n"
		"       vchan_bench stream PEER_DOMID PATH SECONDS [SEND]\n"
		"       vchan_bench rr PEER_DOMID PATH SIZE COUNT SECONDS\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct libxenvchan *v;
	unsigned long size = 0, count = 0, send = CHUNK;
	double seconds = 0;
	int peer, err;

	if (argc < 4)
		return usage();
	peer = atoi(argv[2]);
	if (!strcmp(argv[1], "server"))
		return serve(peer, argv[3]);
	if (!strcmp(argv[1], "stream") && (argc == 5 || argc == 6)) {
		seconds = atof(argv[4]);
		if (argc == 6)
			send = strtoul(argv[5], NULL, 0);
		if (seconds <= 0 || !send || send > SEND_MAX || send % STAMP)
			return usage();
	} else if (!strcmp(argv[1], "rr") && argc == 7) {
		size = strtoul(argv[4], NULL, 0);
		count = strtoul(argv[5], NULL, 0);
		seconds = atof(argv[6]);
		if (!size || size > RING_SIZE || !count || count > MAX_COUNT ||
		    seconds <= 0) {
			fprintf(stderr,
				"vchan_bench: SIZE is 1..%u, COUNT 1..%u, "
				"SECONDS > 0\n",
				RING_SIZE, MAX_COUNT);
			return 2;
		}
	} else {
		return usage();
	}
	v = dial(peer, argv[3]);
	if (!v)
		return 1;
	err = size ? rr(v, size, count, seconds)
		   : stream(v, seconds, (uint32_t)send);
	libxenvchan_close(v);
	return err;
}
