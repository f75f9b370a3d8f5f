/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The shared-memory layout of one tunnel direction (the fast-IVC "tunnel").
 *
 * One producer ("sender") writes, K >= 1 consumers ("receivers") read.
 * The region is laid out as:
 *
 *   offset 0                 struct fivc_ring_ctrl       (control block)
 *   offset FIVC_CTRL_SIZE     struct fivc_chan_hdr[N]    (channel headers)
 *   offset data_off          N channels of S bytes each  (payload)
 *
 *   data_off = round_up(FIVC_CTRL_SIZE + N * sizeof(fivc_chan_hdr), 4096)
 *
 * Every field lives on a cache line written by one side only, except
 * pend_read, which the producer sets and the consumers decrement.
 *
 * Nothing read from this region is trusted: each side keeps its own copy
 * of the geometry (N, S, K, first generation) from the out-of-band
 * CREATE_TUNNEL message, reads each shared field once per decision, and
 * checks it against local state before use. All multi-byte fields are
 * little-endian host order (both peers run on the same machine).
 *
 * Memory ordering, in the terms of the C11 model (see ring_tx.c/ring_rx.c):
 *  - Producer publishes a channel: gen_num, payload, size (plain/relaxed),
 *    then pend_read = K with a seq_cst store (release is what orders the
 *    payload; seq_cst also orders it before the rx_waiting load that
 *    follows, the "write data, then check whether to notify" rule).
 *  - Consumer takes a channel: pend_read load-acquire, then gen_num and
 *    size, then the payload.
 *  - Consumer frees a channel: atomic decrement of pend_read (release,
 *    so its payload reads complete before the producer may overwrite).
 *  - Sleeping side: seq_cst store of its *_waiting flag, then re-read the
 *    condition it waits for; waking side: seq_cst update of the condition,
 *    then seq_cst exchange of the flag to 0 and a kick if it was 1. This
 *    Dekker pattern means no wake-up is lost and each sleep costs at most
 *    one notification (the thesis's event_flag batching).
 */
#ifndef FASTIVC_RING_LAYOUT_H
#define FASTIVC_RING_LAYOUT_H

#include <stdint.h>

#define FIVC_RING_MAGIC 0x46495643u /* "FIVC" */
#define FIVC_RING_VERSION 1u

#define FIVC_CHANNELS_MIN 2u
#define FIVC_CHANNELS_MAX 64u
#define FIVC_CHANNELS_DEFAULT 4u
#define FIVC_CHANNEL_SIZE_MIN 4096u
#define FIVC_CHANNEL_SIZE_MAX (1024u * 1024u)
#define FIVC_CHANNEL_SIZE_DEFAULT 4096u
#define FIVC_RECEIVERS_MAX 8u

#define FIVC_CACHELINE 64u
#define FIVC_PAGE_SIZE 4096u

/* fivc_ring_ctrl.tx_state / fivc_rx_line.rx_state bits */
#define FIVC_STATE_CLOSED (1u << 0) /* SEND_CLOSE / RECV_CLOSE */
#define FIVC_STATE_RESET (1u << 1)  /* abort, or this side saw a violation */
/*
 * rx_state only: the consumer is done with the ring for good and keeps it
 * mapped for a later CREATE that names it: a RELEASE with KEPT told
 * through the ring, so that the producer learns it when it next looks for
 * a ring, not by a message that wakes it (docs/steering.md, "Ring reuse").
 */
#define FIVC_STATE_RELEASED (1u << 2)

/* One consumer's cache line. Written by that consumer only. */
struct fivc_rx_line {
	/* FIVC_STATE_*: CLOSED is RECV_CLOSE_TUNNEL. Set once, never cleared.
	 */
	uint32_t rx_state;
	/*
	 * 1 while the consumer sleeps waiting for SEND_DATA. Set by the
	 * consumer; the producer exchanges it to 0 when it kicks.
	 */
	uint32_t rx_waiting;
	uint8_t pad[FIVC_CACHELINE - 2 * sizeof(uint32_t)];
};

struct fivc_ring_ctrl {
	/*
	 * Geometry, written once by the producer before the region is offered.
	 * Informational for debugging (e.g. hexdump of the pages): consumers
	 * compare it with the geometry they were told out of band and refuse
	 * to map a region where they differ.
	 */
	uint32_t magic;
	uint32_t version;
	uint32_t n_channels;
	uint32_t channel_size;
	uint32_t n_receivers;
	uint32_t gen_first; /* gen_num of the first channel ever published */
	uint32_t data_off;
	uint32_t reserved0;
	uint8_t pad0[FIVC_CACHELINE - 8 * sizeof(uint32_t)];

	/* Producer's line. */
	uint32_t tx_state; /* FIVC_STATE_*: CLOSED is SEND_CLOSE_TUNNEL */
	/*
	 * 1 while the producer sleeps on a locked channel, waiting for
	 * RECV_GET_DATA. Set by the producer; the last reader of a channel
	 * exchanges it to 0 when it kicks.
	 */
	uint32_t tx_waiting;
	uint8_t pad1[FIVC_CACHELINE - 2 * sizeof(uint32_t)];

	struct fivc_rx_line rx[FIVC_RECEIVERS_MAX];
};

/* One channel's header; its payload lives at data_off + index * S. */
struct fivc_chan_hdr {
	/*
	 * Producer: the generation (sequence number) of the data in the
	 * channel, stored before the payload. Consumers read the channel only
	 * when gen_num equals the generation they wait for (wait_gen).
	 */
	uint32_t gen_num;
	/* Producer: payload bytes in the channel, 1..S, stored before
	 * pend_read. */
	uint32_t size;
	/*
	 * Producer stores K (the number of receivers) to publish the channel;
	 * each receiver decrements it once it has read everything. 0 means the
	 * channel is free for the producer ("unlocked").
	 */
	uint32_t pend_read;
	uint32_t reserved; /* 0 */
	uint8_t pad[FIVC_CACHELINE - 4 * sizeof(uint32_t)];
};

#define FIVC_CTRL_SIZE ((uint32_t)sizeof(struct fivc_ring_ctrl))

_Static_assert(sizeof(struct fivc_rx_line) == FIVC_CACHELINE, "rx line");
_Static_assert(sizeof(struct fivc_chan_hdr) == FIVC_CACHELINE, "chan hdr");
_Static_assert(sizeof(struct fivc_ring_ctrl) ==
		       (2 + FIVC_RECEIVERS_MAX) * FIVC_CACHELINE,
	       "ctrl block");

#endif /* FASTIVC_RING_LAYOUT_H */
