// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Tunnel lifecycle inside the ring: SEND_CLOSE with data still queued,
 * RECV_CLOSE and resets waking a blocked peer, partial releases, geometry
 * checks, the consumers giving a ring back for reuse.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/ringpair.h"
#include "../util/testutil.h"
#include "fastivc/ring_wait.h"

#define WAIT_MS 10000 /* a wait this long means a lost wake-up */

static struct fivc_ring_geom geom(uint32_t n, uint32_t s)
{
	struct fivc_ring_geom g;

	fivc_ring_geom_default(&g);
	g.n_channels = n;
	g.channel_size = s;
	return g;
}

static void fill_pattern(uint8_t *buf, size_t len, size_t start)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((start + i) * 131 + 7);
}

/* Everything queued before SEND_CLOSE is delivered, then EOF, forever. */
static void test_send_close_with_data(void)
{
	struct fivc_ring_geom g = geom(4, 4096);
	struct ring_producer p;
	struct ring_consumer c;
	size_t cap = 4 * 4096, total = 0;
	uint8_t *out = malloc(cap + 1), *in = malloc(cap + 1);
	ssize_t n;

	if (!CHECK_EQ(ring_producer_open(&p, &g), 0, "producer open"))
		goto out;
	fill_pattern(out, cap + 1, 0);
	/* Each write flushes: 4096+904, then 4096+2904 fill all 4 channels. */
	CHECK_EQ(fivc_tx_write(&p.tx, out, 5000), 5000, "write 5000");
	CHECK_EQ(fivc_tx_write(&p.tx, out + 5000, 7000), 7000, "write 7000");
	CHECK_EQ(fivc_tx_write(&p.tx, out, 1), -EAGAIN, "full ring: EAGAIN");
	total = 12000;
	CHECK_EQ(fivc_tx_close(&p.tx), 0, "SEND_CLOSE with queued data");
	CHECK_EQ(fivc_tx_write(&p.tx, out, 1), -EPIPE, "write after close");

	if (!CHECK_EQ(ring_consumer_open(&c, &p, 0, true), 0, "consumer open"))
		goto close_p;
	size_t got = 0;
	for (;;) {
		n = fivc_rx_read(&c.rx, in + got, 3000);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	CHECK_EQ(n, 0, "EOF after the data");
	CHECK_EQ(got, total, "every queued byte delivered");
	CHECK(!memcmp(in, out, total), "content delivered in order");
	CHECK_EQ(fivc_rx_read(&c.rx, in, 10), 0, "EOF is sticky");
	ring_consumer_close(&c);
close_p:
	ring_producer_close(&p);
out:
	free(out);
	free(in);
}

struct blocked_writer {
	struct ring_producer *p;
	ssize_t ret;
};

static void *write_until_error(void *arg)
{
	struct blocked_writer *w = arg;
	static uint8_t buf[1 << 20];
	struct fivc_spin spin;

	fivc_spin_init(&spin, 0);
	w->ret = fivc_tx_write_all(&w->p->tx, w->p->ev[0], &spin, buf,
				   sizeof(buf), WAIT_MS);
	/* Like write(2): what went out first, then the error. */
	if (w->ret > 0 && w->ret < (ssize_t)sizeof(buf))
		w->ret = fivc_tx_write_all(&w->p->tx, w->p->ev[0], &spin, buf,
					   sizeof(buf), WAIT_MS);
	return NULL;
}

/* RECV_CLOSE (or a reset) while the sender sleeps on a full ring. */
static void test_peer_close_wakes_sender(bool reset)
{
	struct fivc_ring_geom g = geom(2, 4096);
	struct blocked_writer w = {};
	struct ring_producer p;
	struct ring_consumer c;
	pthread_t th;
	double t0;

	if (!CHECK_EQ(ring_producer_open(&p, &g), 0, "producer open"))
		return;
	if (!CHECK_EQ(ring_consumer_open(&c, &p, 0, true), 0, "consumer open"))
		goto out;
	w.p = &p;
	pthread_create(&th, NULL, write_until_error, &w);
	/* Wait until the writer sleeps: it armed tx_waiting. */
	t0 = now_sec();
	while (!p.tx.st.waits && now_sec() - t0 < 5)
		usleep(1000);
	CHECK(p.tx.st.waits > 0, "sender blocked on a full ring");
	if (reset)
		fivc_rx_reset(&c.rx);
	else
		fivc_rx_close(&c.rx);
	pthread_join(th, NULL);
	CHECK_EQ(w.ret, reset ? -ECONNRESET : -EPIPE,
		 reset ? "blocked sender woke with ECONNRESET"
		       : "blocked sender woke with EPIPE");
	CHECK_EQ(fivc_tx_close(&p.tx), reset ? -ECONNRESET : -EPIPE,
		 "error is sticky");
	ring_consumer_close(&c);
out:
	ring_producer_close(&p);
}

struct blocked_reader {
	struct ring_consumer *c;
	ssize_t ret;
};

static void *read_until_end(void *arg)
{
	struct blocked_reader *r = arg;
	struct fivc_spin spin;
	uint8_t buf[4096];
	ssize_t n;

	fivc_spin_init(&spin, 0);
	do {
		n = fivc_rx_read_wait(&r->c->rx, r->c->ev_sleep, &spin, buf,
				      sizeof(buf), WAIT_MS);
	} while (n > 0);
	r->ret = n;
	return NULL;
}

/* SEND_CLOSE wakes a sleeping receiver with EOF; a reset with ECONNRESET. */
static void test_send_close_wakes_receiver(bool reset)
{
	struct fivc_ring_geom g = geom(4, 4096);
	struct blocked_reader r = {};
	struct ring_producer p;
	struct ring_consumer c;
	pthread_t th;
	double t0;

	if (!CHECK_EQ(ring_producer_open(&p, &g), 0, "producer open"))
		return;
	if (!CHECK_EQ(ring_consumer_open(&c, &p, 0, true), 0, "consumer open"))
		goto out;
	r.c = &c;
	pthread_create(&th, NULL, read_until_end, &r);
	t0 = now_sec();
	while (!c.rx.st.waits && now_sec() - t0 < 5)
		usleep(1000);
	CHECK(c.rx.st.waits > 0, "receiver asleep on an empty ring");
	if (reset)
		fivc_tx_reset(&p.tx);
	else
		fivc_tx_close(&p.tx);
	pthread_join(th, NULL);
	CHECK_EQ(r.ret, reset ? -ECONNRESET : 0,
		 reset ? "receiver woke with ECONNRESET"
		       : "receiver woke with EOF");
	ring_consumer_close(&c);
out:
	ring_producer_close(&p);
}

/* A reset discards queued data: the receiver must not see it as a stream. */
static void test_reset_discards(void)
{
	struct fivc_ring_geom g = geom(4, 4096);
	struct ring_producer p;
	struct ring_consumer c;
	uint8_t buf[100] = {1};

	if (!CHECK_EQ(ring_producer_open(&p, &g), 0, "producer open"))
		return;
	if (CHECK_EQ(ring_consumer_open(&c, &p, 0, true), 0, "consumer open")) {
		CHECK_EQ(fivc_tx_write(&p.tx, buf, sizeof(buf)), sizeof(buf),
			 "write");
		fivc_tx_reset(&p.tx);
		CHECK_EQ(fivc_rx_read(&c.rx, buf, sizeof(buf)), -ECONNRESET,
			 "read after reset");
		ring_consumer_close(&c);
	}
	ring_producer_close(&p);
}

/* Zero-copy: partial releases keep the rest of the channel in place. */
static void test_partial_release(void)
{
	struct fivc_ring_geom g = geom(2, 4096);
	struct ring_producer p;
	struct ring_consumer c;
	uint8_t out[6000];
	const void *ptr;
	void *wptr;
	size_t room;

	if (!CHECK_EQ(ring_producer_open(&p, &g), 0, "producer open"))
		return;
	if (!CHECK_EQ(ring_consumer_open(&c, &p, 0, true), 0, "consumer open"))
		goto out;
	fill_pattern(out, sizeof(out), 0);
	CHECK_EQ(fivc_rx_peek(&c.rx, &ptr), -EAGAIN, "empty ring: EAGAIN");
	/* Producer: reserve, write part, commit; nothing visible before flush.
	 */
	CHECK_EQ(fivc_tx_reserve(&p.tx, &wptr, &room), 0, "reserve");
	CHECK_EQ(room, 4096, "a whole channel reserved");
	memcpy(wptr, out, 1000);
	CHECK_EQ(fivc_tx_commit(&p.tx, 1000), 0, "commit 1000");
	CHECK_EQ(fivc_rx_peek(&c.rx, &ptr), -EAGAIN, "unflushed: not visible");
	CHECK_EQ(fivc_tx_commit(&p.tx, 4000), -EINVAL, "commit past channel");
	CHECK_EQ(fivc_tx_flush(&p.tx), 0, "flush");
	CHECK_EQ(fivc_rx_peek(&c.rx, &ptr), 1000, "flushed channel visible");
	CHECK(!memcmp(ptr, out, 1000), "peeked content");
	CHECK_EQ(fivc_rx_release(&c.rx, 300), 0, "release 300");
	CHECK_EQ(fivc_rx_peek(&c.rx, &ptr), 700, "700 left");
	CHECK(!memcmp(ptr, out + 300, 700), "rest in place");
	CHECK_EQ(fivc_rx_release(&c.rx, 701), -EINVAL, "release too much");
	CHECK_EQ(fivc_rx_release(&c.rx, 700), 0, "release rest");
	CHECK_EQ(c.rx.st.channels, 1, "channel freed");
	CHECK_EQ(fivc_rx_peek(&c.rx, &ptr), -EAGAIN, "empty again");
	ring_consumer_close(&c);
out:
	ring_producer_close(&p);
}

static void test_geometry(void)
{
	static const struct {
		uint32_t n, s, k;
		int ok;
	} cases[] = {
		{4, 4096, 1, 1}, {2, 4096, 1, 1},    {64, 1 << 20, 8, 1},
		{1, 4096, 1, 0}, {65, 4096, 1, 0},   {4, 2048, 1, 0},
		{4, 6000, 1, 0}, {4, 2 << 20, 1, 0}, {4, 4096, 0, 0},
		{4, 4096, 9, 0},
	};
	struct fivc_ring_geom g;
	const char *why;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fivc_ring_geom_default(&g);
		g.n_channels = cases[i].n;
		g.channel_size = cases[i].s;
		g.n_receivers = cases[i].k;
		CHECK_EQ(fivc_ring_geom_check(&g, &why) == 0, cases[i].ok,
			 "geometry check");
	}
	fivc_ring_geom_default(&g);
	CHECK_EQ(fivc_ring_region_size(&g), 4096 + 4 * 4096,
		 "default region: one header page + 4 channels");
}

