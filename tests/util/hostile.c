// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastivc/ring.h"
#include "hostile.h"

struct script {
	const uint8_t *p;
	size_t left;
};

static uint32_t take(struct script *s, unsigned int bytes)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < bytes && s->left; i++, s->left--)
		v |= (uint32_t)*s->p++ << (8 * i);
	return v;
}

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "hostile: %s:%d: %s\n", __FILE__,      \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

static int no_kick(void *arg)
{
	(void)arg;
	return 0;
}

static bool allowed(long r)
{
	return r >= 0 || r == -EAGAIN || r == -EPROTO || r == -EPIPE ||
	       r == -ECONNRESET || r == -EINVAL;
}

/* A pointer the ring hands out must lie inside the current channel. */
static void check_span(const uint8_t *data, uint32_t idx, uint32_t s,
		       const void *ptr, size_t len)
{
	const uint8_t *lo = data + (size_t)idx * s, *p = ptr;

	REQUIRE(len > 0 && len <= s);
	REQUIRE(p >= lo && p + len <= lo + s);
}

/* Values a hostile peer would try: near the expected ones, and extremes. */
static uint32_t evil_value(struct script *s, const struct fivc_rx *rx)
{
	uint32_t sel = take(s, 1);

	switch (sel % 8) {
	case 0:
		return 0;
	case 1:
		return 1 + sel / 8 % 3;
	case 2:
		return rx->wait_gen + sel / 8 % 3 - 1;
	case 3:
		return rx->g.channel_size + sel / 8 % 3 - 1;
	case 4:
		return rx->wait_gen - rx->g.n_channels;
	case 5:
		return UINT32_MAX;
	default:
		return take(s, 4);
	}
}

int hostile_run(const uint8_t *script, size_t len)
{
	struct script s = {script, len};
	struct fivc_kick kicks[FIVC_RECEIVERS_MAX];
	struct fivc_rx rx[2];
	struct fivc_ring_geom g;
	struct fivc_tx tx;
	uint8_t buf[9000], *region;
	size_t size;
	uint32_t data_off;

	fivc_ring_geom_default(&g);
	g.n_channels = 2 + take(&s, 1) % 7;
	g.channel_size = 4096u << (take(&s, 1) % 2);
	g.n_receivers = 1 + take(&s, 1) % 2;
	g.gen_first = take(&s, 4);
	take(&s, 1); /* reserved: keeps the header 8 bytes */
	size = fivc_ring_region_size(&g);
	region = aligned_alloc(4096, size);
	REQUIRE(region);
	for (unsigned int i = 0; i < FIVC_RECEIVERS_MAX; i++)
		kicks[i] = (struct fivc_kick){no_kick, NULL};
	REQUIRE(fivc_tx_init(&tx, region, size, &g, kicks) == 0);
	for (uint32_t r = 0; r < g.n_receivers; r++)
		REQUIRE(fivc_rx_attach(&rx[r], region, size, &g, r, kicks) ==
			0);
	data_off = (uint32_t)(tx.data - region);
	memset(buf, 0xa5, sizeof(buf));

	while (s.left) {
		/* Fixed 8-byte records keep mutated scripts aligned to ops. */
		struct script rec = {s.p, s.left < 8 ? s.left : 8};
		uint32_t op = take(&rec, 1);
		struct fivc_rx *r = &rx[(op >> 4) % g.n_receivers];
		const void *cp;
		void *wp;
		size_t room;
		long ret;

		s.p += rec.left + 1;
		s.left -= rec.left + 1;
		switch (op % 10) {
		case 0: /* the hostile peer rewrites a shared word */
		case 1: {
			uint32_t off = take(&rec, 2) % data_off & ~3u;
			uint32_t v = evil_value(&rec, r);

			memcpy(region + off, &v, 4);
			break;
		}
		case 2:
			ret = fivc_tx_write(&tx, buf,
					    take(&rec, 2) % sizeof(buf));
			REQUIRE(allowed(ret));
			break;
		case 3:
			ret = fivc_rx_peek(r, &cp);
			REQUIRE(allowed(ret));
			if (ret > 0) {
				size_t avail = (size_t)ret;
				size_t n = take(&rec, 2) % (avail + 2);

				check_span(r->data, r->idx, g.channel_size, cp,
					   avail);
				ret = fivc_rx_release(r, n);
				REQUIRE(n > avail ? ret == -EINVAL
						  : ret == 0 || ret == -EPROTO);
			}
			break;
		case 4:
			ret = fivc_rx_read(r, buf, take(&rec, 2) % sizeof(buf));
			REQUIRE(allowed(ret) && ret <= (long)sizeof(buf));
			break;
		case 5:
			fivc_rx_prepare_wait(r);
			fivc_tx_prepare_wait(&tx);
			break;
		case 6:
			ret = fivc_tx_reserve(&tx, &wp, &room);
			REQUIRE(allowed(ret));
			if (!ret) {
				check_span(tx.data, tx.idx, g.channel_size, wp,
					   room);
				memset(wp, 0x5a, room);
				ret = fivc_tx_commit(&tx, take(&rec, 2) %
								  (room + 1));
				REQUIRE(allowed(ret));
			}
			break;
		case 7:
			REQUIRE(allowed(fivc_tx_close(&tx)));
			break;
		case 8:
			if (op & 0x80)
				fivc_rx_close(r);
			else
				fivc_rx_reset(r);
			break;
		default:
			if (op & 0x80)
				fivc_tx_reset(&tx);
			else
				fivc_tx_flush(&tx);
			break;
		}
		/* Local state never leaves its bounds, whatever the peer wrote.
		 */
		REQUIRE(r->idx < g.n_channels && tx.idx < g.n_channels);
		REQUIRE(r->size <= g.channel_size && r->off <= r->size);
		REQUIRE(tx.fill <= g.channel_size);
		/* Errors are sticky. */
		if (r->err)
			REQUIRE(fivc_rx_peek(r, &cp) == r->err);
		if (tx.err)
			REQUIRE(fivc_tx_reserve(&tx, &wp, &room) == tx.err);
	}
	free(region);
	return 0;
}
