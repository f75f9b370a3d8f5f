/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Blocking loops over the non-blocking ring calls, for threads that own a
 * ring end (tests, benchmarks, simple tools). The agent drives its rings from
 * its epoll loop instead.
 *
 * Before sleeping they spin for a short, adaptive while: a spin that ended in
 * progress doubles the next budget, one that did not halves it (never below
 * the cost of a wake-up), so a busy stream rarely sleeps and an idle one
 * burns little CPU.
 */
#ifndef FASTIVC_RING_WAIT_H
#define FASTIVC_RING_WAIT_H

#include "fastivc/ring.h"
#include "fastivc/shm.h"

struct fivc_spin {
	unsigned int budget; /* microseconds of polling before sleeping */
	unsigned int max;    /* upper bound of the budget; 0 never spins */
};

void fivc_spin_init(struct fivc_spin *s, unsigned int max_us);

/* Waits until reserve() can progress: 0, -ETIMEDOUT or -errno. */
int fivc_tx_wait(struct fivc_tx *tx, struct fivc_evch *ev, struct fivc_spin *s,
		 int timeout_ms);
/* Waits until peek() returns something other than -EAGAIN. */
int fivc_rx_wait(struct fivc_rx *rx, struct fivc_evch *ev, struct fivc_spin *s,
		 int timeout_ms);

/*
 * Writes all of @buf, waiting as needed (each wait <= timeout_ms). Returns
 * len, or what was written before an error, or the error if nothing was.
 */
ssize_t fivc_tx_write_all(struct fivc_tx *tx, struct fivc_evch *ev,
			  struct fivc_spin *s, const void *buf, size_t len,
			  int timeout_ms);
/* Reads 1..@len bytes, waiting for the first; 0 at end of stream. */
ssize_t fivc_rx_read_wait(struct fivc_rx *rx, struct fivc_evch *ev,
			  struct fivc_spin *s, void *buf, size_t len,
			  int timeout_ms);

#endif /* FASTIVC_RING_WAIT_H */
