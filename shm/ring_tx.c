// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The producer side of the tunnel protocol (thesis §3.4.5).
 *
 * Channels are used round robin. Claiming channel i needs pend_read == 0;
 * the producer then stores gen_num, fills the payload and publishes the
 * channel by storing size and pend_read = K. Only pend_read and the
 * receivers' lines are read from shared memory here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fastivc/log.h"
#include "ring_internal.h"

/* Errors are sticky: the first one is what every later call returns. */
static int tx_fail(struct fivc_tx *tx, int err)
{
	if (!tx->err)
		tx->err = err;
	return tx->err;
}

static int tx_violation(struct fivc_tx *tx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The peer broke the protocol: one log line, then reset the tunnel. */
static int tx_violation(struct fivc_tx *tx, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (tx->err)
		return tx->err;
	tx->err = -EPROTO;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pr_warn("ring tx: peer broke the tunnel protocol (%s); tearing the "
		"tunnel down",
		why);
	shared_fetch_or(&tx->ctrl->tx_state, FIVC_STATE_RESET);
	for (uint32_t r = 0; r < tx->g.n_receivers; r++)
		ring_kick(&tx->kick[r], &tx->st);
	return tx->err;
}

/* RECV_CLOSE or an abort from any receiver ends the tunnel for us. */
static int tx_check_receivers(struct fivc_tx *tx)
{
	for (uint32_t r = 0; r < tx->g.n_receivers; r++) {
		uint32_t st = shared_load_acquire(&tx->ctrl->rx[r].rx_state);

		if (st & FIVC_STATE_RESET)
			return tx_fail(tx, -ECONNRESET);
		if (st & FIVC_STATE_CLOSED)
			return tx_fail(tx, -EPIPE);
	}
	return 0;
}

/* 0 if the current channel is free, -EAGAIN if still locked, or an error. */
static int tx_channel_state(struct fivc_tx *tx)
{
	uint32_t pend = shared_load_acquire(&tx->hdr[tx->idx].pend_read);

	if (pend > tx->g.n_receivers)
		return tx_violation(tx,
				    "channel %u pend_read %u > %u receivers",
				    tx->idx, pend, tx->g.n_receivers);
	return pend ? -EAGAIN : 0;
}

int fivc_tx_init(struct fivc_tx *tx, void *region, size_t region_size,
		 const struct fivc_ring_geom *g, const struct fivc_kick *kick)
{
	const char *why;
	uint8_t *base = region;

	memset(tx, 0, sizeof(*tx));
	if (fivc_ring_geom_check(g, &why)) {
		pr_err("Failed to create ring: %s", why);
		return -EINVAL;
	}
	if (region_size < fivc_ring_region_size(g)) {
		pr_err("Failed to create ring: region of %zu bytes, need %zu",
		       region_size, fivc_ring_region_size(g));
		return -EINVAL;
	}
	tx->g = *g;
	tx->ctrl = region;
	tx->hdr = (struct fivc_chan_hdr *)(base + FIVC_CTRL_SIZE);
	tx->data = base + ring_data_off(g->n_channels);
	tx->gen = g->gen_first;
	for (uint32_t r = 0; r < g->n_receivers; r++)
		tx->kick[r] = kick[r];

	/* The region is not shared yet: plain stores are enough. */
	memset(region, 0, ring_data_off(g->n_channels));
	tx->ctrl->magic = FIVC_RING_MAGIC;
	tx->ctrl->version = FIVC_RING_VERSION;
	tx->ctrl->n_channels = g->n_channels;
	tx->ctrl->channel_size = g->channel_size;
	tx->ctrl->n_receivers = g->n_receivers;
	tx->ctrl->gen_first = g->gen_first;
	tx->ctrl->data_off = ring_data_off(g->n_channels);
	return 0;
}

int fivc_tx_reserve(struct fivc_tx *tx, void **buf, size_t *len)
{
	int err;

	if (tx->err)
		return tx->err;
	if (tx->closed)
		return -EPIPE;
	err = tx_check_receivers(tx);
	if (err)
		return err;
	if (!tx->claimed) {
		err = tx_channel_state(tx);
		if (err)
			return err;
		/*
		 * Thesis: bump the sequence number, stamp it, then write.
		 * Release: a receiver that reads it reads pend_read as we
		 * left it (0) or published (ring_rx.c, rx_take_channel).
		 */
		shared_store_release(&tx->hdr[tx->idx].gen_num, tx->gen);
		tx->claimed = true;
		tx->fill = 0;
	}
	*buf = tx->data + (size_t)tx->idx * tx->g.channel_size + tx->fill;
	*len = tx->g.channel_size - tx->fill;
	return 0;
}

static void tx_publish(struct fivc_tx *tx)
{
	struct fivc_chan_hdr *h = &tx->hdr[tx->idx];

	shared_store(&h->size, tx->fill);
	/* Payload and size, then pend_read: the consumer's acquire pairs. */
	shared_store_seqcst(&h->pend_read, tx->g.n_receivers);
	tx->st.channels++;
	tx->claimed = false;
	tx->fill = 0;
	tx->gen++;
	tx->idx = (tx->idx + 1) % tx->g.n_channels;
	/* SEND_DATA, only to receivers that sleep (seq_cst store above). */
	for (uint32_t r = 0; r < tx->g.n_receivers; r++)
		ring_kick_if_waiting(&tx->ctrl->rx[r].rx_waiting, &tx->kick[r],
				     &tx->st);
}

int fivc_tx_commit(struct fivc_tx *tx, size_t n)
{
	if (tx->err)
		return tx->err;
	if (!tx->claimed || n > tx->g.channel_size - tx->fill)
		return -EINVAL;
	tx->fill += n;
	tx->st.bytes += n;
	if (tx->fill == tx->g.channel_size)
		tx_publish(tx);
	return 0;
}

int fivc_tx_flush(struct fivc_tx *tx)
{
	if (tx->err)
		return tx->err;
	if (tx->claimed && tx->fill)
		tx_publish(tx);
	return 0;
}

ssize_t fivc_tx_write(struct fivc_tx *tx, const void *buf, size_t len)
{
	const uint8_t *src = buf;
	size_t done = 0;
	int err = 0;

	while (done < len) {
		void *dst;
		size_t room;

		err = fivc_tx_reserve(tx, &dst, &room);
		if (err)
			break;
		if (room > len - done)
			room = len - done;
		memcpy(dst, src + done, room);
		err = fivc_tx_commit(tx, room);
		done += room;
		if (err)
			break;
	}
	if (!done)
		return err;
	/* Thesis: notify when "no more data needs to be sent". */
	fivc_tx_flush(tx);
	return (ssize_t)done;
}

int fivc_tx_close(struct fivc_tx *tx)
{
	if (tx->err)
		return tx->err;
	if (tx->closed)
		return 0;
	fivc_tx_flush(tx);
	tx->closed = true;
	/* After the last publish: a receiver that sees CLOSED sees it all. */
	shared_fetch_or(&tx->ctrl->tx_state, FIVC_STATE_CLOSED);
	for (uint32_t r = 0; r < tx->g.n_receivers; r++)
		ring_kick(&tx->kick[r], &tx->st);
	return 0;
}

void fivc_tx_reset(struct fivc_tx *tx)
{
	if (!tx->ctrl || (shared_load(&tx->ctrl->tx_state) & FIVC_STATE_RESET))
		return;
	shared_fetch_or(&tx->ctrl->tx_state, FIVC_STATE_RESET);
	if (!tx->err)
		tx->err = -ECONNRESET;
	for (uint32_t r = 0; r < tx->g.n_receivers; r++)
		ring_kick(&tx->kick[r], &tx->st);
}

bool fivc_ring_given_back(const void *region, const struct fivc_ring_geom *g)
{
	const struct fivc_ring_ctrl *c = region;

	for (uint32_t r = 0; r < g->n_receivers; r++)
		if (!(shared_load_acquire(&c->rx[r].rx_state) &
		      FIVC_STATE_RELEASED))
			return false;
	return true;
}

bool fivc_tx_writable(const struct fivc_tx *tx)
{
	if (tx->err || tx->closed || tx->claimed)
		return true;
	/* seq_cst loads: prepare_wait's Dekker pairing needs them. */
	for (uint32_t r = 0; r < tx->g.n_receivers; r++)
		if (shared_load_seqcst(&tx->ctrl->rx[r].rx_state))
			return true;
	return shared_load_seqcst(&tx->hdr[tx->idx].pend_read) == 0;
}

bool fivc_tx_prepare_wait(struct fivc_tx *tx)
{
	if (fivc_tx_writable(tx))
		return false;
	/* RECV_GET_DATA wanted; then re-check, or the kick may be lost. */
	shared_store_seqcst(&tx->ctrl->tx_waiting, 1);
	if (fivc_tx_writable(tx)) {
		shared_store(&tx->ctrl->tx_waiting, 0);
		return false;
	}
	tx->st.waits++;
	return true;
}
