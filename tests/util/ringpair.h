/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One ring over the local backend, set up the way two agents would: the
 * producer offers the region and one event channel per receiver; receiver r
 * maps the region from its descriptor, sleeps on channel r and kicks the
 * producer through channel 0 (the one the producer sleeps on). The
 * descriptors survive fork(), so a child can attach as a receiver.
 */
#ifndef FASTIVC_RINGPAIR_H
#define FASTIVC_RINGPAIR_H

#include <stdbool.h>

#include "fastivc/ring.h"
#include "fastivc/shm.h"

struct ring_producer {
	struct fivc_backend *be;
	struct fivc_ring_geom g;
	struct fivc_shm *shm;
	struct fivc_shm_desc desc;
	struct fivc_evch *ev[FIVC_RECEIVERS_MAX];
	struct fivc_evch_desc ev_desc[FIVC_RECEIVERS_MAX];
	struct fivc_tx tx;
};

struct ring_consumer {
	struct fivc_backend *be;
	struct fivc_shm *shm;
	struct fivc_evch *ev_sleep; /* bound to the producer's channel r */
	struct fivc_evch *ev_kick;  /* bound to channel 0 (or ev_sleep) */
	struct fivc_rx rx;
};

int ring_producer_open(struct ring_producer *p, const struct fivc_ring_geom *g);
void ring_producer_close(struct ring_producer *p);
/*
 * Attach receiver @id of @p (in this process or a forked child). With
 * @same_mapping it reuses the producer's mapping instead of mapping the
 * descriptor again, so that TSan sees both sides at the same addresses.
 */
int ring_consumer_open(struct ring_consumer *c, const struct ring_producer *p,
		       uint32_t id, bool same_mapping);
void ring_consumer_close(struct ring_consumer *c);

#endif /* FASTIVC_RINGPAIR_H */