/*
 * A ring is given back once every consumer said so in its line, whatever
 * else it said (a reset); the producer's reformat for the next flow
 * forgets it.
 */
static void test_give_back(void)
{
	struct fivc_ring_geom g = geom(4, 4096);
	struct fivc_kick kick[2];
	struct ring_producer p;
	struct ring_consumer c0, c1;

	g.n_receivers = 2;
	if (!CHECK_EQ(ring_producer_open(&p, &g), 0, "producer open"))
		return;
	if (!CHECK_EQ(ring_consumer_open(&c0, &p, 0, true), 0, "consumer 0") ||
	    !CHECK_EQ(ring_consumer_open(&c1, &p, 1, true), 0, "consumer 1"))
		goto close_p;
	CHECK(!fivc_ring_given_back(p.shm->addr, &g), "a new ring is in use");
	fivc_rx_reset(&c0.rx);
	fivc_rx_give_back(&c0.rx);
	CHECK(!fivc_ring_given_back(p.shm->addr, &g),
	      "one consumer of two gave it back: still in use");
	fivc_rx_close(&c1.rx);
	fivc_rx_give_back(&c1.rx);
	CHECK(fivc_ring_given_back(p.shm->addr, &g),
	      "both gave it back (after a reset, after a close)");
	for (int r = 0; r < 2; r++)
		kick[r] = (struct fivc_kick){fivc_evch_kick, p.ev[r]};
	CHECK_EQ(fivc_tx_init(&p.tx, p.shm->addr, p.shm->size, &g, kick), 0,
		 "reformat for the next flow");
	CHECK(!fivc_ring_given_back(p.shm->addr, &g),
	      "the reformatted ring is in use again");
	ring_consumer_close(&c1);
	ring_consumer_close(&c0);
close_p:
	ring_producer_close(&p);
}

int main(void)
{
	test_geometry();
	test_send_close_with_data();
	test_peer_close_wakes_sender(false);
	test_peer_close_wakes_sender(true);
	test_send_close_wakes_receiver(false);
	test_send_close_wakes_receiver(true);
	test_reset_discards();
	test_partial_release();
	test_give_back();
	return test_report(
		"ring close, reset, partial release, geometry, give back");
}
