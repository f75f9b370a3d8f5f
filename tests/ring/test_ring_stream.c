// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Streams random data through one ring and compares SHA-256 on both sides.
 *
 * The producer writes messages of random size (1 B..2 MiB) and random
 * content; every receiver reads with random buffer sizes until end of stream.
 * Receivers run as threads or as forked processes (which map the region from
 * its descriptor, as a peer domain would).
 *
 *   test_ring_stream [--process | --same-mapping] [--bytes N] [--channels N]
 * [--size S]
 *                    [--receivers K] [--gen-first G] [--seed X]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../util/ringpair.h"
#include "../util/testutil.h"
#include "fastivc/ring_wait.h"

#define MAX_MSG (2u << 20)
#define WAIT_MS 20000 /* one wait this long means a lost wake-up */

struct result {
	uint64_t bytes;
	uint8_t digest[32];
	int err;
	uint64_t kicks, waits, channels;
};

struct opts {
	uint64_t bytes;
	uint64_t seed;
	bool process;
	bool same_mapping;
	struct fivc_ring_geom g;
};

static struct opts opt;
static struct ring_producer prod;

static void consume(uint32_t id, struct result *res)
{
	struct ring_consumer c;
	struct fivc_spin spin;
	struct sha256 h;
	uint64_t rng = opt.seed ^ (0x9e3779b97f4a7c15ULL * (id + 1));
	uint8_t *buf = malloc(MAX_MSG);
	ssize_t n;

	memset(res, 0, sizeof(*res));
	res->err = ring_consumer_open(&c, &prod, id, opt.same_mapping);
	if (res->err || !buf || sha256_init(&h)) {
		res->err = res->err ? res->err : -ENOMEM;
		free(buf);
		return;
	}
	fivc_spin_init(&spin, 200);
	for (;;) {
		size_t want = prng_size(&rng, 1, MAX_MSG);

		n = fivc_rx_read_wait(&c.rx, c.ev_sleep, &spin, buf, want,
				      WAIT_MS);
		if (n <= 0)
			break;
		sha256_update(&h, buf, (size_t)n);
		res->bytes += (uint64_t)n;
	}
	res->err = (int)n;
	sha256_final(&h, res->digest);
	res->kicks = c.rx.st.kicks;
	res->waits = c.rx.st.waits;
	res->channels = c.rx.st.channels;
	ring_consumer_close(&c);
	free(buf);
}

struct rx_thread {
	pthread_t th;
	uint32_t id;
	struct result res;
};

static void *consume_thread(void *arg)
{
	struct rx_thread *t = arg;

	consume(t->id, &t->res);
	return NULL;
}

static void produce(struct result *res)
{
	struct fivc_spin spin;
	struct sha256 h;
	uint64_t rng = opt.seed;
	uint8_t *buf = malloc(MAX_MSG);

	memset(res, 0, sizeof(*res));
	if (!buf || sha256_init(&h)) {
		res->err = -ENOMEM;
		free(buf);
		return;
	}
	fivc_spin_init(&spin, 200);
	while (res->bytes < opt.bytes) {
		size_t len = prng_size(&rng, 1, MAX_MSG);
		ssize_t n;

		if (len > opt.bytes - res->bytes)
			len = (size_t)(opt.bytes - res->bytes);
		prng_fill(&rng, buf, len);
		n = fivc_tx_write_all(&prod.tx, prod.ev[0], &spin, buf, len,
				      WAIT_MS);
		if (n < 0) {
			res->err = (int)n;
			break;
		}
		sha256_update(&h, buf, len);
		res->bytes += len;
	}
	if (!res->err)
		res->err = fivc_tx_close(&prod.tx);
	sha256_final(&h, res->digest);
	res->kicks = prod.tx.st.kicks;
	res->waits = prod.tx.st.waits;
	res->channels = prod.tx.st.channels;
	free(buf);
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{"process", no_argument, NULL, 'p'},
		{"same-mapping", no_argument, NULL, 'm'},
		{"bytes", required_argument, NULL, 'b'},
		{"channels", required_argument, NULL, 'n'},
		{"size", required_argument, NULL, 's'},
		{"receivers", required_argument, NULL, 'k'},
		{"gen-first", required_argument, NULL, 'g'},
		{"seed", required_argument, NULL, 'x'},
		{},
	};
	int c;

	fivc_ring_geom_default(&opt.g);
	opt.bytes = 1ULL << 30;
	opt.seed = 0x5eed;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		unsigned long long v = optarg ? strtoull(optarg, NULL, 0) : 0;

		switch (c) {
		case 'm':
			opt.same_mapping = true;
			break;
		case 'p':
			opt.process = true;
			break;
		case 'b':
			opt.bytes = v;
			break;
		case 'n':
			opt.g.n_channels = (uint32_t)v;
			break;
		case 's':
			opt.g.channel_size = (uint32_t)v;
			break;
		case 'k':
			opt.g.n_receivers = (uint32_t)v;
			break;
		case 'g':
			opt.g.gen_first = (uint32_t)v;
			break;
		case 'x':
			opt.seed = v;
			break;
		default:
			fprintf(stderr,
				"usage: %s [--process | --same-mapping] "
				"[--bytes N] [--channels N] [--size S] "
				"[--receivers K] [--gen-first G] [--seed X]\n",
				argv[0]);
			exit(2);
		}
	}
}

