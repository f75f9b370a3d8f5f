// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The consumer side of the tunnel protocol (thesis §3.4.5).
 *
 * A receiver waits for generation wait_gen in its current channel. When the
 * producer has published it (pend_read != 0, gen_num == wait_gen), the
 * header is copied once into local state and checked; from then on only the
 * local copy is used, so a peer rewriting the header cannot move a read
 * outside the channel. When everything is read, pend_read is decremented;
 * the last reader sends RECV_GET_DATA if the producer sleeps.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fastivc/log.h"
#include "ring_internal.h"

static int rx_violation(struct fivc_rx *rx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The peer broke the protocol: one log line, then reset the tunnel. */
static int rx_violation(struct fivc_rx *rx, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (rx->err)
		return rx->err;
	rx->err = -EPROTO;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pr_warn("ring rx%u: peer broke the tunnel protocol (%s); tearing the "
		"tunnel down",
		rx->id, why);
	shared_fetch_or(&rx->ctrl->rx[rx->id].rx_state, FIVC_STATE_RESET);
	ring_kick(&rx->kick, &rx->st);
	return rx->err;
}

int fivc_rx_attach(struct fivc_rx *rx, void *region, size_t region_size,
		   const struct fivc_ring_geom *g, uint32_t id,
		   const struct fivc_kick *kick)
{
	struct fivc_ring_ctrl *c = region;
	uint8_t *base = region;
	const char *why;

	memset(rx, 0, sizeof(*rx));
	if (fivc_ring_geom_check(g, &why)) {
		pr_warn("Failed to attach ring: %s", why);
		return -EINVAL;
	}
	if (id >= g->n_receivers || region_size < fivc_ring_region_size(g)) {
		pr_warn("Failed to attach ring: receiver %u of %u, region %zu "
			"bytes",
			id, g->n_receivers, region_size);
		return -EINVAL;
	}
	if (shared_load(&c->magic) != FIVC_RING_MAGIC ||
	    shared_load(&c->version) != FIVC_RING_VERSION ||
	    shared_load(&c->n_channels) != g->n_channels ||
	    shared_load(&c->channel_size) != g->channel_size ||
	    shared_load(&c->n_receivers) != g->n_receivers ||
	    shared_load(&c->gen_first) != g->gen_first ||
	    shared_load(&c->data_off) != ring_data_off(g->n_channels)) {
		pr_warn("Failed to attach ring: its control block does not "
			"match the tunnel's geometry");
		return -EINVAL;
	}
	rx->g = *g;
	rx->ctrl = c;
	rx->hdr = (struct fivc_chan_hdr *)(base + FIVC_CTRL_SIZE);
	rx->data = base + ring_data_off(g->n_channels);
	rx->id = id;
	rx->wait_gen = g->gen_first;
	rx->kick = *kick;
	return 0;
}

/*
 * Looks at the current channel once. > 0: published for us, rx->size set;
 * -EAGAIN: not yet; or a violation.
 */
static int rx_take_channel(struct fivc_rx *rx)
{
	struct fivc_chan_hdr *h = &rx->hdr[rx->idx];
	uint32_t pend, gen, size;

	/*
	 * gen_num first, then pend_read, both acquire. The other order is
	 * wrong with several receivers: pend_read may be the previous round's,
	 * still held by a slower receiver, which then releases it, and gen_num
	 * the next round's, whose payload is still being written. Having seen
	 * the producer's gen_num (stored after it saw pend_read at 0), we can
	 * only read pend_read as 0 or as that round's publish.
	 */
	gen = shared_load_acquire(&h->gen_num);
	pend = shared_load_acquire(&h->pend_read);
	if (!pend)
		return -EAGAIN;
	if (gen != rx->wait_gen) {
		/* Maybe published between the two loads: look again. */
		gen = shared_load_acquire(&h->gen_num);
		if (gen == rx->wait_gen)
			pend = shared_load_acquire(&h->pend_read);
		/* Other receivers still read the previous round. */
		else if (rx->g.n_receivers > 1 &&
			 gen == rx->wait_gen - rx->g.n_channels)
			return -EAGAIN;
		else
			return rx_violation(
				rx, "channel %u gen_num %u, expected %u",
				rx->idx, gen, rx->wait_gen);
		if (!pend)
			return -EAGAIN;
	}
	if (pend > rx->g.n_receivers)
		return rx_violation(rx,
				    "channel %u pend_read %u > %u receivers",
				    rx->idx, pend, rx->g.n_receivers);
	size = shared_load(&h->size);
	if (size == 0 || size > rx->g.channel_size)
		return rx_violation(rx, "channel %u size %u, channel holds %u",
				    rx->idx, size, rx->g.channel_size);
	rx->size = size;
	rx->off = 0;
	return 1;
}

/* Bytes available in the current channel, 0 at end of stream, or -errno. */
static ssize_t rx_available(struct fivc_rx *rx)
{
	uint32_t st;
	int r;

	if (rx->err)
		return rx->err;
	if (rx->closed)
		return -EPIPE;
	if (rx->size)
		return rx->size - rx->off;
	st = shared_load_acquire(&rx->ctrl->tx_state);
	if (st & FIVC_STATE_RESET) {
		rx->err = -ECONNRESET;
		return rx->err;
	}
	r = rx_take_channel(rx);
	/*
	 * CLOSED is set after the last publish, and was read (acquire) before
	 * the channel: nothing published now means nothing ever will be.
	 */
	if (r == -EAGAIN && (st & FIVC_STATE_CLOSED))
		return 0;
	return r < 0 ? r : (ssize_t)(rx->size - rx->off);
}

ssize_t fivc_rx_peek(struct fivc_rx *rx, const void **buf)
{
	ssize_t n = rx_available(rx);

	if (n > 0)
		*buf = rx->data + (size_t)rx->idx * rx->g.channel_size +
		       rx->off;
	return n;
}

int fivc_rx_release(struct fivc_rx *rx, size_t n)
{
	uint32_t old;

	if (rx->err)
		return rx->err;
	if (n > rx->size - rx->off)
		return -EINVAL;
	rx->off += n;
	rx->st.bytes += n;
	if (!rx->size || rx->off < rx->size)
		return 0;

	/* All read: unlock the channel (our reads happen before). */
	old = shared_fetch_sub(&rx->hdr[rx->idx].pend_read, 1);
	if (old == 0 || old > rx->g.n_receivers)
		return rx_violation(rx,
				    "channel %u pend_read was %u while read",
				    rx->idx, old);
	rx->st.channels++;
	rx->size = 0;
	rx->off = 0;
	rx->wait_gen++;
	rx->idx = (rx->idx + 1) % rx->g.n_channels;
	if (old == 1) /* last reader: RECV_GET_DATA if the producer sleeps */
		ring_kick_if_waiting(&rx->ctrl->tx_waiting, &rx->kick, &rx->st);
	return 0;
}

ssize_t fivc_rx_read(struct fivc_rx *rx, void *buf, size_t len)
{
	uint8_t *dst = buf;
	size_t done = 0;
	ssize_t n = 0;

	while (done < len) {
		const void *src;
		int err;

		n = fivc_rx_peek(rx, &src);
		if (n <= 0)
			break;
		if ((size_t)n > len - done)
			n = (ssize_t)(len - done);
		memcpy(dst + done, src, (size_t)n);
		done += (size_t)n;
		err = fivc_rx_release(rx, (size_t)n);
		if (err)
			return err;
	}
	if (done)
		return (ssize_t)done;
	return n;
}

void fivc_rx_close(struct fivc_rx *rx)
{
	if (!rx->ctrl || rx->closed)
		return;
	rx->closed = true;
	shared_fetch_or(&rx->ctrl->rx[rx->id].rx_state, FIVC_STATE_CLOSED);
	ring_kick(&rx->kick, &rx->st);
}

void fivc_rx_give_back(struct fivc_rx *rx)
{
	if (rx->ctrl)
		shared_fetch_or(&rx->ctrl->rx[rx->id].rx_state,
				FIVC_STATE_RELEASED);
}

void fivc_rx_reset(struct fivc_rx *rx)
{
	if (!rx->ctrl ||
	    (shared_load(&rx->ctrl->rx[rx->id].rx_state) & FIVC_STATE_RESET))
		return;
	shared_fetch_or(&rx->ctrl->rx[rx->id].rx_state, FIVC_STATE_RESET);
	if (!rx->err)
		rx->err = -ECONNRESET;
	ring_kick(&rx->kick, &rx->st);
}

/* seq_cst loads: prepare_wait's Dekker pairing needs them. */
bool fivc_rx_readable(const struct fivc_rx *rx)
{
	const struct fivc_chan_hdr *h = &rx->hdr[rx->idx];

	if (rx->err || rx->closed || rx->size)
		return true;
	if (shared_load_seqcst(&rx->ctrl->tx_state))
		return true;
	if (!shared_load_seqcst(&h->pend_read))
		return false;
	/* Published: data for us, a violation to report, or the last round. */
	return rx->g.n_receivers == 1 ||
	       shared_load_seqcst(&h->gen_num) !=
		       rx->wait_gen - rx->g.n_channels;
}

bool fivc_rx_prepare_wait(struct fivc_rx *rx)
{
	if (fivc_rx_readable(rx))
		return false;
	/* SEND_DATA wanted; then re-check, or the kick may be lost. */
	shared_store_seqcst(&rx->ctrl->rx[rx->id].rx_waiting, 1);
	if (fivc_rx_readable(rx)) {
		shared_store(&rx->ctrl->rx[rx->id].rx_waiting, 0);
		return false;
	}
	rx->st.waits++;
	return true;
}

void fivc_rx_unwait(struct fivc_rx *rx)
{
	shared_store(&rx->ctrl->rx[rx->id].rx_waiting, 0);
}
