/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Parked messages: a CREATE or FALLBACK from a peer for a flow whose
 * ESTABLISHED event we have not read yet. Each is kept until its flow
 * appears (park_take) or setup_timeout_ms passes (park_expired), in
 * arrival order, found by tunnel id through a hash (no walk of the rest).
 * A peer is untrusted: each link may park at most park_max(); beyond that
 * park_add refuses, counts (parked_refused) and logs once per episode.
 */
#ifndef FASTIVC_AGENT_PARK_H
#define FASTIVC_AGENT_PARK_H

#include <stdbool.h>
#include <stdint.h>

struct agent;
struct peer_link;
struct fivc_tunnel_msg;

/*
 * Keep @m (and its fds) for @l, arrived at @now: 0, or -EBUSY (the link is
 * at its bound) or -ENOMEM with @m left to the caller (refuse it and
 * release it).
 */
int park_add(struct agent *a, struct peer_link *l, struct fivc_tunnel_msg *m,
	     uint64_t now);
/* The oldest message for tunnel @id from domain @domid, into @m; its link. */
bool park_take(struct agent *a, uint64_t id, uint32_t domid,
	       struct peer_link **l, struct fivc_tunnel_msg *m);
/* The oldest message whose time is up at @now, into @m; its link. */
bool park_expired(struct agent *a, uint64_t now, struct peer_link **l,
		  struct fivc_tunnel_msg *m);
/* Drop (release) what @l parked: it is going away. */
void park_link_down(struct agent *a, struct peer_link *l);
/* Messages parked now, and the most one link may park. */
uint32_t park_count(const struct agent *a);
uint32_t park_max(const struct agent *a);
void park_fini(struct agent *a);

#endif /* FASTIVC_AGENT_PARK_H */
