/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Private to shm/ring_*.c: shared-field accessors and layout arithmetic. */
#ifndef FASTIVC_RING_INTERNAL_H
#define FASTIVC_RING_INTERNAL_H

#include <stdint.h>

#include "fastivc/ring.h"

/*
 * Every access to a shared field goes through one of these, so the compiler
 * can never re-read a value the peer may change (no double fetch) and TSan
 * sees the ordering we rely on.
 */
#define shared_load(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define shared_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define shared_load_seqcst(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define shared_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define shared_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define shared_store_seqcst(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define shared_xchg(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define shared_fetch_or(p, v) __atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)
#define shared_fetch_sub(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)

static inline uint32_t ring_data_off(uint32_t n_channels)
{
	uint32_t hdr_end = FIVC_CTRL_SIZE +
			   n_channels * (uint32_t)sizeof(struct fivc_chan_hdr);

	return (hdr_end + FIVC_PAGE_SIZE - 1) & ~(FIVC_PAGE_SIZE - 1);
}

/*
 * A failed kick is not a ring error: the data is published either way, and a
 * peer that is gone is noticed by the agent through its own channel.
 */
static inline void ring_kick(const struct fivc_kick *k,
			     struct fivc_ring_stats *st)
{
	st->kicks++;
	if (k->fn)
		k->fn(k->arg);
}

/* Kicks @k if the peer's @waiting flag is set, clearing it first. */
static inline void ring_kick_if_waiting(uint32_t *waiting,
					const struct fivc_kick *k,
					struct fivc_ring_stats *st)
{
	if (shared_load_seqcst(waiting) && shared_xchg(waiting, 0))
		ring_kick(k, st);
}

#endif /* FASTIVC_RING_INTERNAL_H */
