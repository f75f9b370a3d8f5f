/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The fast-IVC channel ring: one producer, K consumers, N channels of S bytes.
 *
 * The API is zero-copy: the producer reserves space inside the current
 * channel and commits what it wrote there (e.g. recv() straight into it);
 * the consumer peeks at the unread part of the current channel and releases
 * what it consumed (e.g. send() straight out of it).
 *
 * None of these calls blocks or makes a system call except to notify the
 * peer through the kick callback. A call that cannot progress returns
 * -EAGAIN; the caller then asks fivc_*_prepare_wait() whether it may sleep
 * on its event channel (see ring_wait.h for ready-made blocking loops).
 *
 * Errors are sticky: once a call returns -EPIPE, -ECONNRESET or -EPROTO,
 * every later call returns the same value.
 *   -EPIPE       (producer) a receiver sent RECV_CLOSE_TUNNEL
 *   -ECONNRESET  the peer aborted the tunnel (its state has RESET)
 *   -EPROTO      the peer broke the protocol; the ring was torn down and
 *                one line was logged
 *
 * Threading: one fivc_tx or fivc_rx object belongs to one thread at a time.
 * The producer and each consumer may run in different threads, processes
 * or domains.
 */
#ifndef FASTIVC_RING_H
#define FASTIVC_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fastivc/ring_layout.h"

/* Geometry of one tunnel direction, agreed out of band (CREATE_TUNNEL). */
struct fivc_ring_geom {
	uint32_t n_channels;   /* N: FIVC_CHANNELS_MIN..MAX */
	uint32_t channel_size; /* S: power of two, FIVC_CHANNEL_SIZE_MIN..MAX */
	uint32_t n_receivers;  /* K: 1..FIVC_RECEIVERS_MAX */
	uint32_t gen_first;    /* gen_num of the first channel; any value */
};

/* Sends one notification to the peer; returns 0 or -errno. */
struct fivc_kick {
	int (*fn)(void *arg);
	void *arg;
};

struct fivc_ring_stats {
	uint64_t bytes;	   /* payload bytes committed (tx) or released (rx) */
	uint64_t channels; /* channels published (tx) or freed (rx) */
	uint64_t kicks;	   /* notifications sent to the peer */
	uint64_t waits;	   /* prepare_wait() calls that allowed a sleep */
};

/* Fills *g with the defaults (4 channels of 4 KiB, one receiver). */
void fivc_ring_geom_default(struct fivc_ring_geom *g);
/* 0, or -EINVAL with a one-line reason in *why. */
int fivc_ring_geom_check(const struct fivc_ring_geom *g, const char **why);
/* Bytes of shared memory one direction needs (a multiple of 4096). */
size_t fivc_ring_region_size(const struct fivc_ring_geom *g);

struct fivc_tx {
	struct fivc_ring_geom g;
	struct fivc_ring_ctrl *ctrl;
	struct fivc_chan_hdr *hdr;
	uint8_t *data;
	uint32_t idx;  /* current channel */
	uint32_t gen;  /* generation of the current channel */
	uint32_t fill; /* bytes written into the current channel */
	bool claimed;  /* current channel is ours and unpublished */
	bool closed;
	int err; /* sticky error, 0 if none */
	struct fivc_kick kick[FIVC_RECEIVERS_MAX];
	struct fivc_ring_stats st;
};

struct fivc_rx {
	struct fivc_ring_geom g;
	struct fivc_ring_ctrl *ctrl;
	struct fivc_chan_hdr *hdr;
	uint8_t *data;
	uint32_t id;	   /* this receiver's index, 0..K-1 */
	uint32_t idx;	   /* current channel */
	uint32_t wait_gen; /* generation expected in the current channel */
	uint32_t size; /* validated size of the current channel, 0 if none */
	uint32_t off;  /* bytes of it already released */
	bool closed;
	int err;
	struct fivc_kick kick;
	struct fivc_ring_stats st;
};

/*
 * Producer: format @region (fivc_ring_region_size(g) bytes, zeroed or not)
 * and take the producer role. @kick[r] notifies receiver r.
 */
int fivc_tx_init(struct fivc_tx *tx, void *region, size_t region_size,
		 const struct fivc_ring_geom *g, const struct fivc_kick *kick);
/*
 * Space in the current channel: *buf, *len > 0. Claims the next channel when
 * the current one is full; -EAGAIN if it is still locked by a receiver.
 */
int fivc_tx_reserve(struct fivc_tx *tx, void **buf, size_t *len);
/* @n bytes of the last reservation were written. Publishes a full channel. */
int fivc_tx_commit(struct fivc_tx *tx, size_t n);
/* Nothing more to send for now: publish a partly filled channel. */
int fivc_tx_flush(struct fivc_tx *tx);
/* Copy in as much of @buf as fits, then flush. Bytes copied or -errno. */
ssize_t fivc_tx_write(struct fivc_tx *tx, const void *buf, size_t len);
/* SEND_CLOSE_TUNNEL: flush, then mark end of stream. Never blocks. */
int fivc_tx_close(struct fivc_tx *tx);
/* Abort: receivers see -ECONNRESET and stop reading. */
void fivc_tx_reset(struct fivc_tx *tx);
/*
 * Before sleeping after -EAGAIN: arms the RECV_GET_DATA notification and
 * re-checks. true: sleep on the event channel; false: retry now.
 */
bool fivc_tx_prepare_wait(struct fivc_tx *tx);
/* true if reserve() can progress (or would fail) without waiting. */
bool fivc_tx_writable(const struct fivc_tx *tx);

/*
 * Consumer @id (0..K-1): attach to a region the producer formatted. Refuses
 * (-EINVAL, logged) a region whose control block disagrees with @g.
 * @kick notifies the producer.
 */
int fivc_rx_attach(struct fivc_rx *rx, void *region, size_t region_size,
		   const struct fivc_ring_geom *g, uint32_t id,
		   const struct fivc_kick *kick);
/*
 * The unread part of the current channel: returns its length (> 0) and sets
 * *buf; 0 at end of stream (SEND_CLOSE and everything read); -EAGAIN if
 * nothing is published yet; or a sticky error.
 */
ssize_t fivc_rx_peek(struct fivc_rx *rx, const void **buf);
/* @n bytes of the last peek were consumed; frees a fully read channel. */
int fivc_rx_release(struct fivc_rx *rx, size_t n);
/* Copy out up to @len bytes: count, 0 at end of stream, or -errno. */
ssize_t fivc_rx_read(struct fivc_rx *rx, void *buf, size_t len);
/* RECV_CLOSE_TUNNEL: the producer's next call fails with -EPIPE. */
void fivc_rx_close(struct fivc_rx *rx);
/* Abort: the producer sees -ECONNRESET. */
void fivc_rx_reset(struct fivc_rx *rx);
/* Done with the ring, mapping kept: FIVC_STATE_RELEASED, after every read. */
void fivc_rx_give_back(struct fivc_rx *rx);
/* The producer: did each of the @g's consumers of @region give it back? */
bool fivc_ring_given_back(const void *region, const struct fivc_ring_geom *g);
/* Arms the SEND_DATA notification; true: sleep, false: retry now. */
bool fivc_rx_prepare_wait(struct fivc_rx *rx);
/* true if peek() would return something other than -EAGAIN. */
bool fivc_rx_readable(const struct fivc_rx *rx);
/*
 * The caller polls fivc_rx_readable() instead of sleeping: the producer
 * need not send SEND_DATA. Call fivc_rx_prepare_wait() before sleeping.
 */
void fivc_rx_unwait(struct fivc_rx *rx);

#endif /* FASTIVC_RING_H */
