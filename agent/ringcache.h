/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Tunnel halves (a ring's memory and its event channel) kept per peer link
 * and reused by later flows to the same peer (docs/steering.md, "Tunnel
 * lifecycle"), and the bound on the ring memory this agent holds.
 */
#ifndef FASTIVC_RINGCACHE_H
#define FASTIVC_RINGCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

/* Read MemTotal and set the bound; 0 or -errno. */
int ringcache_init(struct agent *a);
/* A link goes away: its cache with it, halves in use become the flows'. */
void ringcache_link_down(struct agent *a, struct peer_link *l);

/*
 * Our transmit ring for @f: a cached one the peer still maps (the CREATE
 * @m names it: cached, ring_id), or a new one (@m describes it: clear
 * m->shm after). Sets f->tx_half, tx_shm, ev_tx. -ENOSPC when the memory
 * bound (or the backend) has no room.
 */
int ring_tx_take(struct agent *a, struct flow *f,
		 const struct fivc_ring_geom *g, struct fivc_tunnel_msg *m);
/* The CREATE for @f's ring went out. */
void ring_tx_sent(struct flow *f);
/* @f is freed: keep its ring for the peer, or destroy it. */
void ring_tx_put(struct agent *a, struct flow *f);
/* The peer's RELEASE and EVICT. */
void ring_on_release(struct agent *a, struct peer_link *l,
		     const struct fivc_tunnel_msg *m);
void ring_on_evict(struct agent *a, struct peer_link *l,
		   const struct fivc_tunnel_msg *m);

/*
 * The peer's ring for @f from its CREATE @m, which came on @l (ids are
 * per link): mapped now, or taken from the
 * cache when @m names one. Sets f->rx_half, rx_shm, ev_rx. 0, or a
 * positive errno to refuse with.
 */
int ring_rx_get(struct agent *a, struct flow *f, struct peer_link *l,
		const struct fivc_tunnel_msg *m);
/* @f is freed: keep the peer's ring mapped and say so, or unmap it. */
void ring_rx_put(struct agent *a, struct flow *f);

/* Flows the ring memory still has room for (SIZE_MAX: no bound known). */
size_t ring_room(struct agent *a);
/* Rings idle in the caches now, ours and the peers'. */
uint64_t ring_cached(struct agent *a);

#endif /* FASTIVC_RINGCACHE_H */
