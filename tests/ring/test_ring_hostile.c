// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A peer that writes garbage into the shared headers. Each named violation
 * must tear the tunnel down with -EPROTO, exactly one log line and the RESET
 * bit for the peer to see; random scripts must never crash or read out of
 * bounds (run under ASan).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/hostile.h"
#include "../util/testutil.h"
#include "fastivc/log.h"
#include "fastivc/ring.h"

struct bench {
	struct fivc_ring_geom g;
	uint8_t *region;
	size_t size;
	struct fivc_tx tx;
	struct fivc_rx rx;
	int kicks;
};

static int count_kick(void *arg)
{
	((struct bench *)arg)->kicks++;
	return 0;
}

static void setup(struct bench *b)
{
	struct fivc_kick k = {count_kick, b};

	memset(b, 0, sizeof(*b));
	fivc_ring_geom_default(&b->g);
	b->size = fivc_ring_region_size(&b->g);
	b->region = aligned_alloc(4096, b->size);
	fivc_tx_init(&b->tx, b->region, b->size, &b->g, &k);
	fivc_rx_attach(&b->rx, b->region, b->size, &b->g, 0, &k);
}

/* Publishes channel 0 by hand, as a hostile producer would. */
static void publish_raw(struct bench *b, uint32_t gen, uint32_t size,
			uint32_t pend)
{
	b->tx.hdr[0].gen_num = gen;
	b->tx.hdr[0].size = size;
	b->tx.hdr[0].pend_read = pend;
}

/* Runs @fn with stderr captured; returns the number of violation lines. */
static int violation_lines(void (*fn)(struct bench *), struct bench *b)
{
	char tmpl[] = "/tmp/fivc-hostile-XXXXXX", buf[4096];
	int fd = mkstemp(tmpl), saved = dup(2), lines = 0;
	ssize_t n;

	unlink(tmpl);
	fflush(stderr);
	dup2(fd, 2);
	fn(b);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	for (char *p = buf; (p = strstr(p, "broke the tunnel protocol")); p++)
		lines++;
	return lines;
}

static void size_too_big(struct bench *b)
{
	const void *p;

	publish_raw(b, b->g.gen_first, b->g.channel_size + 1, 1);
	CHECK_EQ(fivc_rx_peek(&b->rx, &p), -EPROTO, "size > S");
	CHECK_EQ(fivc_rx_peek(&b->rx, &p), -EPROTO, "size > S: sticky");
}

static void size_zero(struct bench *b)
{
	const void *p;

	publish_raw(b, b->g.gen_first, 0, 1);
	CHECK_EQ(fivc_rx_peek(&b->rx, &p), -EPROTO, "size 0");
}

static void gen_jump(struct bench *b)
{
	const void *p;

	publish_raw(b, b->g.gen_first + 5, 100, 1);
	CHECK_EQ(fivc_rx_peek(&b->rx, &p), -EPROTO, "gen_num jump");
}

static void pend_read_too_big(struct bench *b)
{
	const void *p;

	publish_raw(b, b->g.gen_first, 100, 3);
	CHECK_EQ(fivc_rx_peek(&b->rx, &p), -EPROTO, "pend_read > K");
}

/* The size is copied once: rewriting it after the check changes nothing. */
static void no_double_fetch(struct bench *b)
{
	uint8_t out[4096];

	publish_raw(b, b->g.gen_first, 100, 1);
	CHECK_EQ(fivc_rx_read(&b->rx, out, 10), 10, "read 10 of 100");
	b->tx.hdr[0].size = 1 << 30;
	CHECK_EQ(fivc_rx_read(&b->rx, out, sizeof(out)), 90,
		 "the rest of the checked size, not the rewritten one");
}

/* pend_read cleared by the peer while we read: the release notices. */
static void pend_read_lie(struct bench *b)
{
	const void *p;

	publish_raw(b, b->g.gen_first, 100, 1);
	CHECK_EQ(fivc_rx_peek(&b->rx, &p), 100, "valid channel");
	b->tx.hdr[0].pend_read = 0;
	CHECK_EQ(fivc_rx_release(&b->rx, 100), -EPROTO,
		 "pend_read changed under the reader");
}

/* A consumer that claims more readers than exist: the producer notices. */
static void consumer_pend_lie(struct bench *b)
{
	void *p;
	size_t room;

	b->tx.hdr[0].pend_read = 7;
	CHECK_EQ(fivc_tx_reserve(&b->tx, &p, &room), -EPROTO,
		 "producer: pend_read > K");
}

static void run_case(const char *name, void (*fn)(struct bench *), bool rx)
{
	struct bench b;
	int lines;

	setup(&b);
	lines = violation_lines(fn, &b);
	CHECK_EQ(lines, 1, name);
	if (rx)
		CHECK(b.tx.ctrl->rx[0].rx_state & FIVC_STATE_RESET,
		      "consumer set RESET for the peer");
	else
		CHECK(b.tx.ctrl->tx_state & FIVC_STATE_RESET,
		      "producer set RESET for the peer");
	CHECK(b.kicks > 0, "the peer was notified of the teardown");
	free(b.region);
}

static void test_geometry_mismatch(void)
{
	struct bench b;
	struct fivc_rx rx;
	struct fivc_kick k = {count_kick, &b};

	setup(&b);
	b.tx.ctrl->n_channels = 64;
	CHECK_EQ(fivc_rx_attach(&rx, b.region, b.size, &b.g, 0, &k), -EINVAL,
		 "control block disagrees with CREATE_TUNNEL");
	b.tx.ctrl->n_channels = b.g.n_channels;
	CHECK_EQ(fivc_rx_attach(&rx, b.region, b.size - 1, &b.g, 0, &k),
		 -EINVAL, "region too small");
	free(b.region);
}

static void test_random_scripts(unsigned int count)
{
	uint64_t rng = 0xbadc0ffee;
	uint8_t script[4096];

	fivc_log_set_level(FIVC_LOG_ERR); /* thousands of teardowns */
	for (unsigned int i = 0; i < count; i++) {
		size_t len = prng_size(&rng, 8, sizeof(script));

		prng_fill(&rng, script, len);
		/*
		 * Mostly well-formed traffic between rare attacks, so scripts
		 * get deep into the stream before the first violation.
		 */
		for (size_t j = 8; j < len; j += 8) {
			uint64_t x = prng_next(&rng) % 100;
			uint8_t hi = script[j] & 0xf0;

			if (x < 3)
				script[j] = hi | (uint8_t)(x % 2);
			else if (x < 6)
				script[j] = hi | (uint8_t)(7 + x % 3);
			else
				script[j] = hi | (uint8_t)(2 + x % 5);
		}
		hostile_run(script, len);
	}
	fivc_log_set_level(FIVC_LOG_INFO);
	CHECK(true, "random scripts ran without an abort");
}

int main(int argc, char **argv)
{
	unsigned int scripts = argc > 1 ? (unsigned int)atoi(argv[1]) : 50000;

	run_case("size > S: one log line", size_too_big, true);
	run_case("size 0: one log line", size_zero, true);
	run_case("gen_num jump: one log line", gen_jump, true);
	run_case("pend_read > K: one log line", pend_read_too_big, true);
	run_case("pend_read lie: one log line", pend_read_lie, true);
	run_case("producer sees pend_read > K: one log line", consumer_pend_lie,
		 false);
	{
		struct bench b;

		setup(&b);
		no_double_fetch(&b);
		free(b.region);
	}
	test_geometry_mismatch();
	test_random_scripts(scripts);
	return test_report("hostile peer headers");
}