/* Runs receiver @id in a child; its result comes back through a pipe. */
static pid_t spawn_consumer(uint32_t id, int *rfd)
{
	int p[2];
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		struct result res;

		close(p[0]);
		consume(id, &res);
		_exit(write(p[1], &res, sizeof(res)) == sizeof(res) ? 0 : 1);
	}
	close(p[1]);
	*rfd = p[0];
	return pid;
}

int main(int argc, char **argv)
{
	struct rx_thread rxs[FIVC_RECEIVERS_MAX] = {};
	int rfd[FIVC_RECEIVERS_MAX];
	pid_t pid[FIVC_RECEIVERS_MAX];
	struct result tx_res;
	char name[160], hex[65];
	uint32_t k;
	double t0;

	parse_args(argc, argv);
	k = opt.g.n_receivers;
	snprintf(name, sizeof(name),
		 "stream %s %llu MiB N=%u S=%u K=%u gen_first=%#x",
		 opt.process ? "process" : "thread",
		 (unsigned long long)(opt.bytes >> 20), opt.g.n_channels,
		 opt.g.channel_size, k, opt.g.gen_first);
	if (!CHECK_EQ(ring_producer_open(&prod, &opt.g), 0,
		      "ring_producer_open"))
		return test_report(name);

	t0 = now_sec();
	for (uint32_t r = 0; r < k; r++) {
		rxs[r].id = r;
		if (opt.process)
			pid[r] = spawn_consumer(r, &rfd[r]);
		else
			pthread_create(&rxs[r].th, NULL, consume_thread,
				       &rxs[r]);
	}
	produce(&tx_res);
	CHECK_EQ(tx_res.err, 0, "producer finished without error");
	for (uint32_t r = 0; r < k; r++) {
		struct result *res = &rxs[r].res;

		if (opt.process) {
			int status = 0;

			if (read(rfd[r], res, sizeof(*res)) != sizeof(*res))
				res->err = -EIO;
			close(rfd[r]);
			waitpid(pid[r], &status, 0);
			CHECK(WIFEXITED(status) && !WEXITSTATUS(status),
			      "receiver process exit", "status %#x", status);
		} else {
			pthread_join(rxs[r].th, NULL);
		}
		CHECK_EQ(res->err, 0, "receiver ended at end of stream");
		CHECK_EQ(res->bytes, tx_res.bytes, "receiver byte count");
		CHECK(!memcmp(res->digest, tx_res.digest, 32),
		      "receiver SHA-256 equals producer's");
		CHECK_EQ(res->channels, tx_res.channels, "channels freed");
	}
	sha256_hex(tx_res.digest, hex);
	printf("# %llu bytes in %.2f s, sha256 %.16s..., %llu channels, "
	       "kicks tx %llu rx %llu, waits tx %llu rx %llu\n",
	       (unsigned long long)tx_res.bytes, now_sec() - t0, hex,
	       (unsigned long long)tx_res.channels,
	       (unsigned long long)tx_res.kicks,
	       (unsigned long long)rxs[0].res.kicks,
	       (unsigned long long)tx_res.waits,
	       (unsigned long long)rxs[0].res.waits);
	ring_producer_close(&prod);
	return test_report(name);
}
